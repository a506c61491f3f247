"""``adk-lite export``, ``import``, ``import-adk``, ``export-adk`` and ``copy``:
moving sessions between files, servers and ADK's own stores (the export format is
:mod:`adk_lite.transfer`)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Iterator

from .. import errors, outfile, transfer
from .common import (EXIT_OK, EXIT_PROBLEM, Command, UsageError, _filters, _on_server, _open, _path, _print_json,
                     _progress, _report, add_db, add_filters, plural)


def cmd_export(args: argparse.Namespace) -> int:
    """``adk-lite export``: JSON Lines (see :mod:`adk_lite.transfer`) to stdout or ``-o FILE``."""
    app, user = _filters(args)
    path = _path(args)
    protect = [] if _on_server(args) else [path]
    if args.output is not None:
        outfile.check(args.output, protect, force=args.force)  # before anything is read
    with _open(args) as svc:
        bar, progress = _bar("export")
        try:
            if args.output is None:
                counts = svc.export(sys.stdout.buffer, app_name=app, user_id=user, progress=progress)
                sys.stdout.buffer.flush()
            else:
                with outfile.writing(args.output, protect, force=args.force) as fh:
                    counts = svc.export(fh, app_name=app, user_id=user, progress=progress)
        finally:
            bar.close()
    if args.output is None:
        return EXIT_OK
    return _report(args, dict(counts, output=args.output),
                   f"exported {plural(counts['sessions'], 'session')} ({plural(counts['events'], 'event')}), "
                   f"{plural(counts['state_records'], 'app/user state record')} and "
                   f"{plural(counts.get('artifact_versions', 0), 'artifact version')} to {args.output}")


def _bar(desc: str, unit: str = "session") -> tuple[Any, Any]:
    """A progress bar and the ``progress(done, total)`` callback that moves it."""
    bar, done = _progress(0, desc, unit), [0]

    def progress(count: int, total: int) -> None:
        bar.total = total
        bar.update(count - done[0])
        done[0] = count
    return bar, progress


def cmd_import(args: argparse.Namespace) -> int:
    """``adk-lite import``: restore an export; idempotent; conflicts reported unless --replace;
    a PostgreSQL database that received sessions is vacuumed at the end (:meth:`adk_lite.DatabaseSessionService.import_file`)."""
    if not os.path.isfile(args.file):
        raise UsageError(f"import file {args.file} does not exist or is not a file")
    path = _path(args, create=args.create)
    if not _on_server(args) and outfile.is_database_file(args.file, path):
        raise UsageError(f"import file {args.file} is the database {path} or one of its side files")
    total = transfer.check_file(args.file)  # every line checked before anything is written
    with _open(args, write=True, create=args.create) as svc:
        bar = _progress(total, "import", "record")
        try:
            report = svc.import_file(args.file, replace=args.replace, on_record=bar.update)
        finally:
            bar.close()
    return _moved(args, "imported", report)


def _moved(args: argparse.Namespace, verb: str, report: dict[str, Any]) -> int:
    """The one printer of ``import``, ``copy``, ``import-adk`` and ``export-adk``: their
    :class:`adk_lite.load.TransferReport` as JSON with ``--json``, else
    :func:`_report_lines`. Exit 1 when something was left alone (a conflict or a
    refused record)."""
    if args.json:
        _print_json(report)
    else:
        print("\n".join(_report_lines(verb, report, "use --replace to overwrite" if hasattr(args, "replace")
                                       else "left as it is")))
    return EXIT_PROBLEM if report["conflicts"] or report["refused"] else EXIT_OK


def _report_lines(verb: str, report: dict[str, Any], fix: str) -> Iterator[str]:
    """A summary line, then one line per conflict (with its line number for a file;
    ``fix`` says what to do about it) and one per refused record."""
    yield (f"{verb} {plural(report['sessions'], 'session')} ({plural(report['events'], 'event')}) of "
           f"{plural(report['apps'], 'app')}, {plural(report['users'], 'user')}; {report['skipped']} already there, "
           f"{report['replaced']} replaced, {plural(report['state_keys'], 'app/user state key')} written, "
           f"{plural(report['memories'], 'memory', 'memories')}, "
           f"{plural(report['artifact_versions'], 'artifact version')}, "
           f"{plural(len(report['conflicts']), 'conflict')}, {len(report['refused'])} refused; {report['seconds']} s"
           + ("; analyzed the destination (VACUUM ANALYZE)" if report.get("analyzed") else ""))
    for c in report["conflicts"]:
        at = f"conflict line {c['line']}" if "line" in c else "conflict"
        if c.get("type") == "artifact":
            yield (f"{at}: artifact {c['app_name']}/{c['user_id']}/{c['session_id'] or '(user)'} {c['filename']} "
                   f"version {c['version']} differs from the stored one (versions are never overwritten)")
        else:
            what = c.get("session_id") or ", ".join(c["keys"])
            yield (f"{at}: {c.get('type', 'session')} {c['app_name']}/{c['user_id'] or '-'} {what} differs from "
                   f"the stored one ({fix})")
    for r in report["refused"]:
        yield (f"refused: {r.get('app_name')}/{r.get('user_id') or '-'} {r.get('session_id') or r.get('type')}: "
               f"{r['error']}")


def _adk_transfer():
    """:mod:`adk_lite.adk.transfer`, or a usage error without the ``adk`` extra."""
    try:
        from ..adk import transfer as adk_transfer
    except ImportError as e:
        hint = errors.install_hint("adk")
        raise UsageError(str(e) if hint in str(e) else f"this command needs google-adk: {hint} ({e})") from e
    return adk_transfer


def cmd_import_adk(args: argparse.Namespace) -> int:
    """``adk-lite import-adk``: copy an ADK session database (read-only) into DB."""
    path = _path(args, create=args.create)
    moving = _adk_transfer()
    source = moving.source_file(args.source)
    if source is not None and outfile.is_database_file(source, path):
        raise UsageError(f"ADK source {args.source} is the database {path} or one of its side files")
    bar = _progress(moving.count_adk_sessions(args.source), "import-adk", "session")
    try:  # DB is opened (or created) only once the source passed its checks
        report = moving.import_from_adk(args.source, lambda: _open(args, write=True, create=args.create),
                                        replace=args.replace, on_session=bar.update)
    finally:
        bar.close()
    return _moved(args, "imported", report)


def cmd_export_adk(args: argparse.Namespace) -> int:
    """``adk-lite export-adk``: write every session of DB into ADK's own store TARGET."""
    _path(args)
    moving = _adk_transfer()
    with _open(args) as svc:  # export_to_adk refuses a target that is this database, in any spelling
        bar = _progress(moving.count_sessions(svc), "export-adk", "session")
        try:
            report = moving.export_to_adk(svc, args.target, replace=args.replace, on_session=bar.update)
        finally:
            bar.close()
    return _moved(args, "exported", report)


