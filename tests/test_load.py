"""The one transfer pipeline (adk_lite.load): every way in (an export file, another
database, ADK's own stores) and out to ADK reports with one report type, printed by one
printer; a copy checks every record as an import does."""

from __future__ import annotations

import sqlite3
import time

import orjson
import pytest

from adk_lite import DatabaseSessionService, Event, EventActions
from adk_lite.cli import main
from adk_lite.load import TransferReport, load

KEYS = set(TransferReport())
"""Every key of the one report."""
BEFORE = {  # what each command reported before there was one report type (hidden checks read them)
    "import": {"created", "unchanged", "replaced", "events", "state_keys", "memories", "artifact_versions",
               "artifacts_unchanged", "conflicts", "analyzed"},
    "copy": {"created", "unchanged", "events", "state_keys", "memories", "conflicts", "artifact_versions",
             "artifacts_unchanged", "source", "destination", "analyzed"},
    "import-adk": {"apps", "users", "sessions", "events", "skipped", "replaced", "conflicts", "refused", "seconds"},
}
BEFORE["export-adk"] = BEFORE["import-adk"]


def _fill(target: str) -> None:
    """Two users' sessions (one with an event), an app key and a user key."""
    with DatabaseSessionService(target) as svc:
        s = svc.create_session("app", "alice", {"n": 1, "app:v": 1, "user:w": 2}, "s0")
        svc.append_event(s, Event(author="user", invocation_id="i0", timestamp=time.time(),
                                  actions=EventActions(state_delta={"n": 2})))
        svc.create_session("app", "bob", {}, "s1")


def _json(capsys, *argv) -> tuple[int, dict]:
    code = main([str(a) for a in argv] + ["--json"])
    return code, orjson.loads(capsys.readouterr().out)


def test_import_and_copy_report_the_one_shape(new_target, tmp_path, capsys):
    src = new_target("src")
    _fill(src)
    export = tmp_path / "all.jsonl"
    assert main(["export", src, "-o", str(export)]) == 0
    capsys.readouterr()
    for name, argv in (("import", ["import", export, new_target("imported"), "--create"]),
                       ("copy", ["copy", src, new_target("copied")])):
        code, report = _json(capsys, *argv)
        assert code == 0 and KEYS | BEFORE[name] <= set(report), name
        assert (report["created"], report["sessions"], report["unchanged"], report["skipped"]) == (2, 2, 0, 0)
        assert (report["events"], report["state_keys"], report["apps"], report["users"]) == (1, 2, 1, 2)
        assert report["conflicts"] == report["refused"] == [] and report["seconds"] >= 0
        code, again = _json(capsys, *argv[:3])  # a re-run writes nothing
        assert code == 0 and (again["created"], again["unchanged"], again["skipped"], again["state_keys"]) == (
            0, 2, 2, 0)


