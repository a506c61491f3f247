"""Build a session file for timing the ``adk-lite`` command on real volumes.

    python bench/make_big_db.py big.sqlite3 [--sessions 10000] [--events 20]

Sessions spread over 3 apps and 500 users, last updated over the past 90 days (so
``prune --older-than 30d`` has work), each with ``--events`` events (text turns,
tool calls and responses) appended in one ``append_events`` batch, and state in
every scope.
"""

import argparse
import os
import sys
import time

from adk_lite import DatabaseSessionService, Event, EventActions


def events_for(i: int, n: int, start: float) -> list:
    out = []
    for j in range(n):
        kind = j % 4
        if kind == 0:
            content = {"role": "user", "parts": [{"text": f"question {j} of session {i}: what is the weather?"}]}
        elif kind == 1:
            content = {"role": "model", "parts": [{"function_call": {"name": "get_weather", "args": {"city": "Paris"}}}]}
        elif kind == 2:
            content = {"role": "user", "parts": [{"function_response": {"name": "get_weather",
                                                                        "response": {"temp_c": 18 + j % 7}}}]}
        else:
            content = {"role": "model", "parts": [{"text": f"It is {18 + j % 7} degrees in Paris."}]}
        out.append(Event(author="user" if kind in (0, 2) else "weather_agent", invocation_id=f"inv-{i}-{j // 4}",
                         timestamp=start + j, content=content,
                         actions=EventActions(state_delta={"turns": j} if kind == 3 else {})))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=20, help="events per session")
    args = parser.parse_args()
    if os.path.exists(args.path):
        sys.exit(f"{args.path} exists; give a new path")
    started, now = time.perf_counter(), time.time()
    with DatabaseSessionService(args.path) as svc:
        for i in range(args.sessions):
            app, user = f"app-{i % 3}", f"user-{i % 500}"
            session = svc.create_session(app, user, session_id=f"s-{i}",
                                         state={"topic": "weather", "user:lang": "en", "app:version": 2})
            svc.append_events(session, events_for(i, args.events, now - 90 * 86400 * (1 - i / args.sessions)))
        stats = svc.get_stats()
    print(f"{stats['sessions']} sessions, {stats['events']} events, {stats['db_bytes']} bytes "
          f"in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