def cmd_copy(args: argparse.Namespace) -> int:
    """``adk-lite copy SRC DST``: every session, event and app/user state from one database
    to another (a file or a PostgreSQL URL each), one transaction per session, resumable.
    A PostgreSQL DST that received sessions is vacuumed at the end (:meth:`adk_lite.DatabaseSessionService.copy_to`)."""
    source = argparse.Namespace(**{**vars(args), "db": args.src})
    dest = argparse.Namespace(**{**vars(args), "db": args.dst})
    if not _on_server(source) and not _on_server(dest):  # by name, symlink or hard link, side files too
        src_path, dst_path = _path(source), _path(dest, create=True)
        if outfile.is_database_file(dst_path, src_path) or outfile.is_database_file(src_path, dst_path):
            raise UsageError(f"copy: DST {args.dst} is SRC {src_path} or one of its side files")
    with _open(source) as src, _open(dest, write=True, create=True) as dst:
        bar, progress = _bar("copy", "record")
        try:
            report = src.copy_to(dst, progress=progress)
        finally:
            bar.close()
    return _moved(args, "copied", report)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    add_filters(p)
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here instead of stdout (a 0600 file, written whole or not at all; "
                        "never the database or its -wal/-shm/-journal)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")


def _import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a JSON Lines file written by adk-lite export")
    add_db(p)
    p.add_argument("--replace", action="store_true",
                   help="overwrite sessions and app/user keys that differ from the file")
    p.add_argument("--create", action="store_true",
                   help="create the database if it is missing or empty (otherwise refused)")


def _replace_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--replace", action="store_true",
                   help="overwrite sessions (and app/user keys) that differ in the destination")


def _import_adk_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="ADK's SqliteSessionService file (.adk/session.db) or a "
                                  "sqlite+aiosqlite:///path URL of its DatabaseSessionService")
    add_db(p)
    _replace_argument(p)
    p.add_argument("--create", action="store_true", help="create DB if it is missing or empty (otherwise refused)")


def _export_adk_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("target", help="a path (ADK's SqliteSessionService) or a sqlite+aiosqlite:///path URL "
                                  "(its DatabaseSessionService); created if missing")
    _replace_argument(p)


def _copy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the database to copy from (a file or a postgresql:// URL)")
    p.add_argument("dst", help="the database to copy into, a file or a postgresql:// URL (created when "
                               "missing); give the password in PGPASSWORD or ~/.pgpass, not in the URL")


COMMANDS = [
    Command("export", cmd_export, "write sessions and app/user state as JSON Lines (to stdout, or -o FILE)",
            "adk-lite export --app my_app -o my_app.jsonl", _export_arguments),
    Command("import", cmd_import, "restore an export (idempotent; --replace to overwrite differing sessions; "
                                  "--create to make a new database)",
            "adk-lite import my_app.jsonl restored.sqlite3 --create", _import_arguments),
    Command("import-adk", cmd_import_adk, "copy every session of an ADK session database (SqliteSessionService file "
                                          "or sqlite+aiosqlite:// URL; read-only) into DB",
            "adk-lite import-adk .adk/session.db .adk/sessions.sqlite3 --create", _import_adk_arguments),
    Command("export-adk", cmd_export_adk, "write every session of DB into ADK's own store (a SqliteSessionService "
                                          "path or a DatabaseSessionService URL)",
            "adk-lite export-adk .adk/sessions.sqlite3 sqlite+aiosqlite:///adk_sessions.db", _export_adk_arguments),
    Command("copy", cmd_copy, "copy every session, event and app/user state to another database (a file or a "
                              "postgresql:// URL; resumable)",
            "PGPASSWORD=... adk-lite copy sessions.sqlite3 postgresql://user@host:5432/dbname", _copy_arguments),
]
