"""Full-text search figures: ``python -m bench.search [--sessions 10000] [--events 20] [--workdir DIR] [--url URL]``.

On the file :mod:`bench.make_big_db` writes (10,000 sessions x 20 events = 200k events
of realistic text), measures:

- search latency (top 20, p50 and p99 in ms) of a one-word query, a phrase and a
  prefix query, unfiltered and filtered to one user (the words drawn from the file's
  own vocabulary, a different one each repetition);
- append latency (``append_event`` of one realistic event, p50 and p99 in ms) on a
  copy of the file with the index and a copy without it (its triggers and table
  dropped), interleaved in the same run so both see the same noise;
- file size per event (bytes, after VACUUM) with and without the index.

With ``--url postgresql://...`` the same figures on PostgreSQL: the data is written
straight into that database and into ``<dbname>_noindex`` beside it (created when
missing: the role needs CREATEDB; adk_lite's tables in both are dropped first), whose
search column and index are then dropped; sizes are adk_lite's tables after
``VACUUM ANALYZE``; the raw queries are written in ``to_tsquery`` syntax.

Prints one JSON document. Figures, not assertions: targets are p50 <= 20 ms and
p99 <= 100 ms for search, append with the index <= 1.3x without.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import tempfile
import time

from adk_lite import DatabaseSessionService

from .make_big_db import CITIES, TOPICS, Text, build, events_for

REPS = 200
APPENDS = 2000


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)


def _figures(samples: list[float]) -> dict[str, float]:
    return {"p50_ms": _pct(samples, 0.5), "p99_ms": _pct(samples, 0.99), "n": len(samples)}


def queries(rng: random.Random, postgres: bool = False) -> dict[str, list[tuple[str, bool]]]:
    """``REPS`` queries of each kind: (query, raw); raw ones in FTS5 syntax, or
    ``to_tsquery`` syntax with ``postgres``."""
    words = [w.lower() for w in TOPICS + CITIES if " " not in w]
    phrase, prefix = ("{} <-> {}", "{}:*") if postgres else ('"{} {}"', "{}*")
    return {
        "one_word": [(rng.choice(words), False) for _ in range(REPS)],
        "phrase": [(phrase.format(rng.choice(["to", "the", "a", "and"]), rng.choice(words)), True)
                   for _ in range(REPS)],
        "prefix": [(prefix.format(rng.choice(words)[:4]), True) for _ in range(REPS)],
    }


def measure_search(path: str, seed: int = 1, postgres: bool = False) -> dict:
    """Search latency of each kind of query, unfiltered and for one user (figures in ms)."""
    rng = random.Random(seed)
    out = {}
    with DatabaseSessionService(path, read_only=True) as svc:
        svc.search_events("warm up")
        for kind, qs in queries(rng, postgres).items():
            for scope in ("unfiltered", "one_user"):
                samples, hits = [], 0
                for query, raw in qs:
                    user = {"app_name": "app-0", "user_id": f"user-{rng.randrange(0, 500, 3)}"} \
                        if scope == "one_user" else {}
                    t0 = time.perf_counter()
                    found = svc.search_events(query, raw=raw, limit=20, **user)
                    samples.append(time.perf_counter() - t0)
                    hits += len(found)
                out[f"{kind}_{scope}"] = {**_figures(samples), "mean_hits": round(hits / len(qs), 1)}
    return out


def _drop_index(path: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE adk_events_fts")
    conn.close()


def _vacuumed_size(path: str) -> int:
    with DatabaseSessionService(path) as svc:
        svc.vacuum()
    return os.path.getsize(path)


def measure_append(with_index: str, without_index: str) -> dict:
    """Interleaved single-event appends to a new session in each file."""
    text = Text(99)
    services = {"with_index": DatabaseSessionService(with_index), "without_index": DatabaseSessionService(without_index)}
    sessions = {k: s.create_session("bench", "appender", session_id="append") for k, s in services.items()}
    samples: dict[str, list[float]] = {k: [] for k in services}
    try:
        for i in range(APPENDS // 4):
            batch = events_for(10**6 + i, 4, time.time(), text)
            for event in batch:
                for key in (("with_index", "without_index") if i % 2 else ("without_index", "with_index")):
                    copy = type(event)(**{**event.__dict__, "id": f"{key}-{event.id}"})
                    t0 = time.perf_counter()
                    services[key].append_event(sessions[key], copy)
                    samples[key].append(time.perf_counter() - t0)
    finally:
        for svc in services.values():
            svc.close()
    out = {k: _figures(v) for k, v in samples.items()}
    out["ratio_p50"] = round(out["with_index"]["p50_ms"] / out["without_index"]["p50_ms"], 2)
    return out


def _postgres_database(url: str, suffix: str = "") -> str:
    """The URL of database ``<dbname><suffix>`` on ``url``'s server (created when missing),
    with adk_lite's tables dropped."""
    import psycopg
    from adk_lite.models import TABLES
    base, dbname = url.split("?", 1)[0].rsplit("/", 1)
    target = f"{base}/{dbname}{suffix}"
    if suffix:
        with psycopg.connect(url, autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname + suffix,)).fetchone():
                conn.execute(f'CREATE DATABASE "{dbname}{suffix}"')
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {', '.join(TABLES)} CASCADE")
    return target


