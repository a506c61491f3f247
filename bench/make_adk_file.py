"""Build a file of ADK's own ``SqliteSessionService`` for timing ``adk-lite import-adk``.

    python -m bench.make_adk_file adk_session.db [--sessions 200] [--events 1000]
    time adk-lite import-adk adk_session.db lite.sqlite3 --create --json

Sessions (over 3 apps and 50 users, state in every scope) are created with ADK's
``SqliteSessionService.create_session``. Their events (text turns, tool calls and
responses, a state delta every fourth) are ``google.adk`` Events inserted with one
``executemany`` per session into ADK's ``events`` table, the row exactly as
``SqliteSessionService.append_event`` writes it (``model_dump_json(exclude_none=True)``
as ``event_data``): appending 200,000 events one ADK call at a time takes many
minutes. Session state and update times are set as those appends would leave them.
"""

import asyncio
import json
import os
import sqlite3
import time

from google.adk.events import Event, EventActions
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types

from .harness import new_file_args


def events_for(i: int, n: int, start: float) -> list:
    out = []
    for j in range(n):
        kind = j % 4
        if kind == 0:
            part = types.Part(text=f"question {j} of session {i}: what is the weather in Zürich?")
        elif kind == 1:
            part = types.Part(function_call=types.FunctionCall(id=f"c-{j}", name="get_weather", args={"city": "Zürich"}))
        elif kind == 2:
            part = types.Part(function_response=types.FunctionResponse(id=f"c-{j - 1}", name="get_weather",
                                                                       response={"temp_c": 18 + j % 7}))
        else:
            part = types.Part(text=f"It is {18 + j % 7} degrees in Zürich.")
        out.append(Event(author="user" if kind in (0, 2) else "weather_agent", invocation_id=f"inv-{i}-{j // 4}",
                         timestamp=start + j, content=types.Content(role="user" if kind in (0, 2) else "model",
                                                                   parts=[part]),
                         actions=EventActions(state_delta={"turns": j} if kind == 3 else {})))
    return out


async def create(path: str, sessions: int) -> None:
    svc = SqliteSessionService(path)
    for i in range(sessions):
        await svc.create_session(app_name=f"app-{i % 3}", user_id=f"user-{i % 50}", session_id=f"s-{i}",
                                 state={"topic": "weather", "user:lang": "en", "app:version": 2})
    await svc.close()


def main() -> None:
    args = new_file_args(__doc__, sessions=200, events=1000)
    started, now = time.perf_counter(), time.time()
    asyncio.run(create(args.path, args.sessions))
    with sqlite3.connect(args.path) as conn:
        for i in range(args.sessions):
            app, user, sid = f"app-{i % 3}", f"user-{i % 50}", f"s-{i}"
            events = events_for(i, args.events, now - 86400 + i)
            conn.executemany(
                "INSERT INTO events (id, app_name, user_id, session_id, invocation_id, timestamp, event_data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(e.id, app, user, sid, e.invocation_id, e.timestamp, e.model_dump_json(exclude_none=True))
                 for e in events])
            turns = [e.actions.state_delta["turns"] for e in events if e.actions.state_delta]
            state = {"topic": "weather", **({"turns": turns[-1]} if turns else {})}
            conn.execute("UPDATE sessions SET state = ?, update_time = ? WHERE app_name = ? AND user_id = ? AND id = ?",
                         (json.dumps(state), events[-1].timestamp if events else now, app, user, sid))
    conn.close()
    print(f"{args.sessions} sessions, {args.sessions * args.events} events, {os.path.getsize(args.path)} bytes "
          f"in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
