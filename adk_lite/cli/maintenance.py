"""``adk-lite prune``, ``fork``, ``erase``, ``trim``, ``vacuum``, ``backup``,
``restore`` and ``check``: changing, copying and checking a database."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

from .. import outfile, validate
from ..admin import restore
from ..target import ENV_VAR, target_kind
from .common import (BATCH, EXIT_OK, EXIT_PROBLEM, Command, UsageError, _confirm, _cut, _FILE_HELP, _filters,
                     _open, _path, _print_json, _progress, _report, add_db, add_filters, iso, parse_duration, plural)
from .inspect import SESSION_KEY_MISSING, add_session_key


def cmd_prune(args: argparse.Namespace) -> int:
    """``adk-lite prune``: delete sessions not updated for a duration, in batches."""
    cutoff = time.time() - args.older_than
    app, user = _filters(args)
    with _open(args, write=not args.dry_run) as svc:
        counted = svc.prune(cutoff, app_name=app, user_id=user, dry_run=True)
        sessions, events = counted["sessions"], counted["events"]
        result: dict[str, Any] = {"dry_run": args.dry_run, "updated_before": iso(cutoff),
                                  "sessions": sessions, "events": events, "vacuum": None}
        if not args.dry_run:
            if sessions:
                _confirm(f"delete {plural(sessions, 'session')} and {plural(events, 'event')} not updated since "
                         f"{iso(cutoff)}?", args.yes, "prune", refuse_unattended=False)
            bar, done = _progress(sessions, "prune", "session"), [0]

            def progress(deleted: int, _total: int) -> None:
                bar.update(deleted - done[0])
                done[0] = deleted
            try:
                pruned = svc.prune(cutoff, app_name=app, user_id=user, batch=BATCH, progress=progress)
            finally:
                bar.close()
            result["sessions"], result["events"] = pruned["sessions"], pruned["events"]
            if args.vacuum:
                result["vacuum"] = svc.vacuum()
    if args.json:
        _print_json(result)
        return EXIT_OK
    verb = "would delete" if args.dry_run else "deleted"
    print(f"{verb} {plural(result['sessions'], 'session')} and {plural(result['events'], 'event')} "
          f"not updated since {result['updated_before']}")
    if result["vacuum"]:
        print(f"vacuum: {result['vacuum']['bytes_before']} -> {result['vacuum']['bytes_after']} bytes")
    return EXIT_OK


def cmd_fork(args: argparse.Namespace) -> int:
    """``adk-lite fork``: copy a session (whole, or before an invocation) into a new one."""
    with _open(args, write=True) as svc:
        fork = svc.fork_session(args.app, args.user, args.session, new_session_id=args.new_id,
                                before_invocation_id=args.before_invocation)
        lineage = svc.get_lineage(args.app, args.user, fork.id)
    if args.json:
        _print_json({"app_name": fork.app_name, "user_id": fork.user_id, "session_id": fork.id,
                     "forked_from": lineage, "state": fork.state})
    else:
        print(f"forked {args.session} into {fork.id} {_cut(lineage)}")
    return EXIT_OK


def cmd_erase(args: argparse.Namespace) -> int:
    """``adk-lite erase``: delete one user's sessions, events and state in one app, from the file too."""
    app, user = validate.names(args.app, args.user)

    def what(counts: dict[str, Any]) -> str:
        return (f"{plural(counts['sessions'], 'session')}, {plural(counts['events'], 'event')} and "
                f"{plural(counts['state_keys'], 'state key')} of user {user!r} in app {app!r}, with "
                f"{plural(counts['memories'], 'memory', 'memories')}")
    with _open(args, write=not args.dry_run) as svc:
        result = svc.delete_user(app, user, dry_run=True)
        if not args.dry_run:
            _confirm(f"erase {what(result)}?", args.yes)
            result = svc.delete_user(app, user)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{'would erase' if args.dry_run else 'erased'} {what(result)}")
    if result["checkpointed"] is False:
        print("warning: another connection kept the WAL from being emptied; run adk-lite vacuum once it is gone")
    return EXIT_OK


