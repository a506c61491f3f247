"""The targets of performance round 3 that the older report does not judge: a Runner
turn beside ADK's in-memory service, the sync append beside the floor with the
search index, and many asyncio tasks beside one sync thread.

Each is read from an interleaved one-process measurement (:mod:`bench.turn`,
:func:`bench.suite.measure_paired`, :func:`bench.tasks.measure_tasks_vs_sync`). The
full read of 1,000 events (<= 0.7x InMemory's) is judged by :func:`bench.report.targets`
in a full run.

``python -m bench.round3 [--quick] [--json PATH]`` measures only these four targets
(the full read included), each in a fresh process, and prints their table: a few
minutes where ``python -m bench`` takes much longer (it builds a 1M-event file first).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from typing import Any

from .report import _goal


def targets(paired: dict[str, Any], adapter: dict[str, Any], quick: bool = False,
            reads: bool = False) -> list[dict[str, Any]]:
    """The round-3 target rows (``{"target", "value", "shown", "verdict"}``, as
    :func:`bench.report.targets`); ``n/a: why`` where a measurement is missing. With
    ``reads``, also the full read of 1,000 events (which the full report judges already)."""
    out = []
    turn = adapter.get("turn") or {}
    x = turn.get("ratio_p50")
    out.append(_goal(
        f"Runner turn (scripted model, one tool call, 4 events) on a {turn.get('events_prefilled', 1000):,}-event "
        "session: adapter / InMemorySessionService <= 1.05 (median of per-turn ratios, interleaved, each turn "
        "after an untimed gc.collect())", x,
        x is not None and x <= 1.05,
        f"{x}x ({turn['adapter']['p50_us'] / 1000:.1f} vs {turn['inmemory']['p50_us'] / 1000:.1f} ms; CPU time "
        f"{turn.get('cpu_ratio_p50')}x; collector left alone: {turn['natural_gc']['ratio_of_means']}x of summed "
        f"times, full collections {turn['natural_gc']['collections']['adapter'][2]} vs "
        f"{turn['natural_gc']['collections']['inmemory'][2]}; get_session per turn "
        f"{turn['calls_per_turn']['adapter']['get_session']})"
        if x is not None else "", turn.get("error", "adapter not run"), quick))
    if reads:
        full = (adapter.get("reads") or {}).get("full_1000") or {}
        x = full.get("ratio_p50")
        out.append(_goal(
            "ADK adapter get_session of all 1,000 events p50 <= 0.7x ADK InMemorySessionService's on the same "
            "events (interleaved)", x, x is not None and x <= 0.7,
            f"{x}x ({full['adapter']['p50_us'] / 1000:.1f} vs {full['inmemory']['p50_us'] / 1000:.1f} ms)"
            if x is not None else "", (adapter.get("reads") or {}).get("error", "adapter not run"), quick))
    one = paired.get("append_event") or {}
    x = one.get("ratio_indexed_p50")
    out.append(_goal(
        "sync append_event p50 <= 1.5x the floor with the search index (stdlib sqlite3, the text inserted into "
        "FTS5 by the floor, interleaved)", x, x is not None and x <= 1.5,
        f"{x}x ({one['adk_lite']['p50_us']:.0f} vs {one['floor_indexed']['p50_us']:.0f} µs)" if x is not None
        else "", paired.get("error", "paired run not made"), quick))
    tasks = adapter.get("tasks") or {}
    x = tasks.get("ratio")
    out.append(_goal(
        f"{tasks.get('tasks', 64)} asyncio tasks appending through one adapter >= 0.85x the events/s of one thread "
        "appending the same events through the sync API (median of alternating rounds)", x,
        x is not None and x >= 0.85,
        f"{x}x ({tasks['tasks_per_s']:,} vs {tasks['sync_per_s']:,} events/s)" if x is not None else "",
        tasks.get("error", "adapter not run"), quick))
    return out


def postgres_target(pair: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Target 5's row: the adapter's ``append_event`` beside ADK's ``DatabaseSessionService``
    on ``postgresql+asyncpg`` (:func:`bench.postgres.measure_append_pair`)."""
    x = pair.get("ratio_p50")
    return _goal("PostgreSQL: ADK adapter append_event p50 >= 5x faster than ADK DatabaseSessionService "
                 "(postgresql+asyncpg, same server, interleaved)", x, x is not None and x >= 5,
                 f"{x}x ({pair['adapter']['p50_us'] / 1000:.2f} vs {pair['adk']['p50_us'] / 1000:.2f} ms)"
                 if x is not None else "", pair.get("error", "no server: pass --url or set $ADK_LITE_BENCH_PG"),
                 quick)


