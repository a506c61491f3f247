"""fork_session and trim_compacted with a real google.adk Runner (scripted model, no
network): a fork continued by a second Runner, compared with ADK's own rewind_async;
and the LLM request a Runner builds from a trimmed session equals the untrimmed one."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import AsyncGenerator

import pytest

pytest.importorskip("google.adk")

from google.adk.agents import LlmAgent  # noqa: E402
from google.adk.apps import App  # noqa: E402
from google.adk.apps.app import EventsCompactionConfig  # noqa: E402
from google.adk.apps.base_events_summarizer import BaseEventsSummarizer  # noqa: E402
from google.adk.events import Event, EventActions  # noqa: E402
from google.adk.events.event_actions import EventCompaction  # noqa: E402
from google.adk.models.llm_request import LlmRequest  # noqa: E402
from google.adk.models.llm_response import LlmResponse  # noqa: E402
from google.adk.runners import Runner  # noqa: E402
from google.adk.sessions import InMemorySessionService  # noqa: E402
from google.adk.tools import FunctionTool  # noqa: E402
from google.genai import types  # noqa: E402

from adk_lite.adk import DatabaseSessionService, InvocationNotFoundError  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples"))
from adk_agent import ScriptedLlm, recall, remember  # noqa: E402

pytestmark = pytest.mark.adk

APP, USER = "lifecycle", "alice"


def agent(model=None):
    return LlmAgent(name="memory_agent", model=model or ScriptedLlm(), instruction="Remember what the user says.",
                    tools=[FunctionTool(remember), FunctionTool(recall)])


async def say(runner, session_id, *texts):
    for text in texts:
        message = types.Content(role="user", parts=[types.Part(text=text)])
        async for _event in runner.run_async(user_id=USER, session_id=session_id, new_message=message):
            pass


def stored(svc, sid):
    """Everything stored of a session, as rows: its row, its session-scope state rows
    (app: and user: state are shared with the fork) and its events (bodies as text)."""
    row, state, events = svc._store.read_session(APP, USER, sid, None, None)
    return row, [r for r in state if r[0] == "session"], events


def test_fork_before_the_third_invocation_continued_by_a_second_runner(tmp_path):
    async def scenario():
        svc = DatabaseSessionService(str(tmp_path / "s.db"))
        await svc.create_session(app_name=APP, user_id=USER, session_id="src", state={"init": "created"})
        first = Runner(app_name=APP, agent=agent(), session_service=svc)
        await say(first, "src", "remember colour blue", "remember city Lisbon", "remember food pizza",
                  "what do you know?")
        source = await svc.get_session(app_name=APP, user_id=USER, session_id="src")
        invocations = list(dict.fromkeys(e.invocation_id for e in source.events))
        assert len(invocations) == 4
        before = stored(svc, "src")

        fork = await svc.fork_session(app_name=APP, user_id=USER, session_id="src", new_session_id="fork",
                                      before_invocation_id=invocations[2])
        cut = next(i for i, e in enumerate(source.events) if e.invocation_id == invocations[2])
        assert fork.events == source.events[:cut] and cut == 8
        assert fork.state["last_key"] == "city" and fork.state["init"] == "created"
        assert "temp:last_write" not in fork.state
        assert (await svc.get_lineage(app_name=APP, user_id=USER, session_id="fork"))["events"] == cut
        with pytest.raises(InvocationNotFoundError):
            await svc.fork_session(app_name=APP, user_id=USER, session_id="src", before_invocation_id="nope")

        second = Runner(app_name=APP, agent=agent(), session_service=svc)  # another path from the fork
        await say(second, "fork", "remember pet cat")
        continued = await svc.get_session(app_name=APP, user_id=USER, session_id="fork")
        assert continued.state["last_key"] == "pet" and len(continued.events) == cut + 4
        assert stored(svc, "src") == before  # the source, byte for byte: row, state rows, event rows

        # ADK's own rewind, on an InMemorySessionService copy of the source
        memory = InMemorySessionService()
        copy = await memory.create_session(app_name=APP, user_id=USER, session_id="src", state={"init": "created"})
        for event in source.events:
            await memory.append_event(copy, event.model_copy(deep=True))
        rewinder = Runner(app_name=APP, agent=agent(), session_service=memory)
        await rewinder.rewind_async(user_id=USER, session_id="src", rewind_before_invocation_id=invocations[2])
        rewound = (await memory.get_session(app_name=APP, user_id=USER, session_id="src")).state
        restored = {k: v for k, v in rewound.items() if ":" not in k and v is not None}
        assert restored and all(fork.state[k] == v for k, v in restored.items())
        # where they differ, the fork is exact: rewind replays deltas alone and drops create_session's key
        assert rewound["init"] is None and fork.state["init"] == "created"
        await first.close()
        await second.close()
        await svc.close()
    asyncio.run(scenario())


class ScriptedSummarizer(BaseEventsSummarizer):
    """Summarises a list of events into one compaction event, without a model."""

    async def maybe_summarize_events(self, *, events: list[Event]) -> Event:
        text = " / ".join(p.text or "call" for e in events if e.content for p in e.content.parts or [])
        return Event(author="user", invocation_id=Event.new_id(), actions=EventActions(compaction=EventCompaction(
            start_timestamp=events[0].timestamp, end_timestamp=events[-1].timestamp,
            compacted_content=types.Content(role="model", parts=[types.Part(text=f"summary: {text}")]))))


class RecordingLlm(ScriptedLlm):
    """The scripted model, keeping every request it is given."""

    requests: list = []

    async def generate_content_async(self, llm_request: LlmRequest,
                                     stream: bool = False) -> AsyncGenerator[LlmResponse, None]:
        self.requests.append(llm_request.model_copy(deep=True))
        async for response in super().generate_content_async(llm_request, stream):
            yield response


def without_call_ids(contents: list) -> list:
    """The request's contents as JSON minus function-call ids: ADK gives the calls
    of each run new uuids (the stored calls are the same events in both sessions)."""
    dumped = [c.model_dump(mode="json", exclude_none=True) for c in contents]
    for content in dumped:
        for part in content.get("parts", []):
            for key in ("function_call", "function_response"):
                part.get(key, {}).pop("id", None)
    return dumped


def test_the_request_built_from_a_trimmed_session_is_the_same(tmp_path):
    async def scenario():
        svc = DatabaseSessionService(str(tmp_path / "s.db"))
        config = EventsCompactionConfig(compaction_interval=2, overlap_size=0, summarizer=ScriptedSummarizer())
        app = App(name=APP, root_agent=agent(), events_compaction_config=config)
        runner = Runner(app=app, session_service=svc)
        await svc.create_session(app_name=APP, user_id=USER, session_id="long")
        await say(runner, "long", *(f"remember k{i} v{i}" for i in range(7)))
        session = await svc.get_session(app_name=APP, user_id=USER, session_id="long")
        assert sum(1 for e in session.events if e.actions.compaction) >= 2
        await svc.fork_session(app_name=APP, user_id=USER, session_id="long", new_session_id="untrimmed")
        state = session.state

        result = await svc.trim_compacted(app_name=APP, user_id=USER, session_id="long")
        assert result["events"] > 10 and result["bytes"] > 0
        trimmed = await svc.get_session(app_name=APP, user_id=USER, session_id="long")
        assert trimmed.state == state and all(e.actions.compaction for e in session.events
                                              if e not in trimmed.events and e.actions.compaction)

        requests = {}
        for sid in ("long", "untrimmed"):
            model = RecordingLlm()
            model.requests = []
            replay = Runner(app=App(name=APP, root_agent=agent(model)), session_service=svc)
            await say(replay, sid, "remember k7 v7")  # (recall would count raw events: a tool's view)
            requests[sid] = [(without_call_ids(r.contents), r.config.system_instruction) for r in model.requests]
            await replay.close()
        assert requests["long"] and requests["long"] == requests["untrimmed"]
        await runner.close()
        await svc.close()
    asyncio.run(scenario())
