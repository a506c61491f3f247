"""adk_lite quickstart: sessions that survive a restart.

Run it twice:

    python examples/quickstart.py   # first run: creates sessions and a conversation
    python examples/quickstart.py   # second run, a new process: it all came back

The first run creates a session for alice and one for bob; each asks for the weather
once, and a tool answer stores state in all four scopes, counting lookups per user
(``user:lookups``) and for the whole app (``app:total_lookups``). Every later run reads
it all back, lets alice look up once more (so the counts go on from where the last
process left them), deletes a key with ``update_keys`` and prints ``get_stats()``.

It uses the zero-config database: $ADK_LITE_DB if set, else .adk/sessions.sqlite3
under the current directory.
"""

from __future__ import annotations

import json

from adk_lite import DatabaseSessionService, Event, EventActions, Session

APP = "quickstart"
WEATHER = {"Lisbon": "Sunny, 24 degrees", "Osaka": "Rain, 18 degrees", "Porto": "Cloudy, 19 degrees"}


def say(turn: str, author: str, text: str, state_delta: dict | None = None) -> Event:
    """An event of invocation ``turn`` with one text part and an optional state delta."""
    return Event(author=author, invocation_id=turn,
                 content={"role": "user" if author == "user" else "model", "parts": [{"text": text}]},
                 actions=EventActions(state_delta=state_delta or {}))


def look_up_weather(svc: DatabaseSessionService, session: Session, city: str) -> None:
    """One turn: the user asks, a tool answers and stores state in all four scopes.

    The counters are read, incremented and written back. ``app:`` state is shared by
    every session of the app, so it is read fresh from the store just before the write
    (``session.state`` holds it as it was when this session was read). The stale check
    guards one session, not ``app:``/``user:`` keys: two processes incrementing the same
    counter at the same instant could both write the same count.
    """
    turn = f"turn-{len(session.events) // 2 + 1}"
    svc.append_event(session, say(turn, "user", f"What's the weather in {city}?"))
    user_lookups = svc.get_user_state(APP, session.user_id).get("lookups", 0)
    app_lookups = svc.get_app_state(APP).get("total_lookups", 0)
    svc.append_event(session, say(turn, "weather_agent", f"{WEATHER[city]} in {city}.", {
        "last_city": city,                       # this session only
        "user:lookups": user_lookups + 1,        # every session of this user
        "app:total_lookups": app_lookups + 1,    # every session of the app
        "temp:raw_api_reply": "{...}",           # this Session object only: never stored
    }))


def first_run(svc: DatabaseSessionService) -> None:
    print(f"First run: creating sessions in {svc.path}\n")
    for user, city in (("alice", "Lisbon"), ("bob", "Osaka")):
        session = svc.create_session(APP, user, state={"user:home": city, "app:greeting": "Hello"},
                                     session_id=f"{user}-chat")
        look_up_weather(svc, session, city)
        print(f"  {user}: {len(session.events)} events, state = {json.dumps(session.state)}")
    print("\n  temp: keys live in memory only; they are not in the file.")
    print("\nNow run this script again: a new process will read it all back.")


def later_run(svc: DatabaseSessionService) -> None:
    print(f"Resumed from {svc.path} (a new process: everything below was read from the file)\n")
    for summary in svc.list_sessions(APP):
        session = svc.get_session(APP, summary.user_id, summary.id)
        print(f"  {session.user_id}/{session.id} (revision {session.revision}):")
        for event in session.events:
            text = " ".join(p.get("text", "") for p in (event.content or {}).get("parts", []))
            print(f"    {event.author:>14}: {text or event.actions.state_delta}")
        print(f"    state: {json.dumps(session.state)}")

    alice = svc.get_session(APP, "alice", "alice-chat")
    look_up_weather(svc, alice, "Porto")
    print(f"\n  alice looked up Porto: user:lookups = {alice.state['user:lookups']}, "
          f"app:total_lookups = {alice.state['app:total_lookups']}")

    # None deletes a key with update_keys (in an ordinary event it stores a null).
    svc.update_keys(APP, "alice", "alice-chat", {"last_city": None})
    alice = svc.get_session(APP, "alice", "alice-chat", num_recent_events=1)
    print(f"  after update_keys(last_city=None): alice's state = {json.dumps(alice.state)}")
    print(f"  the change is in the log: {alice.events[-1].author} event, delta "
          f"{json.dumps(alice.events[-1].actions.state_delta)}")

    print("\nget_stats():")
    for key, value in svc.get_stats().items():
        print(f"  {key:>15}: {value}")


def main() -> None:
    with DatabaseSessionService() as svc:  # zero config: $ADK_LITE_DB, else .adk/sessions.sqlite3
        if svc.list_sessions(APP, limit=1):
            later_run(svc)
        else:
            first_run(svc)


if __name__ == "__main__":
    main()
