"""The ADK adapter's cache of validated events (adk_lite.adk.cache): reads hand out
independent copies, never a stale event (delete and re-create, other writers, other
processes, ``adk-lite import --replace``), the bound holds, and it can be turned off."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("google.adk")

from google.adk.events import Event, EventActions  # noqa: E402
from google.adk.sessions.base_session_service import GetSessionConfig  # noqa: E402
from google.genai import types  # noqa: E402

from adk_lite.adk import DatabaseSessionService  # noqa: E402
from adk_lite.adk.cache import DEFAULT_SIZE, EventCache, build, recipe  # noqa: E402

pytestmark = pytest.mark.adk

APP, USER = "app", "alice"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(coro):
    return asyncio.run(coro)


def event(text="x", event_id=None, **delta):
    fields = {"id": event_id} if event_id else {}
    return Event(author="user", invocation_id="inv", content=types.Content(role="user", parts=[types.Part(text=text)]),
                 actions=EventActions(state_delta=delta), custom_metadata={"tags": ["a"]}, **fields)


def texts(session):
    return [e.content.parts[0].text for e in session.events]


async def filled(svc, sid="s", n=3, prefix="e"):
    session = await svc.create_session(app_name=APP, user_id=USER, session_id=sid)
    for i in range(n):
        await svc.append_event(session, event(f"{prefix}{i}", event_id=f"id{i}", k=i))
    return session


async def read(svc, sid="s", config=None):
    return await svc.get_session(app_name=APP, user_id=USER, session_id=sid, config=config)


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "sessions.db")


def test_reads_hand_out_independent_copies(path):
    async def scenario():
        svc = DatabaseSessionService(path)
        await filled(svc)
        first = await read(svc)
        assert svc.cache_info()["entries"] == 3
        pristine = [e.model_dump() for e in first.events]
        for e in first.events:  # mutate everything a caller could reach
            e.content.parts[0].text = "changed"
            e.content.parts.append(types.Part(text="extra"))
            e.actions.state_delta["k"] = "changed"
            e.actions.state_delta["new"] = 1
            e.custom_metadata["tags"].append("b")
            e.author = "someone"
        second = await read(svc)
        third = await read(svc)
        assert [e.model_dump() for e in second.events] == pristine
        assert [e.model_dump() for e in third.events] == pristine
        assert svc.cache_info()["hits"] == 6
        for a, b in zip(second.events, third.events):
            assert a is not b and a.content is not b.content and a.content.parts is not b.content.parts
            assert a.actions.state_delta is not b.actions.state_delta
            assert a.custom_metadata["tags"] is not b.custom_metadata["tags"]
            assert a.__pydantic_fields_set__ is not b.__pydantic_fields_set__
        # the copies behave as validated events: equal, same JSON, same fields set
        fresh = await read(DatabaseSessionService(path, event_cache_size=0))
        assert second.events == fresh.events
        assert [e.model_dump_json() for e in second.events] == [e.model_dump_json() for e in fresh.events]
        assert [e.model_fields_set for e in second.events] == [e.model_fields_set for e in fresh.events]
        await svc.close()
    run(scenario())


def test_recipe_snapshots_models_dicts_lists_sets_and_other_values():
    value = event("x", k={"deep": [1, {"z": 2}]})
    value.long_running_tool_ids = {"t1"}
    made = recipe(value)
    value.actions.state_delta["k"]["deep"][1]["z"] = 3  # changing the source later changes no copy
    value.long_running_tool_ids.add("t2")
    copy = build(made)
    assert copy.actions.state_delta == {"k": {"deep": [1, {"z": 2}]}} and copy.long_running_tool_ids == {"t1"}
    copy.long_running_tool_ids.add("t3")
    assert build(made).long_running_tool_ids == {"t1"}
    assert recipe("text") is None and recipe(3) is None
    odd = {"raw": bytearray(b"ab"), "ids": frozenset({"a"})}  # a mutable type without a rule: deep-copied
    made = recipe(odd)
    odd["raw"].append(1)
    build(made)["raw"].append(0)
    assert build(made) == {"raw": bytearray(b"ab"), "ids": frozenset({"a"})}


def test_flat_dicts_and_lists_are_copied_per_build_never_shared():
    """Dicts and lists of plain values (a function call's args, the empty deltas of
    EventActions, a list of strings) are built with one copy each: no two builds share one."""
    call = types.FunctionCall(id="c1", name="lookup", args={"order": "A-1", "fields": ["status", "eta"]})
    value = Event(author="agent", invocation_id="inv",
                  content=types.Content(role="model", parts=[types.Part(function_call=call)]))
    made = recipe(value)
    call.args["order"] = "changed at the source"
    first, second = build(made), build(made)
    for e in (first, second):
        assert e.content.parts[0].function_call.args == {"order": "A-1", "fields": ["status", "eta"]}
    first.content.parts[0].function_call.args["order"] = "B-2"
    first.content.parts[0].function_call.args["fields"].append("price")
    first.actions.artifact_delta["f"] = 1
    first.actions.state_delta["k"] = 1
    first.actions.requested_auth_configs["x"] = None
    third = build(made)
    for e in (second, third):
        assert e.content.parts[0].function_call.args == {"order": "A-1", "fields": ["status", "eta"]}
        assert e.actions.artifact_delta == {} and e.actions.state_delta == {}
        assert e.actions.requested_auth_configs == {}
    assert third == second and third.model_dump_json() == second.model_dump_json()
    assert third.model_fields_set == value.model_fields_set and third.__pydantic_fields_set__ is not \
        second.__pydantic_fields_set__


def test_cached_recipes_hold_no_class_list_or_set():
    """What the cache keeps is tuples, strings, numbers and dicts of them: never a class, a
    list or a set, which Python's collector tracks always (and every tuple above them), so
    that each full collection walks fewer objects of a full cache."""
    call = types.FunctionCall(id="c1", name="lookup", args={"fields": ["status"], "n": 2})
    value = Event(author="agent", invocation_id="inv", long_running_tool_ids={"c1"},
                  content=types.Content(role="model", parts=[types.Part(function_call=call), types.Part(text="t")]),
                  actions=EventActions(state_delta={"k": [1, {"z": [2]}]}))
    seen = []

    def walk(node):
        seen.append(type(node))
        assert not isinstance(node, (type, list, set, frozenset)), f"a recipe holds a {type(node).__name__}"
        for item in (node.values() if isinstance(node, dict) else node if isinstance(node, tuple) else ()):
            walk(item)

    made = recipe(value)
    walk(made)
    assert tuple in seen and dict in seen
    copy = build(made)
    assert copy == value and copy.model_fields_set == value.model_fields_set
    assert copy.long_running_tool_ids == {"c1"} and type(copy.long_running_tool_ids) is set
    assert copy.actions.state_delta == {"k": [1, {"z": [2]}]} and type(copy.content.parts) is list


def test_delete_and_recreate_serves_no_stale_event(path):
    """Same session id, same event ids, other content: the new incarnation's events."""
    async def scenario():
        svc = DatabaseSessionService(path)
        await filled(svc, prefix="old")
        assert texts(await read(svc)) == ["old0", "old1", "old2"]
        await svc.delete_session(app_name=APP, user_id=USER, session_id="s")
        assert await read(svc) is None
        await filled(svc, prefix="new", n=2)
        assert texts(await read(svc)) == ["new0", "new1"]
        await svc.close()
    run(scenario())