def _postgres_size(url: str, events: int) -> float:
    with DatabaseSessionService(url) as svc:
        svc.vacuum()
        return svc.get_stats()["table_bytes"] / events


def measure_postgres(url: str, sessions: int, events_each: int) -> dict:
    """The same figures on PostgreSQL (see the module's docstring)."""
    import psycopg
    from adk_lite import postgres
    indexed, plain = _postgres_database(url), _postgres_database(url, "_noindex")
    started = time.perf_counter()
    now = time.time()
    build(indexed, sessions, events_each, now)
    built = round(time.perf_counter() - started, 1)
    build(plain, sessions, events_each, now)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f"ALTER TABLE adk_events DROP COLUMN {postgres.SEARCH_COLUMN}")
    # A read-write open adds a missing search column back: tell this process it is there.
    postgres.PostgresBackend._has_search = staticmethod(lambda execute: True)
    with DatabaseSessionService(indexed, read_only=True) as svc:
        events = svc.get_stats()["events"]
    result = {"backend": "postgres", "events": events, "build_s": built,
              "search": measure_search(indexed, postgres=True)}
    size_with, size_without = _postgres_size(indexed, events), _postgres_size(plain, events)
    result["bytes_per_event"] = {"with_index": round(size_with, 1), "without_index": round(size_without, 1),
                                 "ratio": round(size_with / size_without, 2)}
    result["append"] = measure_append(indexed, plain)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20, help="events per session")
    parser.add_argument("--workdir", help="where to build the files (default: a temporary folder)")
    parser.add_argument("--file", help="an existing file from python -m bench.make_big_db to use (it is copied, not changed)")
    parser.add_argument("--url", help="measure on this PostgreSQL database instead (its adk_lite tables are dropped)")
    args = parser.parse_args()
    if args.url:
        print(json.dumps(measure_postgres(args.url, args.sessions, args.events), indent=2))
        return
    work = args.workdir or tempfile.mkdtemp(prefix="adk_lite_search_")
    os.makedirs(work, exist_ok=True)
    big = os.path.join(work, "big.sqlite3")
    started = time.perf_counter()
    if args.file:
        shutil.copyfile(args.file, big)
    elif not os.path.exists(big):
        build(big, args.sessions, args.events, time.time())
    built = round(time.perf_counter() - started, 1)
    with DatabaseSessionService(big, read_only=True) as svc:
        events = svc.get_stats()["events"]
    result = {"events": events, "build_s": built, "search": measure_search(big)}
    plain = os.path.join(work, "no_index.sqlite3")
    indexed = os.path.join(work, "indexed.sqlite3")
    shutil.copyfile(big, plain)
    shutil.copyfile(big, indexed)
    _drop_index(plain)
    size_with, size_without = _vacuumed_size(indexed), _vacuumed_size(plain)
    result["bytes_per_event"] = {"with_index": round(size_with / events, 1),
                                 "without_index": round(size_without / events, 1),
                                 "ratio": round(size_with / size_without, 2)}
    result["append"] = measure_append(indexed, plain)
    # Migration: index a file of the old schema in place (the 2 -> 3 step).
    conn = sqlite3.connect(plain, isolation_level=None)
    conn.execute("UPDATE adk_metadata SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    t0 = time.perf_counter()
    DatabaseSessionService(plain).close()
    result["migration_s"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
