"""adk_lite.adk.DatabaseMemoryService: ADK's BaseMemoryService on the same database as the
sessions, on both backends; isolation, idempotent adds, deletes, forgetting with the
session and the user, and ADK's own tools (load_memory) in a Runner."""

from __future__ import annotations

from asyncio import run
import datetime
import os
import subprocess
import sys
import textwrap
import time
import unicodedata
from typing import AsyncGenerator

import pytest

pytest.importorskip("google.adk")

from google.adk.agents import LlmAgent  # noqa: E402
from google.adk.events import Event  # noqa: E402
from google.adk.memory.memory_entry import MemoryEntry  # noqa: E402
from google.adk.models import BaseLlm, LlmRequest, LlmResponse  # noqa: E402
from google.adk.runners import Runner  # noqa: E402
from google.adk.tools import load_memory  # noqa: E402
from google.genai import types  # noqa: E402

import adk_lite  # noqa: E402
from adk_lite.adk import DatabaseMemoryService, DatabaseSessionService, register  # noqa: E402
from tests.conftest import on_postgres  # noqa: E402
from tests.workers import adk_loader, file_bytes, scripted_llm  # noqa: E402

pytestmark = pytest.mark.adk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def text_event(text: str, author: str = "user", event_id: str | None = None, ts: float | None = None) -> Event:
    kwargs = {"id": event_id} if event_id else {}
    return Event(author=author, invocation_id="inv", timestamp=ts or 1_700_000_000.0,
                 content=types.Content(role="user" if author == "user" else "model", parts=[types.Part(text=text)]),
                 **kwargs)


async def stored_session(sessions, app, user, sid, texts):
    """A session stored by the session service with one user event per text."""
    session = await sessions.create_session(app_name=app, user_id=user, session_id=sid)
    for text in texts:
        await sessions.append_event(session, text_event(text))
    return await sessions.get_session(app_name=app, user_id=user, session_id=sid)


def texts(response) -> list[str]:
    return [m.content.parts[0].text for m in response.memories]


async def count(mem) -> int:
    return (await mem.get_stats())["memories"]


def with_both(target: str, body) -> None:
    """Run ``await body(sessions, mem)`` with a DatabaseSessionService and a
    DatabaseMemoryService on ``target``; close both after."""
    async def main():
        sessions, mem = DatabaseSessionService(target), DatabaseMemoryService(target)
        try:
            await body(sessions, mem)
        finally:
            await mem.close()
            await sessions.close()
    run(main())


def test_every_method(target):
    async def main(sessions, mem):
        session = await stored_session(sessions, "app", "u", "s1", ["my favourite colour is turquoise",
                                                                   "I live in Lisbon"])
        await mem.add_session_to_memory(session)
        found = await mem.search_memory(app_name="app", user_id="u", query="which colour?")
        assert texts(found) == ["my favourite colour is turquoise"]
        entry = found.memories[0]
        event = session.events[0]
        assert entry.author == "user" and entry.id
        assert entry.custom_metadata["session_id"] == "s1" and entry.custom_metadata["event_id"] == event.id
        when = datetime.datetime.fromisoformat(entry.timestamp)
        assert abs(when.timestamp() - event.timestamp) <= 1

        # a delta, with metadata, into no session
        await mem.add_events_to_memory(app_name="app", user_id="u", events=[text_event("the cat is named Mitten")],
                                       custom_metadata={"source": "test"})
        found = await mem.search_memory(app_name="app", user_id="u", query="Mitten")
        assert texts(found) == ["the cat is named Mitten"] and found.memories[0].custom_metadata["source"] == "test"

        # explicit memories: with and without id, metadata and timestamp back as given
        given = MemoryEntry(id="fact-1", content=types.Content(parts=[types.Part(text="allergic to peanuts")]),
                            author="doctor", timestamp="last Tuesday", custom_metadata={"k": [1, 2]})
        plain = MemoryEntry(content=types.Content(parts=[types.Part(text="prefers tea over coffee")]))
        await mem.add_memory(app_name="app", user_id="u", memories=[given, plain], custom_metadata={"via": "x"})
        back = (await mem.search_memory(app_name="app", user_id="u", query="peanuts")).memories[0]
        assert (back.id, back.author, back.timestamp) == ("fact-1", "doctor", "last Tuesday")
        assert back.custom_metadata["k"] == [1, 2] and back.custom_metadata["via"] == "x"
        tea = (await mem.search_memory(app_name="app", user_id="u", query="tea")).memories[0]
        assert tea.id and tea.author is None and tea.timestamp is None
        assert await count(mem) == 5

        # delete one (by the id a search returned), then all of the user's
        await mem.delete_memory(app_name="app", user_id="u", memory_id=entry.id)
        assert not (await mem.search_memory(app_name="app", user_id="u", query="turquoise")).memories
        await mem.delete_memory(app_name="app", user_id="u", memory_id="no-such-id")
        assert await count(mem) == 4
        await mem.delete_memory(app_name="app", user_id="u")
        assert await count(mem) == 0
        assert not (await mem.search_memory(app_name="app", user_id="u", query="peanuts tea Lisbon")).memories
    with_both(target, main)


