"""The ``adk-lite`` command: stats, inspection and maintenance of a session file.

Run it as ``adk-lite COMMAND ...`` (console script) or ``python -m adk_lite``.
Every command prints a readable table by default and one JSON document with
``--json`` (``export`` always writes JSON Lines). Exit codes: 0 success, 1 a
problem found (``check``; ``import`` conflicts), 2 bad usage or an unusable file
(missing, corrupt, foreign, newer schema, locked). Errors are one line on stderr.

``stats``, ``sessions``, ``show``, ``export``, ``check`` and ``prune --dry-run``
open the file read-only (``DatabaseSessionService(read_only=True)``): they never
create or change it. Progress bars (tqdm, the ``cli`` extra) appear on stderr
only when stderr is a terminal and tqdm is installed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
import time
from typing import Any, Iterator, Optional, Sequence

import orjson

from . import __version__, codec, errors, validate
from . import state as scopes
from .database import ENV_VAR, MEMORY, SCHEMA_VERSION, file_sizes, resolve
from .models import EVENTS, METADATA, SESSIONS, STATE, TABLES
from .service import DatabaseSessionService
from .store import app_user_filter

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
BATCH = 500
"""Sessions per prune transaction, events per import append."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


class UsageError(Exception):
    """A user error: printed as one line on stderr, exit code 2."""


# -- small helpers ---------------------------------------------------------------

