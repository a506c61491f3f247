"""``adk-lite stats``, ``sessions``, ``search``, ``memory`` and ``show``: read-only
inspection (each opens the database read-only)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from .. import codec, validate
from ..admin import MAX_MEMORY_RESULTS, file_sizes
from .common import (EXIT_OK, MAX_COUNT, Command, UsageError, _count, _cut, _filters, _on_server, _one_line,
                     _open, _path, _print_json, _print_table, add_db, add_filters, iso, plural)


def cmd_stats(args: argparse.Namespace) -> int:
    """``adk-lite stats``: counts, file sizes, sessions per app, largest sessions (one snapshot)."""
    # sizes before opening: reading a WAL file makes -shm/-wal files while it is open
    server = _on_server(args)
    sizes = {} if server else file_sizes(_path(args))
    with _open(args) as svc:
        stats = svc.get_stats(args.top)
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
        counts = svc.event_counts([(s.app_name, s.user_id, s.id) for s in page])
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
        found = svc.search_memory(app, user, args.query, min(args.limit, MAX_MEMORY_RESULTS * 100))
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


def _stats_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("--top", type=_count(1), default=10, metavar="N", help="largest sessions to list (default 10)")


def _sessions_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    add_filters(p)
    p.add_argument("--limit", type=_count(1), default=100, metavar="N", help="page size (default 100)")
    p.add_argument("--after", metavar="CURSOR", help="the cursor printed after the previous page")
    p.add_argument("--newest", action="store_true", help="newest update first")


def _search_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("query", help="words to find (all of them); with --raw, an FTS5 query")
    add_filters(p)
    p.add_argument("--session", help="only this session_id")
    p.add_argument("--author", help="only events of this author")
    p.add_argument("--limit", type=_count(1), default=20, metavar="N", help="hits per page (default 20)")
    p.add_argument("--after", metavar="CURSOR", help="the cursor printed after the previous page")
    p.add_argument("--raw", action="store_true",
                   help='QUERY is FTS5 syntax: "a phrase", refund*, AND/OR/NOT, NEAR(a b, 5) '
                        '(on PostgreSQL, to_tsquery: order <-> 7, refund:*, &, |, !)')


def _memory_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("db", help="the database file")
    p.add_argument("app", help="app_name")
    p.add_argument("user", help="user_id")
    p.add_argument("query", help="words to find (any of them; no query syntax)")
    p.add_argument("--limit", type=_count(1), default=MAX_MEMORY_RESULTS, metavar="N",
                   help=f"most memories to show (default {MAX_MEMORY_RESULTS})")


def add_session_key(p: argparse.ArgumentParser) -> None:
    """``[DB] APP USER SESSION`` (``show``, ``fork``)."""
    add_db(p)
    p.add_argument("app", help="app_name")
    p.add_argument("user", help="user_id")
    p.add_argument("session", help="session_id")


def _show_arguments(p: argparse.ArgumentParser) -> None:
    add_session_key(p)
    p.add_argument("--events", type=_count(0), default=10, metavar="N",
                   help="show the last N events (default 10; 0 for none)")


SESSION_KEY_MISSING = "{name} needs [DB] APP USER SESSION (the database file or URL, app_name, user_id and session_id)"

COMMANDS = [
    Command("stats", cmd_stats, "counts, file sizes, sessions per app, the largest sessions",
            "adk-lite stats .adk/sessions.sqlite3 --top 5", _stats_arguments),
    Command("sessions", cmd_sessions, "list sessions, oldest update first (--newest: newest first), a page at a time",
            "adk-lite sessions --app my_app --limit 50 --after CURSOR", _sessions_arguments),
    Command("search", cmd_search,
            "find events by their text, best match first (plain words; --raw for FTS5 or to_tsquery syntax)",
            'adk-lite search .adk/sessions.sqlite3 "refund order 7" --user alice', _search_arguments),
    Command("memory", cmd_memory, "search one user's memories (ADK's memory service) for any of the words, best first",
            'adk-lite memory .adk/sessions.sqlite3 my_app alice "favourite colour"', _memory_arguments),
    Command("show", cmd_show, "a session's merged state and its last events",
            "adk-lite show .adk/sessions.sqlite3 my_app alice chat-1 --events 20", _show_arguments,
            SESSION_KEY_MISSING.format(name="show")),
]
