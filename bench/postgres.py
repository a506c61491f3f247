"""``python -m bench --backend postgres``: adk_lite (its sync API and the ADK adapter)
beside ADK's ``DatabaseSessionService`` on ``postgresql+asyncpg://``, on one server.

The workload and the figures are the SQLite run's (:mod:`bench.suite`), each service
in a fresh process, every phase on emptied tables: :func:`reset` drops adk_lite's
tables and ADK's before the calls (create, append, get, list, update_keys), before
``get_session(num_recent_events=20)`` on sessions of 100 to 100,000 events, and, for
the sync API, before the keyset pages over 10,000 sessions (filled by the floor into a
SQLite file and copied in with ``adk-lite copy``'s code). What the targets compare is
timed again interleaved call by call in one process: the recent-20 reads of the
smallest and the biggest session, and the adapter's appends beside ADK's
(:func:`measure_append_pair`). Then N processes append at
once through each service (:mod:`bench.concurrency`, a pool of :data:`PROCESS_POOL`
connections per process). The table and the targets are :mod:`bench.report`'s.

Only the database named by the URL is used, and only adk_lite's and ADK's tables
(:data:`LITE_TABLES`, :data:`ADK_TABLES`) are dropped; a database holding any other
table is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from importlib import metadata
from typing import Any

from adk_lite.schema import ALL_TABLES

from . import concurrency, drivers, report, suite, workload
from .adapter import interleaved, recent_pair
from .suite import summary
from .harness import FULL, QUICK, build_big, finish, in_child, log, machine, measure_each

LITE_TABLES = ALL_TABLES
"""adk_lite's tables (every table of the current schema, :data:`adk_lite.schema.ALL_TABLES`)."""
ADK_TABLES = ("events", "sessions", "app_states", "user_states", "adk_internal_metadata")
"""ADK's (``google/adk/sessions/schemas/v1.py``; v0 has the first four)."""
PROCESS_POOL = 4
"""Connections per process in the multi-process run (8 x 4 stays under the server's 100)."""

FULL_PG = dict(FULL, big_sessions=10_000, big_events_per_session=10, deep_at=9_000, processes=(1, 8),
               process_events=500, process_repeats=1)
"""Sizes of the full run on PostgreSQL: the SQLite run's, with 10,000 sessions to page
through and 500 appends per process (about 3 minutes on 2 cores)."""
QUICK_PG = dict(QUICK, big_sessions=1_000, big_events_per_session=4, deep_at=800, processes=(1, 8),
                process_events=40, process_repeats=1)
"""Sizes of ``--backend postgres --quick`` (a smoke run, about a minute)."""


def _connect(url: str) -> Any:
    import psycopg
    from adk_lite.target import parse_postgres

    return psycopg.connect(**parse_postgres(url).conninfo, autocommit=True)


def check_database(url: str) -> dict[str, str]:
    """Refuse a database that holds tables other than adk_lite's and ADK's (the run
    drops those); return the server's facts ``{"postgres": version, "postgres_at": host:port}``.

    Raises:
        SystemExit: the server cannot be reached, or the database holds other tables.
    """
    import psycopg
    from adk_lite.target import mask_password

    try:
        with _connect(url) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
            version = conn.execute("SHOW server_version").fetchone()[0]
            at = f"{conn.info.host}:{conn.info.port}"
    except (psycopg.Error, ValueError) as e:
        raise SystemExit(f"python -m bench --backend postgres: cannot use {mask_password(url)}: "
                         f"{mask_password(str(e).strip())}") from None
    others = sorted(tables - set(LITE_TABLES) - set(ADK_TABLES))
    if others:
        raise SystemExit(f"python -m bench --backend postgres: the database holds other tables ({', '.join(others)}); "
                         "the benchmark drops adk_lite's and ADK's tables, so give it a database of its own")
    return {"postgres": version.split()[0], "postgres_at": at}


def reset(url: str) -> None:
    """Drop adk_lite's tables and ADK's: the next service starts on an empty database."""
    with _connect(url) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(LITE_TABLES + ADK_TABLES)} CASCADE")


def copy_in(path: str, url: str) -> dict[str, Any]:
    """Copy every session of the SQLite file ``path`` into ``url`` as ``adk-lite copy`` does
    (each session whole in one transaction), then ``VACUUM ANALYZE``; return the copy's report."""
    from adk_lite import DatabaseSessionService, transfer

    with DatabaseSessionService(path) as src, DatabaseSessionService(url) as dst:
        done = transfer.copy_records(src.store, dst.store, transfer.plan_export(src.store, None, None))
        dst.vacuum()
    return done