def test_adding_a_session_again_adds_only_what_is_new(target):
    async def main(sessions, mem):
        session = await stored_session(sessions, "app", "u", "s", ["alpha one", "beta two"])
        await mem.add_session_to_memory(session)
        await mem.add_session_to_memory(session)
        assert await count(mem) == 2
        await sessions.append_event(session, text_event("gamma three"))
        await mem.add_session_to_memory(await sessions.get_session(app_name="app", user_id="u", session_id="s"))
        await mem.add_events_to_memory(app_name="app", user_id="u", events=session.events[:1], session_id="s")
        assert await count(mem) == 3
        # explicit entries without id: the same entry twice is stored once
        entry = MemoryEntry(content=types.Content(parts=[types.Part(text="delta four")]))
        await mem.add_memory(app_name="app", user_id="u", memories=[entry])
        await mem.add_memory(app_name="app", user_id="u", memories=[entry])
        assert await count(mem) == 4
    with_both(target, main)


def test_a_deleted_memory_stays_deleted_when_its_session_is_added_again(target):
    async def main(sessions, mem):
        session = await stored_session(sessions, "app", "u", "s", ["forget the password hint", "keep this"])
        await mem.add_session_to_memory(session)
        hit = (await mem.search_memory(app_name="app", user_id="u", query="password")).memories[0]
        await mem.delete_memory(app_name="app", user_id="u", memory_id=hit.id)
        await mem.add_session_to_memory(session)
        assert not (await mem.search_memory(app_name="app", user_id="u", query="password")).memories
        assert await count(mem) == 1
    with_both(target, main)


QUERIES = ["secret", "SECRET", "secret*", '"secret"', "secret OR public", "NEAR(secret public)", "-secret",
           "text:secret", "app_name:secret", "secret)", "(secret", "^secret", "secret AND", "*", "OR", '"',
           "secret " * 3000, "s" * 20_000, "ｓｅｃｒｅｔ", "se%cret", "_", "%", "secret\x00", "secret\ud800"]


def test_isolation_no_other_user_or_app_by_any_query(target):
    async def main():
        mem = DatabaseMemoryService(target)
        for app, user in (("app", "alice"), ("app", "bob"), ("other", "alice"), ("app%", "alice"),
                          ("app", "alice/bob")):
            await mem.add_events_to_memory(app_name=app, user_id=user, session_id="s",
                                           events=[text_event(f"secret public of {app} {user}")])
        for query in QUERIES:
            found = await mem.search_memory(app_name="app", user_id="alice", query=query)
            assert all(m.content.parts[0].text == "secret public of app alice" for m in found.memories), query
        found = await mem.search_memory(app_name="app", user_id="alice", query="secret")
        assert len(found.memories) == 1
        # a delete in another scope removes nothing
        mid = found.memories[0].id
        await mem.delete_memory(app_name="app", user_id="bob", memory_id=mid)
        await mem.delete_memory(app_name="other", user_id="alice", memory_id=mid)
        await mem.delete_memory(app_name="app", user_id="carol")
        assert len((await mem.search_memory(app_name="app", user_id="alice", query="secret")).memories) == 1
        assert await count(mem) == 5
        await mem.close()
    run(main())


