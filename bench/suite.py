"""Every per-service figure, measured in a fresh process per service.

:func:`measure_service` runs in a child process (so each service's peak RSS is its
own and no service warms another's caches) and returns a dict of figures. Times
are per call: ``p50_us``, ``p99_us``, ``mean_us`` (microseconds), ``n`` calls and
``per_s`` calls per second of summed call time. A figure is capped in wall time
(``cap_s``): slow services make fewer calls, never fewer than 3.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import resource
import sqlite3
import time
from typing import Any, Callable, Iterable

from . import drivers, workload


def summary(seconds: list[float], per_call: int = 1) -> dict[str, Any]:
    """p50, p99 and mean in microseconds, n, ``per_s`` (items per second of summed call
    time, ``per_call`` items a call) and ``p50_per_s`` (items per second at the p50)."""
    xs = sorted(seconds)
    n = len(xs)
    pick = lambda q: xs[min(n - 1, int(q * n))] * 1e6  # noqa: E731
    return {"n": n, "p50_us": round(pick(0.5), 1), "p99_us": round(pick(0.99), 1),
            "mean_us": round(sum(xs) / n * 1e6, 1), "per_s": round(n * per_call / sum(xs), 1),
            "p50_per_s": round(per_call / pick(0.5) * 1e6, 1)}


async def timed(fn: Callable, argsets: Iterable[tuple], cap_s: float) -> tuple[list[float], list[Any]]:
    """Call ``fn(*args)`` for each args (awaiting awaitables); return (seconds each, results).

    Stops once ``cap_s`` seconds have passed and at least 3 calls were made.
    """
    times, results = [], []
    clock = time.perf_counter
    start = clock()
    for args in argsets:
        t0 = clock()
        result = fn(*args)
        if inspect.isawaitable(result):
            result = await result
        times.append(clock() - t0)
        results.append(result)
        if clock() - start > cap_s and len(times) >= 3:
            break
    return times, results


async def maybe_await(result: Any) -> Any:
    """``result``, awaited first when it is awaitable (a driver method's return)."""
    return await result if inspect.isawaitable(result) else result


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def file_bytes_after_vacuum(path: str) -> int:
    """VACUUM a closed database file with the stdlib and return its size in bytes (WAL truncated)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return os.path.getsize(path) + (os.path.getsize(path + "-wal") if os.path.exists(path + "-wal") else 0)


def measure_service(name: str, workdir: str, big_path: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """Run every figure for service ``name`` (child-process entry point).

    Returns:
        ``{"figures": {...}, "rss_start_mib", "peak_rss_mib", "seconds"}``, or
        ``{"skipped": reason}`` when the service cannot be imported.
    """
    return measured(_measure, name, workdir, big_path, sizes)


def measured(measure: Callable, *args: Any) -> dict[str, Any]:
    """Run the coroutine function ``measure(*args)`` (which returns a dict of figures) in
    a new event loop, and add this process's ``rss_start_mib``, ``peak_rss_mib`` and the
    ``seconds`` it took; ``{"skipped": reason}`` when an import failed."""
    started = time.perf_counter()
    rss0 = _rss_mib()
    try:
        out = asyncio.run(measure(*args))
    except ImportError as e:
        return {"skipped": f"not installed ({e.name or e})"}
    out.update(rss_start_mib=round(rss0, 1), seconds=round(time.perf_counter() - started, 1),
               peak_rss_mib=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return out


async def _measure(name: str, workdir: str, big_path: str, z: dict[str, Any]) -> dict[str, Any]:
    persistent = name != "adk_inmemory"
    path = os.path.join(workdir, f"{name}.db") if persistent else None
    d = drivers.make(name, path)
    fig = await measure_calls(d, z)
    await maybe_await(d.close())

    # get_session(num_recent_events=20) in a file of its own, which then gives the file
    # bytes per event after VACUUM.
    recent_path = os.path.join(workdir, f"{name}-recent.db") if persistent else None
    r = drivers.make(name, recent_path)
    recent = await measure_recent(r, z)
    await maybe_await(r.close())
    del r
    events, json_bytes = recent.pop("events"), recent.pop("json_bytes")
    fig.update(recent)
    if persistent:
        size = file_bytes_after_vacuum(recent_path)
        fig["file_bytes_per_event"] = {"bytes_per_event": round(size / events, 1),
                                       "json_bytes_per_event": round(json_bytes / events, 1),
                                       "ratio": round(size / json_bytes, 3), "events": events}

    # The big file (built once by the floor): keyset pages deep into it, and get_stats.
    notes: dict[str, str] = {}
    if name in ("adk_lite", "adk_lite_async"):
        b = drivers.make(name, big_path)
        fig.update(await measure_pages(b, z))
        await maybe_await(b.close())
    elif name == "adk_lite_adk":
        notes["list_sessions_page"] = "ADK's list_sessions has no paging"
    return {"figures": fig, "notes": notes}


async def measure_calls(d: drivers.Driver, z: dict[str, Any]) -> dict[str, Any]:
    """The figures of one service on an empty database: create_session, append_event,
    append_events of 100, get_session of every event (100 and 1,000), list_sessions (one
    user, the whole app) and update_keys, each of what the driver has.

    Returns:
        ``{figure: summary}``; the driver stays open.
    """
    cap = z["cap_s"]
    fig: dict[str, Any] = {}
    t0 = time.time()
    users = z["users"]

    # create_session: many sessions over many users, state in all four scopes.
    created = [(f"user-{i % users}", workload.session_id("s", i), workload.initial_state(i))
               for i in range(z["create"])]
    times, handles = await timed(d.create, created, cap)
    fig["create_session"] = summary(times)

    # append_event: whole turns, round-robin over sessions (as concurrent conversations interleave).
    n_sessions = min(len(handles), z["append_sessions"])
    per_session = [[d.event(e) for e in workload.events(("append", i), 4 * z["turns"], t0)] for i in range(n_sessions)]
    order = [(handles[i], per_session[i][k]) for k in range(4 * z["turns"]) for i in range(n_sessions)]
    times, _ = await timed(d.append, order, cap)
    fig["append_event"] = summary(times)

    # append_events: batches of 100 into one session.
    if d.append_batch is not None:
        handle = await maybe_await(d.create("user-0", workload.session_id("batch"), {}))
        dicts = workload.events("batch", 100 * z["batches"], t0)
        batches = [([d.event(e) for e in dicts[i:i + 100]],) for i in range(0, len(dicts), 100)]
        times, _ = await timed(lambda evs: d.append_batch(handle, evs), batches, cap)
        fig["append_events_100"] = summary(times, per_call=100)

    # get_session, every event, of sessions of 100 and 1000 events.
    for n in (100, 1000):
        sid = workload.session_id("full", n)
        await maybe_await(d.seed(await maybe_await(d.create("user-0", sid, {})), workload.events(("full", n), n, t0)))
        times, got = await timed(d.get, [("user-0", sid)] * z["get_full_reps"], cap)
        assert drivers.count(got[0]) == n, (d, n, drivers.count(got[0]))
        fig[f"get_session_full_{n}"] = summary(times)

    # list_sessions as ADK has it: every session of one user, and of the whole app.
    if d.list_user is not None:
        times, got = await timed(d.list_user, [("user-1",)] * z["list_reps"], cap)
        fig["list_sessions_user"] = dict(summary(times), sessions=drivers.count(got[0]))
        times, got = await timed(d.list_app, [()] * max(3, z["list_reps"] // 5), cap)
        fig["list_sessions_app"] = dict(summary(times), sessions=drivers.count(got[0]))

    if d.update_keys is not None:
        argsets = [(*created[i % len(handles)][:2], {"topic": f"t{i}", "user:tier": "silver", "app:flag": i,
                                                     "locale": None})
                   for i in range(z["update_keys"])]
        times, _ = await timed(d.update_keys, argsets, cap)
        fig["update_keys"] = summary(times)
    return fig


async def measure_recent(r: drivers.Driver, z: dict[str, Any]) -> dict[str, Any]:
    """``get_session(num_recent_events=20)`` on sessions of each size of ``z["recent"]``
    (100 .. 100k events), each seeded (untimed) then read.

    Returns:
        ``{"get_session_recent20_<n>": summary, ..., "events": int, "json_bytes": int}``:
        the events seeded and their stored JSON bytes. The driver stays open.
    """
    fig: dict[str, Any] = {}
    t0 = time.time()
    json_bytes = events = 0
    for n in z["recent"]:
        sid = workload.session_id("recent", n)
        handle = await maybe_await(r.create("user-0", sid, {}))
        for dicts in workload.chunks(("recent", n), n, t0):
            json_bytes += sum(workload.stored_json_bytes(e) for e in dicts)
            await maybe_await(r.seed(handle, dicts))
        events += n
        times, got = await timed(r.get, [("user-0", sid, 20)] * z["recent_reps"], z["cap_s"])
        assert drivers.count(got[0]) == 20, (r, n, drivers.count(got[0]))
        fig[f"get_session_recent20_{n}"] = summary(times)
    return dict(fig, events=events, json_bytes=json_bytes)


async def measure_pages(b: drivers.Driver, z: dict[str, Any]) -> dict[str, Any]:
    """Keyset pages of 100 on a big database (the first page, and one ``z["deep_at"]``
    sessions in) and ``get_stats``.

    Returns:
        ``{"list_sessions_page_first", "list_sessions_page_deep", "get_stats"}`` summaries.
    """
    cap = z["cap_s"]
    fig: dict[str, Any] = {}
    times, got = await timed(b.page, [(100, None)] * z["page_reps"], cap)
    fig["list_sessions_page_first"] = summary(times)
    cursor, walked = None, 0
    while walked < z["deep_at"]:
        page = await maybe_await(b.page(min(10_000, z["deep_at"] - walked), cursor))
        cursor, walked = page.next_cursor, walked + len(page)
    times, got = await timed(b.page, [(100, cursor)] * z["page_reps"], cap)
    assert len(got[0]) == 100
    fig["list_sessions_page_deep"] = dict(summary(times), offset=walked)
    times, got = await timed(b.stats, [()] * z["stats_reps"], cap)
    fig["get_stats"] = dict(summary(times), events=got[0]["events"], sessions=got[0]["sessions"])
    return fig


def measure_paired(workdir: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """adk_lite sync and the floor interleaved call by call (child-process entry point):
    ``append_event``, then ``append_events`` of 100. Two floors: the plain one (on
    adk_lite's schema, so it pays adk_lite's index triggers) and the floor with the
    index written by itself (``Floor(indexed=True)``: text computed in Python, one FTS5
    insert, no trigger).

    Two files, the same events, one process: call k of the floor runs right after
    call k of adk_lite, so load from elsewhere on the machine hits both alike and
    their p50 ratio is steady where separate runs minutes apart are not.

    Returns:
        ``{"append_event": {...}, "append_events_100": {...}}``, each
        ``{"adk_lite": summary, "floor": summary, "ratio_p50": float, "floor_indexed": summary,
        "ratio_indexed_p50": adk_lite p50 / floor_indexed p50}``.
    """
    lite = drivers.make("adk_lite", os.path.join(workdir, "paired-lite.db"))
    base = drivers.make("floor", os.path.join(workdir, "paired-floor.db"))
    indexed = drivers.FloorDriver(os.path.join(workdir, "paired-floor-indexed.db"), indexed=True)
    n_sessions, turns, t0 = sizes["paired_sessions"], sizes["paired_turns"], time.time()
    dicts = [workload.events(("paired", i), 4 * turns, t0) for i in range(n_sessions)]
    batch = workload.events(("paired", "batch"), 100 * sizes["batches"], t0)
    single, batched = [], []
    for d in (lite, base, indexed):
        handles = [d.create(f"user-{i % sizes['users']}", workload.session_id("paired", i), {})
                   for i in range(n_sessions)]
        single.append([(d.append, handles[i], d.event(dicts[i][k]))
                       for k in range(4 * turns) for i in range(n_sessions)])
        handle = d.create("user-0", workload.session_id("paired", "batch"), {})
        batched.append([(d.append_batch, handle, [d.event(e) for e in batch[i:i + 100]])
                        for i in range(0, len(batch), 100)])
    out = {}
    clock = time.perf_counter
    for name, calls, per_call in (("append_event", single, 1), ("append_events_100", batched, 100)):
        times: tuple[list[float], ...] = ([], [], [])
        for pair in zip(*calls):
            for side, (fn, handle, arg) in enumerate(pair):
                start = clock()
                fn(handle, arg)
                times[side].append(clock() - start)
        lite_s, floor_s, indexed_s = (summary(t, per_call) for t in times)
        out[name] = {"adk_lite": lite_s, "floor": floor_s, "ratio_p50": round(lite_s["p50_us"] / floor_s["p50_us"], 2),
                     "floor_indexed": indexed_s,
                     "ratio_indexed_p50": round(lite_s["p50_us"] / indexed_s["p50_us"], 2)}
    for d in (lite, base, indexed):
        d.close()
    return out