def measure_service(name: str, url: str, big_path: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """Every figure of service ``name`` on the PostgreSQL database ``url`` (child-process
    entry point); ``big_path`` is the floor's file of ``big_sessions`` sessions.

    Returns:
        As :func:`bench.suite.measure_service`.
    """
    return suite.measured(_measure, name, url, big_path, sizes)


async def _measure(name: str, url: str, big_path: str, z: dict[str, Any]) -> dict[str, Any]:
    reset(url)
    d = drivers.make(name, url)
    fig = await suite.measure_calls(d, z)
    await suite.maybe_await(d.close())

    reset(url)
    r = drivers.make(name, url)
    fig.update(await suite.measure_recent(r, z))
    small, big = z["recent"][0], z["recent"][-1]
    fig["get_session_recent20_pair"] = await recent_pair(
        r, workload.session_id("recent", small), workload.session_id("recent", big), big, z["recent_reps"])
    await suite.maybe_await(r.close())
    fig.pop("events")
    fig.pop("json_bytes")
    notes: dict[str, str] = {}
    if name == "adk_lite":
        reset(url)
        t = time.perf_counter()
        done = copy_in(big_path, url)
        seconds = time.perf_counter() - t
        notes["big"] = f"{done['created']:,} sessions, {done['events']:,} events copied in {seconds:.0f} s"
        b = drivers.make(name, url)
        fig.update(await suite.measure_pages(b, z))
        await suite.maybe_await(b.close())
    else:
        notes["list_sessions_page"] = "ADK's list_sessions has no paging"
    return {"figures": fig, "notes": notes}


def measure_append_pair(url: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """The ADK adapter's ``append_event`` and ADK ``DatabaseSessionService``'s interleaved
    call by call in one process (child-process entry point), each on its own emptied
    tables of the same database: the same turns, round-robin over ``append_sessions``
    sessions of each.

    Returns:
        ``{"adapter": summary, "adk": summary, "ratio_p50": ADK p50 / adapter p50}``.
    """
    return asyncio.run(_append_pair(url, sizes))


async def _append_pair(url: str, z: dict[str, Any]) -> dict[str, Any]:
    reset(url)
    t0, calls = time.time(), []
    for label, name in (("adapter", "adk_lite_adk"), ("adk", "adk_database")):
        d = drivers.make(name, url)
        handles = [await d.create(f"user-{i % z['users']}", workload.session_id("pair", i), {})
                   for i in range(z["append_sessions"])]
        events = [[d.event(e) for e in workload.events(("pair", i), 4 * z["turns"], t0)] for i in range(len(handles))]
        order = iter([(handles[i], events[i][k]) for k in range(4 * z["turns"]) for i in range(len(handles))])
        calls.append((label, d, lambda d=d, order=order: d.append(*next(order))))
    times = await interleaved([(label, fn) for label, _, fn in calls], 4 * z["turns"] * z["append_sessions"])
    for _, d, _ in calls:
        await d.close()
    reset(url)
    a, b = summary(times["adapter"]), summary(times["adk"])
    return {"adapter": a, "adk": b, "ratio_p50": round(b["p50_us"] / a["p50_us"], 2)}


def with_pool(url: str, size: int) -> str:
    """``url`` with ``max_connections=size`` added to its query, unless it has one."""
    if "max_connections=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"max_connections={size}"


def appends(url: str, services: list[str], z: dict[str, Any]) -> list[dict[str, Any]]:
    """:func:`bench.concurrency.run_all` for each service, each round on emptied tables
    whose schema one service made before the processes start (so they do not race to
    make it). A service whose processes failed gets ``{"service", "error"}`` instead."""
    pooled = with_pool(url, PROCESS_POOL)
    out = []
    for name in services:
        def fresh(processes: int, round_no: int, name: str = name) -> str:
            reset(url)
            asyncio.run(_prepare(name, pooled))
            return pooled
        try:
            runs = concurrency.run_all(fresh, z["processes"], z["process_events"], z["process_repeats"], service=name)
        except Exception as e:  # reported; the other services still run and the run fails at the end
            runs = [{"service": name, "error": f"{type(e).__name__}: {e}"}]
        out += runs
        log(f"{name} appends: " + ", ".join(r.get("error") or f"{r['processes']} proc {r['events_per_s']:,.0f} ev/s"
                                           for r in runs))
    return out


async def _prepare(name: str, url: str) -> None:
    d = drivers.make(name, url)
    await suite.maybe_await(d.create("user-setup", "setup", {}))
    await suite.maybe_await(d.close())


def main(args: argparse.Namespace, url: str) -> None:
    """Run the PostgreSQL benchmark for the parsed ``args`` of :func:`bench.run.main` on
    ``url``; print the report; exit 1 if a service failed."""
    sizes = dict(QUICK_PG if args.quick else FULL_PG)
    sizes["big_events"] = sizes["big_sessions"] * sizes["big_events_per_session"]
    started = time.perf_counter()
    info = dict(machine(), **check_database(url))
    for dist in ("psycopg", "asyncpg"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    workdir = args.workdir or tempfile.mkdtemp(prefix="adk_lite_bench_pg_")
    try:
        big = build_big(workdir, sizes)
        results = measure_each(args.services, measure_service, url, big, sizes)
        paired: dict[str, Any] = {}
        if {"adk_lite_adk", "adk_database"} <= set(args.services):
            paired = in_child(measure_append_pair, url, sizes)
            log(f"adapter and ADK appends interleaved: {paired.get('error') or str(paired['ratio_p50']) + 'x'}")
        conc = [] if args.no_concurrency else appends(url, args.services, sizes)
    finally:
        reset(url)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    ratio = report.ratios(results, sizes, report.POSTGRES_PAIRS)
    goals = report.postgres_targets(results, sizes, paired, args.quick)
    print(report.render(info, results, {}, conc, ratio, goals, sizes, None, args.quick, services=tuple(args.services),
                        labels=drivers.POSTGRES_LABELS, conc_title=(
                            f"Concurrent appends to one database (one service per process, at most {PROCESS_POOL} "
                            "connections each):")))
    log(f"done in {time.perf_counter() - started:.0f} s")
    finish(args.json, {"machine": info, "backend": "postgres", "quick": args.quick, "sizes": sizes,
                       "services": results, "paired_append_event": paired, "concurrency": conc, "ratios": ratio,
                       "targets": goals}, [*results.values(), paired, *conc])
