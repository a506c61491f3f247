"""The floor: adk_lite's writes and reads done with the stdlib ``sqlite3`` alone.

Same file, same schema, same statements as adk_lite (read the session's revision,
insert the event row, upsert the state rows, bump the session), in one
``BEGIN IMMEDIATE`` transaction per append, with the body and state values encoded
by orjson per call. No validation, no event objects, no idempotency check (adk_lite
also looks up the event id, so a retried append is a no-op): it is what any store
on this schema must pay at least, and adk_lite's figures are judged against it.

On adk_lite's schema the search index is written by triggers whose SQL walks the
event's JSON: the plain floor pays them too. ``Floor(path, indexed=True)`` is the
floor *with the index done the cheap way*: the triggers dropped, the event's text
computed in Python (:func:`search_text`) and inserted into the FTS5 table in the same
transaction. That is what an append of an indexed event costs at least.

:func:`fill` writes the big files (up to 1M events) the same way, with
``executemany`` over large transactions.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
import uuid
from typing import Any, Iterable, Optional

import orjson

from . import workload

_COLUMNS = ("id", "invocation_id", "author", "branch", "timestamp")
_KEY = "app_name = ? AND user_id = ? AND session_id = ?"
SQL = {
    "revision": f"SELECT revision, incarnation FROM adk_sessions WHERE {_KEY}",
    "session_row": f"SELECT created_at, updated_at, revision, incarnation FROM adk_sessions WHERE {_KEY}",
    "session_insert": "INSERT INTO adk_sessions (app_name, user_id, session_id, created_at, updated_at, revision, "
                      "incarnation) VALUES (?, ?, ?, ?, ?, 0, ?)",
    "event_insert": "INSERT INTO adk_events (app_name, user_id, session_id, event_id, invocation_id, author, branch, "
                    "timestamp, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "state_upsert": "INSERT INTO adk_state (app_name, user_id, session_id, scope, state_key, state_value, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (app_name, user_id, session_id, scope, state_key) "
                    "DO UPDATE SET state_value = excluded.state_value, updated_at = excluded.updated_at",
    "fts_insert": "INSERT INTO adk_events_fts (rowid, text) VALUES (?, ?)",
    "session_touch": f"UPDATE adk_sessions SET revision = revision + 1, updated_at = ? WHERE {_KEY}",
    "state_merged": "SELECT scope, state_key, state_value FROM adk_state WHERE "
                    "(app_name = ? AND user_id = '' AND session_id = '' AND scope = 'app') OR "
                    "(app_name = ? AND user_id = ? AND session_id = '' AND scope = 'user') OR "
                    "(app_name = ? AND user_id = ? AND session_id = ? AND scope = 'session')",
    "events_recent": f"SELECT event_id, invocation_id, author, branch, timestamp, body FROM adk_events WHERE {_KEY} "
                     "ORDER BY timestamp DESC, id DESC LIMIT ?",
}


FTS = "adk_events_fts"
"""adk_lite's search index (an FTS5 table, ``rowid`` = the event row's id)."""
_INDEXED = tuple(tuple(p[2:].split(".")) for p in ("$.text", "$.function_call.name", "$.function_call.args",
                                                     "$.function_response.name", "$.function_response.response",
                                                     "$.functionCall.name", "$.functionCall.args",
                                                     "$.functionResponse.name", "$.functionResponse.response"))
"""adk_lite's ``schema.INDEXED_PATHS``, split (a copy: the floor imports nothing of adk_lite)."""


def _leaves(value: Any, out: list) -> None:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (str, int, float)):
        out.append(str(value))
    elif isinstance(value, dict):
        for item in value.values():
            _leaves(item, out)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, out)