def test_another_instance_writes_and_recreates(path):
    async def scenario():
        a, b = DatabaseSessionService(path), DatabaseSessionService(path)
        session = await filled(a)
        assert len((await read(a)).events) == 3
        other = await read(b)
        await b.append_event(other, event("from b", event_id="id3"))
        assert texts(await read(a)) == ["e0", "e1", "e2", "from b"]
        await b.delete_session(app_name=APP, user_id=USER, session_id="s")
        await filled(b, prefix="b")
        assert texts(await read(a)) == ["b0", "b1", "b2"]
        recent = await read(a, config=GetSessionConfig(num_recent_events=2))
        assert texts(recent) == ["b1", "b2"]
        assert session is not None
        await a.close()
        await b.close()
    run(scenario())


def _child(path: str, code: str) -> None:
    script = textwrap.dedent("""
        import asyncio, sys
        from google.adk.events import Event
        from google.genai import types
        from adk_lite.adk import DatabaseSessionService

        def event(text, event_id):
            return Event(id=event_id, author="user", invocation_id="inv",
                         content=types.Content(role="user", parts=[types.Part(text=text)]))

        async def main(svc):
        """) + textwrap.indent(textwrap.dedent(code), "    ") + textwrap.dedent("""
            await svc.close()

        asyncio.run(main(DatabaseSessionService(sys.argv[1])))
        """)
    subprocess.run([sys.executable, "-c", script, path], check=True, cwd=ROOT, timeout=120)


