"""Property-based test: a hypothesis state machine drives random create / append /
re-append / update_keys / delete / get / list over a few apps, users and sessions,
against a plain in-memory model of DESIGN.md's rules, and checks every read agrees.

Rules modelled: state scopes (``app:`` per app, ``user:`` per app and user, plain
keys per session, ``temp:`` never stored), ``None`` stored as null by an event but
deleted by ``update_keys``, one revision per write and ``StaleSessionError`` for an
out-of-date ``Session``, idempotent re-append of a stored event id, events ordered by
``(timestamp, append order)`` with ``num_recent_events`` / ``after_timestamp``,
delete dropping events and session state but keeping app and user state, and
``list_sessions`` pages in ``(last_update_time, app, user, id)`` order.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from tests.conftest import pg_databases
from adk_lite import (
    AlreadyExistsError,
    AsyncDatabaseSessionService,
    DatabaseSessionService,
    Event,
    EventActions,
    SessionNotFoundError,
    StaleSessionError,
)

APPS, USERS, SIDS = ("a1", "a2"), ("u1", "u2"), ("s1", "s2", "s3")
KEYS = ("k", "m", "user:k", "user:m", "app:k", "app:m", "temp:k")
LATE = float("inf")  # update_keys events are stamped time.time(): after every drawn timestamp
TIMES = (100.0, 101.0, 101.0, 102.5)

NUL = {"allowed": True}  # PostgreSQL's JSON operators and text refuse NUL (a clear ValueError, tested in test_postgres.py)


def texts(max_size):
    """Text, without NUL while a PostgreSQL machine runs."""
    return st.text(max_size=max_size).map(lambda t: t if NUL["allowed"] else t.replace("\x00", "?"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | texts(5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(3), inner, max_size=3),
    max_leaves=6)
deltas = st.dictionaries(st.sampled_from(KEYS), st.none() | json_values, max_size=4)  # None often: it deletes
ids = st.tuples(st.sampled_from(APPS), st.sampled_from(USERS), st.sampled_from(SIDS))


def split(key):
    """``(scope, stored name)`` of a state key; scope None for ``temp:``."""
    for prefix, scope in (("app:", "app"), ("user:", "user"), ("temp:", None)):
        if key.startswith(prefix):
            return scope, key[len(prefix):]
    return "session", key


class Model:
    """The rules of DESIGN.md over plain dicts."""

    def __init__(self):
        self.sessions = {}  # (app, user, sid) -> {"state", "events", "revision", "updated", "incarnation"}
        self.app_state, self.user_state = {}, {}
        self.seq = 0

    def scope(self, key, scope):
        app, user, _ = key
        if scope == "app":
            return self.app_state.setdefault(app, {})
        if scope == "user":
            return self.user_state.setdefault((app, user), {})
        return self.sessions[key]["state"]

    def write(self, key, delta, deleting):
        for k, v in delta.items():
            scope, name = split(k)
            if scope is None:
                continue
            target = self.scope(key, scope)
            if v is None and deleting:
                target.pop(name, None)
            else:
                target[name] = v

    def merged(self, key):
        app, user, _ = key
        out = dict(self.sessions[key]["state"])
        out.update({"user:" + k: v for k, v in self.user_state.get((app, user), {}).items()})
        out.update({"app:" + k: v for k, v in self.app_state.get(app, {}).items()})
        return out

    def add_event(self, key, event_id, author, timestamp, delta):
        self.seq += 1
        stored = {k: v for k, v in delta.items() if not k.startswith("temp:")}
        self.sessions[key]["events"].append((timestamp, self.seq, event_id, author, stored))

    def events(self, key, limit=None, after=None):
        found = sorted(self.sessions[key]["events"])
        if after is not None:
            found = [e for e in found if e[0] >= after]
        if limit is not None:
            found = found[max(0, len(found) - limit):] if limit else []
        return [(eid, author, delta) for _t, _s, eid, author, delta in found]


def seen(events):
    return [(None if e.author == "system" else e.id, e.author, e.actions.state_delta) for e in events]


def expected(model_events):
    return [(None if author == "system" else eid, author, delta) for eid, author, delta in model_events]


class SessionMachine(RuleBasedStateMachine):
    """Base machine; subclasses set :meth:`open` and :meth:`call`."""

    def __init__(self):
        super().__init__()
        self.folder = tempfile.mkdtemp(prefix="adk_lite_props_")
        self.open(self.target())
        self.model = Model()
        self.held = []  # Session objects from create/get, possibly stale, possibly deleted

    def hold(self, session):
        self.held = (self.held + [session])[-6:]

    def check(self, key):
        """Read one session back after a write and compare it whole with the model."""
        session = self.call("get_session", *key)
        stored = self.model.sessions.get(key)
        if stored is None:
            assert session is None
            return
        assert session.state == self.model.merged(key)
        assert (session.revision, seen(session.events)) == (stored["revision"], expected(self.model.events(key)))

    # -- writes ---------------------------------------------------------------
    @rule(key=ids, state=deltas)
    def create(self, key, state):
        app, user, sid = key
        if key in self.model.sessions:
            with pytest.raises(AlreadyExistsError):
                self.call("create_session", app, user, state=state, session_id=sid)
            return
        session = self.call("create_session", app, user, state=state, session_id=sid)
        self.model.sessions[key] = {"state": {}, "events": [], "revision": 0, "updated": session.last_update_time,
                                    "incarnation": session.incarnation}
        self.model.write(key, state, deleting=False)
        assert session.state == self.model.merged(key)
        assert (session.revision, session.events) == (0, [])
        self.hold(session)
        self.check(key)

    @precondition(lambda self: self.held)
    @rule(pick=st.integers(0, 5), batch=st.lists(st.tuples(deltas, st.sampled_from(TIMES)), min_size=1, max_size=3))
    def append(self, pick, batch):
        session = self.held[pick % len(self.held)]
        key = (session.app_name, session.user_id, session.id)
        events = [Event(author="agent", timestamp=t, actions=EventActions(state_delta=dict(d))) for d, t in batch]
        state_before = dict(session.state)
        stored = self.model.sessions.get(key)
        if stored is None:
            with pytest.raises(SessionNotFoundError):
                self.call("append_events", session, events)
            return self.check(key)
        if (stored["revision"], stored["incarnation"]) != (session.revision, session.incarnation):
            with pytest.raises(StaleSessionError):  # behind, or read before a delete and re-create
                self.call("append_events", session, events)
            assert session.state == state_before  # a refused call leaves the object alone
            return self.check(key)
        returned = self.call("append_events", session, events)
        assert returned == events
        for (d, t), event in zip(batch, events):
            self.model.add_event(key, event.id, "agent", t, d)
            self.model.write(key, d, deleting=False)
            state_before.update(d)
        stored["revision"] += 1
        stored["updated"] = batch[-1][1]
        assert session.state == state_before  # the object got every key, temp: ones included
        assert (session.revision, session.last_update_time) == (stored["revision"], batch[-1][1])
        self.check(key)

    @precondition(lambda self: any(s["events"] for s in self.model.sessions.values()) and self.held)
    @rule(pick=st.integers(0, 5), which=st.integers(0, 100))
    def reappend(self, pick, which):
        """Re-appending a stored event id is a no-op that returns the stored event,
        whatever the revision of the Session object."""
        session = self.held[pick % len(self.held)]
        key = (session.app_name, session.user_id, session.id)
        stored = self.model.sessions.get(key)
        agents = [e for e in (stored or {"events": []})["events"] if e[3] == "agent"]
        if not agents:
            return
        _t, _s, event_id, _author, delta = agents[which % len(agents)]
        revision = session.revision
        again = self.call("append_event", session, Event(id=event_id, author="someone else", timestamp=1.0))
        assert (again.id, again.author, again.actions.state_delta) == (event_id, "agent", delta)
        assert session.revision == revision
        self.check(key)

    @rule(key=ids, delta=deltas)
    def update_keys(self, key, delta):
        app, user, sid = key
        stored = self.model.sessions.get(key)
        if stored is None:
            with pytest.raises(SessionNotFoundError):
                self.call("update_keys", app, user, sid, delta)
            return self.check(key)
        self.call("update_keys", app, user, sid, delta)
        kept = {k: v for k, v in delta.items() if not k.startswith("temp:")}
        if kept:
            self.model.add_event(key, None, "system", LATE, kept)
            self.model.write(key, kept, deleting=True)
            stored["revision"] += 1
            stored["updated"] = None  # time.time(): read it back in get/list
        self.check(key)

    @rule(key=ids)
    def delete(self, key):
        self.call("delete_session", *key)
        self.model.sessions.pop(key, None)
        self.check(key)

    # -- reads ----------------------------------------------------------------
    @rule(key=ids, limit=st.sampled_from([None, 0, 1, 2, 5]), after=st.sampled_from([None, 99.0, 101.0, 102.5]))
    def get(self, key, limit, after):
        session = self.call("get_session", *key, num_recent_events=limit, after_timestamp=after)
        stored = self.model.sessions.get(key)
        if stored is None:
            assert session is None
            return
        assert session.state == self.model.merged(key)
        assert session.revision == stored["revision"]
        assert seen(session.events) == expected(self.model.events(key, limit, after))
        if stored["updated"] is not None:
            assert session.last_update_time == stored["updated"]
        if limit is None and after is None:
            assert self.call("get_event_count", *key) == len(session.events)
            self.hold(session)

    @rule(app=st.sampled_from((None,) + APPS), user=st.sampled_from((None,) + USERS), limit=st.sampled_from([None, 1, 2]))
    def list(self, app, user, limit):
        listed, cursor = [], None
        while True:
            page = self.call("list_sessions", app, user, limit=limit, after=cursor)
            assert limit is None or len(page) <= limit
            listed += page
            cursor = page.next_cursor
            if cursor is None:
                break
        want = {k for k in self.model.sessions if app in (None, k[0]) and user in (None, k[1])}
        assert sorted((s.app_name, s.user_id, s.id) for s in listed) == sorted(want)
        order = [(s.last_update_time, s.app_name, s.user_id, s.id) for s in listed]
        assert order == sorted(order)
        for s in listed:
            key = (s.app_name, s.user_id, s.id)
            assert (s.state, s.revision, s.events) == (self.model.merged(key), self.model.sessions[key]["revision"], [])

    @rule(app=st.sampled_from(APPS), user=st.sampled_from(USERS))
    def scopes(self, app, user):
        assert self.call("get_app_state", app) == self.model.app_state.get(app, {})
        assert self.call("get_user_state", app, user) == self.model.user_state.get((app, user), {})

    def target(self):
        """A new database: a file in this machine's folder (the PostgreSQL machines override it)."""
        return self.folder + "/props.db"

    def teardown(self):
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class SyncMachine(SessionMachine):
    def open(self, path):
        self.svc = DatabaseSessionService(path)

    def call(self, name, *args, **kwargs):
        return getattr(self.svc, name)(*args, **kwargs)

    def close(self):
        self.svc.close()