def search_text(event: dict[str, Any]) -> Optional[str]:
    """The text adk_lite's index holds of an event dict, computed in Python: the strings
    and numbers under each indexed path of each part, in order, joined by spaces; None
    if there are none (what ``schema.search_text_sql`` computes in SQL, for the
    shapes the workload makes)."""
    out: list = []
    for part in (event.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        for path in _INDEXED:
            value: Any = part
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            _leaves(value, out)
    return " ".join(out) if out else None


def connect(path: str) -> sqlite3.Connection:
    """Open ``path`` as adk_lite does: autocommit (explicit BEGIN), WAL, synchronous=normal."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    for pragma in ("journal_mode = wal", "synchronous = normal", "foreign_keys = 1", "busy_timeout = 5000"):
        conn.execute("PRAGMA " + pragma)
    return conn


def _scoped(app: str, user: str, session: str, delta: dict[str, Any], now: float) -> Iterable[tuple]:
    for key, value in delta.items():
        if key.startswith("temp:"):
            continue
        if key.startswith("app:"):
            yield app, "", "", "app", key[4:], orjson.dumps(value).decode(), now
        elif key.startswith("user:"):
            yield app, user, "", "user", key[5:], orjson.dumps(value).decode(), now
        else:
            yield app, user, session, "session", key, orjson.dumps(value).decode(), now


def _rows(app: str, user: str, session: str, events: Iterable[dict[str, Any]], now: float) -> tuple[list, dict]:
    """Event rows and the last value of every state key of ``events``."""
    rows, upserts = [], {}
    for event in events:
        body = {k: v for k, v in event.items() if k not in _COLUMNS}
        delta = event.get("actions", {}).get("state_delta")
        if delta:
            for row in _scoped(app, user, session, delta, now):
                upserts[row[:5]] = row
            body["actions"] = dict(body["actions"], state_delta={
                k: v for k, v in delta.items() if not k.startswith("temp:")})
        rows.append((app, user, session, event["id"], event["invocation_id"], event["author"], event.get("branch"),
                     event["timestamp"], orjson.dumps(body).decode()))
    return rows, upserts


class Floor:
    """The stdlib-sqlite3 floor on one adk_lite file (the schema must exist).

    A session handle is ``[app, user, session_id, revision, incarnation]``; events are the
    workload's dicts.
    """

    def __init__(self, path: str, indexed: bool = False) -> None:
        self.conn = connect(path)
        self.indexed = indexed
        if indexed:  # the index written by the floor itself, not by adk_lite's triggers
            with self.conn:
                for trigger in ("insert", "delete", "update"):
                    self.conn.execute(f"DROP TRIGGER IF EXISTS {FTS}_{trigger}")

    def _write(self, handle: list, events: list[dict[str, Any]]) -> None:
        conn = self.conn
        app, user, session, revision, incarnation = handle
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute(SQL["revision"], (app, user, session)).fetchone()
            if row is None or row != (revision, incarnation):
                raise RuntimeError(f"floor: session {session} missing or stale")
            rows, upserts = _rows(app, user, session, events, time.time())
            if self.indexed:  # one row, then its text into the FTS5 index under the row's id
                for row, event in zip(rows, events):
                    rowid = conn.execute(SQL["event_insert"], row).lastrowid
                    text = search_text(event)
                    if text is not None:
                        conn.execute(SQL["fts_insert"], (rowid, text))
            else:
                conn.executemany(SQL["event_insert"], rows)
            if upserts:
                conn.executemany(SQL["state_upsert"], upserts.values())
            conn.execute(SQL["session_touch"], (events[-1]["timestamp"], app, user, session))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        handle[3] = revision + 1

    def append(self, handle: list, event: dict[str, Any]) -> None:
        """Append one event and its state in one IMMEDIATE transaction."""
        self._write(handle, [event])

    def append_batch(self, handle: list, events: list[dict[str, Any]]) -> None:
        """Append a batch in one IMMEDIATE transaction (``executemany``)."""
        self._write(handle, events)

    def create(self, app: str, user: str, session: str, state: dict[str, Any]) -> list:
        """Insert a session and its initial state; return its handle."""
        conn, now = self.conn, time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute(SQL["revision"], (app, user, session)).fetchone():
                raise RuntimeError(f"floor: session {session} exists")
            incarnation = secrets.token_hex(8)
            conn.execute(SQL["session_insert"], (app, user, session, now, now, incarnation))
            conn.executemany(SQL["state_upsert"], list(_scoped(app, user, session, state, now)))
            conn.execute(SQL["state_merged"], (app, app, user, app, user, session)).fetchall()
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [app, user, session, 0, incarnation]

    def get(self, app: str, user: str, session: str, limit: Optional[int] = None) -> Optional[dict[str, Any]]:
        """Read a session in one snapshot: row, merged state, events (decoded dicts, oldest first)."""
        conn = self.conn
        conn.execute("BEGIN")
        try:
            row = conn.execute(SQL["session_row"], (app, user, session)).fetchone()
            state = conn.execute(SQL["state_merged"], (app, app, user, app, user, session)).fetchall()
            rows = conn.execute(SQL["events_recent"], (app, user, session, -1 if limit is None else limit)).fetchall()
        finally:
            conn.execute("COMMIT")
        if row is None:
            return None
        events = []
        for event_id, invocation_id, author, branch, timestamp, body in reversed(rows):
            event = orjson.loads(body)
            event.update(id=event_id, invocation_id=invocation_id, author=author, timestamp=timestamp)
            events.append(event)
        return {"state": {("" if s == "session" else s + ":") + k: orjson.loads(v) for s, k, v in state},
                "revision": row[2], "events": events}

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def seed(path: str, app: str, user: str, session: str, events: list[dict[str, Any]], chunk: int = 50_000) -> None:
    """Append ``events`` to an existing session by ``executemany`` in large transactions."""
    conn = connect(path)
    try:
        for i in range(0, len(events), chunk):
            part = events[i:i + chunk]
            rows, upserts = _rows(app, user, session, part, time.time())
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(SQL["event_insert"], rows)
            conn.executemany(SQL["state_upsert"], upserts.values())
            conn.execute(SQL["session_touch"], (part[-1]["timestamp"], app, user, session))
            conn.execute("COMMIT")
    finally:
        conn.close()


def fill(path: str, sessions: int, events_per_session: int, users: int, chunk: int = 100_000) -> dict[str, int]:
    """Write a big adk_lite file fast: ``sessions`` sessions over ``users`` users,
    each with ``events_per_session`` workload events and state in all scopes.

    The schema must exist (open and close a ``DatabaseSessionService`` first).
    Event bodies come from a pool of workload turns; ids are fresh uuids.

    Returns:
        ``{"sessions": int, "events": int}`` written.
    """
    pool = workload.events("fill", 400, 0.0)
    pool_rows = [(e["invocation_id"], e["author"], _rows("", "", "", [e], 0.0)[0][0][8]) for e in pool]
    conn = connect(path)
    conn.execute("PRAGMA synchronous = off")
    now = time.time()
    start = now - sessions * events_per_session * 0.001
    written = 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(SQL["state_upsert"], (workload.APP, "", "", "app", "version", "3", now))
        conn.executemany(SQL["state_upsert"], ((workload.APP, f"user-{u}", "", "user", "tier", '"gold"', now)
                                               for u in range(users)))
        events: list[tuple] = []
        for s in range(sessions):
            user, sid = f"user-{s % users}", workload.session_id("big", s)
            t0 = start + written * 0.001
            conn.execute(SQL["session_insert"], (workload.APP, user, sid, t0, t0 + events_per_session * 0.001,
                                                 secrets.token_hex(8)))
            conn.execute(SQL["state_upsert"], (workload.APP, user, sid, "session", "topic", '"orders"', now))
            for _ in range(events_per_session):
                invocation, author, body = pool_rows[written % len(pool_rows)]
                events.append((workload.APP, user, sid, str(uuid.uuid4()), invocation, author, None,
                               start + written * 0.001, body))
                written += 1
            if len(events) >= chunk:
                conn.executemany(SQL["event_insert"], events)
                events.clear()
                conn.execute("COMMIT")
                conn.execute("BEGIN IMMEDIATE")
        conn.executemany(SQL["event_insert"], events)
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return {"sessions": sessions, "events": written}