@pytest.mark.parametrize("query", ["turquoise*", "NEAR(turquoise)", "-turquoise", '"turquoise', "turquoise:",
                                   "col:turquoise", "(turquoise OR", "turquoise^", "+turquoise+", "TURQUOISE?"])
def test_a_word_wrapped_in_operators_is_found(target, query):
    async def main():
        async with DatabaseMemoryService(target) as mem:
            await mem.add_events_to_memory(app_name="a", user_id="u", events=[text_event("the turquoise door")])
            assert texts(await mem.search_memory(app_name="a", user_id="u", query=query)) == ["the turquoise door"]
    run(main())


def test_nfc_and_nfd_are_equal_and_accents_and_case_ignored(target):
    async def main():
        async with DatabaseMemoryService(target) as mem:
            await mem.add_events_to_memory(app_name="a", user_id="u", events=[
                text_event(unicodedata.normalize("NFD", "rendez-vous au Café Zoë")),
                text_event(unicodedata.normalize("NFC", "la crème brûlée")),
                text_event("私はPythonでADKを使っています")])
            for query in ("café", unicodedata.normalize("NFD", "Café"), "CAFE", "zoe", "ZOË"):
                assert texts(await mem.search_memory(app_name="a", user_id="u", query=query)) == [
                    unicodedata.normalize("NFD", "rendez-vous au Café Zoë")], query
            for query in (unicodedata.normalize("NFD", "brûlée"), "BRULEE", "Crème"):
                assert texts(await mem.search_memory(app_name="a", user_id="u", query=query)) == [
                    "la crème brûlée"], query
            for query in ("Python", "adk", "使って"):
                assert len((await mem.search_memory(app_name="a", user_id="u", query=query)).memories) == 1, query
            assert not (await mem.search_memory(app_name="a", user_id="u", query="thon")).memories
    run(main())


def test_ranked_and_bounded(target):
    async def main():
        async with DatabaseMemoryService(target, max_results=7) as mem:
            events = [text_event(f"note {i} about work") for i in range(20)]
            events.append(text_event("the deploy status is ready"))
            await mem.add_events_to_memory(app_name="a", user_id="u", events=events)
            found = await mem.search_memory(app_name="a", user_id="u", query="work")
            assert len(found.memories) == 7
            found = await mem.search_memory(app_name="a", user_id="u", query="deploy status work")
            assert texts(found)[0] == "the deploy status is ready" and len(found.memories) == 7
            assert not (await mem.search_memory(app_name="a", user_id="u", query="!!! ...")).memories
    run(main())


def test_more_of_the_words_ranks_first(target):
    """ADK's in-memory service ranks by the number of query words a memory holds."""
    async def main():
        async with DatabaseMemoryService(target) as mem:
            await mem.add_events_to_memory(app_name="a", user_id="u", events=[
                text_event("The deploy is ready."), text_event("Ready."), text_event("The deploy status is ready.")])
            assert texts(await mem.search_memory(app_name="a", user_id="u", query="deploy status ready")) == [
                "The deploy status is ready.", "The deploy is ready.", "Ready."]
    run(main())


def test_bad_input_raises_clear_errors_and_writes_nothing(target):
    async def main():
        async with DatabaseMemoryService(target) as mem:
            with pytest.raises(TypeError, match="query"):
                await mem.search_memory(app_name="a", user_id="u", query=None)
            with pytest.raises(ValueError, match="app_name"):
                await mem.search_memory(app_name=" ", user_id="u", query="x")
            with pytest.raises(TypeError, match="events\\[1\\]"):
                await mem.add_events_to_memory(app_name="a", user_id="u", events=[text_event("ok"), "no"])
            with pytest.raises(TypeError, match="custom_metadata"):
                await mem.add_memory(app_name="a", user_id="u", memories=[MemoryEntry(
                    content=types.Content(parts=[types.Part(text="x")]), custom_metadata={"t": object()})])
            with pytest.raises(ValueError, match="max_results"):
                DatabaseMemoryService(target, max_results=0)
            assert await count(mem) == 0
    run(main())


