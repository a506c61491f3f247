"""The command: ``python -m bench [--quick] [--json PATH] [--workdir DIR] [--services ...]``.

Builds the big adk_lite file with the floor, measures each service in a fresh
process (same events, same sizes), runs the multi-process append test, then
prints the table, the ratios and the targets, and writes every figure as JSON.
Exits 1 if a service that is installed failed (so CI notices a rotten harness).

``--backend postgres`` (with ``--url`` or ``$ADK_LITE_BENCH_PG``) runs the same
workload on a PostgreSQL server instead: see :mod:`bench.postgres`.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing as mp
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from importlib import metadata
from typing import Any, Optional

from . import concurrency, floor, report
from .drivers import POSTGRES_SERVICES, SERVICES
from .adapter import measure_reads, measure_single_call
from .suite import measure_paired, measure_service

FULL = dict(
    users=50, create=1000, append_sessions=100, turns=5, batches=100, get_full_reps=50, list_reps=20,
    update_keys=1000, paired_sessions=100, paired_turns=20, recent=(100, 10_000, 100_000), recent_reps=200,
    page_reps=100, deep_at=90_000, stats_reps=5, cap_s=10.0, big_sessions=100_000, big_events_per_session=10,
    processes=(1, 2, 4), process_events=4000, process_repeats=3)
"""Sizes of the full run (about 10 minutes on 2 cores)."""
QUICK = dict(
    users=5, create=100, append_sessions=10, turns=3, batches=10, get_full_reps=5, list_reps=5,
    update_keys=100, paired_sessions=20, paired_turns=10, recent=(100, 1000, 5000), recent_reps=20,
    page_reps=10, deep_at=4000, stats_reps=2, cap_s=1.5, big_sessions=5000, big_events_per_session=4,
    processes=(1, 2, 4), process_events=200, process_repeats=1)
"""Sizes of ``--quick`` (CI: the harness runs; well under 2 minutes)."""
PG_ENV = "ADK_LITE_BENCH_PG"
"""The environment variable naming the PostgreSQL database of ``--backend postgres``."""


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"
    return {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2), "cpu": platform.processor() or
            platform.machine(), "os": platform.platform(terse=True), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "google-adk": version("google-adk"), "sqlalchemy": version("sqlalchemy"),
            "peewee": version("peewee"), "orjson": version("orjson")}


def log(msg: str) -> None:
    """Print a progress line to stderr, with the time."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main(argv: Any = None) -> None:
    """Parse arguments, run everything, print the report; exit 1 if an installed service failed."""
    p = argparse.ArgumentParser(prog="python -m bench", description=(
        "Measure adk_lite (sync, async, ADK adapter), ADK's InMemory, Sqlite and Database session services "
        "and the stdlib-sqlite3 floor on the same agent-shaped events; print a table, the ratios and the "
        "performance targets, each with what it compares."))
    p.add_argument("--quick", action="store_true", help="a smoke run: small sizes, checks that the benchmark runs; "
                   "its figures judge nothing")
    p.add_argument("--json", metavar="PATH", help="write every figure, the ratios and the targets to PATH")
    p.add_argument("--workdir", metavar="DIR", help="where the database files go (default: a temporary folder, "
                   "removed at the end)")
    p.add_argument("--services", nargs="+", choices=SERVICES, default=list(SERVICES), metavar="NAME",
                   help="services to measure (default: all): " + ", ".join(SERVICES) + "; with --backend postgres: "
                   + ", ".join(POSTGRES_SERVICES))
    p.add_argument("--no-concurrency", action="store_true", help="skip the multi-process append test")
    p.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite", help=(
        "sqlite (default): files in --workdir; postgres: adk_lite (sync, ADK adapter) and ADK's "
        "DatabaseSessionService (postgresql+asyncpg) on one PostgreSQL server, each on emptied tables"))
    p.add_argument("--url", metavar="URL", help=(
        f"with --backend postgres: the database, as in postgresql://user:password@host:5432/dbname (default: "
        f"${PG_ENV}); its adk_lite and ADK tables are DROPPED, so give the benchmark a database of its own"))
    args = p.parse_args(argv)
    if args.backend == "postgres":
        from . import postgres

        url = args.url or os.environ.get(PG_ENV)
        if not url:
            p.error(f"--backend postgres needs a server: pass --url postgresql://user:password@host:5432/dbname "
                    f"or set ${PG_ENV}")
        if not set(args.services) <= set(POSTGRES_SERVICES):
            if args.services != list(SERVICES):
                p.error("--backend postgres measures " + ", ".join(POSTGRES_SERVICES))
            args.services = list(POSTGRES_SERVICES)
        postgres.main(args, url)
        return
    if args.url:
        p.error("--url is for --backend postgres")
    sizes = dict(QUICK if args.quick else FULL)
    sizes["big_events"] = sizes["big_sessions"] * sizes["big_events_per_session"]
    workdir = args.workdir or tempfile.mkdtemp(prefix="adk_lite_bench_")
    os.makedirs(workdir, exist_ok=True)
    started = time.perf_counter()
    info = machine()
    try:
        big = build_big(workdir, sizes)
        results = measure_each(args.services, measure_service, workdir, big, sizes)
        spawn = mp.get_context("spawn")

        paired: dict[str, Any] = {}
        if {"adk_lite", "floor"} <= set(args.services):
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
                paired = pool.submit(measure_paired, workdir, sizes).result()
            log("paired with the floor: " + ", ".join(f"{k} {v['ratio_p50']}x" for k, v in paired.items()))

        adapter: dict[str, Any] = {}
        if "adk_lite_adk" in args.services and "figures" in results.get("adk_lite_adk", {}):
            for key, fn in (("reads", measure_reads), ("call", measure_single_call)):
                adapter[key] = in_child(fn, workdir, sizes)
            log("ADK adapter side by side: " + ", ".join(
                f"{k} {v.get('error') or v.get('full_1000', {}).get('ratio_p50') or v.get('over_budget_us')}"
                for k, v in adapter.items()))

        conc = []
        if not args.no_concurrency:
            conc = concurrency.run_all(concurrency.fresh_file(workdir), sizes["processes"], sizes["process_events"],
                                       sizes["process_repeats"])
            log("concurrency: " + ", ".join(f"{c['processes']} proc {c['events_per_s']:,.0f} ev/s" for c in conc))
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    ratio = report.ratios(results, sizes)
    goals = report.targets(results, conc, sizes, paired, adapter, args.quick)
    print(report.render(info, results, paired, conc, ratio, goals, sizes, adapter, args.quick))
    log(f"done in {time.perf_counter() - started:.0f} s")
    finish(args.json, {"machine": info, "quick": args.quick, "sizes": sizes, "services": results,
                       "paired_append_event": paired, "adapter": adapter, "concurrency": conc, "ratios": ratio,
                       "targets": goals}, [*results.values(), *adapter.values()])


