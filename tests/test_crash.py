"""Crash safety: a child process appends in a loop and is killed with SIGKILL at
random moments, some in the middle of an ``append_events`` batch or an
``update_keys``. After every kill the database is reopened and checked: every
acknowledged call is there with its state change, the call in flight is there
whole or not at all, and the store's check is clean (on SQLite, ``PRAGMA
integrity_check`` says ``ok`` too).

On SQLite the child runs with ``synchronous`` normal and full; on PostgreSQL, where
``synchronous`` is ignored (durability is the server's), the killed process is a client
with transactions open on the server, which must roll back what was not acknowledged."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import time

import pytest

from adk_lite import DatabaseSessionService
from tests.conftest import on_postgres, settle
from tests.workers import Lines, crash_ops, start

SEED = int(os.environ.get("ADK_LITE_CRASH_SEED", "20261121"))
VARIANTS = pytest.mark.parametrize("backend, synchronous", [("sqlite", "normal"), ("sqlite", "full"),
                                                            ("postgres", "normal")],
                                   ids=["sqlite-normal", "sqlite-full", "postgres"], indirect=["backend"])
"""SQLite with each ``synchronous``; PostgreSQL once (it ignores ``synchronous``)."""
KILLS = {"normal": 30, "full": 15, "postgres": 15}
READY_TIMEOUT = 30.0  # seconds for a child to start (slow CI machines)


class Model:
    """What the file must hold: the event log as ``(author, id, stored delta)``, the
    merged state, and the number of committed calls (the session's revision)."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.state: dict = {}
        self.calls = 0

    def apply(self, op: dict) -> None:
        self.calls += 1
        if op["kind"] == "keys":
            self.events.append(("system", None, op["delta"]))
            for key, value in op["delta"].items():
                if value is None:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value
            return
        for event in op["events"]:
            stored = {k: v for k, v in event["delta"].items() if not k.startswith("temp:")}
            self.events.append(("agent", event["id"], stored))
            self.state.update(stored)

    def copy(self) -> "Model":
        other = Model()
        other.events, other.state, other.calls = list(self.events), dict(self.state), self.calls
        return other


def stored_log(session) -> list[tuple]:
    return [(e.author, None if e.author == "system" else e.id, e.actions.state_delta) for e in session.events]


def integrity(path: str) -> str:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def assert_sound(svc, where) -> None:
    """The store's check after a kill is clean: tables, integrity, foreign keys, no
    stray state (on PostgreSQL the server keeps its pages: this is all there is)."""
    check = svc.store.check()
    assert (check["integrity_check"], check["foreign_key_violations"], check["stray_state_rows"],
            check["missing_tables"]) == (["ok"], [], 0, []), where


def kill_once(path: str, synchronous: str, seed: int, aim: str, rng: random.Random) -> list[str]:
    """Start a child, kill it (at a random time, or just after it starts an ``aim``
    call), and return the lines it printed."""
    proc = start("crash", path, synchronous, seed)
    lines = Lines(proc)
    try:
        assert lines.next(READY_TIMEOUT) == "READY"
        if aim == "any":
            time.sleep(rng.uniform(0.005, 0.25))
        else:
            while lines.next(10.0) != f"T {aim}":
                pass
            time.sleep(rng.uniform(0, 0.003 if aim == "batch" else 0.0003))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        settle(path)  # PostgreSQL: the server has committed or rolled back what the child left
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    out = lines.rest()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        pipe.close()
    return out


@VARIANTS
def test_sigkill_never_loses_an_acknowledged_call(backend, target, synchronous):
    path = target
    kills = KILLS["postgres" if on_postgres(path) else synchronous]
    with DatabaseSessionService(path, synchronous=synchronous) as svc:
        svc.create_session("app", "u", session_id="s")
    model = Model()
    rng = random.Random(SEED)
    in_flight = {"one": 0, "batch": 0, "keys": 0}
    committed_in_flight = 0
    for round_no in range(kills):
        seed = SEED * 1000 + round_no
        aim = ("any", "batch", "keys")[round_no % 3]
        lines = kill_once(path, synchronous, seed, aim, rng)
        where = f"{backend}/{synchronous} round {round_no} (seed {seed}, kill {aim})"

        # Replay the child's operations: acknowledged ones, then the one in flight.
        ops = random.Random(seed)
        pending = None
        for line in lines[1:]:
            if line.startswith("T "):
                pending = crash_ops(ops, len(model.events))
                assert pending["kind"] == line[2:], where
            else:
                assert line == "A" and pending is not None, where
                model.apply(pending)
                pending = None

        if not on_postgres(path):
            assert integrity(path) == "ok", where
        with DatabaseSessionService(path, synchronous=synchronous) as svc:
            session = svc.get_session("app", "u", "s")
            stats = svc.get_stats()
            assert_sound(svc, where)
        log = stored_log(session)
        if pending is not None:
            in_flight[pending["kind"]] += 1
            whole = model.copy()
            whole.apply(pending)
            if log == whole.events:  # the call in flight committed before the kill: all of it
                model, committed_in_flight = whole, committed_in_flight + 1
        assert log == model.events, f"{where}: {len(log)} events stored, {len(model.events)} expected"
        assert session.state == model.state, where
        assert session.revision == model.calls, where  # one revision per committed call
        assert stats["events"] == len(model.events) and stats["sessions"] == 1, where
    print(f"{backend}/{synchronous}: {kills} kills, calls in flight {in_flight}, "
          f"{committed_in_flight} of them committed, {model.calls} calls, {len(model.events)} events")
    # The targeted kills did land inside calls (between "T" and "A").
    assert in_flight["batch"] >= 1 and in_flight["keys"] >= 1, in_flight


@VARIANTS
def test_sigkill_while_eight_threads_append_loses_no_acknowledged_append(target, synchronous):
    """Eight threads append at once, each to its own session; each append is
    acknowledged only after its commit. On SQLite (one writer) their appends meet in
    group commits (one transaction for several callers); on PostgreSQL each runs at
    once on its own pooled connection, so up to eight transactions are open on the
    server at the kill. Killed at random moments, the database holds every
    acknowledged event, each session's events in order, and nothing half done."""
    rng = random.Random(SEED + 1)
    path = target
    for kill in range(4):
        child = start("group", path, "8", synchronous)
        lines = Lines(child)
        try:
            while lines.next(READY_TIMEOUT) != "R":
                pass
            time.sleep(rng.uniform(0.05, 0.4))
            child.send_signal(signal.SIGKILL)
            child.wait(10)
            settle(path)
            acked: dict[str, list[str]] = {}
            try:
                while True:
                    line = lines.next(2)
                    if line.startswith("A "):
                        _, session, event_id = line.split()
                        acked.setdefault(session, []).append(event_id)
            except (TimeoutError, EOFError):
                pass
        finally:
            if child.poll() is None:
                child.kill()
        if not on_postgres(path):
            assert integrity(path) == "ok", f"kill {kill}"
        with DatabaseSessionService(path) as svc:
            assert_sound(svc, f"kill {kill}")
            for session, ids in acked.items():
                stored = [e.id for e in svc.get_session("app", "u", session).events]
                assert stored[:len(ids)] == ids, (kill, session)  # every acknowledged one, in order
                assert len(stored) <= len(ids) + 1  # at most the one in flight besides
            for session in svc.list_sessions("app", "u"):
                svc.delete_session("app", "u", session.id)  # the next child creates them again
        assert sum(map(len, acked.values())) > 0, f"kill {kill}: the child acknowledged nothing"
