"""The ``adk-lite`` command: stats, inspection and maintenance of a session file.

Run it as ``adk-lite COMMAND ...`` (console script) or ``python -m adk_lite``.
Every command prints a readable table by default and one JSON document with
``--json`` (``export`` always writes JSON Lines). ``--json`` and ``--busy-timeout``
may come before or after the command. Exit codes: 0 success, 1 a problem found
(``check``; ``import``, ``import-adk``, ``export-adk`` conflicts; a confirmation answered no),
2 bad usage or an unusable file (missing,
empty, corrupt, foreign, newer schema, locked). Errors are one line on stderr
(``{"error": "..."}`` with ``--json``); a closed pipe (``| head``) ends quietly
with 0.

Every command refuses a missing or empty (0-byte) database and never creates one,
except these, which say so: ``import --create`` and ``import-adk --create``, ``copy``
(its DST) and ``restore`` (from a backup). ``prune`` and ``trim`` ask before deleting
when stdin is a terminal (``erase`` always asks; ``--yes`` skips it); a "no" exits 1.
A password in a URL argument is masked in the process's command line once it starts
(``setproctitle``), and in every message; prefer ``PGPASSWORD`` or ``~/.pgpass``.
``stats``, ``sessions``, ``search``, ``memory``, ``usage``, ``show``, ``export``, ``check`` and ``--dry-run`` of
``prune``, ``erase`` and ``trim`` open the file read-only: they never change it. Files
are written through :mod:`adk_lite.outfile` (never over the database, 0600, replaced
atomically); the export format is :mod:`adk_lite.transfer`.
``backup`` reads the database read-only (an online copy); ``restore`` is
:func:`adk_lite.restore.restore`.
Progress bars (tqdm, the ``cli`` extra) appear on stderr only when stderr is a
terminal and tqdm is installed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from typing import Any, Optional, Sequence

import orjson

from . import cli_usage, codec, errors, memory, outfile, restore, transfer, validate
from ._version import __version__
from .schema import SCHEMA_VERSION
from .sqlite import file_sizes, inspect_file
from .target import ENV_VAR, MEMORY, mask_password, resolve, target_kind
from .artifacts import ArtifactStore
from .artifacts import copy_all as copy_artifacts
from .service import DatabaseSessionService, trim

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
BATCH = 500
"""Sessions per prune transaction."""
MAX_COUNT = 2**63 - 1
"""The largest count a flag takes (``--limit``, ``--top``, ``--events``): SQLite's integer range."""
MAX_DURATION = 36500 * 86400
"""The longest ``--older-than``: 36500 days (100 years), in seconds."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhdw])$")


class UsageError(Exception):
    """A user error: printed as one line on stderr, exit code 2."""


class NotConfirmed(Exception):
    """A person at the terminal answered no: nothing was changed, exit code 1 (not a usage error)."""


class _ParseError(UsageError):
    """A command line argparse refused; ``prog`` is the (sub)command's name."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


# -- small helpers ---------------------------------------------------------------

def parse_duration(text: str) -> float:
    """Parse ``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` into seconds (at most
    :data:`MAX_DURATION`, 36500 days).

    Raises:
        argparse.ArgumentTypeError: any other text, or a longer duration.
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30d, 12h, 45m, 90s or 2w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than the maximum, 36500d (100 years)")
    return seconds


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 999999")
    return value


def _count(minimum: int):
    """An argparse type: an integer from ``minimum`` to :data:`MAX_COUNT` (ASCII digits)."""
    def parse(text: str) -> int:
        if re.fullmatch(r"[0-9]{1,19}", text.strip()) and minimum <= int(text) <= MAX_COUNT:
            return int(text)
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer from {minimum} to 2**63-1")
    return parse


def plural(count: int, noun: str, many: Optional[str] = None) -> str:
    """``1 app``, ``2 apps``: the count with the noun, plural only when needed."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def iso(ts: Optional[float]) -> str:
    """Format epoch seconds as an ISO 8601 UTC time, e.g. ``2026-11-21T08:21:22Z``.

    A time ``datetime`` cannot show (beyond year 9999, before year 1) is given
    as the number itself; None gives ``""``. Never raises.
    """
    if ts is None:
        return ""
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds").replace(
            "+00:00", "Z")
    except (OverflowError, OSError, ValueError, TypeError):
        return repr(ts)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _report(args: argparse.Namespace, doc: Any, line: str) -> int:
    """Print ``doc`` as JSON with ``--json``, else the one ``line``; return :data:`EXIT_OK`."""
    if args.json:
        _print_json(doc)
    else:
        print(line)
    return EXIT_OK


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, unit: str):
    """A tqdm bar on stderr when stderr is a terminal and tqdm is installed, else a no-op."""
    if not sys.stderr.isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def _filters(args: argparse.Namespace) -> tuple[Optional[str], Optional[str]]:
    """The ``--app`` / ``--user`` filters, checked (messages name the flags)."""
    return validate.optional_name(args.app, "--app"), validate.optional_name(args.user, "--user")


def _on_server(args: argparse.Namespace) -> bool:
    """True when the DB argument (or ``$ADK_LITE_DB``) is a PostgreSQL URL, not a file."""
    return target_kind(args.db) == "postgres"


def _path(args: argparse.Namespace, *, create: bool = False) -> str:
    """The DB argument as a file path: refused when in memory, missing (unless
    ``create``), empty (0 bytes, unless ``create``) or when stdout is that file.
    A PostgreSQL URL is returned as given (the server checks it when it is opened)."""
    if _on_server(args):
        return args.db if args.db is not None else os.environ[ENV_VAR]
    path = resolve(args.db)
    if path == MEMORY:
        raise UsageError("an in-memory database has nothing to inspect: give a database file")
    hint = f" ({args.command} --create makes a new one)" if args.command in ("import", "import-adk") else ""
    if not os.path.exists(path):
        if create:
            return path
        raise UsageError(f"database {path} does not exist{hint}")
    if not create and os.path.isfile(path) and os.path.getsize(path) == 0:
        raise UsageError(f"database {path} is empty (0 bytes): not an adk_lite database{hint}")
    if outfile.same_file(1, path):
        raise UsageError(f"standard output is the database {path} or one of its side files: refusing to write there")
    return path


