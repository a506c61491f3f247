"""Fork is exact under writers: while another process appends to the source (state
deltas, ``update_keys`` deletions), every fork's session state is the replay of the
events it copied, never a step ahead or behind, on both backends."""

from __future__ import annotations

import multiprocessing
import time

from adk_lite import DatabaseSessionService, Event, EventActions, lifecycle
from tests.conftest import pooled

APP, USER = "app", "u"
TIMEOUT = 120


def appender(target, stop, appended):
    """Child process: append to session ``src`` until ``stop``: each event sets ``n`` and
    a key of its own, every third is an ``update_keys`` that deletes the previous one's
    (at most 5,000 writes)."""
    with DatabaseSessionService(target) as svc:
        s = svc.get_session(APP, USER, "src")
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            if n % 3 == 0:
                svc.update_keys(APP, USER, "src", {"n": n, f"k{n - 1}": None})
                s = svc.get_session(APP, USER, "src", num_recent_events=0)
            else:
                svc.append_event(s, Event(invocation_id=f"i{n}", author="user",
                                          actions=EventActions(state_delta={"n": n, f"k{n}": n, "user:n": n})))
            with appended.get_lock():
                appended.value = n


def test_forks_of_a_session_being_appended_hold_the_state_of_their_events(target):
    path = pooled(target, 4)
    ctx = multiprocessing.get_context("spawn")
    stop, appended = ctx.Event(), ctx.Value("i", 0)
    with DatabaseSessionService(path) as svc:
        svc.create_session(APP, USER, {"n": 0, "init": "x"}, "src")
        proc = ctx.Process(target=appender, args=(path, stop, appended))
        proc.start()
        try:
            end = time.monotonic() + TIMEOUT
            while appended.value < 5 and time.monotonic() < end:
                time.sleep(0.01)
            forks = []
            for i in range(40):
                forks.append(svc.fork_session(APP, USER, "src", new_session_id=f"f{i}"))
                # three writes begun after this fork hold at least one event: the next fork is longer
                seen = appended.value
                while appended.value < seen + 3 and time.monotonic() < end:
                    time.sleep(0.001)
        finally:
            stop.set()
            proc.join(timeout=TIMEOUT)
            if proc.is_alive():
                proc.kill()
        assert proc.exitcode == 0
        copied = [len(f.events) for f in forks]
        assert copied != sorted(copied)[:1] * len(copied)  # the source grew while forks were made
        for fork in forks:
            _row, _state, rows = svc.store.read_session(APP, USER, fork.id, None, None)
            initial = svc.store.read(lambda c: c.execute(
                f"SELECT initial_state FROM adk_sessions WHERE session_id = {svc.store._p}", (fork.id,)).fetchone()[0])
            session_rows = svc.store.read(lambda c: c.execute(
                f"SELECT scope, state_key, state_value FROM adk_state WHERE session_id = {svc.store._p} "
                f"AND scope = 'session'", (fork.id,)).fetchall())
            assert sorted(map(tuple, session_rows)) == sorted(lifecycle.replay(initial, rows)), fork.id
