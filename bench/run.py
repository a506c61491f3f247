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
import multiprocessing as mp
import os
import shutil
import tempfile
import time
from typing import Any

from . import concurrency, report, round3
from .drivers import POSTGRES_SERVICES, SERVICES
from .adapter import measure_reads, measure_single_call
from .harness import FULL, QUICK, build_big, finish, in_child, log, machine, measure_each
from .suite import measure_paired, measure_service
from .tasks import measure_tasks_vs_sync
from .turn import measure_turns

PG_ENV = "ADK_LITE_BENCH_PG"
"""The environment variable naming the PostgreSQL database of ``--backend postgres``."""


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
            for key, fn in (("reads", measure_reads), ("call", measure_single_call), ("turn", measure_turns),
                            ("tasks", measure_tasks_vs_sync)):
                adapter[key] = in_child(fn, workdir, sizes)
            log("ADK adapter side by side: " + ", ".join(
                f"{k} {v.get('error') or v.get('full_1000', {}).get('ratio_p50') or v.get('ratio_p50') or v.get('ratio') or v.get('over_budget_us')}"
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
    goals = report.targets(results, conc, sizes, paired, adapter, args.quick) + round3.targets(paired, adapter,
                                                                                              args.quick)
    print(report.render(info, results, paired, conc, ratio, goals, sizes, adapter, args.quick))
    log(f"done in {time.perf_counter() - started:.0f} s")
    finish(args.json, {"machine": info, "quick": args.quick, "sizes": sizes, "services": results,
                       "paired_append_event": paired, "adapter": adapter, "concurrency": conc, "ratios": ratio,
                       "targets": goals}, [*results.values(), *adapter.values()])


if __name__ == "__main__":
    main()
