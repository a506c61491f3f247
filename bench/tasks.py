"""Many conversations at once: asyncio tasks appending turns through one service.

Run it as ``python -m bench.tasks [--tasks 64] [--events 3000] [--rounds 3]``. Each
round measures, one after the other on fresh files, every service with one task
and with ``--tasks`` tasks, each task appending to its own session through the
same service object (what ``adk api_server`` does for many users). It prints
events per second of each, the speed-up of many tasks over one, and adk_lite's
adapter over ADK's ``SqliteSessionService`` under the same tasks, as the medians
of the rounds (rounds alternate, so a noisy moment hits every service alike).

adk_lite commits appends that wait at once in one transaction (group commit, see
``adk_lite.store.Store``); ADK's services commit each append alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from typing import Any

from . import drivers, workload

SERVICES = ("adk_lite_adk", "adk_sqlite")


async def _rate(name: str, path: str, tasks: int, events: int) -> float:
    """Events per second of ``tasks`` tasks appending ``events`` in all through service ``name``."""
    driver = drivers.make(name, path)
    per_task = max(1, events // tasks)
    t0 = time.time()
    work = [[driver.event(d) for d in workload.events(("tasks", i), per_task, t0)] for i in range(tasks)]
    sessions = [await driver.create(f"user-{i}", f"s{i}", {}) for i in range(tasks)]

    async def one(session: Any, evs: list) -> None:
        for event in evs:
            await driver.append(session, event)

    start = time.perf_counter()
    await asyncio.gather(*(one(s, evs) for s, evs in zip(sessions, work)))
    seconds = time.perf_counter() - start
    await driver.close()
    return tasks * per_task / seconds


def _sync_rate(path: str, tasks: int, events: int) -> float:
    """Events per second of one thread appending, through the sync API, the events
    ``tasks`` tasks would append (session by session in turn, as the tasks interleave)."""
    import adk_lite

    svc = adk_lite.DatabaseSessionService(path)
    per_task = max(1, events // tasks)
    t0 = time.time()
    work = [[adk_lite.Event.from_dict(d) for d in workload.events(("tasks", i), per_task, t0)] for i in range(tasks)]
    sessions = [svc.create_session(workload.APP, f"user-{i}", session_id=f"s{i}") for i in range(tasks)]
    start = time.perf_counter()
    for k in range(per_task):
        for session, evs in zip(sessions, work):
            svc.append_event(session, evs[k])
    seconds = time.perf_counter() - start
    svc.close()
    return tasks * per_task / seconds


def measure_tasks_vs_sync(workdir: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """``sizes["tasks"]`` asyncio tasks appending through one adapter beside one thread
    appending the same events through the sync API (child-process entry point).

    Rounds alternate (sync, then tasks, on fresh files), ``sizes["tasks_rounds"]`` of
    them, ``sizes["tasks_events"]`` events each.

    Returns:
        ``{"tasks", "events", "rounds", "sync_per_s", "tasks_per_s" (medians),
        "ratio": median of the per-round ratios tasks / sync}``.
    """
    n, events, rounds = sizes["tasks"], sizes["tasks_events"], sizes["tasks_rounds"]
    sync, many = [], []
    for r in range(rounds):
        sync.append(_sync_rate(os.path.join(workdir, f"tasks-sync-{r}.db"), n, events))
        many.append(asyncio.run(_rate("adk_lite_adk", os.path.join(workdir, f"tasks-adapter-{r}.db"), n, events)))
    return {"tasks": n, "events": events, "rounds": rounds, "sync_per_s": round(statistics.median(sync)),
            "tasks_per_s": round(statistics.median(many)),
            "ratio": round(statistics.median(m / s for m, s in zip(many, sync)), 3)}


def main(argv: Any = None) -> None:
    """Measure and print (see the module docstring)."""
    p = argparse.ArgumentParser(prog="python -m bench.tasks", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=64, help="tasks at once (default 64)")
    p.add_argument("--events", type=int, default=3000, help="events per measurement, all tasks together")
    p.add_argument("--rounds", type=int, default=3, help="rounds (default 3); the medians are printed")
    args = p.parse_args(argv)
    rates: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for r in range(args.rounds):
            for name in SERVICES:
                for tasks in (1, args.tasks):
                    path = os.path.join(folder, f"{name}-{tasks}-{r}.db")
                    events = args.events if name == "adk_lite_adk" else max(args.tasks, args.events // 10)
                    rates.setdefault((name, tasks), []).append(asyncio.run(_rate(name, path, tasks, events)))
    med = {key: statistics.median(values) for key, values in rates.items()}
    print(f"| service | 1 task, events/s | {args.tasks} tasks, events/s | {args.tasks} tasks / 1 task |")
    print("|---|---|---|---|")
    for name in SERVICES:
        one, many = med[name, 1], med[name, args.tasks]
        print(f"| {name} | {one:,.0f} | {many:,.0f} | {many / one:.2f}x |")
    lite, adk = med["adk_lite_adk", args.tasks], med["adk_sqlite", args.tasks]
    print(f"\nadk_lite's adapter / ADK SqliteSessionService, {args.tasks} tasks: {lite / adk:.1f}x "
          f"(target >= 30x); {args.tasks} tasks / 1 task through the adapter: "
          f"{med['adk_lite_adk', args.tasks] / med['adk_lite_adk', 1]:.2f}x (target >= 3x); "
          f"medians of {args.rounds} rounds, cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
