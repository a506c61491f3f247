"""``python -m bench.usage``: the token usage totals of one user over a year of events.

``--users`` users (default 20) of one app each get a year of LLM calls:
``--per-day`` calls a day (default 20), one session a week, every call an event
with ``usage_metadata`` and ``model_version`` beside a user message without usage
(so the database holds twice as many events as usage rows). Then
``get_usage(app, user, since=a year ago, until=now)`` (one user's totals) and the
same grouped by day and model are timed ``--repeat`` times; prints the medians in
milliseconds. ``--db URL`` runs on a PostgreSQL database instead of a temporary file
(its adk_lite tables must be empty); ``--json PATH`` writes the figures.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from adk_lite import DatabaseSessionService

from .harness import finish, median_ms

APP = "bench"
DAY = 86400.0


def build(svc: DatabaseSessionService, users: int, per_day: int, end: float) -> int:
    """Write ``users`` users' year of calls (one import transaction per weekly
    session); return the usage rows written."""
    store, rows = svc.store, 0
    start = end - 365 * DAY
    for u in range(users):
        user = f"user{u}"
        for week in range(53):
            events = []
            for day in range(7):
                ts0 = start + (week * 7 + day) * DAY
                if ts0 >= end:
                    break
                for k in range(per_day):
                    ts = ts0 + k * (DAY / per_day)
                    n = len(events)
                    inv = f"w{week}d{day}k{k}"
                    events.append((f"u{n}", inv, "user", None, ts, '{"content":{"parts":[{"text":"hi"}]}}'))
                    body = (f'{{"content":{{"parts":[{{"text":"answer"}}]}},"model_version":"model-{k % 3}",'
                            f'"usage_metadata":{{"prompt_token_count":{100 + k},"candidates_token_count":{20 + k},'
                            f'"total_token_count":{120 + 2 * k}}}}}')
                    events.append((f"m{n}", inv, "agent", None, ts + 1, body))
            if events:
                store.import_session(APP, user, f"week{week}", start, end, [], events, False)
                rows += len(events) // 2
    return rows


def measure(svc: DatabaseSessionService, end: float, repeat: int) -> dict[str, float]:
    """Median milliseconds of one user's year: totals, and per day and model."""
    since = end - 365 * DAY
    one = svc.get_usage(APP, "user0", since=since, until=end + DAY)
    assert one[0]["llm_calls"] > 0
    return {
        "user_year_totals_ms": median_ms(lambda: svc.get_usage(APP, "user0", since=since, until=end + DAY), repeat),
        "user_year_by_day_model_ms": median_ms(
            lambda: svc.get_usage(APP, "user0", since=since, until=end + DAY, group_by=["day", "model"]), repeat),
        "user_calls": one[0]["llm_calls"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--per-day", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--db", metavar="URL", help="a PostgreSQL URL (default: a temporary SQLite file)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    end = time.time()
    with tempfile.TemporaryDirectory() as folder:
        with DatabaseSessionService(args.db or os.path.join(folder, "usage.db")) as svc:
            began = time.perf_counter()
            rows = build(svc, args.users, args.per_day, end)
            load_s = time.perf_counter() - began
            figures = measure(svc, end, args.repeat)
            events = svc.get_stats()["events"]
    result = {"users": args.users, "usage_rows": rows, "events": events, "load_s": round(load_s, 1), **figures}
    print(f"{events} events, {rows} usage rows ({args.users} users x a year, {args.per_day} calls a day); "
          f"one user's year ({figures['user_calls']} calls): totals {figures['user_year_totals_ms']:.2f} ms, "
          f"by day and model {figures['user_year_by_day_model_ms']:.2f} ms")
    finish(args.json, result, [])


if __name__ == "__main__":
    main()
