"""Session/Event dataclasses, ADK's JSON shape, and the JSON value check."""

from __future__ import annotations

import datetime

import pytest

from adk_lite import Event, EventActions
from adk_lite.codec import check_json, dumps, loads
from adk_lite.scopes import check_delta, split


def test_event_dict_round_trip_keeps_unknown_keys():
    data = {
        "id": "e1", "invocation_id": "i", "author": "model", "timestamp": 12.5, "branch": "a.b",
        "content": {"role": "model", "parts": [{"function_call": {"name": "f", "args": {"x": 1}}}]},
        "actions": {"state_delta": {"k": 1}, "escalate": True, "requested_tool_confirmations": {"c": {}}},
        "turn_complete": True, "usage_metadata": {"total_token_count": 9},
    }
    event = Event.from_dict(data)
    assert event.extra == {"turn_complete": True, "usage_metadata": {"total_token_count": 9}}
    assert event.actions.extra == {"requested_tool_confirmations": {"c": {}}}
    assert event.actions.escalate is True
    assert event.to_dict() == data
    assert Event.from_dict(event.to_dict()) == event


def test_event_defaults_and_bad_shapes():
    a, b = Event(), Event()
    assert a.id != b.id and a.author == "user" and a.timestamp > 0
    assert Event.from_dict({"actions": None}).actions == EventActions()
    with pytest.raises(TypeError, match="actions must be a dict"):
        Event.from_dict({"actions": [1]})
    with pytest.raises(TypeError, match="event data must be a dict"):
        Event.from_dict("{}")


@pytest.mark.parametrize("value", [None, True, 0, -(2**63), 2**63 - 1, 1.5, "s", [], {}, {"a": [1, {"b": None}]}])
def test_json_values_that_round_trip(value):
    """check_json accepts them, and what is stored reads back equal, with the same types."""
    assert check_json(value, "v") is None
    back = loads(dumps(value))
    assert back == value and type(back) is type(value)


@pytest.mark.parametrize("value, exc, words", [
    ((1, 2), TypeError, "tuple"), ({1}, TypeError, "set"), (b"x", TypeError, "bytes"),
    (datetime.datetime(2024, 1, 1), TypeError, "datetime"), (object(), TypeError, "object"),
    (float("nan"), ValueError, "finite"), (float("inf"), ValueError, "finite"),
    (2**63, ValueError, "64-bit"), (-(2**63) - 1, ValueError, "64-bit"),
    ({1: "a"}, TypeError, "keys must be str"), ({"a": [1, (2,)]}, TypeError, r"v\['a'\]\[1\]"),
])
def test_json_values_refused(value, exc, words):
    with pytest.raises(exc, match=words):
        check_json(value, "v")


@pytest.mark.parametrize("delta, exc, words", [
    ({"user:": 1}, ValueError, "'user:' with an empty name"),
    ({"app:": 1}, ValueError, "'app:' with an empty name"),
    ({"": 1}, ValueError, "empty key"),
    ({3: 1}, TypeError, "must be str"),
    ({"a\x00b": 1}, ValueError, "NUL"),
    ([("a", 1)], TypeError, "must be a dict"),
])
def test_bad_state_deltas(delta, exc, words):
    with pytest.raises(exc, match=words):
        check_delta(delta, "state")


def test_split_by_prefix():
    scoped = split({"app:a": 1, "user:u": 2, "s": 3, "temp:t": 4})
    assert scoped == ({"a": 1}, {"u": 2}, {"s": 3}, {"temp:t": 4})
    assert list(scoped.persisted()) == [("app", "a", 1), ("user", "u", 2), ("session", "s", 3)]


def test_from_dict_takes_adk_camel_case_json_and_to_dict_writes_snake_case():
    camel = {"id": "e1", "invocationId": "inv-1", "author": "agent", "timestamp": 12.5, "branch": "root.child",
             "customMetadata": {"k": 1}, "partial": False, "longRunningToolIds": ["t1"],
             "content": {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
             "actions": {"stateDelta": {"a": 1}, "artifactDelta": {"f.txt": 2}, "transferToAgent": "other",
                         "skipSummarization": True, "escalate": True, "requestedAuthConfigs": {}}}
    event = Event.from_dict(camel)
    assert (event.invocation_id, event.custom_metadata, event.branch) == ("inv-1", {"k": 1}, "root.child")
    assert event.actions.state_delta == {"a": 1} and event.actions.artifact_delta == {"f.txt": 2}
    assert (event.actions.transfer_to_agent, event.actions.skip_summarization) == ("other", True)
    assert event.content == camel["content"]  # content as given
    assert event.extra == {"longRunningToolIds": ["t1"]} and event.actions.extra == {"requestedAuthConfigs": {}}
    out = event.to_dict()
    assert out["invocation_id"] == "inv-1" and "invocationId" not in out
    assert out["actions"]["state_delta"] == {"a": 1} and "stateDelta" not in out["actions"]
    assert Event.from_dict(out) == event


def test_from_dict_snake_case_wins_over_its_camel_case_alias():
    event = Event.from_dict({"invocation_id": "snake", "invocationId": "camel", "actions": {}})
    assert event.invocation_id == "snake" and event.extra == {"invocationId": "camel"}


def test_from_dict_reads_what_adk_writes_by_alias():
    adk = pytest.importorskip("google.adk.events")
    from google.genai import types as genai
    original = adk.Event(invocation_id="inv", author="agent", branch="b", custom_metadata={"x": "ü"},
                         content=genai.Content(role="model", parts=[genai.Part(text="hi")]),
                         actions=adk.EventActions(state_delta={"user:k": 1}, skip_summarization=True))
    event = Event.from_dict(original.model_dump(mode="json", by_alias=True, exclude_none=True))
    snake = Event.from_dict(original.model_dump(mode="json", exclude_none=True))
    named = lambda e: {k: v for k, v in vars(e).items() if k not in ("extra", "actions")}  # noqa: E731
    assert named(event) == named(snake)
    assert (event.actions.state_delta, event.actions.skip_summarization) == ({"user:k": 1}, True)
    # fields these classes do not name stay in extra as ADK wrote them (camelCase here)
    assert "nodeInfo" in event.extra or event.extra == snake.extra
    assert (event.invocation_id, event.actions.state_delta) == ("inv", {"user:k": 1})
