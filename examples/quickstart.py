"""adk_lite quickstart: sessions that survive a restart.

Run it twice:

    python examples/quickstart.py   # first run: creates sessions and a conversation
    python examples/quickstart.py   # second run, a new process: it all came back

It uses the zero-config database: $ADK_LITE_DB if set, else .adk/sessions.sqlite3
under the current directory.
"""

from __future__ import annotations

import json
import time

from adk_lite import DatabaseSessionService, Event, EventActions

APP = "quickstart"


def say(author: str, text: str, **state_delta) -> Event:
    """An event with one text part and an optional state delta."""
    return Event(author=author, invocation_id="turn-1", timestamp=time.time(),
                 content={"role": "user" if author == "user" else "model", "parts": [{"text": text}]},
                 actions=EventActions(state_delta=state_delta))


def first_run(svc: DatabaseSessionService) -> None:
    print(f"First run: creating sessions in {svc.path}\n")
    for user, city in (("alice", "Lisbon"), ("bob", "Osaka")):
        session = svc.create_session(APP, user, state={"user:city": city, "app:greeting": "Hello"},
                                     session_id=f"{user}-chat")
        svc.append_event(session, say("user", f"What's the weather in {city}?"))
        # A tool result: session, user:, app: and temp: keys in one delta.
        svc.append_event(session, say(
            "weather_agent", f"Sunny in {city}, 24 degrees.",
            **{"last_city": city, "user:lookups": 1, "app:total_lookups": 1, "temp:raw_api_reply": "{...}"}))
        print(f"  {user}: {len(session.events)} events, state = {json.dumps(session.state)}")
    print("\n  temp: keys live in memory only; they are not in the file.")
    print("\nNow run this script again: a new process will read it all back.")


def second_run(svc: DatabaseSessionService) -> None:
    print(f"Resumed from {svc.path}\n")
    for summary in svc.list_sessions(APP):
        session = svc.get_session(APP, summary.user_id, summary.id)
        print(f"  {session.user_id}/{session.id} (revision {session.revision}):")
        for event in session.events:
            text = " ".join(p.get("text", "") for p in (event.content or {}).get("parts", []))
            print(f"    {event.author:>14}: {text or event.actions.state_delta}")
        print(f"    state: {json.dumps(session.state)}")
    # None deletes a key with update_keys (in an ordinary event it stores a null).
    svc.update_keys(APP, "alice", "alice-chat", {"last_city": None, "user:lookups": 2})
    alice = svc.get_session(APP, "alice", "alice-chat", num_recent_events=1)
    print(f"\n  after update_keys(last_city=None): alice's state = {json.dumps(alice.state)}")
    print(f"  the change is in the log: {alice.events[-1].author} event, delta "
          f"{json.dumps(alice.events[-1].actions.state_delta)}")
    print("\nget_stats():")
    for key, value in svc.get_stats().items():
        print(f"  {key:>15}: {value}")


def main() -> None:
    with DatabaseSessionService() as svc:  # zero config: .adk/sessions.sqlite3
        if svc.list_sessions(APP, limit=1):
            second_run(svc)
        else:
            first_run(svc)


if __name__ == "__main__":
    main()
