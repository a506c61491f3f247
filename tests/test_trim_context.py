"""Trim keeps every agent's context identical: for every agent, branch, isolation scope
(and include_contents / single-turn / node path) view of a session, the LLM request
contents google-adk's own request builder (``contents.request_processor`` on a real
``InvocationContext``) makes after ``trim_compacted`` equal the ones it made before.

Sessions are generated (hypothesis) with several agents, branches, tool sub-branches,
isolation scopes in both spellings, compactions (scoped, unscoped, overlapping, forged),
rewinds, function calls and responses; then the same on both backends, through the sync
service and the ADK adapter."""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any, AsyncGenerator

import orjson
import pytest

pytest.importorskip("google.adk")

from google.adk.agents import LlmAgent  # noqa: E402
from google.adk.agents.invocation_context import InvocationContext  # noqa: E402
from google.adk.events import Event  # noqa: E402
from google.adk.flows.llm_flows.contents import request_processor  # noqa: E402
from google.adk.models.base_llm import BaseLlm  # noqa: E402
from google.adk.models.llm_request import LlmRequest  # noqa: E402
from google.adk.models.llm_response import LlmResponse  # noqa: E402
from google.adk.sessions import InMemorySessionService, Session  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import adk_lite  # noqa: E402
from adk_lite import lifecycle  # noqa: E402
from adk_lite.adk import DatabaseSessionService as AdkService  # noqa: E402
from adk_lite.adk.convert import event_from_row  # noqa: E402
from adk_lite.rows import EventRow  # noqa: E402

pytestmark = pytest.mark.adk

APP, USER = "app", "alice"
AGENTS = ("coord", "task", "model")
BRANCHES = (None, "", "root", "root.a", "root.a.b", "root.b", "root.t@c1", "root.a.tool@c3")
SCOPES = (None, "c1", "c2")
CALL_IDS = ("c1", "c2", "c3", "x")
PATHS = ("", "", "", "wf@1/n@1")


class NoLlm(BaseLlm):
    """A model that is never called: only the request is built."""

    model: str = "none"

    async def generate_content_async(self, llm_request: LlmRequest,
                                     stream: bool = False) -> AsyncGenerator[LlmResponse, None]:
        raise AssertionError("no model call in these tests")
        yield


_AGENTS: dict = {}
_SERVICE = InMemorySessionService()


def agent(name: str, include: str, single: bool) -> LlmAgent:
    key = (name, include, single)
    if key not in _AGENTS:
        _AGENTS[key] = LlmAgent(name=name, model=NoLlm(), include_contents=include,
                                mode="single_turn" if single else None)
    return _AGENTS[key]


def views(events: list[Event]) -> list[tuple]:
    """Every view worth building: each agent (authors and a stranger), each branch in
    the session plus one below each and none, each isolation scope in the session plus
    each pending call id (a task agent about to start) and none, each node path; in
    both include_contents modes and as a single-turn agent."""
    names = sorted({e.author for e in events if e.author != "user"} | {"stranger"})
    branches = sorted({e.branch for e in events if e.branch} | {None}
                      | {f"{e.branch}.leaf" for e in events if e.branch}, key=str)
    answered = {r.id for e in events for r in e.get_function_responses()}
    scopes = sorted({e.isolation_scope for e in events} | {None}
                    | {c.id for e in events for c in e.get_function_calls() if c.id and c.id not in answered},
                    key=str)
    paths = sorted({e.node_info.path or None for e in events} | {None}, key=str)
    modes = (("default", False), ("none", False), ("default", True))
    return [(n, b, s, p, i, single) for n, b, s, p, (i, single) in itertools.product(names, branches, scopes,
                                                                                       paths, modes)]


