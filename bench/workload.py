"""The agent-shaped workload: ADK events as plain dicts, the same for every service.

One turn is the four events a ``google.adk`` Runner appends for a tool-using
agent: the user's text, the model's function call, the tool's function response
(whose ``actions.state_delta`` touches a session key, a ``user:`` key, an ``app:``
key and a ``temp:`` key) and the model's final text. The dicts are ADK's JSON
shape (``Event.model_dump(mode="json", exclude_none=True)``), so each service
builds its own event objects from them before any timing starts.

Everything is derived from a seed: two runs (or two services) get the same events.
"""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any, Iterator

import orjson

APP = "bench_app"
AGENT = "assistant"

_WORDS = ("order shipping refund invoice account address parcel tracking delivery warehouse customer "
          "status payment card return label window courier weekend update confirm schedule please "
          "thanks today tomorrow morning evening latest number reference").split()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def session_id(*parts: Any) -> str:
    """A uuid-shaped session id (as ADK generates) derived from ``parts``."""
    return str(uuid.uuid5(uuid.NAMESPACE_OID, repr(parts)))


def turn(rng: random.Random, turn_no: int, timestamp: float) -> list[dict[str, Any]]:
    """Return the four event dicts of one Runner turn, timestamps 1 ms apart.

    Args:
        rng: the source of every id and word (seeded by the caller).
        turn_no: the turn's number in its session (goes into the state delta).
        timestamp: epoch seconds of the first event.
    """
    invocation = "e-" + _uuid(rng)
    call_id = "adk-" + _uuid(rng)
    order = f"A-{rng.randrange(10**6):06d}"
    base = {"invocation_id": invocation}
    return [
        dict(base, id=_uuid(rng), author="user", timestamp=timestamp,
             content={"role": "user", "parts": [{"text": _text(rng, rng.randrange(8, 30))}]}),
        dict(base, id=_uuid(rng), author=AGENT, timestamp=timestamp + 0.001,
             content={"role": "model", "parts": [{"function_call": {
                 "id": call_id, "name": "lookup_order", "args": {"order_id": order, "fields": ["status", "eta"]}}}]}),
        dict(base, id=_uuid(rng), author=AGENT, timestamp=timestamp + 0.002,
             content={"role": "user", "parts": [{"function_response": {
                 "id": call_id, "name": "lookup_order",
                 "response": {"order_id": order, "status": rng.choice(("shipped", "packed", "late")),
                              "eta_days": rng.randrange(1, 9)}}}]},
             actions={"state_delta": {"last_order": order, "turns": turn_no, "user:orders_seen": turn_no + 1,
                                      "app:lookups": rng.randrange(10**6), "temp:raw_status": {"code": 200}}}),
        dict(base, id=_uuid(rng), author=AGENT, timestamp=timestamp + 0.003,
             content={"role": "model", "parts": [{"text": _text(rng, rng.randrange(30, 90))}]}),
    ]


def iter_events(seed: Any, count: int, start: float) -> Iterator[dict[str, Any]]:
    """Yield ``count`` event dicts (whole turns, cut at ``count``): one session's log.

    Args:
        seed: any hashable; the same seed gives the same events.
        count: how many events.
        start: epoch seconds of the first event; turns are 10 ms apart.
    """
    rng = random.Random(str(seed))
    turn_no = 0
    while count > 0:
        for event in turn(rng, turn_no, start + turn_no * 0.01)[:count]:
            yield event
        count -= 4
        turn_no += 1


def events(seed: Any, count: int, start: float) -> list[dict[str, Any]]:
    """:func:`iter_events` as a list."""
    return list(iter_events(seed, count, start))


def chunks(seed: Any, count: int, start: float, size: int = 10_000) -> Iterator[list[dict[str, Any]]]:
    """:func:`iter_events` in lists of at most ``size`` (to seed big sessions in little memory)."""
    it = iter_events(seed, count, start)
    while True:
        part = list(itertools.islice(it, size))
        if not part:
            return
        yield part


def turns(seed: Any, count: int, start: float) -> Iterator[list[dict[str, Any]]]:
    """Yield ``count`` turns (lists of four event dicts) of one session."""
    rng = random.Random(str(seed))
    for turn_no in range(count):
        yield turn(rng, turn_no, start + turn_no * 0.01)


def initial_state(i: int) -> dict[str, Any]:
    """The ``state`` given to ``create_session`` for the i-th session (all four scopes)."""
    return {"topic": "orders", "locale": "en-GB", "user:tier": "gold", "app:version": 3, "temp:boot": i}


def stored_json_bytes(event: dict[str, Any]) -> int:
    """Bytes of the event's compact JSON as it is stored (``temp:`` keys dropped)."""
    delta = event.get("actions", {}).get("state_delta")
    if delta and any(k.startswith("temp:") for k in delta):
        event = dict(event, actions=dict(event["actions"], state_delta={
            k: v for k, v in delta.items() if not k.startswith("temp:")}))
    return len(orjson.dumps(event))
