"""p50 ``append_event`` latency of adk_lite's ADK adapter against ADK's own SQLite
services, on the same events in one run.

    python bench/adk_append.py [--events 500] [--rounds 10]

Needs the ``adk`` extra, and ``sqlalchemy`` for ADK's DatabaseSessionService
(``pip install -e ".[adk,bench]"``; without it that row is skipped). Each service
gets a new file in a temporary folder, one session, and a copy of the same events
(a user message, a function call, a function response with a state delta in every
scope, and a model reply, repeated). The services take turns in rounds (so a
drift in the machine's speed hits all alike) with an ``os.sync()`` before each
turn (ADK's SqliteSessionService fsyncs every commit, and its writeback would
otherwise slow the next service's writes). Times are
wall-clock microseconds per awaited ``append_event`` (what a Runner waits), after
20 warm-up appends.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

from google.adk.events import Event, EventActions
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types

from adk_lite.adk import DatabaseSessionService as AdkLiteService

WARMUP = 20


def make_events(n: int) -> list[Event]:
    """``n`` events of a tool-using conversation, timestamps increasing."""
    t0 = time.time()
    events = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            part, author, delta = types.Part(text=f"Question {i}: what is the weather in city {i}?"), "user", {}
        elif kind == 1:
            part = types.Part(function_call=types.FunctionCall(id=f"c{i}", name="weather", args={"city": f"c{i}"}))
            author, delta = "agent", {}
        elif kind == 2:
            part = types.Part(function_response=types.FunctionResponse(
                id=f"c{i}", name="weather", response={"temp_c": 21.5, "sky": "clear", "wind_kmh": 12}))
            author, delta = "agent", {"last_city": f"c{i}", "user:lookups": i, "app:total": i, "temp:raw": "x" * 40}
        else:
            part, author, delta = types.Part(text=f"It is clear and 21.5 C in city {i}."), "agent", {}
        events.append(Event(invocation_id=f"inv-{i // 4}", author=author, timestamp=t0 + i * 1e-3,
                            content=types.Content(role="user" if author == "user" else "model", parts=[part]),
                            actions=EventActions(state_delta=delta)))
    return events


async def append_all(service, session, events: list[Event]) -> list[float]:
    """Append copies of ``events``; return microseconds per append."""
    times = []
    for event in events:
        copy = event.model_copy(deep=True)
        start = time.perf_counter()
        await service.append_event(session, copy)
        times.append((time.perf_counter() - start) * 1e6)
    return times


async def main(n: int, rounds: int) -> None:
    folder = tempfile.mkdtemp(prefix="adk_append_")
    services = {"adk_lite.adk.DatabaseSessionService": AdkLiteService(os.path.join(folder, "lite.db")),
                "ADK SqliteSessionService": SqliteSessionService(os.path.join(folder, "adk_sqlite.db"))}
    try:
        from google.adk.sessions import DatabaseSessionService as AdkDatabaseService
        import sqlalchemy  # noqa: F401
        url = "sqlite+aiosqlite:///" + os.path.join(folder, "adk_database.db")
        services["ADK DatabaseSessionService (aiosqlite)"] = AdkDatabaseService(db_url=url)
    except ImportError:
        print("(sqlalchemy is not installed: ADK's DatabaseSessionService is skipped)")
    events = make_events(n + WARMUP)
    sessions = {name: await svc.create_session(app_name="bench", user_id="u", session_id="s")
                for name, svc in services.items()}
    times: dict[str, list[float]] = {name: [] for name in services}
    size = -(-len(events) // rounds)
    for start in range(0, len(events), size):
        for name, service in services.items():
            os.sync()  # no service starts with the previous one's dirty pages in flight
            times[name] += await append_all(service, sessions[name], events[start:start + size])
    for name, service in services.items():
        got = await service.get_session(app_name="bench", user_id="u", session_id="s")
        assert len(got.events) == len(events), f"{name} stored {len(got.events)} events"
        await service.close()
    print(f"append_event, {n} events per service (after {WARMUP} warm-up) in {rounds} rounds, microseconds")
    print(f"{'service':42} {'p50':>8} {'p90':>8} {'mean':>8}")
    p50 = {}
    for name, t in times.items():
        t = t[WARMUP:]
        p50[name] = statistics.median(t)
        print(f"{name:42} {p50[name]:8.0f} {statistics.quantiles(t, n=10)[-1]:8.0f} {statistics.fmean(t):8.0f}")
    lite, *others = p50
    for name in others:
        print(f"adk_lite is {p50[name] / p50[lite]:.1f}x faster than {name} (p50)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=500, help="events appended per service (default 500)")
    parser.add_argument("--rounds", type=int, default=10, help="the services take turns this many times (default 10)")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.rounds))