def cmd_trim(args: argparse.Namespace) -> int:
    """``adk-lite trim``: delete raw events that a compaction has summarised."""
    app, user = _filters(args)
    with _open(args, write=not args.dry_run) as svc:
        if not args.dry_run and not args.yes and sys.stdin.isatty():
            going = svc.trim_all(app, user, dry_run=True)
            if going["events"]:
                _confirm(f"delete {plural(going['events'], 'compacted event')} ({going['bytes']} bytes of event "
                         f"text) from {plural(going['sessions'], 'session')}?", args.yes, "trim",
                         refuse_unattended=False)
        result = svc.trim_all(app, user, dry_run=args.dry_run)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{'would delete' if args.dry_run else 'deleted'} {plural(result['events'], 'compacted event')} "
          f"({result['bytes']} bytes of event text) from {plural(result['sessions'], 'session')}")
    return EXIT_OK


def cmd_vacuum(args: argparse.Namespace) -> int:
    """``adk-lite vacuum``: recount adk_counts (SQLite), checkpoint (TRUNCATE), VACUUM, optimize; bytes before and after."""
    with _open(args, write=True) as svc:
        result = svc.vacuum()
    if args.json:
        _print_json(result)
    else:
        saved = result["bytes_before"] - result["bytes_after"]
        sizes = "adk_lite's tables" if target_kind(svc.path) == "postgres" else "main file + WAL"
        print(f"{result['bytes_before']} -> {result['bytes_after']} bytes ({sizes}), "
              + (f"{saved} reclaimed" if saved > 0 else "nothing reclaimed"))
    return EXIT_OK


def cmd_backup(args: argparse.Namespace) -> int:
    """``adk-lite backup``: an online copy of DB into DEST (one snapshot, 0600, renamed into place)."""
    path = _path(args)
    outfile.check(args.dest, [path], force=args.force)  # before the database is opened
    bar, done = _progress(0, "backup", "page"), [0]

    def progress(pages: int, total: int) -> None:
        bar.total = total
        bar.update(pages - done[0])
        done[0] = pages

    with _open(args) as svc:  # read-only: a backup only reads
        try:
            result = svc.backup(args.dest, force=args.force, progress=progress)
        finally:
            bar.close()
    result["mb_per_s"] = round(result["bytes"] / 1e6 / result["seconds"], 1) if result["seconds"] else None
    return _report(args, result, f"backed up {path} to {result['path']}: {result['bytes']} bytes "
                                 f"({plural(result['pages'], 'page')}) in {result['seconds']:.2f} s")


def cmd_restore(args: argparse.Namespace) -> int:
    """``adk-lite restore``: check BACKUP, then replace DB with it (refused while DB is open)."""
    if not os.path.isfile(args.backup):
        raise UsageError(f"backup {args.backup} does not exist or is not a file")
    result = restore(args.backup, _path(args, create=True), keep=not args.no_keep)
    if args.json:
        _print_json(result)
    else:
        kept = f"; the replaced database is kept as {result['kept']}" if result["kept"] else ""
        print(f"restored {result['path']} from {result['backup']} (schema_version {result['schema_version']}, "
              f"{result['bytes']} bytes){kept}")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """``adk-lite check``: integrity_check (and the search index's), foreign_key_check, the
    schema against adk_lite's, schema version, stray state rows."""
    with _open(args) as svc:
        found = svc.check()
    problems = [f"missing table {t}" for t in found["missing_tables"]]
    problems += [f"integrity_check: {line}" for line in found["integrity_check"] if line != "ok"]
    problems += [f"schema: {line}" for line in found["schema_problems"]]
    problems += [f"foreign_key_check: {table} row {rowid} has no parent in {parent}"
                 for table, rowid, parent in found["foreign_key_violations"]]
    stray = found["stray_state_rows"]
    if stray:
        problems.append(f"{plural(stray, 'session-scope state row')} "
                        f"belong{'s' if stray == 1 else ''} to no session")
    version = found["schema_version"]
    result = {"path": svc.path, "ok": not problems, "schema_version": version,
              "current_schema_version": found["current_schema_version"], "integrity_check": found["integrity_check"],
              "foreign_key_violations": len(found["foreign_key_violations"]), "problems": problems}
    if args.json:
        _print_json(result)
    else:
        current = found["current_schema_version"]
        note = "" if version == current else f" (older; migrated to {current} when opened for writing)"
        print(f"schema_version {version}{note}")
        print("ok" if not problems else "\n".join(f"problem: {p}" for p in problems))
    return EXIT_OK if not problems else EXIT_PROBLEM


