"""Several processes appending to one database at once.

Each process opens its own service (adk_lite's sync ``DatabaseSessionService`` by
default, or any driver of :mod:`bench.drivers`) on the shared file or PostgreSQL
URL, creates its own sessions, builds its events, waits at a barrier, then appends a
fixed number of events (whole turns, round-robin over its sessions). The figure is
the total events over the wall time from the first start to the last finish, with
every error counted by type and "database is locked" errors counted apart.
"""

from __future__ import annotations

import asyncio
import inspect
import multiprocessing as mp
import os
import time
from collections import Counter
from typing import Any, Callable

from adk_lite import DatabaseSessionService

from . import drivers, workload
from .suite import maybe_await


def _writer(path: str, index: int, events: int, sessions: int, barrier: Any, results: Any, service: str) -> None:
    try:
        result = asyncio.run(_write(path, index, events, sessions, barrier, service))
    except BaseException as e:  # setup failed: release the others from the barrier, report it
        barrier.abort()
        result = {"failed": f"{type(e).__name__}: {e}"}
    results.put(result)


async def _write(path: str, index: int, events: int, sessions: int, barrier: Any, service: str) -> dict[str, Any]:
    d = drivers.make(service, path)
    handles = [await maybe_await(d.create(f"user-{index}", workload.session_id("proc", index, i), {}))
               for i in range(sessions)]
    per_session = -(-events // sessions)
    prebuilt = [[d.event(e) for e in workload.events(("proc", index, i), per_session, time.time())]
                for i in range(sessions)]
    order = [(handles[i], prebuilt[i][k]) for k in range(per_session) for i in range(sessions)][:events]
    errors: Counter = Counter()
    locked = ok = 0
    barrier.wait()
    start = time.time()
    for handle, event in order:
        try:
            result = d.append(handle, event)
            if inspect.isawaitable(result):
                await result
            ok += 1
        except Exception as e:  # counted, not raised: the figure is how many calls fail
            errors[type(e).__name__] += 1
            locked += "locked" in str(e).lower()
    end = time.time()
    await maybe_await(d.close())
    return {"ok": ok, "errors": dict(errors), "locked": locked, "start": start, "end": end}


def run(path: str, processes: int, events: int, sessions: int = 8, service: str = "adk_lite") -> dict[str, Any]:
    """Append ``events`` events from each of ``processes`` processes into ``path``
    (a file whose schema exists, or a PostgreSQL URL), each process through its own
    ``service`` (a name of :data:`bench.drivers.SERVICES`).

    Returns:
        ``{"service", "processes", "events", "seconds", "events_per_s", "errors", "locked"}``:
        total events stored, wall seconds, their rate, errors by type and the
        count of "database is locked" errors.

    Raises:
        RuntimeError: a process failed before its appends (opening, creating its sessions).
    """
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(path, i, events, sessions, barrier, results, service))
             for i in range(processes)]
    for p in procs:
        p.start()
    got = [results.get(timeout=600) for _ in procs]
    for p in procs:
        p.join()
    failed = [g["failed"] for g in got if "failed" in g]
    if failed:
        raise RuntimeError(f"{service}: {len(failed)} of {processes} processes failed: "
                           + "; ".join(sorted(set(failed))))
    seconds = max(g["end"] for g in got) - min(g["start"] for g in got)
    errors: Counter = Counter()
    for g in got:
        errors.update(g["errors"])
    ok = sum(g["ok"] for g in got)
    return {"service": service, "processes": processes, "events": ok, "seconds": round(seconds, 3),
            "events_per_s": round(ok / seconds, 1), "errors": dict(errors), "locked": sum(g["locked"] for g in got)}


def fresh_file(workdir: str) -> Callable[[int, int], str]:
    """For :func:`run_all`: a new file with adk_lite's schema in ``workdir`` per round."""
    def fresh(processes: int, round_no: int) -> str:
        path = os.path.join(workdir, f"concurrency-{processes}-{round_no}.db")
        DatabaseSessionService(path).close()
        return path
    return fresh


def run_all(fresh: Callable[[int, int], str], counts: tuple[int, ...], events: int, repeats: int = 1,
            service: str = "adk_lite") -> list[dict[str, Any]]:
    """:func:`run` for each process count, ``repeats`` rounds interleaved (1, 2, 4, 1, 2, 4, ...),
    each on a fresh database ``fresh(processes, round)`` (a path or URL, its schema made);
    per count, the round with the median rate is kept (``rounds_events_per_s`` lists them
    all), so a burst of load from elsewhere on the machine does not decide the comparison."""
    rounds: dict[int, list[dict[str, Any]]] = {n: [] for n in counts}
    for r in range(repeats):
        for n in counts:
            rounds[n].append(run(fresh(n, r), n, events, service=service))
    out = []
    for n in counts:
        ranked = sorted(rounds[n], key=lambda x: x["events_per_s"])
        out.append(dict(ranked[len(ranked) // 2], rounds_events_per_s=[x["events_per_s"] for x in rounds[n]]))
    return out