class AsyncMachine(SessionMachine):
    """The async wrapper, driven by one event loop the machine keeps."""

    def open(self, path):
        self.loop = asyncio.new_event_loop()
        self.svc = AsyncDatabaseSessionService(path)

    def call(self, name, *args, **kwargs):
        return self.loop.run_until_complete(getattr(self.svc, name)(*args, **kwargs))

    def close(self):
        self.loop.run_until_complete(self.svc.aclose())
        self.loop.close()


PROFILE = settings(max_examples=60, stateful_step_count=40, deadline=None, database=None)
TestSyncService = SyncMachine.TestCase
TestSyncService.settings = PROFILE
TestAsyncService = AsyncMachine.TestCase
TestAsyncService.settings = PROFILE


class OnPostgres:
    """Runs a machine on an emptied PostgreSQL test database (tests/conftest.py)."""

    def target(self):
        NUL["allowed"] = False
        return pg_databases().fresh(0)

    def teardown(self):
        super().teardown()
        NUL["allowed"] = True


class PgSyncMachine(OnPostgres, SyncMachine):
    pass


class PgAsyncMachine(OnPostgres, AsyncMachine):
    pass


PG_PROFILE = settings(max_examples=25, stateful_step_count=40, deadline=None, database=None)
TestSyncServicePostgres = PgSyncMachine.TestCase
TestSyncServicePostgres.settings = PG_PROFILE
TestAsyncServicePostgres = PgAsyncMachine.TestCase
TestAsyncServicePostgres.settings = PG_PROFILE