def test_deleting_or_pruning_a_session_removes_its_memories_unless_kept(target):
    async def main():
        sessions = DatabaseSessionService(target)
        mem, keeper = DatabaseMemoryService(target), DatabaseMemoryService(target, keep_on_session_delete=True)
        s1 = await stored_session(sessions, "app", "u", "s1", ["orchid in session one"])
        s2 = await stored_session(sessions, "app", "u", "s2", ["orchid in session two"])
        s3 = await stored_session(sessions, "app", "u", "s3", ["orchid in session three"])
        await mem.add_session_to_memory(s1)
        await mem.add_session_to_memory(s2)
        await keeper.add_session_to_memory(s3)
        await mem.add_memory(app_name="app", user_id="u",
                             memories=[MemoryEntry(content=types.Content(parts=[types.Part(text="orchid alone")]))])
        await sessions.delete_session(app_name="app", user_id="u", session_id="s1")
        assert sorted(texts(await mem.search_memory(app_name="app", user_id="u", query="orchid"))) == [
            "orchid alone", "orchid in session three", "orchid in session two"]
        with adk_lite.DatabaseSessionService(target) as core:
            assert core.store.prune(time.time() + 3600, "app", "u", None, True)[0] == 2
        assert sorted(texts(await mem.search_memory(app_name="app", user_id="u", query="orchid"))) == [
            "orchid alone", "orchid in session three"]
        for service in (mem, keeper, sessions):
            await service.close()
    run(main())


def test_erase_removes_the_users_memories(target):
    async def main(sessions, mem):
        session = await stored_session(sessions, "app", "gone", "s", ["zanzibar trip"])
        await mem.add_session_to_memory(session)
        await mem.add_memory(app_name="app", user_id="gone",
                             memories=[MemoryEntry(content=types.Content(parts=[types.Part(text="zanzibar")]))])
        await mem.add_events_to_memory(app_name="app", user_id="stays", events=[text_event("zanzibar too")])
        counts = await sessions.delete_user(app_name="app", user_id="gone")
        assert counts["memories"] == 2
        assert not (await mem.search_memory(app_name="app", user_id="gone", query="zanzibar")).memories
        assert len((await mem.search_memory(app_name="app", user_id="stays", query="zanzibar")).memories) == 1
    with_both(target, main)


def test_erase_leaves_no_memory_text_in_the_file_or_wal(tmp_path):
    path = str(tmp_path / "m.db")
    token = "Quokkasecretword"

    async def main():
        sessions, mem = DatabaseSessionService(path), DatabaseMemoryService(path)
        events = [text_event(f"{token} number {i} " + "filler " * 50) for i in range(300)]
        await mem.add_events_to_memory(app_name="app", user_id="gone", events=events, session_id="s")
        await mem.add_memory(app_name="app", user_id="gone", memories=[
            MemoryEntry(content=types.Content(parts=[types.Part(text=f"{token} explicit")]))])
        await mem.add_events_to_memory(app_name="app", user_id="stays", events=[text_event("other words here")])
        raw = b"".join(part or b"" for part in file_bytes(path))
        assert token.encode() in raw and token.lower().encode() in raw  # the row and the index
        result = await sessions.delete_user(app_name="app", user_id="gone")
        assert result["memories"] == 301 and result["checkpointed"]
        raw = b"".join(part or b"" for part in file_bytes(path))
        assert token.encode() not in raw and token.lower().encode() not in raw
        assert texts(await mem.search_memory(app_name="app", user_id="stays", query="words")) == ["other words here"]
        await mem.close()
        await sessions.close()
    run(main())
    with adk_lite.DatabaseSessionService(path) as core:
        assert core.store.check()["integrity_check"] == ["ok"]
        fts = core.store.read(lambda c: c.execute(
            "INSERT INTO adk_memories_fts(adk_memories_fts, rank) VALUES ('integrity-check', 1)").fetchall())
        assert fts == []


SEARCH_IN_CHILD = textwrap.dedent("""
    import asyncio, sys
    from adk_lite.adk import DatabaseMemoryService
    async def main():
        async with DatabaseMemoryService(sys.argv[1]) as mem:
            found = await mem.search_memory(app_name="app", user_id="u", query=sys.argv[2])
            print("|".join(f"{m.id}={m.content.parts[0].text}" for m in found.memories))
    asyncio.run(main())
""")


