"""The maintenance methods the ``adk-lite`` command runs, called as library methods
(adk_lite.admin through DatabaseSessionService and AsyncDatabaseSessionService)."""

import asyncio
import io
import time

import pytest

from adk_lite import AsyncDatabaseSessionService, DatabaseSessionService, SCHEMA_VERSION, Event
from tests.conftest import on_postgres


def _fill(svc, sessions=3, events=2):
    for i in range(sessions):
        s = svc.create_session("app", "alice", {"n": i}, f"s{i}")
        for j in range(events):
            svc.append_event(s, Event(author="user", invocation_id=f"i{j}", timestamp=time.time()))


def test_prune_counts_then_deletes_in_batches_with_progress(svc_any):
    _fill(svc_any, sessions=5)
    cutoff = time.time() + 1
    counted = svc_any.prune(cutoff, app_name="app", dry_run=True)
    assert counted == {"sessions": 5, "events": 10, "dry_run": True, "updated_before": cutoff}
    assert len(svc_any.list_sessions("app", "alice")) == 5  # a dry run deletes nothing
    seen = []
    done = svc_any.prune(cutoff, app_name="app", batch=2, progress=lambda d, t: seen.append((d, t)))
    assert (done["sessions"], done["events"]) == (5, 10)
    assert seen == [(2, 5), (4, 5), (5, 5)]
    assert len(svc_any.list_sessions("app", "alice")) == 0


def test_prune_refuses_a_bad_batch_and_writes_nothing(svc_any):
    _fill(svc_any, sessions=1)
    for batch in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="batch"):
            svc_any.prune(time.time() + 1, batch=batch)
    assert len(svc_any.list_sessions()) == 1


def test_check_names_the_current_schema_version(svc_any):
    found = svc_any.check()
    assert found["current_schema_version"] == SCHEMA_VERSION == found["schema_version"]
    assert found["integrity_check"] == ["ok"] and not found["schema_problems"]


def test_get_stats_top_lists_the_largest_sessions(svc_any):
    _fill(svc_any, sessions=3)
    assert "largest_sessions" not in svc_any.get_stats()
    assert len(svc_any.get_stats(top=2)["largest_sessions"]) == 2
    assert svc_any.event_counts([("app", "alice", "s0"), ("app", "alice", "nope")]) == [2, 0]


def test_read_events_pages_a_session_as_get_session_orders_it(svc_any):
    s = svc_any.create_session("app", "alice", None, "s")
    for j in range(7):  # equal timestamps: append order decides
        svc_any.append_event(s, Event(author="user", invocation_id=f"i{j}", timestamp=1000.0 + (j >= 3)))
    whole = [e.id for e in svc_any.get_session("app", "alice", "s").events]
    pages = [svc_any.read_events("app", "alice", "s", offset=o, limit=3) for o in (0, 3, 6, 9)]
    assert [e.id for page in pages for e in page] == whole
    assert [len(p) for p in pages] == [3, 3, 1, 0]
    assert pages[0][0] == svc_any.get_session("app", "alice", "s").events[0]
    assert svc_any.read_events("app", "alice", "nope") == []
    for bad in ({"offset": -1}, {"limit": -1}, {"offset": 1.5}, {"limit": None}, {"offset": True}, {"limit": "3"}):
        with pytest.raises((TypeError, ValueError), match="offset|limit") as refused:
            svc_any.read_events("app", "alice", "s", **bad)
        assert "None" not in str(refused.value).replace("not None", "")  # None is refused: never offered


def test_list_forks_names_the_direct_forks_of_one_session(svc_any):
    svc_any.create_session("app", "alice", {"n": 1}, "src")
    svc_any.create_session("app", "alice", None, "other")
    svc_any.fork_session("app", "alice", "src", new_session_id="f1")
    svc_any.fork_session("app", "alice", "src", new_session_id="f0")
    svc_any.fork_session("app", "alice", "f1", new_session_id="grandchild")
    svc_any.fork_session("app", "alice", "other", new_session_id="f-other")
    assert svc_any.list_forks("app", "alice", "src") == ["f0", "f1"]
    assert svc_any.list_forks("app", "alice", "f1") == ["grandchild"]
    assert svc_any.list_forks("app", "bob", "src") == []
    assert svc_any.list_forks("app", "alice", "src", scan=0) == []
    with pytest.raises(ValueError, match="scan"):
        svc_any.list_forks("app", "alice", "src", scan=-1)


def test_export_then_import_file_round_trips(svc_any, new_target, tmp_path):
    _fill(svc_any, sessions=2)
    seen = []
    out = io.BytesIO()
    counts = svc_any.export(out, app_name="app", progress=lambda d, t: seen.append((d, t)))
    assert counts["sessions"] == 2 and seen == [(1, 2), (2, 2)]
    path = tmp_path / "x.jsonl"
    path.write_bytes(out.getvalue())
    with DatabaseSessionService(new_target("dst")) as dst:
        report = dst.import_file(str(path))
        assert report["created"] == 2 and report["analyzed"] is on_postgres(dst.path)
        assert dst.get_session("app", "alice", "s1").state == {"n": 1}


def test_copy_to_copies_and_refuses_the_same_database(svc_any, new_target):
    _fill(svc_any, sessions=2)
    with pytest.raises(ValueError, match="same database"):
        svc_any.copy_to(svc_any)
    with DatabaseSessionService(new_target("copy")) as dst:
        report = svc_any.copy_to(dst)
        assert (report["created"], report["events"]) == (2, 4)
        assert report["analyzed"] is on_postgres(dst.path)
        assert svc_any.copy_to(dst)["unchanged"] == 2  # resumable: a re-run copies nothing twice


def test_async_twins_run_the_same_methods(target):
    async def run():
        async with AsyncDatabaseSessionService(target) as svc:
            await svc.create_session("app", "bob", None, "s")
            assert (await svc.check())["current_schema_version"] == SCHEMA_VERSION
            assert (await svc.prune(time.time() + 1, dry_run=True))["sessions"] == 1
            assert await svc.event_counts([("app", "bob", "s")]) == [0]
            assert await svc.read_events("app", "bob", "s") == []
            assert await svc.list_forks("app", "bob", "s") == []
            assert await svc.list_artifacts("app", "bob") == []
            assert await svc.search_memory("app", "bob", "x") == []
            assert (await svc.trim_all(dry_run=True))["events"] == 0
    asyncio.run(run())