def _open(args: argparse.Namespace, *, write: bool = False, create: bool = False) -> DatabaseSessionService:
    """Open the DB argument: read-only unless ``write``. A missing or empty file, or a
    server database without adk_lite's tables, is refused unless ``create``: no schema
    is written there."""
    path = _path(args, create=create)
    if write and not create and not _on_server(args) and inspect_file(path, args.busy_timeout) is None:
        raise UsageError(f"database {path} has no adk_lite tables: refusing to create them here"
                         + (f" ({args.command} --create does)" if args.command in ("import", "import-adk") else ""))
    if write and not create and _on_server(args):  # a read-only open refuses a database without adk_lite's tables
        DatabaseSessionService(args.db or path, busy_timeout=args.busy_timeout, read_only=True).close()
    # the DB argument as given: a URL's options (?busy_timeout=, ?synchronous=) still apply
    return DatabaseSessionService(args.db or path, busy_timeout=args.busy_timeout, read_only=not write)


# -- stats -------------------------------------------------------------------------

def cmd_stats(args: argparse.Namespace) -> int:
    """``adk-lite stats``: counts, file sizes, sessions per app, largest sessions (one snapshot)."""
    # sizes before opening: reading a WAL file makes -shm/-wal files while it is open
    server = _on_server(args)
    sizes = {} if server else {f"{k}_bytes": v for k, v in file_sizes(_path(args)).items()}
    with _open(args) as svc:
        stats = svc.store.stats(args.top)
    mib = 1024 * 1024
    if not server:
        stats.update(sizes, total_bytes=sizes["db_bytes"] + sizes["wal_bytes"],
                     total_mib=round((sizes["db_bytes"] + sizes["wal_bytes"]) / mib, 3))
    if args.json:
        _print_json(stats)
        return EXIT_OK
    print(f"database    {stats['path']}")
    if server:
        print(f"schema      version {stats['schema_version']}, PostgreSQL {stats['server_version']}")
    else:
        print(f"schema      version {stats['schema_version']}, SQLite {stats['sqlite_version']}, "
              f"journal_mode {stats['journal_mode']}")
    print(f"sessions    {stats['sessions']} in {plural(stats['apps'], 'app')}, {plural(stats['users'], 'user')}")
    print(f"events      {stats['events']}")
    print(f"state keys  {stats['state_keys']}")
    print(f"memories    {stats['memories']}")
    print(f"artifacts   {stats['artifacts']} ({plural(stats['artifact_versions'], 'version')}), "
          f"{plural(stats['artifact_blobs'], 'blob')} of {plural(stats['artifact_bytes'], 'byte')}")
    if server:
        print(f"bytes       tables {stats['table_bytes']}, whole database {stats['database_bytes']}")
    else:
        print(f"file bytes  main {stats['db_bytes']}, WAL {stats['wal_bytes']}, SHM {stats['shm_bytes']}; "
              f"{plural(stats['free_pages'], 'free page')} of {stats['page_size']} bytes")
    if stats["per_app"]:
        print()
        _print_table(("app", "sessions", "users", "events"),
                     [(r["app_name"], r["sessions"], r["users"], r["events"]) for r in stats["per_app"]])
    if stats["largest_sessions"]:
        print(f"\nlargest sessions (top {args.top} by events)")
        _print_table(("app", "user", "session", "events"), [tuple(r.values()) for r in stats["largest_sessions"]])
    return EXIT_OK


# -- sessions and show ---------------------------------------------------------------

def cmd_sessions(args: argparse.Namespace) -> int:
    """``adk-lite sessions``: one page of sessions, oldest update first (``--newest``:
    newest first), with a cursor."""
    app, user = _filters(args)
    with _open(args) as svc:
        try:
            # the service asks SQLite for one row more than the page: keep that within 2**63-1
            page = svc.list_sessions(app, user, limit=min(args.limit, MAX_COUNT - 1), after=args.after,
                                     order="newest" if args.newest else "oldest")
        except (ValueError, OverflowError) as e:
            if args.after is None:
                raise
            raise UsageError(f"--after {args.after!r} is not a cursor printed by adk-lite sessions"
                             + (" (with --newest)" if args.newest else " (without --newest)")) from e
        counts = svc.store.event_counts([(s.app_name, s.user_id, s.id) for s in page])
    rows = [{"app_name": s.app_name, "user_id": s.user_id, "session_id": s.id, "events": n,
             "updated_at": s.last_update_time, "last_update": iso(s.last_update_time)}
            for s, n in zip(page, counts)]
    if args.json:
        _print_json({"sessions": rows, "next_cursor": page.next_cursor})
        return EXIT_OK
    _print_table(("app", "user", "session", "events", "last update"),
                 [(r["app_name"], r["user_id"], r["session_id"], r["events"], r["last_update"]) for r in rows])
    if page.next_cursor:  # on stderr: a pipe gets only the rows
        print(f"next page: --after {page.next_cursor}", file=sys.stderr)
    return EXIT_OK


def cmd_search(args: argparse.Namespace) -> int:
    """``adk-lite search``: one page of events whose text matches, best first (read-only)."""
    app, user = _filters(args)
    with _open(args) as svc:
        try:
            hits = svc.search_events(args.query, app_name=app, user_id=user, session_id=args.session,
                                     author=args.author, limit=min(args.limit, MAX_COUNT - 1), after=args.after,
                                     raw=args.raw)
        except ValueError as e:
            if args.after is not None and "cursor" in str(e):
                raise UsageError(f"--after {args.after!r} is not a cursor printed by adk-lite search for this "
                                 "query and these filters") from e
            raise
    rows = [{**vars(h), "time": iso(h.timestamp)} for h in hits]
    if args.json:
        _print_json({"hits": rows, "next_cursor": hits.next_cursor})
        return EXIT_OK
    if not rows:
        print("no match")
    else:
        _print_table(("app", "user", "session", "author", "time", "snippet"),
                     [(r["app_name"], r["user_id"], r["session_id"], r["author"], r["time"], _one_line(r["snippet"]))
                      for r in rows])
    if hits.next_cursor:  # on stderr: a pipe gets only the rows
        print(f"next page: --after {hits.next_cursor}", file=sys.stderr)
    return EXIT_OK


