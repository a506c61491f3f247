"""Helpers for the reliability tests, and the child processes they start.

Run as a script (``python tests/workers.py ROLE ARGS...``) it plays one child:

- ``crash PATH SYNCHRONOUS SEED``: appends forever to one session, printing
  ``T <kind>`` before each call and ``A`` after it returns (flushed), so the
  parent, which draws the same operations from the same seed with
  :func:`crash_ops`, knows which calls were acknowledged when it kills the process.
- ``writer PATH INDEX N``: ``N`` appends to its own session ``w<INDEX>`` with a
  shared ``user:`` key and its own ``app:`` keys; every 25th call is an ``update_keys``.
- ``reader PATH STOPFILE STOP_AT``: reads in a loop until STOPFILE exists and checks every
  read is consistent (``count`` + ``updates`` == revision == events); prints a JSON summary.
- ``append PATH SESSION_ID N``: N appends to one session (created if missing).
- ``holdlock PATH SECONDS``: holds SQLite's write lock until a line on stdin (at most
  SECONDS), then rolls back.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import sqlite3
import subprocess
import sys
import threading
import time
from typing import Optional

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def file_bytes(path: str) -> tuple[bytes, Optional[bytes]]:
    """The bytes of a database file and of its ``-wal`` (None when absent)."""
    with open(path, "rb") as fh:
        main = fh.read()
    try:
        with open(path + "-wal", "rb") as fh:
            wal = fh.read()
    except FileNotFoundError:
        wal = None
    return main, wal


PINNED_MTIME_NS = 1_000_000_000 * 10**9
"""A file time in the past (2001) that :func:`fingerprint` users set first, so any write
shows as a changed mtime without waiting for the clock to tick."""


def fingerprint(path: str, pin: bool = False) -> tuple[str, int]:
    """``(sha256 of the bytes, mtime in ns)`` of a file; with ``pin``, first set its mtime
    to :data:`PINNED_MTIME_NS`, so a later write changes it whatever the clock's resolution."""
    if pin:
        os.utime(path, ns=(PINNED_MTIME_NS, PINNED_MTIME_NS))
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest(), os.stat(path).st_mtime_ns


def folder_listing(folder) -> list[str]:
    """Sorted names in a folder."""
    return sorted(os.listdir(folder))


