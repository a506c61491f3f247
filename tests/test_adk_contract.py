"""ADK's session-service contract, run against ADK's InMemorySessionService (the
reference) and adk_lite.adk.DatabaseSessionService, with the same expected results.

Each test takes the parametrized ``svc`` fixture, so every assertion holds for both.
Where adk_lite deliberately differs, the test says so and why (stale detection and
the private ``_storage_update_marker`` are in tests/test_adk.py; ``same()`` compares
sessions with ``model_dump``, which leaves the private marker out).
"""

from __future__ import annotations

from asyncio import run
import datetime
import zoneinfo

import pytest

pytest.importorskip("google.adk")

from google.adk.errors.already_exists_error import AlreadyExistsError  # noqa: E402
from google.adk.errors.session_not_found_error import SessionNotFoundError  # noqa: E402
from google.adk.events import Event, EventActions  # noqa: E402
from google.adk.events.event import NodeInfo  # noqa: E402
from google.adk.events.event_actions import EventCompaction  # noqa: E402
from google.adk.sessions import InMemorySessionService, Session  # noqa: E402
from google.adk.sessions.base_session_service import GetSessionConfig  # noqa: E402
from google.adk.tools.tool_confirmation import ToolConfirmation  # noqa: E402
from google.genai import types  # noqa: E402

from adk_lite.adk import DatabaseSessionService  # noqa: E402

pytestmark = pytest.mark.adk

APP, USER = "app", "alice"


def make_service(kind, target):
    if kind == "in_memory":
        return InMemorySessionService()
    return DatabaseSessionService(target)


@pytest.fixture(params=["in_memory", "adk_lite"])
def svc(request, target):
    service = make_service(request.param, target)
    yield service
    if isinstance(service, DatabaseSessionService):
        run(service.close())


def text_event(text, *, ts=None, delta=None, author="user", invocation_id="inv-1", **fields):
    kwargs = dict(author=author, invocation_id=invocation_id,
                  content=types.Content(role="user" if author == "user" else "model", parts=[types.Part(text=text)]),
                  actions=EventActions(state_delta=dict(delta or {})), **fields)
    if ts is not None:
        kwargs["timestamp"] = ts
    return Event(**kwargs)


def same(a: Session, b: Session) -> bool:
    """Field equality without the private marker (it is None in memory, the
    revision in adk_lite)."""
    return a.model_dump() == b.model_dump()


def full_event() -> Event:
    """An event with every field of Event and EventActions set (but
    requested_auth_configs, whose fastapi auth scheme no JSON store keeps as its
    class), bytes included."""
    raw = bytes(range(256)) * 2
    return Event(
        id="ev-full", invocation_id="inv-9", author="planner", branch="root.planner", isolation_scope="scope-1",
        timestamp=1_767_225_600.123456,
        model_version="scripted-2", partial=False, turn_complete=True, turn_complete_reason=None,
        finish_reason=types.FinishReason.STOP, error_code="E1", error_message="none really", interrupted=False,
        custom_metadata={"trace": [1, 2.5, None, {"x": "y"}]},
        usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=7, candidates_token_count=3,
                                                                  total_token_count=10),
        grounding_metadata=types.GroundingMetadata(web_search_queries=["weather"]),
        citation_metadata=types.CitationMetadata(citations=[types.Citation(uri="https://example.org", start_index=1,
                                                                           end_index=4)]),
        input_transcription=types.Transcription(text="in", finished=True),
        output_transcription=types.Transcription(text="out", finished=False),
        avg_logprobs=-0.25, interaction_id="ia-1", environment_id="env-1", live_session_id="live-1",
        content=types.Content(role="model", parts=[
            types.Part(text="thinking", thought=True, thought_signature=b"\x00\xffsig"),
            types.Part(inline_data=types.Blob(mime_type="image/png", data=raw, display_name="pic.png")),
            types.Part(function_call=types.FunctionCall(id="call-1", name="lookup", args={"q": "x", "none": None})),
            types.Part(function_response=types.FunctionResponse(
                id="call-1", name="lookup", response={"ok": True},
                parts=[types.FunctionResponsePart(inline_data=types.FunctionResponseBlob(mime_type="audio/wav",
                                                                                         data=raw[:77]))])),
            types.Part(executable_code=types.ExecutableCode(code="print(2)", language=types.Language.PYTHON)),
            types.Part(code_execution_result=types.CodeExecutionResult(outcome=types.Outcome.OUTCOME_OK,
                                                                       output="2")),
        ]),
        actions=EventActions(
            skip_summarization=True, state_delta={"topic": "x", "user:lang": "en", "app:n": [1, {"a": None}]},
            artifact_delta={"report.txt": 3}, transfer_to_agent="helper", transfer_reason="needs help",
            escalate=False,
            requested_tool_confirmations={"call-1": ToolConfirmation(hint="Run it?", confirmed=True,
                                                                     payload={"budget": 5})},
            compaction=EventCompaction(start_timestamp=1.5, end_timestamp=2.5,
                                       compacted_content=types.Content(role="model",
                                                                       parts=[types.Part(text="summary")])),
            end_of_agent=True, agent_state={"step": 2}, rewind_before_invocation_id="inv-0",
            route=["left", 2, True], set_model_response={"answer": 42},
        ),
        output={"result": [1, "two"]},
        node_info=NodeInfo(path="wf/planner@1", output_for=["wf"], message_as_output=True),
        long_running_tool_ids={"call-2", "call-1"},
    )