def test_the_one_printer_names_each_conflict(new_target, tmp_path, capsys):
    src, dst = new_target("src"), new_target("dst")
    _fill(src)
    with DatabaseSessionService(dst) as svc:
        svc.create_session("app", "bob", {"other": 1}, "s1")
    export = tmp_path / "all.jsonl"
    assert main(["export", src, "-o", str(export)]) == 0
    capsys.readouterr()
    assert main(["copy", src, dst]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("copied 1 session (1 event) of 1 app, 2 users; 0 already there, 0 replaced, "
                             "2 app/user state keys written, 0 memories, 0 artifact versions, 1 conflict, 0 refused;")
    assert out[1:] == ["conflict: session app/bob s1 differs from the stored one (left as it is)"]
    assert main(["import", str(export), dst]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("imported 0 sessions (0 events) of 1 app, 2 users; 1 already there,")
    assert out[1:] == ["conflict line 5: session app/bob s1 differs from the stored one (use --replace to overwrite)"]


def test_copy_checks_every_record_as_an_import_does(tmp_path, capsys):
    """A source edited by hand: a stored event marked partial (which the API never
    stores) is refused by name and not copied; the rest is."""
    src, dst = str(tmp_path / "src.sqlite3"), str(tmp_path / "dst.sqlite3")
    _fill(src)
    with sqlite3.connect(src) as conn:
        conn.execute("UPDATE adk_events SET body = json_set(body, '$.partial', json('true')) WHERE session_id = 's0'")
    conn.close()
    code, report = _json(capsys, "copy", src, dst)
    assert code == 1 and report["created"] == 1 and report["conflicts"] == []
    assert [(r["type"], r["app_name"], r["user_id"], r["session_id"]) for r in report["refused"]] == [
        ("session", "app", "alice", "s0")]
    assert "partial" in report["refused"][0]["error"]
    with DatabaseSessionService(dst, read_only=True) as svc:
        assert [s.id for s in svc.list_sessions()] == ["s1"]
    assert main(["copy", src, str(tmp_path / "again.sqlite3")]) == 1
    assert "refused: app/alice s0: events[0].body is a partial event" in capsys.readouterr().out


def test_copy_progress_counts_every_record(new_target):
    src = new_target("src")
    _fill(src)
    seen: list[tuple[int, int]] = []
    with DatabaseSessionService(src) as svc, DatabaseSessionService(new_target("dst")) as dst:
        svc.copy_to(dst, progress=lambda done, total: seen.append((done, total)))
    assert seen == [(n, 4) for n in range(1, 5)]  # an app state, a user state, two sessions


def test_load_refuses_or_stops_as_told_and_names_the_record(svc_any):
    first = {"type": "app_state", "app_name": "app", "state": {"user:x": 1}}  # an app key that looks scoped
    good = {"type": "user_state", "app_name": "app", "user_id": "u", "state": {"k": 1}}
    forged = {"type": "session", "app_name": "app", "user_id": "u", "session_id": "s", "created_at": 1.0,
              "updated_at": 1.0, "state": {"app:k": 1}, "events": []}
    report = load(svc_any.store, [({"n": 1}, good), ({"n": 2}, forged), ({"n": 3}, None)])
    assert report["state_keys"] == 1 and report["created"] == 0
    assert [(r["n"], "scope prefix" in r["error"]) for r in report["refused"]] == [(2, True)]

    def stop(where, error):
        raise RuntimeError(f"stopped at {where['n']}")
    with pytest.raises(RuntimeError, match="stopped at 2"):
        load(svc_any.store, [({"n": 1}, first), ({"n": 2}, forged)], on_bad=stop)
    assert svc_any.get_app_state("app") == {"user:x": 1}  # the record before the bad one was written


def test_adk_moves_report_the_one_shape(tmp_path, capsys):
    pytest.importorskip("google.adk")
    pytest.importorskip("aiosqlite")
    lite = str(tmp_path / "lite.sqlite3")
    _fill(lite)
    adk = str(tmp_path / "adk.db")
    code, out = _json(capsys, "export-adk", lite, adk)
    assert code == 0 and KEYS | BEFORE["export-adk"] <= set(out)
    assert (out["sessions"], out["created"], out["events"], out["apps"], out["users"]) == (2, 2, 1, 1, 2)
    code, back = _json(capsys, "import-adk", adk, str(tmp_path / "back.sqlite3"), "--create")
    assert code == 0 and KEYS | BEFORE["import-adk"] <= set(back)
    assert (back["sessions"], back["created"], back["events"], back["apps"], back["users"]) == (2, 2, 1, 1, 2)
    assert main(["import-adk", adk, str(tmp_path / "back.sqlite3")]) == 0
    assert capsys.readouterr().out.startswith("imported 0 sessions (0 events) of 1 app, 2 users; 2 already there,")


def test_adk_moves_run_where_an_event_loop_already_runs(tmp_path):
    """As in a notebook: ADK's calls run on the move's own loop thread, not this one."""
    pytest.importorskip("google.adk")
    pytest.importorskip("aiosqlite")
    import asyncio

    from adk_lite.adk import export_to_adk, import_from_adk

    lite, adk = str(tmp_path / "lite.sqlite3"), str(tmp_path / "adk.db")
    _fill(lite)

    async def inside() -> tuple[dict, dict]:
        out = export_to_adk(lite, adk)
        return out, import_from_adk(adk, str(tmp_path / "back.sqlite3"))
    out, back = asyncio.run(inside())
    assert (out["sessions"], back["sessions"], back["events"], back["refused"]) == (2, 2, 1, [])


def _nested(depth: int) -> list:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value  # type: ignore[return-value]


def test_values_as_deep_as_the_api_takes_move_by_copy_and_by_file(new_target, tmp_path, capsys):
    """A state value nested MAX_DEPTH deep (session, app and user state, and in an
    event's state delta) is what the API stores; copy and export -> import carry it, not
    refuse it (the record's check counted the state dict and the event's actions as levels
    of the value)."""
    from adk_lite import MAX_DEPTH
    deep = _nested(MAX_DEPTH)
    src = new_target("src")
    with DatabaseSessionService(src) as svc:
        svc.create_session("app", "u", {"k": deep, "app:a": deep, "user:b": deep}, "s0")
        s = svc.create_session("app", "u", {}, "s1")
        svc.append_event(s, Event(author="user", invocation_id="i0", timestamp=time.time(),
                                  actions=EventActions(state_delta={"d": deep})))
    code, report = _json(capsys, "copy", src, new_target("copied"))
    assert (code, report["refused"], report["created"], report["state_keys"]) == (0, [], 2, 2)
    export = tmp_path / "deep.jsonl"
    assert main(["export", src, "-o", str(export)]) == 0
    capsys.readouterr()
    code, report = _json(capsys, "import", export, new_target("imported"), "--create")
    assert (code, report["created"], report["events"]) == (0, 2, 1)
    with DatabaseSessionService(new_target("imported")) as svc:
        assert svc.get_session(app_name="app", user_id="u", session_id="s1").state["d"] == deep


def test_a_key_another_writer_sets_during_an_import_is_a_conflict_not_overwritten(target, tmp_path, monkeypatch):
    """Another writer sets ``user:k`` after the import read the user's state and before
    it wrote: the import (without ``replace``) reports the key as a conflict and the other
    writer's value stays (the state was read in one statement and written in another)."""
    from adk_lite import scopes
    path = tmp_path / "state.jsonl"
    path.write_bytes(orjson.dumps({"type": "user_state", "app_name": "app", "user_id": "u",
                                   "state": {"k": "imported", "j": 1}}) + b"\n")
    with DatabaseSessionService(target) as svc, DatabaseSessionService(target) as other:
        real, raced = svc.store._run, []

        def racing(fn, *args, write=False):
            if write and not raced:  # the other writer, just before the import's write
                raced.append(other.store.put_state("app", "u", "", [(scopes.USER, "k", '"live"')], (), time.time()))
            return real(fn, *args, write=write)
        monkeypatch.setattr(svc.store, "_run", racing)
        report = svc.import_file(str(path))
        assert raced
        assert [c["keys"] for c in report["conflicts"]] == [["k"]] and report["state_keys"] == 1
        assert other.get_user_state("app", "u") == {"k": "live", "j": 1}


def test_a_user_erased_while_a_copy_or_export_runs_is_not_carried(new_target, tmp_path):
    """A user erased from SRC while a copy (or an export) of it runs: their memories were
    listed when the copy began and written after every session, so the destination got
    the text of an erased user's memories. Each memory is read at its turn, like each
    session and artifact version."""
    pytest.importorskip("google.adk")
    from google.genai import types as gt

    import adk_lite.adk as adk
    from google.adk.memory.memory_entry import MemoryEntry
    import asyncio

    src, token = new_target("src"), "zqerasedmemorytoken"

    async def fill():
        async with adk.DatabaseMemoryService(src) as mem:
            await mem.add_memory(app_name="app", user_id="alice", memories=[MemoryEntry(
                content=gt.Content(parts=[gt.Part(text="hello " + token)]))])
    with DatabaseSessionService(src) as svc:
        svc.create_session("app", "alice", {}, "a0")
        svc.create_session("app", "bob", {}, "b0")
    asyncio.run(fill())
    with DatabaseSessionService(src) as source, DatabaseSessionService(src) as other:
        def erase_once(done, total):
            if done == 1:
                other.delete_user("app", "alice")
        with DatabaseSessionService(new_target("dst")) as dst:
            report = source.copy_to(dst, progress=erase_once)
            assert report["memories"] == 0 and dst.store.read(lambda c: c.execute(
                "SELECT COUNT(*) FROM adk_memories").fetchone()[0]) == 0
    with DatabaseSessionService(src) as svc:  # again, through an export file
        svc.create_session("app", "alice", {}, "a0")
    asyncio.run(fill())
    out = tmp_path / "x.jsonl"
    with DatabaseSessionService(src) as source, DatabaseSessionService(src) as other, open(out, "wb") as fh:
        counts = source.export(fh, progress=lambda done, total: done == 1 and other.delete_user("app", "alice"))
    assert token.encode() not in out.read_bytes() and counts["memories"] == 0


def test_a_record_the_destination_cannot_hold_is_refused_by_name_and_the_rest_copied(new_target, tmp_path, capsys):
    """SQLite holds a NUL in a JSON string, PostgreSQL refuses it: a copy to PostgreSQL
    stopped at the first such session with an error naming none (exit 2), and an
    artifact's metadata with a NUL was written there although a save refuses it. Now each
    such record (session, memory, artifact version) is refused by name and the rest is
    copied; an import names the line."""
    import asyncio

    pytest.importorskip("google.adk")
    from google.genai import types as gt

    import adk_lite.adk as adk
    from google.adk.memory.memory_entry import MemoryEntry

    src = str(tmp_path / "src.sqlite3")
    with DatabaseSessionService(src) as svc:
        svc.create_session("app", "u", {"k": "a\x00b"}, "s0")
        svc.create_session("app", "u", {"k": "fine"}, "s1")

    async def fill():
        async with adk.DatabaseArtifactService(src) as arts:
            await arts.save_artifact(app_name="app", user_id="u", session_id="s1", filename="f",
                                     artifact=gt.Part(text="x"), custom_metadata={"m": "a\x00b"})
        async with adk.DatabaseMemoryService(src) as mem:
            await mem.add_memory(app_name="app", user_id="u", memories=[MemoryEntry(
                id="m0", content=gt.Content(parts=[gt.Part(text="a\x00b")]))])
    asyncio.run(fill())
    dst = new_target("dst")
    code, report = _json(capsys, "copy", src, dst)
    if not dst.startswith("postgresql"):
        assert (code, report["refused"], report["created"], report["memories"]) == (0, [], 2, 1)
        return
    refused = sorted((r["type"], r.get("session_id"), r["error"][:40]) for r in report["refused"])
    assert code == 1 and [r[:2] for r in refused] == [("artifact", "s1"), ("memory", ""), ("session", "s0")]
    assert all("NUL" in r["error"] for r in report["refused"])
    assert (report["created"], report["artifact_versions"], report["memories"]) == (1, 0, 0)
    export = tmp_path / "x.jsonl"
    assert main(["export", src, "-o", str(export)]) == 0
    capsys.readouterr()
    assert main(["import", str(export), new_target("imported"), "--create"]) == 2
    assert ":2: " in capsys.readouterr().err  # the line of the session s0