def test_another_process_appends_deletes_and_recreates(path):
    async def scenario():
        svc = DatabaseSessionService(path)
        await filled(svc)
        assert texts(await read(svc)) == ["e0", "e1", "e2"]
        _child(path, """
            s = await svc.get_session(app_name="app", user_id="alice", session_id="s")
            await svc.append_event(s, event("child", "id3"))
        """)
        assert texts(await read(svc)) == ["e0", "e1", "e2", "child"]
        _child(path, """
            await svc.delete_session(app_name="app", user_id="alice", session_id="s")
            s = await svc.create_session(app_name="app", user_id="alice", session_id="s")
            for i in range(4):
                await svc.append_event(s, event(f"re{i}", f"id{i}"))
        """)
        assert texts(await read(svc)) == ["re0", "re1", "re2", "re3"]
        await svc.close()
    run(scenario())


def test_import_replace_serves_the_imported_events(path, tmp_path):
    """``adk-lite import --replace`` deletes and re-creates: a new incarnation."""
    async def scenario():
        svc = DatabaseSessionService(path)
        await filled(svc, prefix="before")
        assert texts(await read(svc))[0] == "before0"
        cli = [sys.executable, "-m", "adk_lite"]
        dump = subprocess.run(cli + ["export", path], check=True, capture_output=True, text=True, cwd=ROOT).stdout
        lines = [json.loads(line) for line in dump.splitlines()]
        for line in lines:
            for e in line.get("events", []):
                body = json.loads(e["body"]) if isinstance(e["body"], str) else e["body"]
                body["content"]["parts"][0]["text"] = body["content"]["parts"][0]["text"].replace("before", "after")
                e["body"] = json.dumps(body) if isinstance(e["body"], str) else body
        changed = tmp_path / "changed.jsonl"
        changed.write_text("".join(json.dumps(line) + "\n" for line in lines))
        subprocess.run(cli + ["import", "--replace", str(changed), path], check=True, capture_output=True, cwd=ROOT)
        assert texts(await read(svc)) == ["after0", "after1", "after2"]
        await svc.close()
    run(scenario())


def test_bound_is_respected_least_recently_read_go_first(path):
    async def scenario():
        svc = DatabaseSessionService(path, event_cache_size=5)
        await filled(svc, "a", n=4)
        await filled(svc, "b", n=4)
        await read(svc, "a")
        assert svc.cache_info()["entries"] == 4
        await read(svc, "b")  # 8 events read, 5 kept
        assert svc.cache_info() == {"size": 5, "entries": 5, "hits": 0, "misses": 8}
        assert texts(await read(svc, "b")) == ["e0", "e1", "e2", "e3"]  # b is kept whole
        assert svc.cache_info()["hits"] == 4
        assert texts(await read(svc, "a")) == ["e0", "e1", "e2", "e3"]  # a's first three were pushed out
        assert svc.cache_info() == {"size": 5, "entries": 5, "hits": 5, "misses": 11}
        many = await filled(svc, "c", n=12)
        assert len((await read(svc, "c")).events) == 12 and many is not None
        assert svc.cache_info()["entries"] == 5
        await svc.close()
    run(scenario())


def test_cache_off(path):
    async def scenario():
        svc = DatabaseSessionService(path, event_cache_size=0)
        await filled(svc)
        a, b = await read(svc), await read(svc)
        assert texts(a) == texts(b) == ["e0", "e1", "e2"]
        a.events[0].content.parts[0].text = "changed"
        assert texts(await read(svc))[0] == "e0"
        assert svc.cache_info() == {"size": 0, "entries": 0, "hits": 0, "misses": 0}
        await svc.close()
    run(scenario())


@pytest.mark.parametrize("size", [-1, 1.5, "10", True, None])
def test_bad_cache_size_is_refused_before_the_file_is_made(path, size):
    with pytest.raises(ValueError, match="event_cache_size"):
        DatabaseSessionService(path, event_cache_size=size)
    assert not os.path.exists(path)


def test_default_size_and_threads_share_one_cache():
    cache = EventCache()
    assert cache.info()["size"] == DEFAULT_SIZE

    class Row:
        def __init__(self, i):
            self.event_id, self.text = f"id{i}", f"t{i}"

    rows = [Row(i) for i in range(50)]

    def validate(row):
        return event(row.text, event_id=row.event_id)

    small = EventCache(20)

    def reader(_):
        got = small.events(("app", "u", "s", "inc"), rows, validate)
        assert [e.content.parts[0].text for e in got] == [r.text for r in rows]
        assert small.info()["entries"] <= 20
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(reader, range(40)))
    assert small.info()["entries"] == 20