# -- state scopes ---------------------------------------------------------------
def test_scoped_state_is_shared_by_app_user_and_session(svc):
    async def scenario():
        s1 = await svc.create_session(app_name=APP, user_id=USER, session_id="s1",
                                      state={"app:theme": "dark", "user:lang": "en", "draft": 1, "temp:x": 0})
        assert s1.state == {"app:theme": "dark", "user:lang": "en", "draft": 1}
        s2 = await svc.create_session(app_name=APP, user_id=USER, session_id="s2")
        assert s2.state == {"app:theme": "dark", "user:lang": "en"}
        bob = await svc.create_session(app_name=APP, user_id="bob", session_id="s1")
        assert bob.state == {"app:theme": "dark"}
        other_app = await svc.create_session(app_name="other", user_id=USER, session_id="s1")
        assert other_app.state == {}

        await svc.append_event(s1, text_event("hi", delta={"app:theme": "light", "user:lang": "fr", "draft": 2}))
        assert (await svc.get_session(app_name=APP, user_id=USER, session_id="s2")).state == {
            "app:theme": "light", "user:lang": "fr"}
        assert (await svc.get_session(app_name=APP, user_id="bob", session_id="s1")).state == {"app:theme": "light"}
        assert (await svc.get_session(app_name=APP, user_id=USER, session_id="s1")).state == {
            "app:theme": "light", "user:lang": "fr", "draft": 2}
        assert await svc.get_user_state(app_name=APP, user_id=USER) == {"lang": "fr"}
        assert await svc.get_user_state(app_name=APP, user_id="bob") == {}
        assert await svc.get_user_state(app_name="nobody", user_id=USER) == {}
    run(scenario())


def test_delta_values_replace_and_none_is_stored(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, state={"cfg": {"a": 1, "b": 2}, "keep": "k"})
        await svc.append_event(s, text_event("1", delta={"cfg": {"c": 3}, "gone": None, "user:u": None}))
        await svc.append_event(s, text_event("2", delta={"n": 1}))
        await svc.append_event(s, text_event("3", delta={"n": 2}))
        expected = {"cfg": {"c": 3}, "keep": "k", "gone": None, "user:u": None, "n": 2}
        assert s.state == expected
        got = await svc.get_session(app_name=APP, user_id=USER, session_id=s.id)
        assert got.state == expected
        assert await svc.get_user_state(app_name=APP, user_id=USER) == {"u": None}
    run(scenario())


def test_temp_keys_live_in_memory_only(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, state={"temp:boot": 1})
        assert s.state == {}
        event = text_event("hi", delta={"temp:scratch": [1], "kept": True})
        returned = await svc.append_event(s, event)
        assert returned is event
        assert event.actions.state_delta == {"kept": True}  # trimmed from the event object
        assert s.state == {"temp:scratch": [1], "kept": True}  # applied to the live session
        got = await svc.get_session(app_name=APP, user_id=USER, session_id=s.id)
        assert got.state == {"kept": True}
        assert got.events[0].actions.state_delta == {"kept": True}
    run(scenario())


def test_get_session_equals_the_live_session(svc):
    """``get_session(...) == session`` for the object create/append left (with the
    marker included: adk_lite keeps it equal to the stored revision)."""
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="eq", state={"user:a": 1})
        assert await svc.get_session(app_name=APP, user_id=USER, session_id="eq") == s
        for i in range(3):
            event = text_event(f"m{i}", delta={"i": i, "app:last": i})
            await svc.append_event(s, event)
            assert s.last_update_time == event.timestamp
            got = await svc.get_session(app_name=APP, user_id=USER, session_id="eq")
            assert got == s
            assert got.last_update_time == event.timestamp
    run(scenario())


