"""``adk-lite artifacts`` and ``artifact``: list one user's artifacts, write one
version's bytes (read-only)."""

from __future__ import annotations

import argparse
import sys

from .. import outfile, validate
from .common import (EXIT_OK, Command, UsageError, _count, _on_server, _one_line, _open, _path, _print_json,
                     _print_table, _report, iso, plural)


def cmd_artifacts(args: argparse.Namespace) -> int:
    """``adk-lite artifacts``: one user's artifacts (with SESSION: that session's and the
    user's ``user:`` ones), each with its version count and latest version (read-only)."""
    app, user = validate.names(args.app, args.user)
    session = None if args.session is None else validate.session_id(args.session)
    with _open(args) as svc:
        listed = svc.list_artifacts(app, user, session)
    rows = [{"session_id": a.session_id or None, "filename": a.filename, "versions": a.versions,
             "latest_version": a.latest, "kind": a.kind, "mime_type": a.mime_type, "bytes": a.size,
             "create_time": a.create_time, "created": iso(a.create_time)} for a in listed]
    if args.json:
        _print_json({"artifacts": rows})
        return EXIT_OK
    _print_table(("session", "filename", "versions", "latest", "kind", "mime type", "bytes", "created"),
                 [(r["session_id"] or "(user)", r["filename"], r["versions"], r["latest_version"], r["kind"],
                   r["mime_type"] or "", r["bytes"], r["created"]) for r in rows])
    return EXIT_OK


def cmd_artifact(args: argparse.Namespace) -> int:
    """``adk-lite artifact``: write one artifact version's bytes (a text's UTF-8) to
    ``-o FILE`` (0600, whole or not at all, never the database) or stdout."""
    app, user = validate.names(args.app, args.user)
    if not args.filename:
        raise UsageError("FILENAME must not be empty")
    if args.filename.startswith("user:"):
        session = ""
    elif args.session is None:
        raise UsageError(f"{args.filename!r} is session-scoped: give --session (only user: names need none)")
    else:
        session = validate.session_id(args.session, arg="--session")
    path = _path(args)
    protect = [] if _on_server(args) else [path]
    if args.output is not None:
        outfile.check(args.output, protect, force=args.force)  # before anything is read
    with _open(args) as svc:
        found = svc.load_artifact(app, user, session, args.filename, args.version)
    if found is None:
        raise UsageError(f"no artifact {args.filename!r}" + ("" if args.version is None else f" version {args.version}")
                         + f" for app_name={app!r}, user_id={user!r}" + (f", session_id={session!r}" if session else ""))
    row, data = found
    if data is None:
        raise UsageError(f"artifact {args.filename!r} version {row.version} holds no bytes: it is a file_data "
                         f"reference ({_one_line(row.part)})")
    if args.output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return EXIT_OK
    with outfile.writing(args.output, protect, force=args.force) as fh:
        fh.write(data)
    return _report(args, {"filename": args.filename, "version": row.version, "kind": row.kind,
                          "mime_type": row.mime_type, "bytes": len(data), "output": args.output},
                   f"wrote {args.filename} version {row.version} ({plural(len(data), 'byte')}) to {args.output}")


def _artifacts_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("db", help="the database file")
    p.add_argument("app", help="app_name")
    p.add_argument("user", help="user_id")
    p.add_argument("session", nargs="?", help="session_id (default: every session of the user)")


def _artifact_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("db", help="the database file")
    p.add_argument("app", help="app_name")
    p.add_argument("user", help="user_id")
    p.add_argument("filename", help="the artifact's filename (user:... for a user-scoped one)")
    p.add_argument("--session", help="the session_id (for a name without user:)")
    p.add_argument("--version", type=_count(0), metavar="N", help="this version (default: the latest)")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write here instead of stdout (0600, whole or not at all; never the database)")
    p.add_argument("--force", action="store_true", help="replace FILE if it exists")


COMMANDS = [
    Command("artifacts", cmd_artifacts,
            "list one user's artifacts (with SESSION: that session's and the user's user: ones)",
            "adk-lite artifacts .adk/sessions.sqlite3 my_app alice chat-1", _artifacts_arguments),
    Command("artifact", cmd_artifact, "write one artifact version's bytes to -o FILE (or stdout)",
            "adk-lite artifact .adk/sessions.sqlite3 my_app alice report.pdf --session chat-1 -o report.pdf",
            _artifact_arguments),
]