def cmd_memory(args: argparse.Namespace) -> int:
    """``adk-lite memory``: one user's memories holding any word of QUERY, best first (read-only)."""
    app, user = validate.names(args.app, args.user)
    with _open(args) as svc:
        found = memory.search(svc.store, app, user, args.query, min(args.limit, memory.MAX_RESULTS * 100))
    rows = []
    for m in found:
        body = codec.loads(m.body)
        parts = (body.get("content") or {}).get("parts") or []
        text = " ".join(p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
        rows.append({"memory_id": m.memory_id, "session_id": m.session_id, "event_id": m.event_id,
                     "author": m.author, "timestamp": m.timestamp, "time": iso(m.timestamp), "text": text,
                     "content": body.get("content"), "custom_metadata": body.get("custom_metadata") or {}})
    if args.json:
        _print_json({"memories": rows})
        return EXIT_OK
    if not rows:
        print("no match")
    else:
        _print_table(("memory", "session", "author", "time", "text"),
                     [(r["memory_id"], r["session_id"], r["author"] or "", r["time"], _one_line(r["text"]))
                      for r in rows])
    return EXIT_OK


def _one_line(text: str, width: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _get(value: Any, key: str) -> Any:
    """``value[key]`` when ``value`` is a dict, else None (stored bodies may have any shape)."""
    return value.get(key) if isinstance(value, dict) else None


def summarize(event: dict[str, Any]) -> str:
    """One line for an event (ADK's JSON shape): its text, tool calls and responses,
    or the state keys it changed. Any body shape is shown, none raises."""
    parts = []
    content_parts = _get(event.get("content"), "parts")
    for part in content_parts if isinstance(content_parts, list) else ():
        call = _get(part, "function_call") or _get(part, "functionCall")
        response = _get(part, "function_response") or _get(part, "functionResponse")
        if _get(part, "text"):
            parts.append(str(part["text"]))
        elif isinstance(call, dict):
            parts.append(f"call {call.get('name')}({codec.dumps(call.get('args') or {})})")
        elif isinstance(response, dict):
            parts.append(f"response {response.get('name')}")
    compaction = _get(event.get("actions"), "compaction")
    if not parts and isinstance(compaction, dict):
        parts.append(_compaction_line(compaction))
    delta = _get(event.get("actions"), "state_delta")
    if not parts and isinstance(delta, dict) and delta:
        parts.append("state " + ", ".join(delta))
    return _one_line(" | ".join(parts) or "-")


def _compaction_line(compaction: dict[str, Any]) -> str:
    """``compaction summary of <start> .. <end>: <its text>`` for a compaction event's
    ``actions.compaction`` (snake_case or camelCase keys, as ADK dumps either)."""
    def pick(snake: str, camel: str) -> Any:
        value = compaction.get(snake)
        return compaction.get(camel) if value is None else value
    content = pick("compacted_content", "compactedContent")
    parts = _get(content, "parts")
    text = " ".join(str(p["text"]) for p in (parts if isinstance(parts, list) else ()) if _get(p, "text"))
    start, end = pick("start_timestamp", "startTimestamp"), pick("end_timestamp", "endTimestamp")
    when = " .. ".join(iso(t) if isinstance(t, (int, float)) else str(t) for t in (start, end) if t is not None)
    return f"compaction summary{' of ' + when if when else ''}: {text or '-'}"


def cmd_show(args: argparse.Namespace) -> int:
    """``adk-lite show``: a session's merged state and its last N events."""
    with _open(args) as svc:
        session = svc.get_session(args.app, args.user, args.session, num_recent_events=args.events)
        if session is None:
            raise UsageError(f"session {args.session!r} not found for app_name={args.app!r}, user_id={args.user!r}")
        total = svc.get_event_count(args.app, args.user, session.id)
        lineage = svc.get_lineage(args.app, args.user, session.id)
    events = [e.to_dict() for e in session.events]
    if args.json:
        _print_json({"app_name": session.app_name, "user_id": session.user_id, "session_id": session.id,
                     "last_update": iso(session.last_update_time), "updated_at": session.last_update_time,
                     "revision": session.revision, "forked_from": lineage, "state": session.state,
                     "event_count": total, "events": events})
        return EXIT_OK
    print(f"session {session.app_name} / {session.user_id} / {session.id}: {plural(total, 'event')}, "
          f"last update {iso(session.last_update_time)}, revision {session.revision}")
    if lineage:
        print(f"forked from {lineage['session_id']} {_cut(lineage)} at {iso(lineage['forked_at'])}"
              + ("" if lineage["state_exact"] else " (state replayed without the source's unknown initial state)"))
    print("state:" if session.state else "state: {}")
    for key, value in session.state.items():
        print(f"  {key} = {_one_line(codec.dumps(value))}")
    if events:
        print(f"last {plural(len(events), 'event')}:")
        _print_table(("time", "author", "event"), [(iso(e["timestamp"]), e["author"], summarize(e)) for e in events])
    elif args.events and not total:
        print("events: none")
    return EXIT_OK


# -- artifacts ---------------------------------------------------------------------------

def cmd_artifacts(args: argparse.Namespace) -> int:
    """``adk-lite artifacts``: one user's artifacts (with SESSION: that session's and the
    user's ``user:`` ones), each with its version count and latest version (read-only)."""
    app, user = validate.names(args.app, args.user)
    session = None if args.session is None else validate.session_id(args.session)
    with _open(args) as svc:
        listed = ArtifactStore(svc.store).listing(app, user, session)
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
        found = ArtifactStore(svc.store).load((app, user, session, args.filename), args.version)
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


# -- export and import -----------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    """``adk-lite export``: JSON Lines (see :mod:`adk_lite.transfer`) to stdout or ``-o FILE``."""
    app, user = _filters(args)
    path = _path(args)
    protect = [] if _on_server(args) else [path]
    if args.output is not None:
        outfile.check(args.output, protect, force=args.force)  # before anything is read
    with _open(args) as svc:
        plan = transfer.plan_export(svc.store, app, user)
        bar = _progress(len(plan.keys), "export", "session")
        try:
            if args.output is None:
                counts = transfer.write_export(svc.store, plan, sys.stdout.buffer, bar.update)
                sys.stdout.buffer.flush()
            else:
                with outfile.writing(args.output, protect, force=args.force) as fh:
                    counts = transfer.write_export(svc.store, plan, fh, bar.update)
        finally:
            bar.close()
    if args.output is None:
        return EXIT_OK
    return _report(args, dict(counts, output=args.output),
                   f"exported {plural(counts['sessions'], 'session')} ({plural(counts['events'], 'event')}), "
                   f"{plural(counts['state_records'], 'app/user state record')} and "
                   f"{plural(counts.get('artifact_versions', 0), 'artifact version')} to {args.output}")


def _analyze_after_load(args: argparse.Namespace, svc: DatabaseSessionService, sessions: int) -> bool:
    """After ``sessions`` were written in bulk into a PostgreSQL database, vacuum it
    (``VACUUM ANALYZE``): fresh rows have no statistics, and the server's plans guess until
    autovacuum comes by. Returns True when it ran (never for a file)."""
    if not sessions or not _on_server(args):
        return False
    svc.vacuum()
    return True


def cmd_import(args: argparse.Namespace) -> int:
    """``adk-lite import``: restore an export; idempotent; conflicts reported unless --replace;
    a PostgreSQL database that received sessions is vacuumed at the end (:func:`_analyze_after_load`)."""
    if not os.path.isfile(args.file):
        raise UsageError(f"import file {args.file} does not exist or is not a file")
    path = _path(args, create=args.create)
    if not _on_server(args) and outfile.is_database_file(args.file, path):
        raise UsageError(f"import file {args.file} is the database {path} or one of its side files")
    total = transfer.check_file(args.file)  # every line checked before anything is written
    with _open(args, write=True, create=args.create) as svc:
        bar = _progress(total, "import", "record")
        try:
            report = transfer.import_file(svc.store, args.file, replace=args.replace, on_record=bar.update)
        finally:
            bar.close()
        report["analyzed"] = _analyze_after_load(args, svc, report["created"] + report["replaced"])
    if args.json:
        _print_json(report)
    else:
        print(f"imported {plural(report['created'], 'new session')} ({plural(report['events'], 'event')}, "
              f"replaced {report['replaced']}), {report['unchanged']} unchanged, "
              f"{plural(report['state_keys'], 'app/user state key')} written, "
              f"{plural(report['artifact_versions'], 'artifact version')}, "
              f"{plural(len(report['conflicts']), 'conflict')}"
              + ("; analyzed the database (VACUUM ANALYZE)" if report["analyzed"] else ""))
        for c in report["conflicts"]:
            if c["type"] == "artifact":
                print(f"conflict line {c['line']}: artifact {c['app_name']}/{c['user_id']}/{c['session_id'] or '(user)'} "
                      f"{c['filename']} version {c['version']} differs from the stored one (versions are never "
                      "overwritten)")
                continue
            what = c.get("session_id") or ", ".join(c["keys"])
            print(f"conflict line {c['line']}: {c['type']} {c['app_name']}/{c['user_id'] or '-'} {what} differs "
                  "from the stored one (use --replace to overwrite)")
    return EXIT_PROBLEM if report["conflicts"] else EXIT_OK


def _moved(args: argparse.Namespace, verb: str, report: dict[str, Any]) -> int:
    """Print an import-adk / export-adk summary; exit 1 when something was left alone."""
    if args.json:
        _print_json(report)
    else:
        print(f"{verb} {plural(report['sessions'], 'session')} ({plural(report['events'], 'event')}) of "
              f"{plural(report['apps'], 'app')}, {plural(report['users'], 'user')}; {report['skipped']} already "
              f"there, {report['replaced']} replaced, {plural(len(report['conflicts']), 'conflict')}; "
              f"{report['seconds']} s")
        for c in report["conflicts"]:
            what = c.get("session_id") or f"{c['type']} keys {', '.join(c['keys'])}"
            print(f"conflict: {c['app_name']}/{c['user_id'] or '-'} {what} differs (use --replace to overwrite)")
        for r in report["refused"]:
            print(f"refused: {r['app_name']}/{r['user_id'] or '-'} {r.get('session_id') or r.get('type')}: "
                  f"{r['error']}")
    return EXIT_PROBLEM if report["conflicts"] or report["refused"] else EXIT_OK


def _adk_transfer():
    """:mod:`adk_lite.adk.transfer`, or a usage error without the ``adk`` extra."""
    try:
        from .adk import transfer as adk_transfer
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
    A PostgreSQL DST that received sessions is vacuumed at the end (:func:`_analyze_after_load`)."""
    source = argparse.Namespace(**{**vars(args), "db": args.src})
    dest = argparse.Namespace(**{**vars(args), "db": args.dst})
    if not _on_server(source) and not _on_server(dest):  # by name, symlink or hard link, side files too
        src_path, dst_path = _path(source), _path(dest, create=True)
        if outfile.is_database_file(dst_path, src_path) or outfile.is_database_file(src_path, dst_path):
            raise UsageError(f"copy: DST {args.dst} is SRC {src_path} or one of its side files")
    with _open(source) as src, _open(dest, write=True, create=True) as dst:
        if src.path == dst.path:
            raise UsageError(f"copy: SRC and DST are the same database {src.path}")
        plan = transfer.plan_export(src.store, None, None)
        bar = _progress(len(plan.keys), "copy", "session")
        try:
            report = transfer.copy_database(src.store, dst.store, plan, bar.update)
        finally:
            bar.close()
        if src.store.read(src.store.has_artifacts):  # then each artifact version, with its number
            copied = copy_artifacts(ArtifactStore(src.store), ArtifactStore(dst.store))
            report["conflicts"] += copied.pop("conflicts")
            report.update(copied)
        report.update(source=src.path, destination=dst.path,
                      analyzed=_analyze_after_load(dest, dst, report["created"]))
    if args.json:
        _print_json(report)
    else:
        print(f"copied {plural(report['created'], 'session')} ({plural(report['events'], 'event')}), "
              f"{report['unchanged']} already there, {plural(report['state_keys'], 'app/user state key')} written"
              + (f", {plural(report['artifact_versions'], 'artifact version')}" if "artifact_versions" in report else "")
              + f", {plural(len(report['conflicts']), 'conflict')}"
              + ("; analyzed DST (VACUUM ANALYZE)" if report["analyzed"] else ""))
        for c in report["conflicts"]:
            if c["type"] == "artifact":
                print(f"conflict: artifact {c['app_name']}/{c['user_id']}/{c['session_id'] or '(user)'} "
                      f"{c['filename']} version {c['version']} differs in DST (left as it is)")
                continue
            what = c.get("session_id") or ", ".join(c["keys"])
            print(f"conflict: {c['type']} {c['app_name']}/{c['user_id'] or '-'} {what} differs in DST (left as it is)")
    return EXIT_PROBLEM if report["conflicts"] else EXIT_OK


# -- prune, vacuum, check ----------------------------------------------------------------

def cmd_prune(args: argparse.Namespace) -> int:
    """``adk-lite prune``: delete sessions not updated for a duration, in batches."""
    cutoff = time.time() - args.older_than
    app, user = _filters(args)
    with _open(args, write=not args.dry_run) as svc:
        sessions, events = svc.store.prune(cutoff, app, user, None, delete=False)
        result: dict[str, Any] = {"dry_run": args.dry_run, "updated_before": iso(cutoff),
                                  "sessions": sessions, "events": events, "vacuum": None}
        if not args.dry_run:
            if sessions:
                _confirm(f"delete {plural(sessions, 'session')} and {plural(events, 'event')} not updated since "
                         f"{iso(cutoff)}?", args.yes, "prune", refuse_unattended=False)
            result["sessions"] = result["events"] = 0
            bar = _progress(sessions, "prune", "session")
            try:
                while True:
                    n, e = svc.store.prune(cutoff, app, user, BATCH, delete=True)
                    if not n:
                        break
                    result["sessions"] += n
                    result["events"] += e
                    bar.update(n)
            finally:
                bar.close()
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


def _cut(lineage: dict[str, Any]) -> str:
    """How a fork was cut, in words: ``before invocation X (4 events copied)``."""
    where = ("with all its events" if lineage["before_invocation_id"] is None
             else f"before invocation {lineage['before_invocation_id']}")
    return f"{where} ({plural(lineage['events'], 'event')} copied)"


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


def _confirm(question: str, yes: bool, verb: str = "erase", *, refuse_unattended: bool = True) -> None:
    """Go on when ``yes``, or when a person at a terminal answers y to ``question``
    (asked on stderr). Without a terminal on stdin: refused when ``refuse_unattended``
    (``erase``), else go on without asking (``prune``, ``trim``, as documented).

    Raises:
        UsageError: stdin is not a terminal, no ``--yes`` and ``refuse_unattended``.
        NotConfirmed: the answer is not y (exit 1: nothing was changed).
    """
    if yes:
        return
    if not sys.stdin.isatty():
        if not refuse_unattended:
            return
        raise UsageError(f"refusing to {verb} without --yes when standard input is not a terminal")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise NotConfirmed(f"not confirmed: nothing {'erased' if verb == 'erase' else 'deleted'}")


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
            going = trim(svc.store, app, user, None, True)
            if going["events"]:
                _confirm(f"delete {plural(going['events'], 'compacted event')} ({going['bytes']} bytes of event "
                         f"text) from {plural(going['sessions'], 'session')}?", args.yes, "trim",
                         refuse_unattended=False)
        result = trim(svc.store, app, user, None, args.dry_run)
    if args.json:
        _print_json(result)
        return EXIT_OK
    print(f"{'would delete' if args.dry_run else 'deleted'} {plural(result['events'], 'compacted event')} "
          f"({result['bytes']} bytes of event text) from {plural(result['sessions'], 'session')}")
    return EXIT_OK


def cmd_usage(args: argparse.Namespace) -> int:
    """``adk-lite usage``: token usage totals, grouped (``get_usage``; read-only)."""
    app, user = _filters(args)
    now = time.time()
    since, until = (cli_usage.parse_time(args.since, "--since", now, parse_duration),
                    cli_usage.parse_time(args.until, "--until", now, parse_duration))
    groups = cli_usage.parse_groups(args.by)
    with _open(args) as svc:
        rows = svc.get_usage(app, user, args.session, since=since, until=until, group_by=groups)
    if args.json:
        _print_json(rows)
    else:
        _print_table(*cli_usage.table(rows))
    return EXIT_OK


def cmd_vacuum(args: argparse.Namespace) -> int:
    """``adk-lite vacuum``: checkpoint (TRUNCATE), VACUUM, optimize; bytes before and after."""
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
    result = restore.restore(args.backup, _path(args, create=True), keep=not args.no_keep)
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
        found = svc.store.check()
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
              "current_schema_version": SCHEMA_VERSION, "integrity_check": found["integrity_check"],
              "foreign_key_violations": len(found["foreign_key_violations"]), "problems": problems}
    if args.json:
        _print_json(result)
    else:
        note = "" if version == SCHEMA_VERSION else f" (older; migrated to {SCHEMA_VERSION} when opened for writing)"
        print(f"schema_version {version}{note}")
        print("ok" if not problems else "\n".join(f"problem: {p}" for p in problems))
    return EXIT_OK if not problems else EXIT_PROBLEM


# -- the parser --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors raise :class:`_ParseError` (one line, exit 2,
    JSON with ``--json``); ``missing`` replaces argparse's "arguments are required"."""

    def __init__(self, *args: Any, missing: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing = missing

    def error(self, message: str) -> None:  # type: ignore[override]
        if self.missing and "arguments are required" in message:
            message = self.missing
        raise _ParseError(self.prog, message)


_DB_HELP = f"the database: a file or a postgresql:// URL (default: ${ENV_VAR}, else .adk/sessions.sqlite3)"
_FILE_HELP = f"the database file (default: ${ENV_VAR}, else .adk/sessions.sqlite3)"

def cmd_serve(args: argparse.Namespace) -> int:
    """``adk-lite serve``: a local read-only web browser on the database
    (:mod:`adk_lite.web`, the ``web`` extra) until Ctrl-C."""
    try:
        from . import web
    except ImportError as e:
        raise UsageError(f'adk-lite serve needs the web extra: pip install -e ".[web]" ({e})') from e
    web.check_bind(args.host, args.token)
    with _open(args) as svc:
        def listening(url: str) -> None:
            print(f"serving {svc.path} read-only on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)

        web.serve(svc, args.host, args.port, token=args.token, open_browser=args.open, on_listen=listening)
    return EXIT_OK


COMMANDS = {
    "stats": (cmd_stats, "counts, file sizes, sessions per app, the largest sessions",
              "adk-lite stats .adk/sessions.sqlite3 --top 5"),
    "usage": (cmd_usage, "token usage totals of the stored LLM calls, grouped by app, user, session, invocation, "
                         "model or day",
              "adk-lite usage .adk/sessions.sqlite3 --user alice --since 30d --by day,model"),
    "sessions": (cmd_sessions, "list sessions, oldest update first (--newest: newest first), a page at a time",
                 "adk-lite sessions --app my_app --limit 50 --after CURSOR"),
    "search": (cmd_search, "find events by their text, best match first (plain words; --raw for FTS5 or to_tsquery syntax)",
               'adk-lite search .adk/sessions.sqlite3 "refund order 7" --user alice'),
    "memory": (cmd_memory, "search one user's memories (ADK's memory service) for any of the words, best first",
               'adk-lite memory .adk/sessions.sqlite3 my_app alice "favourite colour"'),
    "show": (cmd_show, "a session's merged state and its last events",
             "adk-lite show .adk/sessions.sqlite3 my_app alice chat-1 --events 20"),
    "artifacts": (cmd_artifacts, "list one user's artifacts (with SESSION: that session's and the user's user: ones)",
                  "adk-lite artifacts .adk/sessions.sqlite3 my_app alice chat-1"),
    "artifact": (cmd_artifact, "write one artifact version's bytes to -o FILE (or stdout)",
                 "adk-lite artifact .adk/sessions.sqlite3 my_app alice report.pdf --session chat-1 -o report.pdf"),
    "export": (cmd_export, "write sessions and app/user state as JSON Lines (to stdout, or -o FILE)",
               "adk-lite export --app my_app -o my_app.jsonl"),
    "import": (cmd_import, "restore an export (idempotent; --replace to overwrite differing sessions; "
                           "--create to make a new database)",
               "adk-lite import my_app.jsonl restored.sqlite3 --create"),
    "import-adk": (cmd_import_adk, "copy every session of an ADK session database (SqliteSessionService file or "
                                   "sqlite+aiosqlite:// URL; read-only) into DB",
                   "adk-lite import-adk .adk/session.db .adk/sessions.sqlite3 --create"),
    "export-adk": (cmd_export_adk, "write every session of DB into ADK's own store (a SqliteSessionService path or "
                                   "a DatabaseSessionService URL)",
                   "adk-lite export-adk .adk/sessions.sqlite3 sqlite+aiosqlite:///adk_sessions.db"),
    "copy": (cmd_copy, "copy every session, event and app/user state to another database (a file or a "
                       "postgresql:// URL; resumable)",
             "PGPASSWORD=... adk-lite copy sessions.sqlite3 postgresql://user@host:5432/dbname"),
    "prune": (cmd_prune, "delete sessions not updated for a while",
              "adk-lite prune --older-than 30d --app my_app --dry-run"),
    "fork": (cmd_fork, "copy a session into a new one, whole or before an invocation; the source stays",
             "adk-lite fork .adk/sessions.sqlite3 my_app alice chat-1 --before-invocation e-42 --new-id chat-1b"),
    "erase": (cmd_erase, "erase one user of one app: sessions, events, session and user state, from the file too",
              "adk-lite erase .adk/sessions.sqlite3 --app my_app --user alice --dry-run"),
    "serve": (cmd_serve, "a local read-only web browser: sessions, search, one session's events, usage, stats",
              "adk-lite serve .adk/sessions.sqlite3 --port 8765 --open"),
    "trim": (cmd_trim, "delete raw events that a compaction summarised (ADK no longer sends them to the model)",
             "adk-lite trim .adk/sessions.sqlite3 --app my_app --dry-run"),
    "vacuum": (cmd_vacuum, "checkpoint the WAL, VACUUM and optimize; print bytes before and after",
               "adk-lite vacuum .adk/sessions.sqlite3"),
    "backup": (cmd_backup, "copy the database into one self-contained file while it stays in use (--force to "
                           "replace DEST)",
               "adk-lite backup .adk/sessions.sqlite3 backups/sessions-2026-01-31.sqlite3"),
    "restore": (cmd_restore, "check a backup and replace the database with it (refused while the database is "
                             "open; the old file is kept unless --no-keep)",
                "adk-lite restore backups/sessions-2026-01-31.sqlite3 .adk/sessions.sqlite3"),
    "check": (cmd_check, "integrity_check, foreign_key_check and schema version; exit 1 on problems",
              "adk-lite check .adk/sessions.sqlite3 --json"),
}


def _global_options(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """``--json`` and ``--busy-timeout``, accepted before and after the command
    (after it with ``default=SUPPRESS``, so a value given before is kept)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if after_command else False,
                        help="print one JSON document (for scripts); errors as {\"error\": ...} on stderr")
    parser.add_argument("--busy-timeout", type=_seconds, metavar="SECONDS",
                        default=argparse.SUPPRESS if after_command else 5.0,
                        help="wait this long for another connection's lock (default 5)")


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0 to 65535)")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """Return the ``adk-lite`` argument parser (one sub-command per entry of :data:`COMMANDS`)."""
    parser = _Parser(
        prog="adk-lite", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stats, inspection and maintenance of an adk_lite database (a SQLite file, or a PostgreSQL URL).",
        epilog="examples:\n" + "\n".join(f"  {example}" for _f, _h, example in COMMANDS.values())
        + "\n\nexit codes: 0 success, 1 a problem found (check, import/import-adk/export-adk conflicts) or a confirmation "
        "answered no, 2 bad usage or "
        "unusable file\nevery command refuses a missing or empty database; only import/import-adk --create, copy (its "
        "DST) and restore (from a backup) make one\nkeep passwords out of URLs: PGPASSWORD or ~/.pgpass, as in "
        "PGPASSWORD=... adk-lite copy .adk/sessions.sqlite3 postgresql://user@host:5432/dbname")
    parser.add_argument("--version", action="version", version=f"adk-lite {__version__}")
    _global_options(parser, False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    parsers = {}
    for name, (fn, help_text, example) in COMMANDS.items():
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text + ".",
                           epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter,
                           missing=f"{name} needs [DB] APP USER SESSION (the database file or URL, app_name, "
                                   "user_id and session_id)" if name in ("show", "fork") else None)
        p.set_defaults(func=fn)
        parsers[name] = p
        if name == "import":
            p.add_argument("file", help="a JSON Lines file written by adk-lite export")
        if name == "import-adk":
            p.add_argument("source", help="ADK's SqliteSessionService file (.adk/session.db) or a "
                                          "sqlite+aiosqlite:///path URL of its DatabaseSessionService")
        if name == "backup":
            p.add_argument("db", nargs="?", help=_FILE_HELP)
            p.add_argument("dest", help="the backup file to write (0600; never the database or its side files)")
        elif name == "restore":
            p.add_argument("backup", help="a backup file (adk-lite backup)")
            p.add_argument("db", nargs="?", help="the database file to replace (default: "
                                                 f"${ENV_VAR}, else .adk/sessions.sqlite3)")
        elif name == "copy":
            p.add_argument("src", help="the database to copy from (a file or a postgresql:// URL)")
            p.add_argument("dst", help="the database to copy into, a file or a postgresql:// URL (created when "
                                       "missing); give the password in PGPASSWORD or ~/.pgpass, not in the URL")
        elif name in ("show", "fork"):
            p.add_argument("db", nargs="?", help=_DB_HELP)
            p.add_argument("app", help="app_name")
            p.add_argument("user", help="user_id")
            p.add_argument("session", help="session_id")
        elif name == "memory":
            p.add_argument("db", help="the database file")
            p.add_argument("app", help="app_name")
            p.add_argument("user", help="user_id")
            p.add_argument("query", help="words to find (any of them; no query syntax)")
        elif name in ("artifacts", "artifact"):
            p.add_argument("db", help="the database file")
            p.add_argument("app", help="app_name")
            p.add_argument("user", help="user_id")
            if name == "artifacts":
                p.add_argument("session", nargs="?", help="session_id (default: every session of the user)")
            else:
                p.add_argument("filename", help="the artifact's filename (user:... for a user-scoped one)")
        elif name == "export-adk":
            p.add_argument("db", nargs="?", help=_DB_HELP)
            p.add_argument("target", help="a path (ADK's SqliteSessionService) or a sqlite+aiosqlite:///path URL "
                                          "(its DatabaseSessionService); created if missing")
        elif name == "search":
            p.add_argument("db", nargs="?", help=_DB_HELP)
            p.add_argument("query", help="words to find (all of them); with --raw, an FTS5 query")
        else:
            p.add_argument("db", nargs="?", help=_DB_HELP)
        if name in ("sessions", "export", "prune", "trim", "search", "usage"):
            p.add_argument("--app", help="only this app_name")
            p.add_argument("--user", help="only this user_id")
    cli_usage.add_arguments(parsers["usage"])
    parsers["stats"].add_argument("--top", type=_count(1), default=10, metavar="N",
                                  help="largest sessions to list (default 10)")
    parsers["sessions"].add_argument("--limit", type=_count(1), default=100, metavar="N",
                                     help="page size (default 100)")
    parsers["sessions"].add_argument("--after", metavar="CURSOR", help="the cursor printed after the previous page")
    parsers["sessions"].add_argument("--newest", action="store_true", help="newest update first")
    parsers["search"].add_argument("--session", help="only this session_id")
    parsers["search"].add_argument("--author", help="only events of this author")
    parsers["search"].add_argument("--limit", type=_count(1), default=20, metavar="N", help="hits per page (default 20)")
    parsers["search"].add_argument("--after", metavar="CURSOR", help="the cursor printed after the previous page")
    parsers["search"].add_argument("--raw", action="store_true",
                                   help='QUERY is FTS5 syntax: "a phrase", refund*, AND/OR/NOT, NEAR(a b, 5) '
                                        '(on PostgreSQL, to_tsquery: order <-> 7, refund:*, &, |, !)')
    parsers["memory"].add_argument("--limit", type=_count(1), default=memory.MAX_RESULTS, metavar="N",
                                   help=f"most memories to show (default {memory.MAX_RESULTS})")
    parsers["show"].add_argument("--events", type=_count(0), default=10, metavar="N",
                                 help="show the last N events (default 10; 0 for none)")
    parsers["export"].add_argument("-o", "--output", metavar="FILE",
                                   help="write here instead of stdout (a 0600 file, written whole or not at all; "
                                        "never the database or its -wal/-shm/-journal)")
    parsers["export"].add_argument("--force", action="store_true", help="replace FILE if it exists")
    parsers["artifact"].add_argument("--session", help="the session_id (for a name without user:)")
    parsers["artifact"].add_argument("--version", type=_count(0), metavar="N", help="this version (default: the latest)")
    parsers["artifact"].add_argument("-o", "--output", metavar="FILE",
                                     help="write here instead of stdout (0600, whole or not at all; never the database)")
    parsers["artifact"].add_argument("--force", action="store_true", help="replace FILE if it exists")
    parsers["import"].add_argument("--replace", action="store_true",
                                   help="overwrite sessions and app/user keys that differ from the file")
    parsers["import"].add_argument("--create", action="store_true",
                                   help="create the database if it is missing or empty (otherwise refused)")
    for name in ("import-adk", "export-adk"):
        parsers[name].add_argument("--replace", action="store_true",
                                   help="overwrite sessions (and app/user keys) that differ in the destination")
    parsers["import-adk"].add_argument("--create", action="store_true",
                                       help="create DB if it is missing or empty (otherwise refused)")
    parsers["prune"].add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION",
                                  help="last update older than this: 30d, 12h, 45m, 90s, 2w (at most 36500d)")
    parsers["prune"].add_argument("--dry-run", action="store_true", help="only count (opens the file read-only)")
    parsers["prune"].add_argument("--vacuum", action="store_true", help="vacuum after deleting")
    parsers["backup"].add_argument("--force", action="store_true", help="replace DEST if it exists")
    parsers["restore"].add_argument("--no-keep", action="store_true",
                                    help="do not keep the replaced database as DB.before-restore-<UTC time>")
    parsers["fork"].add_argument("--before-invocation", metavar="ID",
                                 help="copy only the events before this invocation's first event")
    parsers["fork"].add_argument("--new-id", metavar="ID", help="the fork's session_id (default: a new uuid4)")
    parsers["erase"].add_argument("--app", required=True, help="the app_name")
    parsers["erase"].add_argument("--user", required=True, help="the user_id to erase")
    parsers["erase"].add_argument("--dry-run", action="store_true", help="only count (opens the file read-only)")
    parsers["erase"].add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parsers["serve"].add_argument("--host", default="127.0.0.1",
                                  help="address to listen on (default 127.0.0.1; beyond loopback only with --token)")
    parsers["serve"].add_argument("--port", type=_port, default=8765, help="TCP port (default 8765)")
    parsers["serve"].add_argument("--token", default=os.environ.get("ADK_LITE_TOKEN") or None,
                                  help="every request must carry it (Authorization: Bearer T, or ?token=T); "
                                       "default $ADK_LITE_TOKEN, which no other user can see (ps shows arguments)")
    parsers["serve"].add_argument("--open", action="store_true", help="open the default browser on it")
    parsers["trim"].add_argument("--dry-run", action="store_true", help="only count (opens the file read-only)")
    for name in ("prune", "trim"):
        parsers[name].add_argument("--yes", action="store_true",
                                   help="do not ask for confirmation (asked only when stdin is a terminal)")
    return parser


def _fail(message: str, prog: str, as_json: bool) -> int:
    """Print one error line on stderr (JSON with ``--json``); return exit code 2."""
    message = mask_password(" ".join(message.split()))
    line = orjson.dumps({"error": message}).decode() if as_json else f"{prog}: error: {message}"
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return EXIT_USAGE


def _quiet_stdout() -> None:
    """The reader of stdout went away (``| head``): send the rest to /dev/null so
    the interpreter's final flush raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _hide_passwords() -> None:
    """Overwrite this process's command line (``/proc/PID/cmdline``, what ``ps`` shows to
    every user of the machine) with its passwords and ``serve --token`` masked
    (:func:`adk_lite.target.mask_password`), through ``setproctitle`` (the ``cli`` and
    ``postgres`` extras). Without it, or when nothing is masked, the command line stays as
    it is. The secret was visible from the start of the process to this call: prefer
    ``PGPASSWORD`` or ``~/.pgpass``, and ``$ADK_LITE_TOKEN``."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    masked = [mask_password(arg) for arg in argv]
    for i, arg in enumerate(masked):  # serve's --token (or an abbreviation argparse takes: --to)
        option, equals, _value = arg.partition("=")
        if len(option) > 2 and "--token".startswith(option):
            if equals:
                masked[i] = option + "=***"
            elif i + 1 < len(masked):
                masked[i + 1] = "***"
    if masked == argv:
        return
    try:
        import setproctitle
    except ImportError:
        return
    try:
        setproctitle.setproctitle(" ".join(masked))
    except Exception:  # noqa: BLE001 - hiding is best effort; the command still runs
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``adk-lite`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Errors (bad arguments, a missing, empty, corrupt, foreign, newer or locked
    file, a refused output or import line) print one line on stderr and return 2
    (with ``--json``, ``{"error": "..."}``), passwords masked; a "no" at a confirmation
    returns 1; a closed stdout pipe returns 0 quietly; Ctrl-C returns 130. No traceback.
    Run as a process (``argv`` None), the command line's passwords are masked first
    (:func:`_hide_passwords`).
    """
    if argv is None:
        _hide_passwords()
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json, prog = "--json" in argv, "adk-lite"
    try:
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass
    try:
        args = build_parser().parse_args(argv)
        as_json, prog = args.json, f"adk-lite {args.command}"
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except NotConfirmed as e:
        _fail(str(e), prog, as_json)
        return EXIT_PROBLEM
    except _ParseError as e:
        suffix = "" if as_json else f" (see {e.prog} --help)"
        return _fail(f"{e}{suffix}", e.prog, as_json)
    except (UsageError, errors.AdkLiteError, ValueError, TypeError, OverflowError, OSError) as e:
        return _fail(str(e), prog, as_json)
    except Exception as e:  # last resort: an unexpected failure is still one line, never a traceback
        return _fail(f"internal error: {type(e).__name__}: {e}", prog, as_json)