# -- events ---------------------------------------------------------------------
def test_events_come_back_in_order(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER)
        stamps = [100.0, 100.0, 100.0, 101.5, 101.5, 102.0]  # equal timestamps: append order
        for i, ts in enumerate(stamps):
            await svc.append_event(s, text_event(f"m{i}", ts=ts))
        got = await svc.get_session(app_name=APP, user_id=USER, session_id=s.id)
        assert [e.content.parts[0].text for e in got.events] == [f"m{i}" for i in range(6)]
        assert [e.id for e in got.events] == [e.id for e in s.events]
    run(scenario())


def test_timestamps_in_a_dst_repeated_hour_are_exact(svc):
    """Epoch floats do not go through local time: 01:30 happens twice in New York
    on 2026-11-01, and both events keep their exact timestamps and order."""
    async def scenario():
        tz = zoneinfo.ZoneInfo("America/New_York")
        first = datetime.datetime(2026, 11, 1, 1, 30, 0, 123457, tzinfo=tz, fold=0).timestamp()
        second = datetime.datetime(2026, 11, 1, 1, 30, 0, 123457, tzinfo=tz, fold=1).timestamp()
        assert second - first == 3600
        s = await svc.create_session(app_name=APP, user_id=USER)
        await svc.append_event(s, text_event("first", ts=first + 1e-6 / 3))
        await svc.append_event(s, text_event("second", ts=second))
        got = await svc.get_session(app_name=APP, user_id=USER, session_id=s.id)
        assert [e.timestamp for e in got.events] == [first + 1e-6 / 3, second]
        assert got.last_update_time == second
        after = await svc.get_session(app_name=APP, user_id=USER, session_id=s.id,
                                      config=GetSessionConfig(after_timestamp=second))
        assert [e.content.parts[0].text for e in after.events] == ["second"]
    run(scenario())


@pytest.mark.parametrize("config, expected", [
    (None, [1, 2, 3, 4, 5]),
    (GetSessionConfig(), [1, 2, 3, 4, 5]),
    (GetSessionConfig(num_recent_events=0), []),
    (GetSessionConfig(num_recent_events=2), [4, 5]),
    (GetSessionConfig(num_recent_events=9), [1, 2, 3, 4, 5]),
    (GetSessionConfig(after_timestamp=3.0), [3, 4, 5]),  # inclusive
    (GetSessionConfig(after_timestamp=3.5), [4, 5]),
    (GetSessionConfig(after_timestamp=6.0), []),
    (GetSessionConfig(num_recent_events=2, after_timestamp=2.0), [4, 5]),
    (GetSessionConfig(num_recent_events=4, after_timestamp=3.0), [3, 4, 5]),
])
def test_get_session_config_filters(svc, config, expected):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="f")
        for i in range(1, 6):
            await svc.append_event(s, text_event(str(i), ts=float(i)))
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="f", config=config)
        assert [int(e.content.parts[0].text) for e in got.events] == expected
        assert got.state == {}
    run(scenario())


def test_negative_num_recent_events_is_refused_by_adk():
    with pytest.raises(ValueError):
        GetSessionConfig(num_recent_events=-1)


def test_partial_events_are_returned_unstored(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER)
        partial = text_event("stream...", delta={"k": 1, "temp:t": 2}, partial=True)
        assert await svc.append_event(s, partial) is partial
        assert s.events == [] and s.state == {}
        assert partial.actions.state_delta == {"k": 1, "temp:t": 2}  # untouched
        got = await svc.get_session(app_name=APP, user_id=USER, session_id=s.id)
        assert got.events == [] and got.state == {}
    run(scenario())


def test_full_event_round_trips(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="full")
        event = full_event()
        original = event.model_copy(deep=True)
        await svc.append_event(s, event)
        assert event == original  # no temp: keys, so nothing trimmed
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="full")
        assert got.events == [original]
        assert got.events[0].content.parts[1].inline_data.data == bytes(range(256)) * 2
        assert got.events[0].actions.requested_tool_confirmations["call-1"].payload == {"budget": 5}
        assert got.state == {"topic": "x", "user:lang": "en", "app:n": [1, {"a": None}]}
    run(scenario())