async def request(contexts: dict, session: Session, view: tuple) -> Any:
    """The contents ADK's request builder puts in the LLM request for ``view``, as JSON
    (or the error it raises, which must then be the same error). One
    ``InvocationContext`` per agent, its view fields set per call (building one costs
    more than the request)."""
    name, branch, scope, path, include, single = view
    key = (name, include, single)
    if key not in contexts:
        contexts[key] = InvocationContext(session_service=_SERVICE, invocation_id="now",
                                          agent=agent(name, include, single), session=session)
    ctx = contexts[key]
    ctx.branch, ctx.isolation_scope, ctx.node_path = branch, scope, path
    llm_request = LlmRequest()
    try:
        async for _ in request_processor.run_async(ctx, llm_request):
            pass
    except Exception as e:  # noqa: BLE001 - compared, not hidden
        return f"raises {type(e).__name__}: {e}"
    return [c.model_dump(mode="json", exclude_none=True) for c in llm_request.contents]


def assert_same_requests(before: list[Event], after: list[Event]) -> None:
    async def build(events):
        session, contexts = Session(id="s", app_name=APP, user_id=USER, events=events), {}
        return {view: await request(contexts, session, view) for view in views(before)}
    old, new = asyncio.run(build(before)), asyncio.run(build(after))
    for view in old:
        assert new[view] == old[view], f"the request of view {view} changed"


# -- sessions: ADK-shaped event dicts ---------------------------------------------------
def content(author: str, kind: str, value: Any) -> dict:
    role = "user" if author == "user" or kind == "response" else "model"
    if kind == "text":
        part = {"text": value}
    elif kind == "call":
        call_id, args = value
        part = {"functionCall" if call_id == "x" else "function_call": {"id": call_id, "name": "f", "args": args}}
    else:
        part = {"function_response": {"id": value, "name": "f", "response": {"ok": True}}}
    return {"role": role, "parts": [part]}


def event(n: int, inv: str, author: str, ts: float, *, branch=None, scope=None, camel=False, path="",
          kind="text", value: Any = None) -> dict:
    """One event in ADK's JSON shape; ``camel`` spells the scope ``isolationScope``."""
    data: dict[str, Any] = {"id": f"e{n}", "invocation_id": inv, "author": author, "timestamp": ts}
    if branch is not None:
        data["branch"] = branch
    if scope is not None:
        data["isolationScope" if camel else "isolation_scope"] = scope
    if path:
        data["node_info"] = {"path": path}
    if kind in ("text", "call", "response"):
        data["content"] = content(author, kind, value if value is not None else f"said {n}")
    elif kind == "compaction":
        start, end, summary = value
        compaction: dict[str, Any] = {"start_timestamp": start, "end_timestamp": end}
        compaction["compacted_content"] = {"role": "model", "parts": [{"text": f"summary {n}"}] if summary else []}
        data["actions"] = {"compaction": compaction}
    elif kind == "rewind":
        data["actions"] = {"rewind_before_invocation_id": value}
    else:
        data["actions"] = {"state_delta": {"k": n}}
    return data


def ordered(events: list[dict]) -> list[dict]:
    """As a store lists them: by timestamp, then append order."""
    return sorted(events, key=lambda e: e["timestamp"])


def rows_of(events: list[dict]) -> list[EventRow]:
    """The store's rows for ADK-shaped dicts (the columns out of the body)."""
    rows = []
    for data in ordered(events):
        body = {k: v for k, v in data.items()
                if k not in ("id", "invocation_id", "author", "branch", "timestamp", "body_branch")}
        if "body_branch" in data and data.get("branch") is None:
            body["branch"] = data["body_branch"]
        rows.append(EventRow(data["id"], data["invocation_id"], data["author"], data.get("branch"),
                             data["timestamp"], orjson.dumps(body).decode()))
    return rows


def check_trim(events: list[dict]) -> list[str]:
    """Trim the rows of ``events`` with :func:`lifecycle.compacted`, compare every
    view's request before and after; returns the ids trimmed."""
    rows = rows_of(events)
    gone = set(lifecycle.compacted(rows))
    before = [event_from_row(r) for r in rows]
    after = [event_from_row(r) for r in rows if r.event_id not in gone]
    assert_same_requests(before, after)
    return sorted(gone)


timestamps = st.integers(1, 9).map(float)


