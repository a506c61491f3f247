"""What every benchmark run shares: the sizes of a full and a quick run, the machine
it ran on, progress lines, fresh child processes, the big file, and writing the JSON.

Used by :mod:`bench.run` (the command) and :mod:`bench.postgres` (its PostgreSQL run).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import multiprocessing as mp
import os
import platform
import sqlite3
import statistics
import sys
import time
from importlib import metadata
from typing import Any, Optional

from . import floor

SIZES: dict[str, tuple[Any, Any]] = dict(
    users=(50, 5), create=(1000, 100), append_sessions=(100, 10), turns=(5, 3), batches=(100, 10),
    get_full_reps=(50, 5), list_reps=(20, 5), update_keys=(1000, 100), paired_sessions=(100, 20),
    paired_turns=(20, 10), recent=((100, 10_000, 100_000), (100, 1000, 5000)), recent_reps=(200, 20),
    page_reps=(100, 10), deep_at=(90_000, 4000), stats_reps=(5, 2), cap_s=(10.0, 1.5),
    big_sessions=(100_000, 5000), big_events_per_session=(10, 4), processes=((1, 2, 4), (1, 2, 4)),
    process_events=(4000, 200), process_repeats=(3, 1), turn_prefill=(1000, 100), turn_reps=(20, 2),
    tasks=(64, 16), tasks_events=(3000, 160), tasks_rounds=(3, 1))
"""Each size of a run: ``(full, quick)``. A full run takes about 10 minutes on 2 cores;
``--quick`` (CI: the harness runs) well under 2."""
FULL = {name: full for name, (full, _) in SIZES.items()}
QUICK = {name: quick for name, (_, quick) in SIZES.items()}


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


def new_file_args(doc: str, sessions: int, events: int) -> Any:
    """Parse ``PATH [--sessions N] [--events N]`` (the defaults given) for a script that
    builds a new database file; exit naming PATH when it exists already."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--sessions", type=int, default=sessions)
    parser.add_argument("--events", type=int, default=events, help="events per session")
    args = parser.parse_args()
    if os.path.exists(args.path):
        sys.exit(f"{args.path} exists; give a new path")
    return args


def median_ms(fn: Any, repeat: int) -> float:
    """The median wall time of ``repeat`` calls of ``fn()``, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def finish(json_path: Optional[str], everything: dict[str, Any], outcomes: list[dict[str, Any]]) -> None:
    """Write ``everything`` to ``json_path`` (if given); exit 1 if any of ``outcomes`` is an error."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump(everything, f, indent=2)
    if any("error" in r for r in outcomes):
        sys.exit(1)
