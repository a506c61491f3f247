"""The ADK adapter side by side with what it is judged against, in one process.

Separate runs minutes apart differ by more than the margins of these targets on a
shared machine, so each function here runs the calls it compares interleaved
(call k of one right after call k of the other) and returns summaries of each:

- :func:`measure_reads`: ``get_session`` of the same 1,000 events through the
  adapter and through ADK's ``InMemorySessionService``; and the adapter's
  ``num_recent_events=20`` on a session of 100 events and on a big one.
- :func:`measure_single_call`: the adapter's ``append_event`` beside its parts:
  the sync API's ``append_event``, one bare hop to a thread executor, and the
  pydantic serialization of the event (what the adapter adds to the sync path);
  and, to tell where any excess is, the adapter's own steps called on the
  caller's thread (no hop).

Both are child-process entry points (``spawn``), like :func:`bench.suite.measure_paired`.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Callable

from . import drivers, workload
from .suite import summary
from .workload import APP


async def interleaved(calls: list[tuple[str, Callable[[], Any]]], reps: int) -> dict[str, list[float]]:
    """Run each named call once per round, ``reps`` rounds; seconds per call by name."""
    clock = time.perf_counter
    times: dict[str, list[float]] = {name: [] for name, _ in calls}
    for _ in range(reps):
        for name, fn in calls:
            start = clock()
            result = fn()
            if asyncio.iscoroutine(result):
                await result
            times[name].append(clock() - start)
    return times


def measure_reads(workdir: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """Adapter reads beside ADK's in-memory service (child-process entry point).

    Returns:
        ``{"full_1000": {"adapter", "inmemory", "ratio_p50"}, "recent20":
        {"small", "big", "events_big", "ratio_p50"}, "cache": cache_info()}``.
    """
    return asyncio.run(_reads(workdir, sizes))


async def _reads(workdir: str, z: dict[str, Any]) -> dict[str, Any]:
    lite = drivers.make("adk_lite_adk", os.path.join(workdir, "reads-adapter.db"))
    memory = drivers.make("adk_inmemory", None)
    t0 = time.time()
    dicts = workload.events(("reads", 1000), 1000, t0)
    for d in (lite, memory):
        await d.seed(await d.create("user-0", "full", {}), dicts)
    big = z["recent"][-1]
    for n in (100, big):
        handle = await lite.create("user-0", f"recent-{n}", {})
        for part in workload.chunks(("reads", n), n, t0):
            await lite.seed(handle, part)
    got = await lite.get("user-0", "full")
    assert len(got.events) == len((await memory.get("user-0", "full")).events) == 1000
    full = await interleaved([("adapter", lambda: lite.get("user-0", "full")),
                               ("inmemory", lambda: memory.get("user-0", "full"))], z["get_full_reps"])
    recent = await recent_pair(lite, "recent-100", f"recent-{big}", big, z["recent_reps"])
    cache = lite.svc.cache_info() if hasattr(lite.svc, "cache_info") else None  # None: an adapter without a cache
    await lite.close()
    a, m = summary(full["adapter"]), summary(full["inmemory"])
    return {"full_1000": {"adapter": a, "inmemory": m, "ratio_p50": round(a["p50_us"] / m["p50_us"], 2)},
            "recent20": recent, "cache": cache}


async def recent_pair(d: Any, small: str, big: str, events_big: int, reps: int) -> dict[str, Any]:
    """``get_session(num_recent_events=20)`` of the session ids ``small`` (100 events) and
    ``big`` (``events_big`` events) of ``user-0`` through driver ``d``, interleaved.

    Returns:
        ``{"small", "big": summary, "events_big", "ratio_p50": big p50 / small p50}``.
    """
    times = await interleaved([("small", lambda: d.get("user-0", small, 20)),
                               ("big", lambda: d.get("user-0", big, 20))], reps)
    s, b = summary(times["small"]), summary(times["big"])
    return {"small": s, "big": b, "events_big": events_big, "ratio_p50": round(b["p50_us"] / s["p50_us"], 2)}


def measure_single_call(workdir: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """The adapter's ``append_event`` beside its parts (child-process entry point).

    Returns:
        ``{"adapter", "sync", "hop", "serialize", "adapter_no_hop"}`` summaries, ``"budget_p50_us"``
        (sync + hop + serialize p50s) and ``"over_budget_us"`` (adapter p50 minus it).
    """
    return asyncio.run(_single_call(workdir, sizes))


async def _single_call(workdir: str, z: dict[str, Any]) -> dict[str, Any]:
    import adk_lite
    from google.adk.events import Event as AdkEvent

    from adk_lite import adk
    from adk_lite.adk.convert import event_row
    from adk_lite.executor import Executor

    lite = adk_lite.DatabaseSessionService(os.path.join(workdir, "call-sync.db"))
    adapter = adk.DatabaseSessionService(os.path.join(workdir, "call-adapter.db"))
    hop = Executor(1)
    n_sessions, turns, t0 = z["paired_sessions"], z["paired_turns"], time.time()
    dicts = [workload.events(("call", i), 4 * turns, t0) for i in range(n_sessions)]
    syncs = [lite.create_session(APP, f"user-{i}", session_id=f"s{i}") for i in range(n_sessions)]
    adks = [await adapter.create_session(app_name=APP, user_id=f"user-{i}", session_id=f"s{i}")
            for i in range(n_sessions)]
    direct = [await adapter.create_session(app_name=APP, user_id=f"user-{i}", session_id=f"d{i}")
              for i in range(n_sessions)]
    calls = [(syncs[i], adk_lite.Event.from_dict(dicts[i][k]), adks[i], AdkEvent.model_validate(dicts[i][k]),
              AdkEvent.model_validate(dicts[i][k]), direct[i], AdkEvent.model_validate(dicts[i][k]))
             for k in range(4 * turns) for i in range(n_sessions)]
    clock = time.perf_counter
    times: dict[str, list[float]] = {"sync": [], "adapter": [], "hop": [], "serialize": [], "adapter_no_hop": []}
    noop = lambda: None  # noqa: E731
    for s_session, s_event, a_session, a_event, spare, d_session, d_event in calls:
        start = clock()
        lite.append_event(s_session, s_event)
        mid = clock()
        await adapter.append_event(a_session, a_event)
        end = clock()
        await hop.run(noop)
        after = clock()
        event_row(spare)  # the adapter's one serialization of an event (model_dump_json)
        last = clock()
        adapter._append(d_session, d_event)  # what the hop runs, on this thread
        done = clock()
        for name, seconds in (("sync", mid - start), ("adapter", end - mid), ("hop", after - end),
                              ("serialize", last - after), ("adapter_no_hop", done - last)):
            times[name].append(seconds)
    hop.close()
    lite.close()
    await adapter.close()
    out: dict[str, Any] = {name: summary(xs) for name, xs in times.items()}
    budget = out["sync"]["p50_us"] + out["hop"]["p50_us"] + out["serialize"]["p50_us"]
    out.update(budget_p50_us=round(budget, 1), over_budget_us=round(out["adapter"]["p50_us"] - budget, 1))
    return out