@st.composite
def sessions(draw) -> list[dict]:
    events = []
    for n in range(draw(st.integers(2, 13))):
        kind = draw(st.sampled_from(["text", "text", "call", "response", "state", "compaction", "compaction",
                                     "rewind"]))
        author = draw(st.sampled_from(("user",) + AGENTS))
        value: Any = None
        if kind == "call":
            value = (draw(st.sampled_from(CALL_IDS)), draw(st.sampled_from([{}, {"q": n}])))
        elif kind == "response":
            value = draw(st.sampled_from(CALL_IDS))
            author = draw(st.sampled_from(("user", author)))
        elif kind == "compaction":
            start, end = draw(timestamps), draw(timestamps)
            bounds = draw(st.sampled_from(["ordered", "as drawn", "forged", "huge"]))
            if bounds == "ordered":
                start, end = min(start, end), max(start, end)
            elif bounds == "forged":
                start, end = draw(st.sampled_from([(str(start), str(end)), (end + 0.5, start - 0.5), (True, 1e12), (start, "9")]))
            elif bounds == "huge":
                start, end = -1e18, 1e18
            value = (start, end, draw(st.booleans()) or bounds == "ordered")
        elif kind == "rewind":
            value = draw(st.sampled_from(["i1", "i2", "i3", "i4", "nope"]))
        events.append(event(n, draw(st.sampled_from(["i1", "i2", "i3", "i4"])), author, draw(timestamps),
                            branch=draw(st.sampled_from(BRANCHES)), scope=draw(st.sampled_from(SCOPES)),
                            camel=draw(st.booleans()), path=draw(st.sampled_from(PATHS)), kind=kind, value=value))
        extra = draw(st.integers(0, 19))
        if extra == 0:  # a body that names another invocation (pydantic reads it first)
            events[-1]["invocationId"] = draw(st.sampled_from(["i1", "i2", "i3", "i4"]))
        elif extra == 1:  # a branch in the body only (the row's column empty)
            events[-1]["body_branch"] = draw(st.sampled_from(BRANCHES[2:]))
        elif extra == 2:  # a transfer (not the start of a turn)
            events[-1].setdefault("actions", {})["transfer_to_agent"] = "task"
        elif extra == 3 and "content" in events[-1]:  # a thought: shown only with include_thoughts
            events[-1]["content"]["parts"][0]["thought"] = True
        elif extra == 4:  # a transcription instead of content
            events[-1].pop("content", None)
            events[-1]["input_transcription"] = {"text": f"heard {n}"}
    return events