def child_env() -> dict:
    """Environment for a child process: this checkout first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    return env


def command(role: str, *args) -> list[str]:
    """The argv that runs ``role`` in a child Python."""
    return [sys.executable, os.path.abspath(__file__), role, *map(str, args)]


def start(role: str, *args) -> subprocess.Popen:
    """Start a child playing ``role``, with unbuffered pipes for stdin, stdout and stderr."""
    return subprocess.Popen(command(role, *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=child_env(), bufsize=0)


class Lines:
    """Lines from a child's stdout, read with a timeout (never blocks forever)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.buffer, self.lines = proc, b"", []

    def next(self, timeout: float) -> str:
        end = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise TimeoutError(f"no line from the child within {timeout} s")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise EOFError(f"child exited: {self.proc.stderr.read().decode()[-2000:]}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        self.lines.append(line.decode())
        return self.lines[-1]

    def rest(self) -> list[str]:
        """After the child is dead: every whole line it printed (a line cut short by
        the kill, with no newline yet, is left out)."""
        self.buffer += self.proc.stdout.read()
        *whole, self.buffer = self.buffer.split(b"\n")
        self.lines += [x.decode() for x in whole]
        return self.lines



# -- the crash child -------------------------------------------------------------

CRASH_KEYS = [f"k{i}" for i in range(8)]


def crash_ops(rng: random.Random, n: int, session_keys: list[str] = CRASH_KEYS):
    """The next operation for the crash child, as a JSON-able dict.

    Kinds: ``one`` (append_event), ``batch`` (append_events of 20..120 events),
    ``keys`` (update_keys that sets or deletes keys in every scope).
    """
    kind = rng.choice(("one", "one", "batch", "keys"))
    if kind == "keys":
        changes = {}
        for key in rng.sample(session_keys, 3):
            changes[key] = None if rng.random() < 0.4 else rng.randrange(10**6)
        changes["user:last"] = None if rng.random() < 0.2 else n
        changes["app:last"] = n
        return {"kind": "keys", "delta": changes}
    size = 1 if kind == "one" else rng.randrange(20, 120)
    events = []
    for i in range(size):
        d = {"n": n + i, rng.choice(session_keys): rng.randrange(10**6), "user:last": n + i}
        if rng.random() < 0.3:
            d["temp:scratch"] = i
        events.append({"id": f"e{n + i}", "delta": d, "text": "y" * rng.randrange(0, 2000)})
    return {"kind": kind, "events": events}


def say(line: str) -> None:
    """Print one line in one write (print() writes its pieces apart under PYTHONUNBUFFERED)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def crash_child(path: str, synchronous: str, seed: int) -> None:
    from adk_lite import DatabaseSessionService, Event, EventActions

    rng = random.Random(seed)
    svc = DatabaseSessionService(path, synchronous=synchronous)
    session = svc.get_session("app", "u", "s", num_recent_events=0)
    n = svc.get_event_count("app", "u", "s")
    say("READY")
    while True:
        op = crash_ops(rng, n)
        say(f"T {op['kind']}")  # the parent draws the same op from the same seed
        if op["kind"] == "keys":
            svc.update_keys("app", "u", "s", op["delta"])
            session.revision += 1
            n += 1
        else:
            events = [Event(id=e["id"], author="agent", content={"parts": [{"text": e["text"]}]},
                            actions=EventActions(state_delta=dict(e["delta"]))) for e in op["events"]]
            svc.append_events(session, events)
            session.events.clear()
            n += len(events)
        say("A")


# -- concurrent writers and a reader ---------------------------------------------

UPDATE_EVERY = 25


def writer_child(path: str, index: int, count: int) -> None:
    from adk_lite import DatabaseSessionService, Event, EventActions

    with DatabaseSessionService(path) as svc:
        sid = f"w{index}"
        session = svc.create_session("app", f"user{index % 2}", state={"count": 0, "updates": 0}, session_id=sid)
        updates = 0
        for i in range(1, count + 1):
            svc.append_event(session, Event(author="agent", content={"parts": [{"text": f"{sid}-{i}"}]},
                                            actions=EventActions(state_delta={
                                                "count": i, "user:shared": f"{sid}-{i}", f"app:count_{sid}": i})))
            if i % UPDATE_EVERY == 0:
                updates += 1
                svc.update_keys("app", session.user_id, sid, {"updates": updates, f"app:updates_{sid}": updates})
                session = svc.get_session("app", session.user_id, sid, num_recent_events=0)
    say(json.dumps({"writer": index, "appends": count, "updates": updates}))


def check_consistent(session, events=None) -> Optional[str]:
    """Return a description of an inconsistency in one read of a writer's session, or None.

    Every append adds one event and bumps ``count``; every update_keys adds one
    ``system`` event and bumps ``updates``; so ``count + updates == revision`` and,
    when events were read, they split the same way.
    """
    state = session.state
    if "count" not in state:
        return f"{session.id}: no count in {state}"
    if state["count"] + state["updates"] != session.revision:
        return f"{session.id}: count {state['count']} + updates {state['updates']} != revision {session.revision}"
    if events is not None:
        system = sum(1 for e in events if e.author == "system")
        if (len(events) - system, system) != (state["count"], state["updates"]):
            return f"{session.id}: {len(events) - system} events/{system} updates vs state {state}"
    return None


def reader_child(path: str, stopfile: str, stop_at: int, deadline: float = 120.0) -> None:
    """Read until ``stopfile`` exists; ``midway`` counts reads of a session caught
    between its first and last (``stop_at``) append, i.e. while writers ran."""
    from adk_lite import DatabaseSessionService

    reads, midway, problems, errors = 0, 0, [], []
    last_events = 0
    end = time.monotonic() + deadline
    with DatabaseSessionService(path) as svc:
        while not os.path.exists(stopfile) and time.monotonic() < end:
            try:
                for listed in svc.list_sessions("app"):
                    problems.append(check_consistent(listed))
                    full = svc.get_session("app", listed.user_id, listed.id)
                    problems.append(check_consistent(full, full.events))
                    reads += 2
                    midway += 0 < full.state.get("count", 0) < stop_at
                stats = svc.get_stats()
                if stats["events"] < last_events:
                    problems.append(f"events went down: {last_events} -> {stats['events']}")
                last_events = stats["events"]
                reads += 1
            except Exception as e:  # noqa: BLE001 - the summary reports every error
                errors.append(f"{type(e).__name__}: {e}")
    say(json.dumps({"reads": reads, "midway": midway, "problems": [p for p in problems if p], "errors": errors}))


def racer(path: str, name: str, rounds: int, barrier, results) -> None:
    """Race another process for each revision of session ``race``: both read the
    session, meet at ``barrier``, then append. The loser must get StaleSessionError,
    reload and retry. Puts ``(name, outcomes)`` on ``results``; an outcome is
    ``(round, "won" | "stale-then-won", revision the winning append was read at)``."""
    from adk_lite import DatabaseSessionService, Event, EventActions, StaleSessionError

    outcomes = []
    with DatabaseSessionService(path) as svc:
        for r in range(rounds):
            session = svc.get_session("app", "u", "race", num_recent_events=0)
            barrier.wait(timeout=30)
            outcome = "won"
            while True:
                read_at = session.revision
                try:
                    svc.append_event(session, Event(id=f"{name}-{r}", author=name,
                                                    actions=EventActions(state_delta={"read_at": read_at})))
                    break
                except StaleSessionError:
                    outcome = "stale-then-won"
                    session = svc.get_session("app", "u", "race", num_recent_events=0)
            outcomes.append((r, outcome, read_at))
            barrier.wait(timeout=30)  # both done with this round before the next read
    results.put((name, outcomes))


def group_child(path: str, threads: int, synchronous: str) -> None:
    """Append from ``threads`` threads at once, each to its own session (so their
    appends meet in group commits), printing ``A <session> <event id>`` after each
    append returns; runs until killed."""
    from adk_lite import DatabaseSessionService, Event, EventActions

    svc = DatabaseSessionService(path, synchronous=synchronous)
    sessions = [svc.create_session("app", "u", session_id=f"g{i}") for i in range(threads)]
    say("R")
    lock = threading.Lock()

    def loop(session):
        n = 0
        while True:
            event_id = f"{session.id}-{n}"
            svc.append_event(session, Event(author="agent", id=event_id, actions=EventActions(state_delta={"n": n})))
            with lock:
                say(f"A {session.id} {event_id}")
            n += 1

    for session in sessions:
        threading.Thread(target=loop, args=(session,), daemon=True).start()
    threading.Event().wait()


def append_child(path: str, session_id: str, count: int) -> None:
    """Create session ``session_id`` (app ``app``, user ``u``) if missing and append ``count`` events."""
    from adk_lite import DatabaseSessionService, Event

    with DatabaseSessionService(path) as svc:
        session = svc.get_session("app", "u", session_id) or svc.create_session("app", "u", session_id=session_id)
        for _ in range(count):
            svc.append_event(session, Event(author="child"))


def holdlock_child(path: str, seconds: float) -> None:
    """Hold the write lock (with an uncommitted change) until a line arrives on stdin,
    or ``seconds`` pass; then roll back."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("UPDATE adk_sessions SET revision = revision + 100")  # never committed
    say("LOCKED")
    select.select([sys.stdin], [], [], seconds)
    conn.execute("ROLLBACK")
    conn.close()
    say("RELEASED")


if __name__ == "__main__":
    role, args = sys.argv[1], sys.argv[2:]
    if role == "crash":
        crash_child(args[0], args[1], int(args[2]))
    elif role == "writer":
        writer_child(args[0], int(args[1]), int(args[2]))
    elif role == "reader":
        reader_child(args[0], args[1], int(args[2]))
    elif role == "group":
        group_child(args[0], int(args[1]), args[2])
    elif role == "append":
        append_child(args[0], args[1], int(args[2]))
    elif role == "holdlock":
        holdlock_child(args[0], float(args[1]))
    else:
        raise SystemExit(f"unknown role {role!r}")


def open_fds_on(path: str) -> list[str]:
    """The targets of this process's open file descriptors on ``path`` and its
    side files (``-wal``, ``-shm``), one entry per descriptor."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(path):
            out.append(target)
    return out


ADK_CLASSES = {"session": "DatabaseSessionService", "memory": "DatabaseMemoryService",
               "artifact": "DatabaseArtifactService"}
"""The adk_lite class ADK's service registry builds for each ``type`` of services.yaml."""


ADK_LOADER_HEAD = """
import asyncio, sys
from google.adk.cli.service_registry import load_services_module
from google.adk.cli.utils import service_factory
from google.adk.events import Event
from google.genai import types
agents_dir, uri = sys.argv[1], sys.argv[2]
load_services_module(agents_dir)  # as adk web / api_server at start
svc = service_factory.create_{kind}_service_from_options(base_dir=agents_dir, {kind}_service_uri=uri{options})
{use}
async def main():
    said = await use(svc)
    print(type(svc).__module__ + "." + type(svc).__name__, svc.path, said)
    await svc.close()
asyncio.run(main())
"""
"""The script :func:`adk_loader` runs: ADK's loader, then ``use``, then what it printed."""


def adk_loader(tmp_path, how: str, kind: str, use: str, uri: str, scheme: str = "adklite",
               options: str = "") -> list[str]:
    """Register adk_lite for ``scheme`` in ``agents/<how>`` (``services.yaml`` naming the
    class for ``kind``, or ``services.py`` calling ``register``), then, in a new process as
    ADK's command line loads its services, build the ``kind`` service for ``uri`` with
    ``create_<kind>_service_from_options`` (``options``: more keyword arguments, as source
    text starting with a comma) and call ``use`` (source of ``async def use(svc)``) on it;
    return the words it printed: the service's class, its ``path`` and what ``use`` returned."""
    agents = tmp_path / "agents"
    agents.mkdir()
    if how == "services.yaml":
        (agents / how).write_text(f"services:\n  - scheme: {scheme}\n    type: {kind}\n"
                                  f"    class: adk_lite.adk.{ADK_CLASSES[kind]}\n")
    else:
        (agents / how).write_text(f"import adk_lite.adk\n\nadk_lite.adk.register(scheme={scheme!r})\n")
    script = ADK_LOADER_HEAD.format(kind=kind, options=options, use=use)
    out = subprocess.run([sys.executable, "-c", script, str(agents), uri], capture_output=True, text=True,
                         env=child_env(), timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def run_threads(work, count: int) -> list[Exception]:
    """Call ``work(0)`` .. ``work(count - 1)``, each in a thread of its own, all at once;
    wait for all of them and return the exceptions they raised (empty when none did)."""
    errors = []

    def guarded(i):
        try:
            work(i)
        except Exception as e:  # noqa: BLE001 - the caller asserts there are none
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def schema_problems_with(svc, url: str, setup: list[str], undo: list[str]) -> list[str]:
    """The ``schema_problems`` that ``svc.store.check()`` reports while the SQL statements
    ``setup`` (run in order as the superuser of PostgreSQL ``url``, autocommit) are in
    effect; ``undo`` runs after the check, even when it fails."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for sql in setup:
            conn.execute(sql)
        try:
            return svc.store.check()["schema_problems"]
        finally:
            for sql in undo:
                conn.execute(sql)


def scripted_llm(reply, model: str = "scripted"):
    """A google-adk model (a ``BaseLlm``, no network) named ``model`` that answers each
    request with the one part ``reply(last)`` returns, ``last`` being the last part of the
    request's last content (the user's text, or a tool's ``function_response``)."""
    from typing import AsyncGenerator

    from google.adk.models import BaseLlm, LlmRequest, LlmResponse
    from google.genai import types

    class Scripted(BaseLlm):
        async def generate_content_async(self, llm_request: LlmRequest,
                                         stream: bool = False) -> AsyncGenerator[LlmResponse, None]:
            part = reply(llm_request.contents[-1].parts[-1])
            yield LlmResponse(content=types.Content(role="model", parts=[part]))

    return Scripted(model=model)