def main(argv: Any = None) -> None:
    """``python -m bench.round3``: measure the round-3 targets and print their table."""
    from . import filebytes, scale
    from .adapter import measure_reads
    from .harness import FULL, QUICK, finish, in_child, log, machine
    from .suite import measure_paired
    from .tasks import measure_tasks_vs_sync
    from .turn import measure_turns

    p = argparse.ArgumentParser(prog="python -m bench.round3", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes; the figures judge nothing")
    p.add_argument("--json", metavar="PATH", help="write every figure and the targets to PATH")
    p.add_argument("--only", nargs="+", type=int, choices=range(1, 8), metavar="N",
                   help="measure only these targets (1-7; default: all)")
    p.add_argument("--url", metavar="URL", help="target 5's PostgreSQL database (default: $ADK_LITE_BENCH_PG; "
                   "its adk_lite and ADK tables are DROPPED)")
    p.add_argument("--scale-workdir", metavar="DIR", help="target 6: where its two files are built and kept "
                   "(reused when they exist; default: a temporary folder, removed)")
    p.add_argument("--scale-sessions", type=int, default=100_000, help="target 6: sessions of the big file "
                   "(10 events each, 1,000 users; the small file has a tenth of both)")
    args = p.parse_args(argv)
    only = set(args.only or range(1, 8))
    sizes = dict(QUICK if args.quick else FULL)
    sizes["recent"] = (100, 1000)  # measure_reads seeds its largest session: only the full read is judged here
    info = machine()
    url = args.url or os.environ.get("ADK_LITE_BENCH_PG")
    workdir = tempfile.mkdtemp(prefix="adk_lite_round3_")
    scale_dir = args.scale_workdir or os.path.join(workdir, "scale")
    os.makedirs(scale_dir, exist_ok=True)
    extra: dict[str, Any] = {}
    try:
        adapter: dict[str, Any] = {}
        for n, key, fn in ((1, "turn", measure_turns), (2, "reads", measure_reads), (4, "tasks", measure_tasks_vs_sync)):
            if n in only:
                log(f"{key} ...")
                adapter[key] = in_child(fn, workdir, sizes)
        paired: dict[str, Any] = {}
        if 3 in only:
            log("paired with the floors ...")
            paired = in_child(measure_paired, workdir, sizes)
        if 5 in only and url:
            from .postgres import FULL_PG, QUICK_PG, check_database, measure_append_pair
            check_database(url)
            log("PostgreSQL appends, adapter beside ADK ...")
            extra["postgres_append"] = in_child(measure_append_pair, url, QUICK_PG if args.quick else FULL_PG)
        if 6 in only:
            big = 2_000 if args.quick else args.scale_sessions
            log(f"scale: {big:,} and {big // 10:,} sessions (built once in {scale_dir}) ...")
            extra["scale"] = in_child(scale.run, scale_dir, big, 10, 20 if args.quick else 1000,
                                      10 if args.quick else 60)
        if 7 in only:
            log("file bytes per event ...")
            extra["bytes"] = in_child(filebytes.measure_bytes, workdir, sizes)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    goals = [g for g in targets(paired, adapter, args.quick, reads=True)
             if ("Runner turn" in g["target"] and 1 in only) or ("all 1,000 events" in g["target"] and 2 in only)
             or ("floor with the search index" in g["target"] and 3 in only) or ("asyncio tasks" in g["target"]
                                                                                 and 4 in only)]
    if 5 in only:
        goals.append(postgres_target(extra.get("postgres_append", {}), args.quick))
    if 6 in only:
        goals += scale.targets(extra.get("scale", {}), args.quick)
    if 7 in only:
        goals.append(filebytes.target(extra.get("bytes", {}), args.quick))
    print(f"Measured on: {info['cpus']} CPUs, load {info['load_avg_1m']} at start, {info['os']}; Python "
          f"{info['python']}, SQLite {info['sqlite']}, google-adk {info['google-adk']}\n")
    print("| target | figure | verdict |\n|---|---|---|")
    for g in goals:
        print(f"| {g['target']} | {g['shown']} | {g['verdict']} |")
    finish(args.json, {"machine": info, "quick": args.quick, "sizes": sizes, "adapter": adapter, "paired": paired,
                       **extra, "targets": goals}, [*adapter.values(), paired, *extra.values()])


if __name__ == "__main__":
    main()