def parse_duration(text: str) -> float:
    """Parse ``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` into seconds.

    Raises:
        argparse.ArgumentTypeError: any other text.
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30d, 12h, 45m, 90s or 2w")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds >= 0")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer >= 1")
    return int(text)


def iso(ts: Optional[float]) -> str:
    """Format epoch seconds as an ISO 8601 UTC time, e.g. ``2026-11-21T08:21:22Z``."""
    if ts is None:
        return ""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


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


def _path(args: argparse.Namespace) -> str:
    path = resolve(args.db)
    if path == MEMORY:
        raise UsageError("an in-memory database has nothing to inspect: give a database file")
    return path


def _open(args: argparse.Namespace, *, write: bool = False, create: bool = False) -> DatabaseSessionService:
    """Open the DB argument: read-only unless ``write``; a missing file is refused unless ``create``."""
    path = _path(args)
    if write and not create and not os.path.lexists(path):
        raise UsageError(f"database {path} does not exist")
    return DatabaseSessionService(path, busy_timeout=args.busy_timeout, read_only=not write)


# -- stats -------------------------------------------------------------------------

def cmd_stats(args: argparse.Namespace) -> int:
    """``adk-lite stats``: get_stats(), file sizes, sessions per app, largest sessions."""
    # sizes before opening: reading a WAL file makes -shm/-wal files while it is open
    sizes = {f"{k}_bytes": v for k, v in file_sizes(_path(args)).items()}
    with _open(args) as svc:
        stats = svc.get_stats()

        def read(conn):
            apps = conn.execute(
                f"SELECT app_name, COUNT(*), COUNT(DISTINCT user_id) FROM {SESSIONS} GROUP BY app_name").fetchall()
            events = dict(conn.execute(f"SELECT app_name, COUNT(*) FROM {EVENTS} GROUP BY app_name").fetchall())
            top = conn.execute(
                f"SELECT app_name, user_id, session_id, COUNT(*) AS n FROM {EVENTS} "
                "GROUP BY app_name, user_id, session_id ORDER BY n DESC, app_name, user_id, session_id LIMIT ?",
                (args.top,)).fetchall()
            return apps, events, top
        apps, app_events, top = svc.store.read(read)
    mib = 1024 * 1024
    stats.update(sizes, total_bytes=sizes["db_bytes"] + sizes["wal_bytes"],
                 total_mib=round((sizes["db_bytes"] + sizes["wal_bytes"]) / mib, 3))
    stats["per_app"] = [{"app_name": a, "sessions": n, "users": u, "events": app_events.get(a, 0)}
                        for a, n, u in apps]
    stats["largest_sessions"] = [{"app_name": a, "user_id": u, "session_id": s, "events": n} for a, u, s, n in top]
    if args.json:
        _print_json(stats)
        return EXIT_OK
    print(f"database    {stats['path']}")
    print(f"schema      version {stats['schema_version']}, SQLite {stats['sqlite_version']}, "
          f"journal_mode {stats['journal_mode']}")
    print(f"sessions    {stats['sessions']} in {stats['apps']} apps, {stats['users']} users")
    print(f"events      {stats['events']}")
    print(f"state keys  {stats['state_keys']}")
    print(f"file bytes  main {stats['db_bytes']}, WAL {stats['wal_bytes']}, SHM {stats['shm_bytes']}; "
          f"{stats['free_pages']} free pages of {stats['page_size']} bytes")
    if apps:
        print()
        _print_table(("app", "sessions", "users", "events"),
                     [(r["app_name"], r["sessions"], r["users"], r["events"]) for r in stats["per_app"]])
    if top:
        print(f"\nlargest sessions (top {args.top} by events)")
        _print_table(("app", "user", "session", "events"), top)
    return EXIT_OK


# -- sessions and show ---------------------------------------------------------------

def cmd_sessions(args: argparse.Namespace) -> int:
    """``adk-lite sessions``: one page of sessions, oldest update first, with a cursor."""
    with _open(args) as svc:
        page = svc.list_sessions(args.app, args.user, limit=args.limit, after=args.after)
        counts = svc.store.event_counts([(s.app_name, s.user_id, s.id) for s in page])
    rows = [{"app_name": s.app_name, "user_id": s.user_id, "session_id": s.id, "events": n,
             "updated_at": s.last_update_time, "last_update": iso(s.last_update_time)}
            for s, n in zip(page, counts)]
    if args.json:
        _print_json({"sessions": rows, "next_cursor": page.next_cursor})
        return EXIT_OK
    _print_table(("app", "user", "session", "events", "last update"),
                 [(r["app_name"], r["user_id"], r["session_id"], r["events"], r["last_update"]) for r in rows])
    if page.next_cursor:
        print(f"next page: --after {page.next_cursor}")
    return EXIT_OK


def _one_line(text: str, width: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def summarize(event: dict[str, Any]) -> str:
    """One line for an event (ADK's JSON shape): its text, tool calls and responses,
    or the state keys it changed."""
    parts = []
    for part in ((event.get("content") or {}).get("parts") or []):
        call = part.get("function_call") or part.get("functionCall")
        response = part.get("function_response") or part.get("functionResponse")
        if part.get("text"):
            parts.append(part["text"])
        elif call:
            parts.append(f"call {call.get('name')}({codec.dumps(call.get('args') or {})})")
        elif response:
            parts.append(f"response {response.get('name')}")
    delta = (event.get("actions") or {}).get("state_delta") or {}
    if not parts and delta:
        parts.append("state " + ", ".join(delta))
    return _one_line(" | ".join(parts) or "-")


def cmd_show(args: argparse.Namespace) -> int:
    """``adk-lite show``: a session's merged state and its last N events."""
    with _open(args) as svc:
        session = svc.get_session(args.app, args.user, args.session, num_recent_events=args.events)
        if session is None:
            raise UsageError(f"session {args.session!r} not found for app_name={args.app!r}, user_id={args.user!r}")
        total = svc.get_event_count(args.app, args.user, session.id)
    events = [e.to_dict() for e in session.events]
    if args.json:
        _print_json({"app_name": session.app_name, "user_id": session.user_id, "session_id": session.id,
                     "last_update": iso(session.last_update_time), "updated_at": session.last_update_time,
                     "revision": session.revision, "state": session.state, "event_count": total, "events": events})
        return EXIT_OK
    print(f"session {session.app_name} / {session.user_id} / {session.id}: {total} events, "
          f"last update {iso(session.last_update_time)}, revision {session.revision}")
    print("state:" if session.state else "state: {}")
    for key, value in session.state.items():
        print(f"  {key} = {_one_line(codec.dumps(value))}")
    print(f"last {len(events)} events:" if events else "events: none")
    _print_table(("time", "author", "event"), [(iso(e["timestamp"]), e["author"], summarize(e)) for e in events])
    return EXIT_OK


# -- export and import -----------------------------------------------------------------

def _session_record(store, key: tuple[str, str, str]) -> Optional[dict[str, Any]]:
    """A session as an export record (state values and event bodies embedded as
    stored, byte for byte), or None if it is gone."""
    found = store.read_session(*key, None, None)
    if found is None:
        return None
    (created, updated, _revision, _incarnation), state_rows, event_rows = found
    return {"type": "session", "app_name": key[0], "user_id": key[1], "session_id": key[2],
            "created_at": created, "updated_at": updated,
            "state": {k: orjson.Fragment(v) for scope, k, v in state_rows if scope == scopes.SESSION},
            "events": [{"event_id": e, "invocation_id": i, "author": a, "branch": b, "timestamp": t,
                        "body": orjson.Fragment(body)} for e, i, a, b, t, body in event_rows]}


def _scope_records(conn, app: Optional[str], user: Optional[str]) -> list[dict[str, Any]]:
    where, params = app_user_filter(app, None)
    where += (" AND " if where else " WHERE ") + "scope IN (?, ?)"
    params += [scopes.APP, scopes.USER]
    if user is not None:
        where += " AND (scope = ? OR user_id = ?)"
        params += [scopes.APP, user]
    rows = conn.execute(f"SELECT app_name, user_id, scope, state_key, state_value FROM {STATE}{where} "
                        "ORDER BY app_name, scope, user_id, state_key", params).fetchall()
    records: dict[tuple, dict] = {}
    for a, u, scope, k, v in rows:
        if (a, u, scope) not in records:
            head = {"type": "app_state", "app_name": a} if scope == scopes.APP else \
                {"type": "user_state", "app_name": a, "user_id": u}
            records[a, u, scope] = dict(head, state={})
        records[a, u, scope]["state"][k] = orjson.Fragment(v)
    return list(records.values())


def cmd_export(args: argparse.Namespace) -> int:
    """``adk-lite export``: JSON Lines, app/user state records then one line per session."""
    with _open(args) as svc:
        store = svc.store
        where, params = app_user_filter(args.app, args.user)

        def read(conn):
            keys = conn.execute(f"SELECT app_name, user_id, session_id FROM {SESSIONS}{where} "
                                "ORDER BY app_name, user_id, session_id", params).fetchall()
            return keys, _scope_records(conn, args.app, args.user)
        keys, state_records = store.read(read)
        out = open(args.output, "wb") if args.output else sys.stdout.buffer
        counts = {"sessions": 0, "events": 0, "state_records": len(state_records)}
        bar = _progress(len(keys), "export", "session")
        try:
            for record in state_records:
                out.write(orjson.dumps(record) + b"\n")
            for key in keys:
                record = _session_record(store, key)
                if record is not None:
                    out.write(orjson.dumps(record) + b"\n")
                    counts["sessions"] += 1
                    counts["events"] += len(record["events"])
                bar.update()
        finally:
            bar.close()
            if args.output:
                out.close()
            else:
                out.flush()
    if args.output:
        if args.json:
            _print_json(dict(counts, output=args.output))
        else:
            print(f"exported {counts['sessions']} sessions ({counts['events']} events) and "
                  f"{counts['state_records']} app/user state records to {args.output}")
    return EXIT_OK


def _check_state(state: Any, where: str) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise TypeError(f"{where} must be an object")
    for k in state:
        if not k or "\x00" in k:
            raise ValueError(f"{where}: {k!r} is not a state key")
    codec.check_json(state, where)
    return state


def _check_record(record: Any) -> tuple:
    """Check one import record; return ``(kind, key, record)``.

    Raises:
        TypeError, ValueError: the message names the field.
    """
    if not isinstance(record, dict):
        raise TypeError("a record must be a JSON object")
    kind = record.get("type")
    if kind not in ("app_state", "user_state", "session"):
        raise ValueError(f"type {kind!r} is not one of app_state, user_state, session")
    app = validate.name(record.get("app_name"), "app_name")
    user = "" if kind == "app_state" else validate.name(record.get("user_id"), "user_id")
    sid = validate.session_id(record.get("session_id")) if kind == "session" else ""
    _check_state(record.get("state"), "state")
    if kind != "session":
        return kind, (app, user, sid), record
    for field in ("created_at", "updated_at"):
        validate.timestamp(record.get(field), field, optional=False)
    events = record.get("events")
    if not isinstance(events, list):
        raise TypeError("events must be a list")
    seen = set()
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise TypeError(f"events[{i}] must be an object")
        if not validate.event_text(e.get("event_id"), f"events[{i}].event_id") or e["event_id"] in seen:
            raise ValueError(f"events[{i}].event_id is empty or repeated")
        seen.add(e["event_id"])
        for field in ("invocation_id", "author"):
            validate.event_text(e.get(field), f"events[{i}].{field}")
        validate.event_text(e.get("branch"), f"events[{i}].branch", optional=True)
        validate.timestamp(e.get("timestamp"), f"events[{i}].timestamp", optional=False)
        if not isinstance(e.get("body"), dict):
            raise TypeError(f"events[{i}].body must be an object")
        codec.check_json(e["body"], f"events[{i}].body")
    return kind, (app, user, sid), record


def _read_records(path: str) -> Iterator[tuple]:
    """Yield ``(line number, kind, key, record)`` from a JSON Lines file, checked.

    Raises:
        UsageError: a line that is not JSON or not a valid record (names the line).
    """
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield (number, *_check_record(orjson.loads(line)))
            except (orjson.JSONDecodeError, TypeError, ValueError) as e:
                raise UsageError(f"{path}:{number}: {e}") from e


def _canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _content(record: dict[str, Any]) -> bytes:
    """What must match for an imported session to count as already there: state and events."""
    return _canonical([record["state"], [[e["event_id"], e["invocation_id"], e["author"], e.get("branch"),
                                          e["timestamp"], e["body"]] for e in record["events"]]])


def _import_session(store, key: tuple[str, str, str], record: dict[str, Any]) -> None:
    app, user, sid = key
    rows = [(scopes.SESSION, k, codec.dumps(v)) for k, v in record["state"].items()]
    store.create_session(app, user, sid, rows, record["created_at"])
    events = [(e["event_id"], e["invocation_id"], e["author"], e.get("branch"), e["timestamp"],
               codec.dumps(e["body"])) for e in record["events"]]
    for start in range(0, max(len(events), 1), BATCH):
        store.append(app, user, sid, None, events[start:start + BATCH], (), (), record["updated_at"])


def cmd_import(args: argparse.Namespace) -> int:
    """``adk-lite import``: restore an export; idempotent; conflicts reported unless --replace."""
    if not os.path.isfile(args.file):
        raise UsageError(f"import file {args.file} does not exist")
    total = sum(1 for _ in _read_records(args.file))  # check every line before writing anything
    report: dict[str, Any] = {"created": 0, "unchanged": 0, "replaced": 0, "events": 0, "state_keys": 0,
                              "conflicts": []}
    with _open(args, write=True, create=True) as svc:
        store = svc.store
        bar = _progress(total, "import", "record")
        try:
            for number, kind, key, record in _read_records(args.file):
                bar.update()
                app, user, sid = key
                if kind != "session":
                    scope = scopes.APP if kind == "app_state" else scopes.USER
                    stored = {k: v for _s, k, v in store.scope_state(app, user, scope)}
                    wanted = {k: codec.dumps(v) for k, v in record["state"].items()}
                    differ = sorted(k for k in wanted if k in stored and stored[k] != wanted[k])
                    if differ and not args.replace:
                        report["conflicts"].append({"line": number, "type": kind, "app_name": app, "user_id": user,
                                                    "keys": differ})
                    put = [(scope, k, v) for k, v in wanted.items() if stored.get(k) != v
                           and (args.replace or k not in stored)]
                    if put:
                        store.put_state(app, user, "", put, (), time.time())
                        report["state_keys"] += len(put)
                    continue
                existing = _session_record(store, key)
                if existing is not None:
                    if _content(orjson.loads(orjson.dumps(existing))) == _content(record):
                        report["unchanged"] += 1
                        continue
                    if not args.replace:
                        report["conflicts"].append({"line": number, "type": kind, "app_name": app,
                                                    "user_id": user, "session_id": sid})
                        continue
                    store.delete_sessions([key])
                _import_session(store, key, record)
                report["replaced" if existing is not None else "created"] += 1
                report["events"] += len(record["events"])
        finally:
            bar.close()
    if args.json:
        _print_json(report)
    else:
        print(f"imported {report['created']} new sessions ({report['events']} events, replaced "
              f"{report['replaced']}), {report['unchanged']} unchanged, {report['state_keys']} app/user state "
              f"keys written, {len(report['conflicts'])} conflicts")
        for c in report["conflicts"]:
            what = c.get("session_id") or ", ".join(c["keys"])
            print(f"conflict line {c['line']}: {c['type']} {c['app_name']}/{c['user_id'] or '-'} {what} differs "
                  "from the stored one (use --replace to overwrite)")
    return EXIT_PROBLEM if report["conflicts"] else EXIT_OK


# -- prune, vacuum, check ----------------------------------------------------------------

def cmd_prune(args: argparse.Namespace) -> int:
    """``adk-lite prune``: delete sessions not updated for a duration, in batches."""
    cutoff = time.time() - args.older_than
    for value, arg in ((args.app, "--app"), (args.user, "--user")):
        if value is not None:
            validate.name(value, arg)
    with _open(args, write=not args.dry_run) as svc:
        sessions, events = svc.store.prune(cutoff, args.app, args.user, None, delete=False)
        result: dict[str, Any] = {"dry_run": args.dry_run, "updated_before": iso(cutoff),
                                  "sessions": sessions, "events": events, "vacuum": None}
        if not args.dry_run:
            result["sessions"] = result["events"] = 0
            bar = _progress(sessions, "prune", "session")
            try:
                while True:
                    n, e = svc.store.prune(cutoff, args.app, args.user, BATCH, delete=True)
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
    print(f"{verb} {result['sessions']} sessions and {result['events']} events "
          f"not updated since {result['updated_before']}")
    if result["vacuum"]:
        print(f"vacuum: {result['vacuum']['bytes_before']} -> {result['vacuum']['bytes_after']} bytes")
    return EXIT_OK


def cmd_vacuum(args: argparse.Namespace) -> int:
    """``adk-lite vacuum``: checkpoint (TRUNCATE), VACUUM, optimize; bytes before and after."""
    with _open(args, write=True) as svc:
        result = svc.vacuum()
    if args.json:
        _print_json(result)
    else:
        print(f"{result['bytes_before']} -> {result['bytes_after']} bytes (main file + WAL), "
              f"{result['bytes_before'] - result['bytes_after']} reclaimed")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    """``adk-lite check``: integrity_check, foreign_key_check, schema version, stray state rows."""
    with _open(args) as svc:
        def read(conn):
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            integrity = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
            foreign = conn.execute("PRAGMA foreign_key_check").fetchall()
            version = int(conn.execute(f"SELECT value FROM {METADATA} WHERE key = 'schema_version'").fetchone()[0])
            stray = 0
            if STATE in tables:
                stray = conn.execute(
                    f"SELECT COUNT(*) FROM {STATE} t WHERE scope = ? AND NOT EXISTS (SELECT 1 FROM {SESSIONS} s "
                    "WHERE s.app_name = t.app_name AND s.user_id = t.user_id AND s.session_id = t.session_id)",
                    (scopes.SESSION,)).fetchone()[0]
            return tables, integrity, foreign, version, stray
        tables, integrity, foreign, version, stray = svc.store.read(read)
    problems = [f"missing table {t}" for t in TABLES if t not in tables]
    problems += [f"integrity_check: {line}" for line in integrity if line != "ok"]
    problems += [f"foreign_key_check: {table} row {rowid} has no parent in {parent}"
                 for table, rowid, parent, _fk in foreign]
    if stray:
        problems.append(f"{stray} session-scope state rows belong to no session")
    result = {"path": svc.path, "ok": not problems, "schema_version": version,
              "current_schema_version": SCHEMA_VERSION, "integrity_check": integrity,
              "foreign_key_violations": len(foreign), "problems": problems}
    if args.json:
        _print_json(result)
    else:
        note = "" if version == SCHEMA_VERSION else f" (older; migrated to {SCHEMA_VERSION} when opened for writing)"
        print(f"schema_version {version}{note}")
        print("ok" if not problems else "\n".join(f"problem: {p}" for p in problems))
    return EXIT_OK if not problems else EXIT_PROBLEM


# -- the parser --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_DB_HELP = f"the database file (default: ${ENV_VAR}, else .adk/sessions.sqlite3)"

COMMANDS = {
    "stats": (cmd_stats, "counts, file sizes, sessions per app, the largest sessions",
              "adk-lite stats .adk/sessions.sqlite3 --top 5"),
    "sessions": (cmd_sessions, "list sessions, oldest update first, a page at a time",
                 "adk-lite sessions --app my_app --limit 50 --after CURSOR"),
    "show": (cmd_show, "a session's merged state and its last events",
             "adk-lite show .adk/sessions.sqlite3 my_app alice chat-1 --events 20"),
    "export": (cmd_export, "write sessions and app/user state as JSON Lines",
               "adk-lite export --app my_app -o my_app.jsonl"),
    "import": (cmd_import, "restore an export (idempotent; --replace to overwrite differing sessions)",
               "adk-lite import my_app.jsonl restored.sqlite3"),
    "prune": (cmd_prune, "delete sessions not updated for a while",
              "adk-lite prune --older-than 30d --app my_app --dry-run"),
    "vacuum": (cmd_vacuum, "checkpoint the WAL, VACUUM and optimize; print bytes before and after",
               "adk-lite vacuum .adk/sessions.sqlite3"),
    "check": (cmd_check, "integrity_check, foreign_key_check and schema version; exit 1 on problems",
              "adk-lite check .adk/sessions.sqlite3 --json"),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the ``adk-lite`` argument parser (one sub-command per entry of :data:`COMMANDS`)."""
    parser = _Parser(
        prog="adk-lite", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stats, inspection and maintenance of an adk_lite session file.",
        epilog="examples:\n" + "\n".join(f"  {example}" for _f, _h, example in COMMANDS.values())
        + "\n\nexit codes: 0 success, 1 a problem found (check, import conflicts), 2 bad usage or unusable file")
    parser.add_argument("--version", action="version", version=f"adk-lite {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    common.add_argument("--busy-timeout", type=_seconds, default=5.0, metavar="SECONDS",
                        help="wait this long for another connection's lock (default 5)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {}
    for name, (fn, help_text, example) in COMMANDS.items():
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text + ".",
                           epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=fn)
        parsers[name] = p
        if name == "import":
            p.add_argument("file", help="a JSON Lines file written by adk-lite export")
        if name == "show":
            p.add_argument("db", help="the database file")
            p.add_argument("app", help="app_name")
            p.add_argument("user", help="user_id")
            p.add_argument("session", help="session_id")
        else:
            p.add_argument("db", nargs="?", help=_DB_HELP + (" (created if missing)" if name == "import" else ""))
        if name in ("sessions", "export", "prune"):
            p.add_argument("--app", help="only this app_name")
            p.add_argument("--user", help="only this user_id")
    parsers["stats"].add_argument("--top", type=_positive, default=10, help="largest sessions to list (default 10)")
    parsers["sessions"].add_argument("--limit", type=_positive, default=100, help="page size (default 100)")
    parsers["sessions"].add_argument("--after", metavar="CURSOR", help="the cursor printed after the previous page")
    parsers["show"].add_argument("--events", type=int, default=10, metavar="N",
                                 help="show the last N events (default 10; 0 for none)")
    parsers["export"].add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    parsers["import"].add_argument("--replace", action="store_true",
                                   help="overwrite sessions and app/user keys that differ from the file")
    parsers["prune"].add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION",
                                  help="last update older than this: 30d, 12h, 45m, 90s, 2w")
    parsers["prune"].add_argument("--dry-run", action="store_true", help="only count (opens the file read-only)")
    parsers["prune"].add_argument("--vacuum", action="store_true", help="vacuum after deleting")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``adk-lite`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    User errors (bad arguments, a missing, corrupt, foreign, newer or locked
    file) print one line on stderr and return 2; no traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, errors.AdkLiteError, ValueError, OSError) as e:
        if isinstance(e, BrokenPipeError):  # the reader went away (adk-lite export | head): quiet exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_PROBLEM
        message = " ".join(str(e).split())
        print(f"adk-lite {args.command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