@settings(max_examples=int(os.environ.get("ADK_LITE_TRIM_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sessions())
def test_every_view_of_a_generated_session_is_the_same_after_trim(events):
    check_trim(events)


# -- the cases issue 19 names, and forged ranges ------------------------------------------
def delegation(camel: bool) -> list[dict]:
    """A coordinator delegates to a task agent (scope ``c1``), whose private turns come
    before an unscoped summary that covers them by time (and covers the delegation)."""
    return [event(1, "i1", "user", 1.0, value="plan a trip"),
            event(2, "i1", "coord", 2.0, kind="call", value=("c1", {"goal": "trip"})),
            event(3, "i1", "user", 3.0, scope="c1", camel=camel, value="task: where to?"),
            event(4, "i1", "task", 4.0, scope="c1", camel=camel, value="Lisbon"),
            event(5, "i1", "coord", 5.0, value="done"),
            event(6, "i2", "user", 6.0, kind="compaction", value=(1.0, 5.0, True))]


@pytest.mark.parametrize("camel", [False, True], ids=["isolation_scope", "isolationScope"])
def test_an_unscoped_summary_does_not_trim_a_task_agents_turns(camel):
    gone = check_trim(delegation(camel))
    assert gone == ["e1", "e5"]  # the coordinator's own turns; the delegating call builds the task's first turn


@pytest.mark.parametrize("camel", [False, True], ids=["isolation_scope", "isolationScope"])
def test_a_summary_in_the_task_scope_trims_only_that_scope(camel):
    events = delegation(camel)[:-1] + [event(6, "i2", "user", 6.0, scope="c1", camel=not camel, kind="compaction",
                                             value=(1.0, 5.0, True))]
    assert check_trim(events) == ["e3", "e4"]


def test_the_first_event_of_a_rewound_invocation_is_never_trimmed():
    # i2 starts at 3.0; another agent speaks at 3.5; the rewind annuls 3.0 .. 5.0. A summary made
    # after the rewind covers 3.0 only: trimming it would move the rewind's start to 4.0 and
    # bring "leak" back into the request.
    events = [event(1, "i1", "user", 1.0, value="hello"),
              event(2, "i1", "coord", 2.0, value="hi"),
              event(3, "i2", "user", 3.0, kind="state"),
              event(4, "i3", "model", 3.5, value="leak"),
              event(5, "i2", "coord", 4.0, value="rewound answer"),
              event(6, "r", "user", 5.0, kind="rewind", value="i2"),
              event(7, "i4", "user", 6.0, kind="compaction", value=(3.0, 3.0, True))]
    assert check_trim(events) == []
    for camel_key in (True, False):  # the marker in ADK's other spelling
        events[5]["actions"] = {"rewindBeforeInvocationId" if camel_key else "rewind_before_invocation_id": "i2"}
        assert check_trim(events) == []


@pytest.mark.parametrize("forged", [(-1e18, 1e18), (0.0, 99.0), ("0", "99"), (5.0, 1.0), (99.0, -99.0),
                                    (-1.7e308, 1.7e308), (True, 1e12)])
def test_a_forged_range_never_trims_what_a_view_shows(forged):
    # the summary sits before the events its range claims, in another scope and branch, or is malformed
    events = [event(1, "i1", "user", 1.0, kind="compaction", value=(*forged, True)),
              event(2, "i1", "user", 2.0, value="one"),
              event(3, "i1", "coord", 3.0, value="two", branch="root.a"),
              event(4, "i1", "task", 4.0, value="three", scope="c2"),
              event(5, "i2", "coord", 5.0, branch="root.b", kind="compaction", value=(*forged, True)),
              event(6, "i2", "task", 6.0, scope="c1", kind="compaction", value=(*forged, True))]
    assert check_trim(events) == []


def test_a_tool_sub_branch_keeps_its_call():
    # the call c1 is what makes "root.t@c1" a tool's sub-branch (hidden from a root agent)
    events = [event(1, "i1", "user", 1.0, value="go"),
              event(2, "i1", "coord", 2.0, kind="call", value=("c1", {})),
              event(3, "i1", "user", 3.0, kind="response", value="c1"),
              event(4, "i1", "coord", 4.0, branch="root.t@c1", value="progress"),
              event(5, "i2", "user", 5.0, kind="compaction", value=(1.0, 3.0, True))]
    assert check_trim(events) == ["e1"]


def test_a_pending_call_is_kept_for_its_late_response():
    events = [event(1, "i1", "user", 1.0, value="go"),
              event(2, "i1", "coord", 2.0, kind="call", value=("c3", {})),
              event(3, "i2", "user", 3.0, kind="compaction", value=(1.0, 2.0, True))]
    assert check_trim(events) == ["e1"]
    late = events + [event(4, "i3", "coord", 4.0, kind="response", value="c3")]  # the tool answered
    assert check_trim(late) == ["e1"]


# -- through storage, both backends -----------------------------------------------------
STORED = [delegation(False), delegation(True),
          [event(1, "i1", "user", 1.0, value="hello"), event(2, "i1", "coord", 2.0, value="hi"),
           event(3, "i2", "user", 3.0, kind="state"), event(4, "i3", "model", 3.5, value="leak"),
           event(5, "i2", "coord", 4.0, value="rewound"), event(6, "r", "user", 5.0, kind="rewind", value="i2"),
           event(7, "i4", "user", 6.0, kind="compaction", value=(3.0, 3.0, True)),
           event(8, "i5", "coord", 7.0, branch="root.a", value="later"),
           event(9, "i5", "user", 8.0, branch="root", kind="compaction", value=(1.0, 7.5, True))]]


def stored_events(svc, sid: str) -> list[Event]:
    """The session's events as the ADK adapter reads the stored rows."""
    return [event_from_row(r) for r in svc.store.read_session(APP, USER, sid, None, None)[2]]


@pytest.mark.parametrize("case", range(len(STORED)))
def test_the_sync_service_trims_to_the_same_requests(svc_any, case):
    events = STORED[case]
    session = svc_any.create_session(APP, USER, session_id="s")
    svc_any.append_events(session, [adk_lite.Event.from_dict(e) for e in ordered(events)])
    before = stored_events(svc_any, "s")
    assert [e.isolation_scope for e in before] == [e.get("isolationScope", e.get("isolation_scope"))
                                                   for e in ordered(events)]
    expected = lifecycle.compacted(svc_any.store.read_session(APP, USER, "s", None, None)[2])
    result = svc_any.trim_compacted(APP, USER, "s")
    after = stored_events(svc_any, "s")
    assert result["events"] == len(expected) == len(before) - len(after) > 0
    assert_same_requests(before, after)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(events=sessions())
def test_generated_sessions_through_the_sync_service(svc_any, events):
    sid = f"s{next(_sids)}"
    session = svc_any.create_session(APP, USER, session_id=sid)
    svc_any.append_events(session, [adk_lite.Event.from_dict(e) for e in ordered(events)])
    before = stored_events(svc_any, sid)
    svc_any.trim_compacted(APP, USER, sid)
    assert_same_requests(before, stored_events(svc_any, sid))


_sids = itertools.count()


@pytest.mark.parametrize("case", range(len(STORED)))
def test_the_adk_adapter_trims_to_the_same_requests(target, case):
    async def scenario():
        svc = AdkService(target)
        session = await svc.create_session(app_name=APP, user_id=USER, session_id="s")
        for data in ordered(STORED[case]):
            await svc.append_event(session, Event.model_validate(data))
        before = (await svc.get_session(app_name=APP, user_id=USER, session_id="s")).events
        result = await svc.trim_compacted(app_name=APP, user_id=USER, session_id="s")
        after = (await svc.get_session(app_name=APP, user_id=USER, session_id="s")).events
        await svc.close()
        return result, before, after
    result, before, after = asyncio.run(scenario())
    assert result["events"] == len(before) - len(after) > 0
    assert_same_requests(before, after)


def test_a_rewind_committed_while_trim_waits_is_seen(backend, target):
    """Another writer holds the session (as an append does) and commits a rewind marker
    naming i2 while trim waits: trim must decide on the log with the marker in it."""
    import threading
    import time

    svc = adk_lite.DatabaseSessionService(target)
    try:
        session = svc.create_session(APP, USER, session_id="s")
        svc.append_events(session, [adk_lite.Event.from_dict(e) for e in STORED[2][:5]])  # i2 starts at 3.0
        svc.append_events(svc.get_session(APP, USER, "s"), [adk_lite.Event.from_dict(
            event(7, "i4", "user", 6.0, kind="compaction", value=(3.0, 3.0, True)))])
        marker = rows_of([event(6, "r", "user", 5.0, kind="rewind", value="i2")])[0]
        insert = ("INSERT INTO adk_events (app_name, user_id, session_id, event_id, invocation_id, author, branch, "
                  "timestamp, body) VALUES ({0}, {0}, {0}, {0}, {0}, {0}, {0}, {0}, {0})")
        if backend == "postgres":
            import psycopg
            writer = psycopg.connect(target)
            writer.execute("SELECT 1 FROM adk_sessions WHERE app_name = %s AND user_id = %s AND session_id = %s "
                           "FOR UPDATE", (APP, USER, "s"))
            writer.execute(insert.format("%s"), (APP, USER, "s", *marker))
        else:
            import sqlite3
            writer = sqlite3.connect(target, isolation_level=None)
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(insert.format("?"), (APP, USER, "s", *marker))
        result = {}
        trimmer = threading.Thread(target=lambda: result.update(svc.trim_compacted(APP, USER, "s")))
        trimmer.start()
        time.sleep(1.0)  # let trim reach its read (not a timing assertion: it must wait either way)
        writer.commit()
        trimmer.join()
        writer.close()
        assert result["events"] == 0
        assert [e.id for e in svc.get_session(APP, USER, "s").events] == ["e1", "e2", "e3", "e4", "e5", "e6", "e7"]
    finally:
        svc.close()
