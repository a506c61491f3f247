"""Round 3, target 6 (scale): the same calls on a big file and on one ten times smaller
with the same events per user, interleaved call by call, judged as ratios of medians.

    python -m bench.scale [--sessions 100000] [--events 10] [--users 1000] [--workdir DIR]

:func:`build` writes a file of ``sessions`` sessions of ``events`` events of realistic
text (:class:`bench.make_big_db.Text`: Zipf-drawn common words, topics, cities and a long
tail of rare names) over ``users`` users of one app, straight through the stdlib
``sqlite3`` in large transactions (adk_lite's triggers keep the search index, as they do
for every writer). The small file has a tenth of the sessions and of the users, so a
user holds as many events in both. :func:`measure` then times, alternating the two
files call by call (medians):

- ``search_user``: one user's search of a common word (``limit=20``), a different
  user and word each call;
- ``get_stats``;
- ``page_first`` / ``page_deep``: ``list_sessions`` pages of 100 (the first, and one
  90% of the way through the app's sessions);
- ``recent20``: ``get_session(num_recent_events=20)`` of a random session;

and, on the big file alone, an unfiltered common two-word search and a rare word.
Files go to a temporary folder (or ``--workdir``, kept), never into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import tempfile
import time
from typing import Any, Callable, Optional

import orjson

from .make_big_db import COMMON, TOPICS, Text

APP = "scale_app"
COMMON_WORDS = ("order", "please", "help", "thanks", "check", "time", "today", "need")
"""Common words of :class:`~bench.make_big_db.Text` searched for one user (each in most users' events)."""
TWO_WORDS = ("to order", "the refund", "please help", "can you", "and the")
"""Common two-word searches (unfiltered, at the big file only)."""


def build(path: str, sessions: int, events: int, users: int, seed: int = 7) -> dict[str, Any]:
    """Write a new adk_lite file at ``path`` (see the module docstring); return
    ``{"sessions", "events", "users", "seconds", "bytes"}``."""
    from adk_lite import DatabaseSessionService

    if os.path.exists(path):
        raise SystemExit(f"{path} exists; give a new path")
    DatabaseSessionService(path).close()
    started = time.perf_counter()
    text = Text(seed)
    rng = text.rng
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = off")
    now = time.time()
    start = now - sessions * events * 0.01
    written = 0
    rows: list[tuple] = []
    conn.execute("BEGIN IMMEDIATE")
    for s in range(sessions):
        user, sid = f"user-{s % users}", f"s-{s}"
        t0 = start + written * 0.01
        conn.execute("INSERT INTO adk_sessions (app_name, user_id, session_id, created_at, updated_at, revision, "
                      "incarnation) VALUES (?, ?, ?, ?, ?, 0, ?)", (APP, user, sid, t0, t0 + events * 0.01,
                                                                   f"{rng.getrandbits(64):016x}"))
        for j in range(events):
            role, author = ("user", "user") if j % 2 == 0 else ("model", "support_agent")
            words = " ".join(text.sentence(6, 18) for _ in range(1 + (j % 2)))
            body = orjson.dumps({"content": {"role": role, "parts": [{"text": words}]}}).decode()
            rows.append((APP, user, sid, f"e-{s}-{j}", f"inv-{s}-{j // 2}", author, None, start + written * 0.01,
                         body))
            written += 1
        if len(rows) >= 50_000:
            _flush(conn, rows)
    _flush(conn, rows)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return {"sessions": sessions, "events": written, "users": users,
            "seconds": round(time.perf_counter() - started, 1), "bytes": os.path.getsize(path)}


def _flush(conn: sqlite3.Connection, rows: list[tuple]) -> None:
    conn.executemany("INSERT INTO adk_events (app_name, user_id, session_id, event_id, invocation_id, author, "
                     "branch, timestamp, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    rows.clear()
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def measure(small: str, big: str, reps: int = 60, seed: int = 1) -> dict[str, Any]:
    """The figures of the module docstring; each ``{"small_ms", "big_ms", "ratio"}``
    (medians of ``reps`` alternating calls), plus ``unfiltered_two_words_ms`` and
    ``rare_word_ms`` of the big file (medians) with their mean hit counts."""
    from adk_lite import DatabaseSessionService

    rng = random.Random(seed)
    svcs = {"small": DatabaseSessionService(small, read_only=True),
            "big": DatabaseSessionService(big, read_only=True)}
    try:
        facts = {k: s.get_stats() for k, s in svcs.items()}
        users = {k: f["users"] for k, f in facts.items()}
        deep = {}
        for k, s in svcs.items():  # the cursor of the page 90% of the way in
            cursor, walked, target = None, 0, min(int(facts[k]["sessions"] * 0.9), facts[k]["sessions"] - 100)
            while walked < target:
                page = s.list_sessions(APP, limit=min(10_000, target - walked), after=cursor)
                cursor, walked = page.next_cursor, walked + len(page)
            deep[k] = cursor
        calls: dict[str, Callable[[str], Callable[[], Any]]] = {
            "search_user": lambda k: (lambda w=rng.choice(COMMON_WORDS), u=rng.randrange(users[k]):
                                      svcs[k].search_events(w, app_name=APP, user_id=f"user-{u}", limit=20)),
            "get_stats": lambda k: svcs[k].get_stats,
            "page_first": lambda k: (lambda: svcs[k].list_sessions(APP, limit=100)),
            "page_deep": lambda k: (lambda: svcs[k].list_sessions(APP, limit=100, after=deep[k])),
            "recent20": lambda k: (lambda s=rng.randrange(facts[k]["sessions"]): svcs[k].get_session(
                APP, f"user-{s % users[k]}", f"s-{s}", num_recent_events=20)),
        }
        out: dict[str, Any] = {"events": {k: f["events"] for k, f in facts.items()},
                               "users": users, "reps": reps}
        for name, make in calls.items():
            times: dict[str, list[float]] = {"small": [], "big": []}
            hits: dict[str, int] = {"small": 0, "big": 0}
            for i in range(reps + 2):
                for k in (("small", "big") if i % 2 else ("big", "small")):
                    fn = make(k)
                    t0 = time.perf_counter()
                    got = fn()
                    dt = time.perf_counter() - t0
                    if i >= 2:  # two warm-up rounds
                        times[k].append(dt)
                        hits[k] += len(got) if name == "search_user" else 0
            out[name] = {"small_ms": _median_ms(times["small"]), "big_ms": _median_ms(times["big"]),
                         "ratio": round(statistics.median(times["big"]) / statistics.median(times["small"]), 2)}
            if name == "search_user":
                out[name]["mean_hits"] = {k: round(v / reps, 1) for k, v in hits.items()}
        for name, queries in (("unfiltered_two_words", TWO_WORDS), ("rare_word", _rare(rng))):
            times_b, found = [], 0
            for i in range(reps):
                t0 = time.perf_counter()
                found += len(svcs["big"].search_events(queries[i % len(queries)], limit=20))
                times_b.append(time.perf_counter() - t0)
            out[name] = {"big_ms": _median_ms(times_b), "mean_hits": round(found / reps, 1)}
    finally:
        for s in svcs.values():
            s.close()
    return out


def _rare(rng: random.Random) -> list[str]:
    words, _ = Text(7).words, None
    tail = words[len(COMMON) + len(TOPICS) + 40:]
    return [rng.choice(tail) for _ in range(20)]


def targets(fig: dict[str, Any], quick: bool = False) -> list[dict[str, Any]]:
    """The target rows of round 3's target 6 (as :func:`bench.report.targets`)."""
    from .report import _goal

    out = []
    if "error" in fig or not fig:
        why = fig.get("error", "scale not measured")
        return [_goal("scale: 1M / 100k events, same events per user", None, False, "", why, quick)]
    ev = fig["events"]
    head = f"{ev['big']:,} / {ev['small']:,} events, same events per user (interleaved medians)"
    for key, label, bound in (("search_user", "one user's search of a common word", 1.5),
                              ("get_stats", "get_stats", 2.0), ("page_first", "first page of 100 sessions", 1.2),
                              ("page_deep", "a page of 100 sessions 90% of the way in", 1.2),
                              ("recent20", "get_session(num_recent_events=20)", 1.2)):
        f = fig[key]
        out.append(_goal(f"{label}: {head} <= {bound}x", f["ratio"], f["ratio"] <= bound,
                         f"{f['ratio']}x ({f['big_ms']} vs {f['small_ms']} ms)", "", quick))
    f = fig["unfiltered_two_words"]
    out.append(_goal(f"unfiltered common two-word search (limit 20) on {ev['big']:,} events <= 100 ms (median)",
                     f["big_ms"], f["big_ms"] <= 100, f"{f['big_ms']} ms", "", quick))
    return out


def run(workdir: str, sessions: int, events: int, users: int, reps: int = 60) -> dict[str, Any]:
    """Build both files in ``workdir`` (kept when they exist already: same sizes, same
    files) and :func:`measure` them; child-process entry point."""
    paths = {}
    built = {}
    for key, n, u in (("small", sessions // 10, max(1, users // 10)), ("big", sessions, users)):
        paths[key] = os.path.join(workdir, f"scale_{n}x{events}_{u}u.sqlite3")
        if not os.path.exists(paths[key]):
            built[key] = build(paths[key], n, events, u)
    fig = measure(paths["small"], paths["big"], reps)
    fig["built"] = built
    return fig


def main(argv: Optional[list] = None) -> None:
    """``python -m bench.scale``: build, measure, print the JSON and the target rows."""
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=100_000, help="sessions of the big file (the small: a tenth)")
    p.add_argument("--events", type=int, default=10, help="events per session")
    p.add_argument("--users", type=int, default=1000, help="users of the big file (the small: a tenth)")
    p.add_argument("--reps", type=int, default=60)
    p.add_argument("--workdir", help="where the files go (kept; default: a temporary folder, removed)")
    args = p.parse_args(argv)
    work = args.workdir or tempfile.mkdtemp(prefix="adk_lite_scale_")
    os.makedirs(work, exist_ok=True)
    try:
        fig = run(work, args.sessions, args.events, args.users, args.reps)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(fig, indent=2))
    for g in targets(fig):
        print(f"| {g['target']} | {g['shown']} | {g['verdict']} |")


if __name__ == "__main__":
    main()