def test_persisted_for_another_process_with_the_same_ids(target):
    async def main():
        async with DatabaseMemoryService(target) as mem:
            await mem.add_events_to_memory(app_name="app", user_id="u", events=[text_event("penguins in Lisbon")],
                                           session_id="s")
            await mem.add_memory(app_name="app", user_id="u", memories=[
                MemoryEntry(content=types.Content(parts=[types.Part(text="penguins are birds")]))])
            return sorted(f"{m.id}={m.content.parts[0].text}"
                          for m in (await mem.search_memory(app_name="app", user_id="u", query="penguins")).memories)
    here = run(main())
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, "-c", SEARCH_IN_CHILD, target, "penguins"], capture_output=True,
                         text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert sorted(out.stdout.strip().split("|")) == here


def test_the_memory_service_first_on_a_new_file_leaves_a_whole_database(tmp_path):
    path = str(tmp_path / "new" / "fresh.db")

    async def main():
        async with DatabaseMemoryService(f"adklite:///{path}") as mem:
            await mem.add_events_to_memory(app_name="a", user_id="u", events=[text_event("first words")])
        async with DatabaseSessionService(f"sqlite:///{path}") as sessions:
            await sessions.create_session(app_name="a", user_id="u", session_id="s")
            assert (await sessions.get_stats())["memories"] == 1
    run(main())
    with adk_lite.DatabaseSessionService(path, read_only=True) as core:
        report = core.store.check()
        assert report["missing_tables"] == [] and report["schema_version"] == adk_lite.schema.SCHEMA_VERSION