def _yes_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation (asked only when stdin is a terminal)")


def _prune_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    add_filters(p)
    p.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION",
                   help="last update older than this: 30d, 12h, 45m, 90s, 2w (at most 36500d)")
    p.add_argument("--dry-run", action="store_true", help="only count (opens the file read-only)")
    p.add_argument("--vacuum", action="store_true", help="vacuum after deleting")
    _yes_argument(p)


def _fork_arguments(p: argparse.ArgumentParser) -> None:
    add_session_key(p)
    p.add_argument("--before-invocation", metavar="ID", help="copy only the events before this invocation's first event")
    p.add_argument("--new-id", metavar="ID", help="the fork's session_id (default: a new uuid4)")


def _erase_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("--app", required=True, help="the app_name")
    p.add_argument("--user", required=True, help="the user_id to erase")
    p.add_argument("--dry-run", action="store_true", help="only count (opens the file read-only)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _trim_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    add_filters(p)
    p.add_argument("--dry-run", action="store_true", help="only count (opens the file read-only)")
    _yes_argument(p)


def _backup_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p, _FILE_HELP)
    p.add_argument("dest", help="the backup file to write (0600; never the database or its side files)")
    p.add_argument("--force", action="store_true", help="replace DEST if it exists")


def _restore_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("backup", help="a backup file (adk-lite backup)")
    p.add_argument("db", nargs="?", help=f"the database file to replace (default: ${ENV_VAR}, else .adk/sessions.sqlite3)")
    p.add_argument("--no-keep", action="store_true",
                   help="do not keep the replaced database as DB.before-restore-<UTC time>")


COMMANDS = [
    Command("prune", cmd_prune, "delete sessions not updated for a while",
            "adk-lite prune --older-than 30d --app my_app --dry-run", _prune_arguments),
    Command("fork", cmd_fork, "copy a session into a new one, whole or before an invocation; the source stays",
            "adk-lite fork .adk/sessions.sqlite3 my_app alice chat-1 --before-invocation e-42 --new-id chat-1b",
            _fork_arguments, SESSION_KEY_MISSING.format(name="fork")),
    Command("erase", cmd_erase, "erase one user of one app: sessions, events, session and user state, from the file too",
            "adk-lite erase .adk/sessions.sqlite3 --app my_app --user alice --dry-run", _erase_arguments),
    Command("trim", cmd_trim, "delete raw events that a compaction summarised (ADK no longer sends them to the model)",
            "adk-lite trim .adk/sessions.sqlite3 --app my_app --dry-run", _trim_arguments),
    Command("vacuum", cmd_vacuum, "checkpoint the WAL, VACUUM and optimize; print bytes before and after",
            "adk-lite vacuum .adk/sessions.sqlite3", add_db),
    Command("backup", cmd_backup, "copy the database into one self-contained file while it stays in use (--force to "
                                  "replace DEST)",
            "adk-lite backup .adk/sessions.sqlite3 backups/sessions-2026-01-31.sqlite3", _backup_arguments),
    Command("restore", cmd_restore, "check a backup and replace the database with it (refused while the database is "
                                    "open; the old file is kept unless --no-keep)",
            "adk-lite restore backups/sessions-2026-01-31.sqlite3 .adk/sessions.sqlite3", _restore_arguments),
    Command("check", cmd_check, "integrity_check, foreign_key_check and schema version; exit 1 on problems",
            "adk-lite check .adk/sessions.sqlite3 --json", add_db),
]