def build_big(workdir: str, sizes: dict[str, Any]) -> str:
    """Write ``big.db`` in ``workdir`` with the floor (``big_sessions`` sessions of
    ``big_events_per_session`` events over 1,000 users); return its path."""
    big = os.path.join(workdir, "big.db")
    if os.path.exists(big):
        os.remove(big)
    from adk_lite import DatabaseSessionService

    DatabaseSessionService(big).close()
    t = time.perf_counter()
    built = floor.fill(big, sizes["big_sessions"], sizes["big_events_per_session"], users=1000)
    log(f"big file: {built['sessions']:,} sessions, {built['events']:,} events in {time.perf_counter() - t:.1f} s")
    return big


def in_child(fn: Any, *args: Any) -> dict[str, Any]:
    """``fn(*args)`` in a fresh (spawned) process; ``{"error": "Type: message"}`` if it raised."""
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as pool:
        try:
            return pool.submit(fn, *args).result()
        except Exception as e:  # reported by the caller, and the run fails at the end
            return {"error": f"{type(e).__name__}: {e}"}


def measure_each(services: list[str], measure: Any, *args: Any) -> dict[str, Any]:
    """``measure(name, *args)`` for each service name, each in a fresh (spawned) process
    (:func:`in_child`), logged as it goes; a service that raised gets ``{"error": ...}``
    and the others still run."""
    results: dict[str, Any] = {}
    for name in services:
        log(f"{name} ...")
        results[name] = in_child(measure, name, *args)
        r = results[name]
        log(f"{name}: " + (r.get("skipped") or r.get("error") or f"{r['seconds']} s, peak RSS {r['peak_rss_mib']} MiB"))
    return results


def finish(json_path: Optional[str], everything: dict[str, Any], outcomes: list[dict[str, Any]]) -> None:
    """Write ``everything`` to ``json_path`` (if given); exit 1 if any of ``outcomes`` is an error."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(everything, f, indent=2)
    if any("error" in r for r in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