def test_both_services_on_one_file_at_once(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ADK_LITE_DB", raising=False)

    async def main():
        sessions = DatabaseSessionService()  # the zero-config default for both
        mem = DatabaseMemoryService(uri="adklite:///.adk/sessions.sqlite3", agents_dir=str(tmp_path))
        assert os.path.samefile(sessions.path, mem.path)
        for i in range(5):
            session = await stored_session(sessions, "app", "u", f"s{i}", [f"walrus {i}"])
            await mem.add_session_to_memory(session)
        assert len((await mem.search_memory(app_name="app", user_id="u", query="walrus")).memories) == 5
        await sessions.delete_session(app_name="app", user_id="u", session_id="s0")
        assert len((await mem.search_memory(app_name="app", user_id="u", query="walrus")).memories) == 4
        await mem.close()
        await sessions.close()
    run(main())


# -- ADK's own tools and loaders ---------------------------------------------------


def ask_memory(last) -> types.Part:
    """A scripted model's reply: calls load_memory with the user's question, then answers
    with what it found."""
    if last.function_response is not None:
        found = last.function_response.response["result"].memories  # ADK's LoadMemoryResponse
        return types.Part(text="I remember: " + " | ".join(m.content.parts[0].text for m in found))
    if (last.text or "").endswith("?"):
        return types.Part(function_call=types.FunctionCall(name="load_memory", args={"query": last.text}))
    return types.Part(text="ok")


def test_a_runner_agent_finds_what_an_earlier_session_said(target):
    async def main():
        sessions, mem = DatabaseSessionService(target), DatabaseMemoryService(target)
        agent = LlmAgent(name="rememberer", model=scripted_llm(ask_memory, "scripted-memory"), tools=[load_memory])
        runner = Runner(app_name="app", agent=agent, session_service=sessions, memory_service=mem)

        async def say(session_id, text):
            out = []
            async for event in runner.run_async(user_id="u", session_id=session_id,
                                                new_message=types.Content(role="user", parts=[types.Part(text=text)])):
                out += [p.text for p in (event.content.parts if event.content else []) if p.text]
            return out

        await sessions.create_session(app_name="app", user_id="u", session_id="first")
        await say("first", "My dog is called Biscuit")
        await mem.add_session_to_memory(await sessions.get_session(app_name="app", user_id="u", session_id="first"))
        await sessions.create_session(app_name="app", user_id="u", session_id="second")
        answer = await say("second", "what is my dog called?")
        assert any("My dog is called Biscuit" in a for a in answer), answer
        # another user asking the same finds nothing of it
        await sessions.create_session(app_name="app", user_id="v", session_id="third")
        other = []
        async for event in runner.run_async(user_id="v", session_id="third", new_message=types.Content(
                role="user", parts=[types.Part(text="what is my dog called?")])):
            other += [p.text for p in (event.content.parts if event.content else []) if p.text]
        assert not any("Biscuit" in a for a in other), other
        await runner.close()
        await mem.close()
    run(main())


MEMORY_CLI = textwrap.dedent("""
    async def use(mem):
        await mem.add_events_to_memory(app_name="a", user_id="u", events=[Event(
            author="user", content=types.Content(parts=[types.Part(text="hello memory")]))])
        return len((await mem.search_memory(app_name="a", user_id="u", query="memory")).memories)
""")


@pytest.mark.parametrize("how", ["services.yaml", "services.py"])
def test_adk_loads_the_memory_service_from_a_uri(tmp_path, how):
    target = tmp_path / "data" / "sessions.db"
    printed = adk_loader(tmp_path, how, "memory", MEMORY_CLI, f"adklite:///{target}")
    assert printed == ["adk_lite.adk.DatabaseMemoryService", str(target), "1"]


def test_register_registers_memory_on_the_given_registry(tmp_path):
    from google.adk.cli.service_registry import ServiceRegistry

    registry = ServiceRegistry()
    register(registry, scheme="mylite", busy_timeout=2.0, event_cache_size=5)
    mem = registry.create_memory_service(f"mylite:///{tmp_path}/r.db", agents_dir=str(tmp_path))
    assert isinstance(mem, DatabaseMemoryService) and mem.path == f"{tmp_path}/r.db"
    assert registry.create_session_service(f"mylite:///{tmp_path}/r.db") is not None
    run(mem.close())


def test_closed_service_refuses(target):
    mem = DatabaseMemoryService(target)
    run(mem.close())
    with pytest.raises(adk_lite.errors.ServiceClosedError):
        run(mem.search_memory(app_name="a", user_id="u", query="x"))


def test_postgres_path_hides_the_password(backend, target):
    if not on_postgres(target):
        pytest.skip("a URL with a password: PostgreSQL only")
    mem = DatabaseMemoryService(target)
    assert "devpw" not in repr(mem) and "devpw" not in mem.path
    run(mem.close())


# -- the command line ----------------------------------------------------------------


def test_cli_memory_stats_and_erase(target, capsys):
    import json

    from adk_lite.cli import main

    async def main_():
        async with DatabaseMemoryService(target) as mem:
            await mem.add_events_to_memory(app_name="app", user_id="alice", session_id="s",
                                           events=[text_event("my favourite colour is teal")])
            await mem.add_events_to_memory(app_name="app", user_id="bob", events=[text_event("teal for bob")])
    run(main_())
    assert main(["memory", target, "app", "alice", "colour* NEAR(", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["text"] for m in doc["memories"]] == ["my favourite colour is teal"]
    assert doc["memories"][0]["session_id"] == "s" and doc["memories"][0]["memory_id"]
    assert main(["memory", target, "app", "alice", "nothing-here"]) == 0
    assert "no match" in capsys.readouterr().out
    assert main(["stats", target, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["memories"] == 2
    assert main(["erase", target, "--app", "app", "--user", "alice", "--yes"]) == 0
    assert "with 1 memory" in capsys.readouterr().out
    assert main(["memory", target, "app", "alice", "teal", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["memories"] == []
    assert main(["memory", target, "app", "bob", "teal", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["memories"]) == 1
    assert main(["memory", target, " ", "bob", "teal"]) == 2


def test_export_import_and_copy_carry_memories(new_target, tmp_path, capsys):
    import json

    from adk_lite.cli import main

    src, dst, again = new_target("src"), new_target("dst"), new_target("again")

    async def fill():
        sessions, mem = DatabaseSessionService(src), DatabaseMemoryService(src)
        session = await stored_session(sessions, "app", "u", "s", ["heron by the lake", "drop me"])
        await mem.add_session_to_memory(session)
        await mem.add_memory(app_name="app", user_id="u", memories=[MemoryEntry(
            id="x1", content=types.Content(parts=[types.Part(text="heron facts")]), timestamp="2024-05-01",
            custom_metadata={"n": 1})])
        dropped = (await mem.search_memory(app_name="app", user_id="u", query="drop")).memories[0]
        await mem.delete_memory(app_name="app", user_id="u", memory_id=dropped.id)
        await mem.close()
        await sessions.close()
    run(fill())

    async def seen(target):
        async with DatabaseMemoryService(target) as mem:
            found = (await mem.search_memory(app_name="app", user_id="u", query="heron drop")).memories
            return sorted((m.id, m.content.parts[0].text, m.timestamp, m.custom_metadata.get("n")) for m in found)

    expected = run(seen(src))
    assert len(expected) == 2
    out = tmp_path / "e.jsonl"
    assert main(["export", src, "-o", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records[0]["format"] == 2 and [r["type"] for r in records].count("memory") == 3  # one a marker
    assert main(["import", str(out), dst, "--create"]) == 0
    assert main(["import", str(out), dst]) == 0  # again: nothing new
    capsys.readouterr()
    assert run(seen(dst)) == expected
    assert main(["copy", src, again]) == 0
    assert run(seen(again)) == expected
    # the marker came along: adding the session again does not bring the deleted memory back
    async def readd(target):
        async with DatabaseSessionService(target) as sessions, DatabaseMemoryService(target) as mem:
            await mem.add_session_to_memory(await sessions.get_session(app_name="app", user_id="u", session_id="s"))
            return (await mem.get_stats())["memories"]
    assert run(readd(dst)) == 2 and run(readd(again)) == 2


def test_a_forged_memory_record_is_refused(tmp_path):
    import json

    from adk_lite import transfer
    from adk_lite.errors import ImportFileError

    good = {"type": "memory", "app_name": "a", "user_id": "u", "memory_id": "m", "session_id": "", "event_id": "",
            "author": None, "timestamp": 1.0, "body": {"content": {"parts": [{"text": "x"}]}},
            "outlives_session": True, "created_at": 1.0}
    for bad in ({"memory_id": ""}, {"body": {"content": 3}}, {"timestamp": float("nan")}, {"outlives_session": 1},
                {"user_id": " "}, {"author": "a\x00"}, {"session_id": " \t"}):
        path = tmp_path / "bad.jsonl"
        path.write_text(json.dumps({**good, **bad}) + "\n")
        with pytest.raises(ImportFileError):
            transfer.check_file(str(path))
    path.write_text(json.dumps(good) + "\n")
    assert transfer.check_file(str(path)) == 1


class EchoRequestLlm(BaseLlm):
    """Answers with every text of the request it was given (preload_memory adds the memories to it)."""

    model: str = "scripted-echo"

    async def generate_content_async(self, llm_request: LlmRequest,
                                     stream: bool = False) -> AsyncGenerator[LlmResponse, None]:
        seen = " ".join(p.text for c in llm_request.contents for p in (c.parts or []) if p.text)
        yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text=seen)]))


def test_preload_memory_puts_the_users_memories_in_the_request(target):
    from google.adk.tools import preload_memory

    async def main():
        sessions, mem = DatabaseSessionService(target), DatabaseMemoryService(target)
        await mem.add_events_to_memory(app_name="app", user_id="u", events=[text_event("the wifi password is kumquat")])
        await mem.add_events_to_memory(app_name="app", user_id="v", events=[text_event("the wifi password is damson")])
        runner = Runner(app_name="app", agent=LlmAgent(name="preloader", model=EchoRequestLlm(),
                                                       tools=[preload_memory]),
                        session_service=sessions, memory_service=mem)
        await sessions.create_session(app_name="app", user_id="u", session_id="s")
        said = []
        async for event in runner.run_async(user_id="u", session_id="s", new_message=types.Content(
                role="user", parts=[types.Part(text="what is the wifi password?")])):
            said += [p.text for p in (event.content.parts if event.content else []) if p.text]
        assert any("kumquat" in s for s in said) and not any("damson" in s for s in said), said
        await runner.close()
        await mem.close()
    run(main())


def test_a_version_4_database_gets_memories_at_its_first_read_write_open(backend, target):
    from adk_lite import schema
    from tests.conftest import drop_later_tables, pg_databases

    with adk_lite.DatabaseSessionService(target) as svc:
        svc.create_session("app", "u", session_id="old")
    if on_postgres(target):
        with pg_databases().admin(target.rsplit("/", 1)[1]) as conn:
            conn.execute("DROP TABLE adk_memories")
            conn.execute("UPDATE adk_metadata SET value = '4' WHERE key = 'schema_version'")
    else:
        import sqlite3
        conn = sqlite3.connect(target)
        with conn:
            drop_later_tables(conn, 4)
            conn.execute("UPDATE adk_metadata SET value = '4' WHERE key = 'schema_version'")
        conn.close()
    with adk_lite.DatabaseSessionService(target, read_only=True) as ro:  # read-only: no migration, no memories
        assert ro.get_stats()["schema_version"] == 4 and ro.get_stats()["memories"] == 0
        assert ro.delete_user("app", "u", dry_run=True)["memories"] == 0
        assert ro.store.check()["missing_tables"] == []  # adk-lite check: a version 4 file is whole

    async def main():
        async with DatabaseMemoryService(target) as mem:
            await mem.add_events_to_memory(app_name="app", user_id="u", events=[text_event("migrated words")])
            assert len((await mem.search_memory(app_name="app", user_id="u", query="migrated")).memories) == 1
            assert (await mem.get_stats())["schema_version"] == schema.SCHEMA_VERSION
    run(main())
    with adk_lite.DatabaseSessionService(target) as svc:
        assert svc.get_session("app", "u", "old") is not None


def test_a_version_4_file_with_a_memories_table_is_refused_unchanged(tmp_path):
    import sqlite3

    from tests.conftest import drop_later_tables
    path = str(tmp_path / "odd.db")
    adk_lite.DatabaseSessionService(path).close()
    conn = sqlite3.connect(path)
    with conn:
        drop_later_tables(conn, 4)
        conn.execute("CREATE TABLE adk_memories (x)")
        conn.execute("UPDATE adk_metadata SET value = '4' WHERE key = 'schema_version'")
    conn.close()
    before = open(path, "rb").read()
    with pytest.raises(adk_lite.errors.ForeignDatabaseError, match="adk_memories"):
        DatabaseMemoryService(path)
    assert open(path, "rb").read() == before


def test_a_memory_that_could_not_move_is_refused_at_add(target, new_target):
    """A memory body nested deeper than the limit (custom metadata, or a function call's
    args in the content) or holding an int beyond 64 bits was stored, then refused by
    every copy and import; the service refuses it by name (a ValueError, not orjson's
    TypeError) and writes nothing. What it stores, copy carries."""
    deep: object = 1
    for _ in range(adk_lite.MAX_DEPTH):
        deep = [deep]
    call = types.Part(text="sky", function_call=types.FunctionCall(name="f", args={"x": 2**70}))

    async def body(sessions, mem):
        with pytest.raises(ValueError, match="custom_metadata"):
            await mem.add_events_to_memory(app_name="a", user_id="u", events=[text_event("sky")],
                                           custom_metadata={"k": deep})
        with pytest.raises(ValueError, match="function_call"):
            await mem.add_events_to_memory(app_name="a", user_id="u", events=[
                Event(author="user", invocation_id="i", content=types.Content(role="user", parts=[call]))])
        with pytest.raises(ValueError, match="custom_metadata"):
            await mem.add_memory(app_name="a", user_id="u", memories=[MemoryEntry(
                content=types.Content(parts=[types.Part(text="sky")]), custom_metadata={"k": deep})])
        assert await count(mem) == 0
        await mem.add_memory(app_name="a", user_id="u", memories=[MemoryEntry(
            content=types.Content(parts=[types.Part(text="sky")]), custom_metadata={"k": deep[0][0]})])
    with_both(target, body)
    with adk_lite.DatabaseSessionService(target) as src, adk_lite.DatabaseSessionService(new_target("copy")) as dst:
        report = src.copy_to(dst)
    assert (report["refused"], report["memories"]) == ([], 1)