def test_full_event_matches_what_in_memory_gives_back(target):
    """Not parametrized: both services side by side, events and sessions compared."""
    async def scenario():
        results = []
        for kind in ("in_memory", "adk_lite"):
            service = make_service(kind, target)
            s = await service.create_session(app_name=APP, user_id=USER, session_id="x", state={"a": 1})
            await service.append_event(s, full_event())
            await service.append_event(s, text_event("bye", ts=1_767_225_601.0, delta={"temp:t": 1, "b": 2}, id="bye"))
            got = await service.get_session(app_name=APP, user_id=USER, session_id="x")
            results.append(got.model_dump(exclude={"last_update_time"}))
            results.append([e.model_dump_json() for e in got.events])
            if kind == "adk_lite":
                await service.close()
        assert results[0] == results[2]
        assert results[1] == results[3]
    run(scenario())


# -- ids ------------------------------------------------------------------------
def test_padded_ids_are_stripped_and_blank_ids_generated(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="  padded\t")
        assert s.id == "padded"
        assert (await svc.get_session(app_name=APP, user_id=USER, session_id=" padded ")).id == "padded"
        generated = {(await svc.create_session(app_name=APP, user_id=USER, session_id=sid)).id
                     for sid in (None, "", None)}
        assert len(generated) == 3 and all(len(g) == 36 for g in generated)
        await svc.delete_session(app_name=APP, user_id=USER, session_id=" padded ")
        assert await svc.get_session(app_name=APP, user_id=USER, session_id="padded") is None
    run(scenario())


# -- list, delete, errors ---------------------------------------------------------
def test_list_sessions_oldest_first_without_events(svc):
    async def scenario():
        a = await svc.create_session(app_name=APP, user_id=USER, session_id="a", state={"user:k": 1})
        b = await svc.create_session(app_name=APP, user_id="bob", session_id="b", state={"app:k": 2})
        c = await svc.create_session(app_name=APP, user_id=USER, session_id="c", state={"own": 3})
        await svc.append_event(a, text_event("later", ts=c.last_update_time + 10))
        listed = (await svc.list_sessions(app_name=APP, user_id=USER)).sessions
        assert [x.id for x in listed] == ["c", "a"]
        assert all(x.events == [] for x in listed)
        assert listed[0].state == {"own": 3, "user:k": 1, "app:k": 2}
        everyone = (await svc.list_sessions(app_name=APP)).sessions
        assert [(x.user_id, x.id) for x in everyone] == [("bob", "b"), (USER, "c"), (USER, "a")]
        assert everyone[0].state == {"app:k": 2}
        assert (await svc.list_sessions(app_name="none")).sessions == []
        assert b.id == "b"
    run(scenario())


def test_delete_removes_the_session_but_not_app_and_user_state(svc):
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="d",
                                     state={"user:u": 1, "app:a": 2, "own": 3})
        await svc.append_event(s, text_event("x"))
        await svc.delete_session(app_name=APP, user_id=USER, session_id="d")
        assert await svc.get_session(app_name=APP, user_id=USER, session_id="d") is None
        await svc.delete_session(app_name=APP, user_id=USER, session_id="d")  # unknown: a no-op
        again = await svc.create_session(app_name=APP, user_id=USER, session_id="d")
        assert again.state == {"user:u": 1, "app:a": 2}
        assert again.events == []
    run(scenario())


def test_errors_are_adks_own(svc):
    async def scenario():
        await svc.create_session(app_name=APP, user_id=USER, session_id="dup")
        with pytest.raises(AlreadyExistsError):
            await svc.create_session(app_name=APP, user_id=USER, session_id="dup")
        with pytest.raises(AlreadyExistsError):
            await svc.create_session(app_name=APP, user_id=USER, session_id=" dup ")
        ghost = Session(id="ghost", app_name=APP, user_id=USER)
        with pytest.raises(SessionNotFoundError):
            await svc.append_event(ghost, text_event("boo"))
        assert await svc.get_session(app_name=APP, user_id=USER, session_id="ghost") is None
        assert await svc.get_session(app_name="nope", user_id=USER, session_id="dup") is None
    run(scenario())


def test_reappending_an_equal_event_is_a_no_op(svc):
    """As InMemory's dedupe of a re-delivered event: no duplicate, no second delta."""
    async def scenario():
        s = await svc.create_session(app_name=APP, user_id=USER, session_id="r")
        event = text_event("once", delta={"n": 1})
        await svc.append_event(s, event)
        fresh = await svc.get_session(app_name=APP, user_id=USER, session_id="r")
        assert await svc.append_event(fresh, event.model_copy(deep=True)) == event
        got = await svc.get_session(app_name=APP, user_id=USER, session_id="r")
        assert [e.id for e in got.events] == [event.id]
    run(scenario())
