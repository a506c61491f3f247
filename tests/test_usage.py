"""Token usage (get_usage, adk-lite usage) on both backends: every group and its
order, the bounds, events without usage, bad arguments, the accounting through trim,
fork, delete, erase, prune, retries, export/import, copy, backup and the schema
migration, the three interfaces and the command agreeing, and a real ADK Runner."""

from __future__ import annotations

import asyncio
import datetime
import os
import re
import time
from collections import defaultdict

import orjson
import pytest

from adk_lite import (AsyncDatabaseSessionService, DatabaseError, DatabaseSessionService, Event, EventActions,
                      ForeignDatabaseError, SCHEMA_VERSION, transfer)
from adk_lite.cli import main
from adk_lite.usage import GROUPS, SUMS

from .conftest import assert_refused_untouched, downgrade, edit_sqlite, on_postgres, stored_contents
from .workers import run_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400.0
T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
COUNT_NAMES = ("prompt_token_count", "candidates_token_count", "cached_content_token_count",
               "thoughts_token_count", "tool_use_prompt_token_count", "total_token_count")


def llm(inv, ts, counts=(10, 5, 2, 1, 0, 15), model="gemini-a", camel=False, event_id=None):
    """An event as a model's answer: ``usage_metadata`` (snake_case, or camelCase) and
    ``model_version`` (None: none)."""
    if camel:
        names = [re.sub(r"_(\w)", lambda m: m.group(1).upper(), n) for n in COUNT_NAMES]
        extra = {"usageMetadata": dict(zip(names, counts))}
        if model is not None:
            extra["modelVersion"] = model
    else:
        extra = {"usage_metadata": dict(zip(COUNT_NAMES, counts))}
        if model is not None:
            extra["model_version"] = model
    kwargs = {"id": event_id} if event_id else {}
    return Event(author="agent", invocation_id=inv, timestamp=ts, content={"parts": [{"text": f"answer {inv}"}]},
                 extra=extra, **kwargs)


def user_msg(inv, ts):
    return Event(author="user", invocation_id=inv, timestamp=ts, content={"parts": [{"text": "hi"}]})


def expected(calls, groups=(), since=None, until=None, **filters):
    """What get_usage must return, computed here from ``calls``: dicts with the keys
    ``app_name, user_id, session_id, invocation_id, model, timestamp, counts``."""
    keys = [GROUPS[g] for g in dict.fromkeys(groups)]
    totals = defaultdict(lambda: [0] * 7)
    for c in calls:
        if any(c[k] != v for k, v in filters.items() if v is not None):
            continue
        if (since is not None and c["timestamp"] < since) or (until is not None and c["timestamp"] >= until):
            continue
        day = datetime.datetime.fromtimestamp(c["timestamp"], datetime.timezone.utc).date().isoformat()
        full = dict(c, day=day)
        t = totals[tuple(full[k] for k in keys)]
        for i, n in enumerate(c["counts"]):
            t[i] += n
        t[6] += 1
    out = [{**dict(zip(keys, k)), **dict(zip(SUMS, t[:6])), "llm_calls": t[6]} for k, t in totals.items()]
    out.sort(key=lambda d: [(d[k] is not None, d[k] or "") for k in keys])
    if not keys and not out:
        out = [{**dict.fromkeys(SUMS, 0), "llm_calls": 0}]
    return out


def fill(svc):
    """Two apps, three users, sessions, invocations, models (one None), days and
    events without usage; returns the calls stored."""
    calls = []
    plan = [("shop", "alice", "s1"), ("shop", "alice", "s2"), ("shop", "bob", "s1"), ("desk", "alice", "d1")]
    n = 0
    for app, user, sid in plan:
        session = svc.create_session(app, user, session_id=sid)
        events = []
        for day in range(3):
            for k in range(2):
                n += 1
                inv = f"{sid}-inv{day}"
                ts = T0 + day * DAY + k * 60 + n
                counts = (n, 2 * n, n % 3, n % 2, 7 if n % 4 == 0 else 0, 3 * n + n % 3)
                model = None if n % 5 == 0 else ("gemini-a" if n % 2 else "gemini-b")
                events += [user_msg(inv, ts - 1), llm(inv, ts, counts, model, camel=n % 3 == 0)]
                calls.append({"app_name": app, "user_id": user, "session_id": sid, "invocation_id": inv,
                              "model": model, "timestamp": ts, "counts": counts})
        svc.append_events(session, events)
    return calls


ALL_GROUPINGS = [(), *((g,) for g in GROUPS), ("day", "model"), ("model", "day"), ("user", "app", "session"),
                 tuple(GROUPS)]


@pytest.mark.parametrize("groups", ALL_GROUPINGS, ids=lambda g: ",".join(g) or "none")
def test_every_group_gives_the_sums_of_its_calls_in_order(svc_any, groups):
    calls = fill(svc_any)
    got = svc_any.get_usage(group_by=groups)
    assert got == expected(calls, groups)
    for row in got:
        assert all(type(row[k]) is int for k in (*SUMS, "llm_calls"))  # never Decimal or float
        assert list(row) == [GROUPS[g] for g in groups] + [*SUMS, "llm_calls"]


def test_filters_and_bounds(svc_any):
    calls = fill(svc_any)
    cases = [dict(app_name="shop"), dict(user_id="alice"), dict(app_name="shop", user_id="alice"),
             dict(app_name="shop", user_id="alice", session_id="s2"), dict(session_id="s1"),
             dict(app_name="nope"), dict(user_id="alice", since=T0 + DAY), dict(until=T0 + DAY),
             dict(since=T0 + DAY, until=T0 + 2 * DAY)]
    for case in cases:
        filters = {k: v for k, v in case.items() if k not in ("since", "until")}
        for groups in ((), ("day",), ("session", "model")):
            assert svc_any.get_usage(**case, group_by=groups) == expected(
                calls, groups, case.get("since"), case.get("until"), **filters), (case, groups)
    first = min(c["timestamp"] for c in calls)
    assert svc_any.get_usage(since=first, until=first)[0]["llm_calls"] == 0  # until is exclusive
    assert svc_any.get_usage(since=first, until=first + 0.001)[0]["llm_calls"] == 1  # since is inclusive
    assert svc_any.get_usage(since=int(first))[0]["llm_calls"] == len(calls)  # ints are epoch seconds too
    assert svc_any.get_usage("shop", "alice", " s2 ") == svc_any.get_usage("shop", "alice", "s2")  # stripped, as ADK


def test_nothing_matched_gives_zeros_and_groups_give_an_empty_list(svc_any):
    assert svc_any.get_usage() == [{**dict.fromkeys(SUMS, 0), "llm_calls": 0}]
    assert svc_any.get_usage(group_by=["day"]) == []


def test_only_events_that_carried_usage_count(svc_any):
    s = svc_any.create_session("app", "u", session_id="s")
    odd = [
        user_msg("i", T0),
        Event(author="agent", invocation_id="i", timestamp=T0 + 1, extra={"usage_metadata": None}),
        Event(author="agent", invocation_id="i", timestamp=T0 + 2, extra={"usage_metadata": [1, 2]}),
        Event(author="agent", invocation_id="i", timestamp=T0 + 3,
              content={"parts": [{"text": "the words usage_metadata and usageMetadata in a text"}]}),
        Event(author="agent", invocation_id="i", timestamp=T0 + 4, custom_metadata={"usage_metadata": {"x": 1}}),
    ]
    svc_any.append_events(s, odd)
    assert svc_any.get_usage()[0]["llm_calls"] == 0
    # an empty object is a call with no counts; strings, bools, negatives, floats with a
    # fraction and values beyond int32 count 0; integral floats count
    svc_any.append_events(s, [
        Event(author="agent", invocation_id="j", timestamp=T0 + 5, extra={"usage_metadata": {}}),
        Event(author="agent", invocation_id="j", timestamp=T0 + 6, extra={"usage_metadata": {
            "prompt_token_count": "12", "candidates_token_count": True, "cached_content_token_count": -3,
            "thoughts_token_count": 2.5, "tool_use_prompt_token_count": 2**40, "total_token_count": 9.0},
            "model_version": 7}),
        llm("k", T0 + 7, (1, 2, 3, 4, 5, 15), camel=True),
    ])
    assert svc_any.get_usage(group_by=["invocation", "model"]) == [
        {"invocation_id": "j", "model": None, **dict.fromkeys(SUMS, 0), "total_tokens": 9, "llm_calls": 2},
        {"invocation_id": "k", "model": "gemini-a", "prompt_tokens": 1, "output_tokens": 2, "cached_tokens": 3,
         "thoughts_tokens": 4, "tool_use_prompt_tokens": 5, "total_tokens": 15, "llm_calls": 1}]


@pytest.mark.parametrize("kwargs, words", [
    (dict(group_by=["week"]), "group_by"), (dict(group_by="days"), "group_by"), (dict(group_by=[1]), "group_by"),
    (dict(group_by=5), "group_by"), (dict(group_by=None), "group_by"),
    (dict(since=10, until=5), "since"), (dict(since="7d"), "since"), (dict(until="2026-11-01"), "until"),
    (dict(since=True), "since"), (dict(since=float("nan")), "since"), (dict(until=float("inf")), "until"),
    (dict(since=10**400), "since"), (dict(app_name=""), "app_name"), (dict(session_id="  "), "session_id"),
])
def test_bad_arguments_are_value_errors_naming_the_argument(svc_any, kwargs, words):
    fill(svc_any)
    before = stored_contents(svc_any)
    with pytest.raises(ValueError, match=words):
        svc_any.get_usage(**kwargs)
    assert stored_contents(svc_any) == before


def test_a_group_named_twice_counts_once_and_a_str_is_one_group(svc_any):
    calls = fill(svc_any)
    assert svc_any.get_usage(group_by=("day", "day")) == svc_any.get_usage(group_by="day") == expected(calls, ["day"])


def test_day_is_the_utc_date_whatever_the_time_zone(svc_any, monkeypatch):
    s = svc_any.create_session("app", "u", session_id="s")
    midnight = datetime.datetime(2026, 11, 1, tzinfo=datetime.timezone.utc).timestamp()
    for zone in ("Pacific/Kiritimati", "America/Los_Angeles"):  # +14 h and -8 h: local dates differ
        monkeypatch.setenv("TZ", zone)
        time.tzset()
        svc_any.append_events(s, [llm(zone, midnight - 0.5), llm(zone, midnight)])
    monkeypatch.delenv("TZ")
    time.tzset()
    days = svc_any.get_usage(group_by=["day"])
    assert [(d["day"], d["llm_calls"]) for d in days] == [("2026-10-31", 2), ("2026-11-01", 2)]


# -- the accounting ------------------------------------------------------------------------

def compaction(start, end, ts):
    return Event(invocation_id="c", author="user", timestamp=ts, actions=EventActions(extra={"compaction": {
        "start_timestamp": start, "end_timestamp": end,
        "compacted_content": {"role": "model", "parts": [{"text": "summary"}]}}}))


def test_trim_keeps_the_usage_of_the_events_it_deletes(svc_any):
    s = svc_any.create_session("app", "u", session_id="s")
    svc_any.append_events(s, [user_msg("i1", T0), llm("i1", T0 + 1), user_msg("i2", T0 + 2), llm("i2", T0 + 3),
                              compaction(T0, T0 + 3, T0 + 4), llm("i3", T0 + 5)])
    before = svc_any.get_usage(group_by=["session", "invocation", "model", "day"])
    assert svc_any.trim_compacted("app", "u", "s")["events"] == 4
    assert svc_any.get_event_count("app", "u", "s") == 2
    assert svc_any.get_usage(group_by=["session", "invocation", "model", "day"]) == before
    assert svc_any.get_usage(since=T0, until=T0 + 2)[0]["llm_calls"] == 1  # the trimmed call keeps its timestamp
    svc_any.delete_session("app", "u", "s")  # and goes with its session
    assert svc_any.get_usage()[0]["llm_calls"] == 0


def test_a_fork_counts_only_its_new_events_even_after_the_source_is_deleted(svc_any):
    s = svc_any.create_session("app", "u", session_id="src")
    svc_any.append_events(s, [llm("i1", T0, (1, 1, 0, 0, 0, 2)), llm("i2", T0 + 1, (2, 2, 0, 0, 0, 4))])
    whole = svc_any.fork_session("app", "u", "src", new_session_id="whole")
    cut = svc_any.fork_session("app", "u", "src", new_session_id="cut", before_invocation_id="i2")
    assert len(whole.events) == 2 and len(cut.events) == 1
    by_session = {r["session_id"]: r["llm_calls"] for r in svc_any.get_usage(group_by=["session"])}
    assert by_session == {"src": 2}
    svc_any.append_event(whole, llm("i3", T0 + 2, (3, 3, 0, 0, 0, 6)))
    svc_any.fork_session("app", "u", "whole", new_session_id="grandchild")
    svc_any.delete_session("app", "u", "src")
    assert svc_any.get_usage(group_by=["session"]) == [
        {"session_id": "whole", "prompt_tokens": 3, "output_tokens": 3, "cached_tokens": 0, "thoughts_tokens": 0,
         "tool_use_prompt_tokens": 0, "total_tokens": 6, "llm_calls": 1}]


def test_delete_prune_and_erase_remove_the_usage_of_what_they_delete(svc_any):
    calls = fill(svc_any)
    svc_any.delete_session("shop", "alice", "s1")
    calls = [c for c in calls if (c["app_name"], c["user_id"], c["session_id"]) != ("shop", "alice", "s1")]
    assert svc_any.get_usage(group_by=["app", "user", "session"]) == expected(calls, ["app", "user", "session"])
    svc_any.delete_user("shop", "alice")
    calls = [c for c in calls if (c["app_name"], c["user_id"]) != ("shop", "alice")]
    assert svc_any.get_usage(group_by=["app", "user", "session"]) == expected(calls, ["app", "user", "session"])
    assert svc_any.get_usage("shop", "alice")[0]["llm_calls"] == 0
    assert svc_any.get_usage("desk", "alice")[0]["llm_calls"] == 6  # the same user id in another app stays
    svc_any.store.prune(time.time() + 60, "shop", None, None, True)
    assert svc_any.get_usage(group_by=["app"]) == expected([c for c in calls if c["app_name"] != "shop"], ["app"])


def test_a_retried_append_and_update_keys_count_nothing(svc_any):
    s = svc_any.create_session("app", "u", session_id="s")
    event = llm("i", T0, event_id="e1")
    svc_any.append_event(s, event)
    again = svc_any.get_session("app", "u", "s")
    svc_any.append_event(again, llm("i", T0, event_id="e1"))  # a retry of the stored id: a no-op
    svc_any.update_keys("app", "u", "s", {"k": 1, "usage_metadata": {"prompt_token_count": 5}})
    assert svc_any.get_usage()[0]["llm_calls"] == 1


def test_a_failed_append_writes_no_usage(svc_any):
    s = svc_any.create_session("app", "u", session_id="s")
    stale = svc_any.get_session("app", "u", "s")
    svc_any.append_event(s, llm("i", T0))
    with pytest.raises(ValueError):  # StaleSessionError
        svc_any.append_event(stale, llm("j", T0 + 1))
    assert svc_any.get_usage()[0]["llm_calls"] == 1


def history(svc):
    """Everything get_usage can tell, finest grouping."""
    return svc.get_usage(group_by=["app", "user", "session", "invocation", "model", "day"])


def lived(svc):
    """Calls, a trim that deleted some of them, a fork with copies and its own call."""
    fill(svc)
    s = svc.create_session("shop", "carol", session_id="t")
    svc.append_events(s, [llm("i1", T0), llm("i2", T0 + 1), compaction(T0, T0 + 1, T0 + 2), llm("i3", T0 + 3)])
    assert svc.trim_compacted("shop", "carol", "t")["events"] == 2
    fork = svc.fork_session("shop", "carol", "t", new_session_id="t-fork")
    svc.append_event(fork, llm("i4", T0 + 4, model="gemini-c"))
    return history(svc)


def test_export_import_carries_the_accounting_itself(new_target, tmp_path):
    with DatabaseSessionService(new_target("src")) as src:
        before = lived(src)
        path = str(tmp_path / "out.jsonl")
        with open(path, "wb") as out:
            transfer.write_export(src.store, transfer.plan_export(src.store, None, None), out)
    records = [orjson.loads(line) for line in open(path, "rb")]
    assert records[0]["format"] == 2
    fork_record = next(r for r in records if r.get("session_id") == "t-fork")
    assert [u["invocation_id"] for u in fork_record["usage"]] == ["i4"]  # the copies carry none
    with DatabaseSessionService(new_target("dst")) as dst:
        report = transfer.import_file(dst.store, path)
        assert report["created"] == 6
        assert history(dst) == before
        assert transfer.import_file(dst.store, path)["unchanged"] == 6  # a re-run adds nothing
        assert history(dst) == before
        transfer.import_file(dst.store, path, replace=True)
        assert history(dst) == before


def test_a_format_1_file_gets_usage_from_its_events(svc_any, tmp_path):
    record = {"type": "session", "app_name": "app", "user_id": "u", "session_id": "old", "created_at": T0,
              "updated_at": T0, "state": {},
              "events": [{"event_id": "e1", "invocation_id": "i", "author": "agent", "branch": None, "timestamp": T0,
                          "body": {"usage_metadata": {"prompt_token_count": 4, "total_token_count": 6},
                                   "model_version": "m"}},
                         {"event_id": "e2", "invocation_id": "i", "author": "user", "branch": None,
                          "timestamp": T0 + 1, "body": {}}]}
    path = tmp_path / "v1.jsonl"
    path.write_bytes(orjson.dumps({"type": "adk_lite_export", "format": 1}) + b"\n" + orjson.dumps(record) + b"\n")
    transfer.import_file(svc_any.store, str(path))
    assert svc_any.get_usage(group_by=["model"]) == [
        {"model": "m", **dict.fromkeys(SUMS, 0), "prompt_tokens": 4, "total_tokens": 6, "llm_calls": 1}]


@pytest.mark.parametrize("usage, words", [
    ("x", "usage must be a list"), ([1], r"usage\[0\] must be an object"),
    ([{"event_id": "e", "invocation_id": "i", "timestamp": 1.0, "total_tokens": -1}], r"usage\[0\].total_tokens"),
    ([{"event_id": "e", "invocation_id": "i", "timestamp": 1.0, "total_tokens": "5"}], r"usage\[0\].total_tokens"),
    ([{"event_id": "e", "invocation_id": "i", "timestamp": "x"}], r"usage\[0\].timestamp"),
    ([{"event_id": "e", "invocation_id": "i", "timestamp": 1.0, "day": "2026-01-01"}], "unknown fields"),
    ([{"event_id": "e", "invocation_id": "i", "timestamp": 1.0}] * 2, "repeated"),
    ([{"event_id": "", "invocation_id": "i", "timestamp": 1.0}], "event_id"),
])
def test_a_forged_usage_field_refuses_the_file(svc_any, tmp_path, usage, words):
    record = {"type": "session", "app_name": "app", "user_id": "u", "session_id": "s", "created_at": T0,
              "updated_at": T0, "state": {}, "events": [], "usage": usage}
    path = tmp_path / "bad.jsonl"
    path.write_bytes(orjson.dumps(transfer.header()) + b"\n" + orjson.dumps(record) + b"\n")
    with pytest.raises(ValueError, match=words):
        transfer.check_file(str(path))


def test_copy_carries_the_accounting_to_the_other_backend(new_target, backend):
    from adk_lite.cli import main as cli

    with DatabaseSessionService(new_target("src")) as src:
        before = lived(src)
    assert cli(["copy", new_target("src"), new_target("dst"), "--json"]) == 0
    with DatabaseSessionService(new_target("dst")) as dst:
        assert history(dst) == before


def test_backup_and_restore_keep_the_accounting(tmp_path):
    path, copy = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    with DatabaseSessionService(path) as svc:
        before = lived(svc)
        svc.backup(copy)
    with DatabaseSessionService(copy) as restored:
        assert history(restored) == before


# -- the schema migration -----------------------------------------------------------------

def _make_v4(svc):
    """Turn a database into what schema version 4 wrote: no adk_usage (nor the other
    tables of version 5)."""
    downgrade(svc, 4)


def test_the_migration_to_version_5_backfills_from_stored_events(new_target, backend):
    target = new_target()
    with DatabaseSessionService(target) as svc:
        fill(svc)
        s = svc.create_session("shop", "carol", session_id="t")
        svc.append_events(s, [llm("i1", T0), llm("i2", T0 + 1)])
        fork = svc.fork_session("shop", "carol", "t", new_session_id="t-fork", before_invocation_id="i2")
        svc.append_event(fork, llm("i3", T0 + 2))
        before = history(svc)
        _make_v4(svc)
    if backend == "sqlite":
        with DatabaseSessionService(target, read_only=True) as old:  # read-only never migrates
            with pytest.raises(DatabaseError, match="read-write once"):
                old.get_usage()
    with DatabaseSessionService(target) as svc:
        assert svc.get_stats()["schema_version"] == SCHEMA_VERSION
        assert history(svc) == before  # the fork's copied call is not counted again


def test_a_file_with_the_wrong_tables_for_its_version_is_refused_untouched(tmp_path):
    path = str(tmp_path / "a.db")
    with DatabaseSessionService(path) as svc:
        svc.create_session("app", "u", session_id="s")
    edit_sqlite(path, "DROP TABLE adk_usage")
    assert_refused_untouched(path, ForeignDatabaseError, "lacks the tables adk_usage")
    other = str(tmp_path / "b.db")
    with DatabaseSessionService(other) as svc:
        svc.create_session("app", "u", session_id="s")
    # says version 4 but already has the table the migration to 5 creates
    edit_sqlite(other, "UPDATE adk_metadata SET value = '4' WHERE key = 'schema_version'")
    assert_refused_untouched(other, ForeignDatabaseError, "adk_usage, which schema_version 4 does not")


# -- the three interfaces and the command ----------------------------------------------------

def test_the_sync_async_and_adk_services_agree(target):
    pytest.importorskip("google.adk")
    from adk_lite.adk import DatabaseSessionService as AdkService

    with DatabaseSessionService(target) as svc:
        fill(svc)
        want = [svc.get_usage(group_by=g) for g in ALL_GROUPINGS]
        want_user = svc.get_usage("shop", "alice", since=T0, until=T0 + DAY, group_by=["model"])

    async def read():
        async with AsyncDatabaseSessionService(target) as aio:
            a = [await aio.get_usage(group_by=g) for g in ALL_GROUPINGS]
            a_user = await aio.get_usage("shop", "alice", since=T0, until=T0 + DAY, group_by=["model"])
        adk = AdkService(target)
        try:
            b = [await adk.get_usage(group_by=g) for g in ALL_GROUPINGS]
            b_user = await adk.get_usage(app_name="shop", user_id="alice", since=T0, until=T0 + DAY,
                                         group_by=["model"])
            with pytest.raises(ValueError, match="group_by"):
                await adk.get_usage(group_by=["week"])
        finally:
            await adk.close()
        return a, a_user, b, b_user

    a, a_user, b, b_user = asyncio.run(read())
    assert a == b == want and a_user == b_user == want_user


def cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_command_prints_what_the_api_returns(capsys, target):
    with DatabaseSessionService(target) as svc:
        calls = fill(svc)
        api = svc.get_usage("shop", "alice", since=T0 + DAY, group_by=["day", "model"])
        whole = svc.get_usage()
    code, out, err = cli(capsys, "usage", target, "--app", "shop", "--user", "alice", "--since", str(T0 + DAY),
                         "--by", "day,model", "--json")
    assert code == 0 and orjson.loads(out) == api, err
    code, out, _ = cli(capsys, "usage", target, "--json")
    assert orjson.loads(out) == whole
    iso_day = datetime.datetime.fromtimestamp(T0 + DAY, datetime.timezone.utc).date().isoformat()
    day_start = datetime.datetime.fromisoformat(iso_day).replace(tzinfo=datetime.timezone.utc).timestamp()
    code, out, _ = cli(capsys, "usage", target, "--since", iso_day, "--until", str(day_start + DAY), "--json")
    assert orjson.loads(out) == expected(calls, (), day_start, day_start + DAY)
    code, out, _ = cli(capsys, "usage", target, "--since", "36500d", "--json")  # durations back from now
    assert orjson.loads(out) == whole
    code, out, _ = cli(capsys, "usage", target, "--session", "s2", "--by", "session")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["session", "prompt", "output", "cached", "thoughts", "tool", "prompt",
                                              "total", "calls"]
    row = expected(calls, ["session"], session_id="s2")[0]
    assert lines[1].split() == ["s2", *(str(row[k]) for k in SUMS), str(row["llm_calls"])]


@pytest.mark.parametrize("argv, words", [
    (["--by", "week"], "--by 'week'"), (["--since", "yesterday"], "--since 'yesterday'"),
    (["--until", "2026-13-01"], "--until"), (["--since", "20", "--until", "10"], "since"),
    (["--app", ""], "--app"), (["--session", " "], "session_id"),
])
def test_bad_command_lines_are_one_line_exit_2(capsys, target, argv, words):
    with DatabaseSessionService(target) as svc:
        fill(svc)
    for extra in ([], ["--json"]):
        code, out, err = cli(capsys, "usage", target, *argv, *extra)
        assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
        assert words in err


def test_the_command_never_creates_a_missing_database(capsys, tmp_path):
    path = str(tmp_path / "none.db")
    code, out, err = cli(capsys, "usage", path)
    assert code == 2 and "does not exist" in err and os.listdir(tmp_path) == []


def test_the_command_leaves_the_file_unchanged(capsys, tmp_path):
    path = str(tmp_path / "a.db")
    with DatabaseSessionService(path) as svc:
        fill(svc)
    before = open(path, "rb").read(), os.stat(path).st_mtime_ns
    assert cli(capsys, "usage", path, "--by", "day")[0] == 0
    assert (open(path, "rb").read(), os.stat(path).st_mtime_ns) == before


# -- a real ADK Runner ---------------------------------------------------------------------

def test_a_runner_with_a_scripted_model_gets_exactly_its_totals(target, tmp_path):
    pytest.importorskip("google.adk")
    from google.adk.agents import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_response import LlmResponse
    from google.adk.runners import Runner
    from google.adk.tools import FunctionTool
    from google.genai import types

    from adk_lite.adk import DatabaseSessionService as AdkService

    emitted = []

    class Metered(BaseLlm):
        """Calls a tool once per turn, then answers; every response with usage and a model version."""

        model: str = "metered"

        async def generate_content_async(self, llm_request, stream=False):
            last = llm_request.contents[-1].parts[-1]
            n = len(emitted) + 1
            usage = types.GenerateContentResponseUsageMetadata(
                prompt_token_count=100 * n, candidates_token_count=10 * n, cached_content_token_count=n,
                thoughts_token_count=2 * n, tool_use_prompt_token_count=3 * n, total_token_count=115 * n)
            version = "metered-001" if n % 2 else "metered-002"
            emitted.append((usage, version))
            if last.function_response is None:
                part = types.Part(function_call=types.FunctionCall(name="lookup", args={"q": last.text or ""}))
            else:
                part = types.Part(text="done")
            yield LlmResponse(content=types.Content(role="model", parts=[part]), usage_metadata=usage,
                              model_version=version)

    def lookup(q: str) -> dict:
        return {"found": q}

    async def scenario():
        svc = AdkService(target)
        runner = Runner(app_name="meter", agent=LlmAgent(name="a", model=Metered(), tools=[FunctionTool(lookup)]),
                        session_service=svc)
        session = await svc.create_session(app_name="meter", user_id="alice")
        for text in ("one", "two", "three"):
            async for _ in runner.run_async(user_id="alice", session_id=session.id,
                                            new_message=types.Content(role="user", parts=[types.Part(text=text)])):
                pass
        await runner.close()
        got = await svc.get_usage(app_name="meter", user_id="alice", group_by=["model"])
        stored = await svc.get_session(app_name="meter", user_id="alice", session_id=session.id)
        invocations = {e.invocation_id for e in stored.events}
        per_invocation = await svc.get_usage(app_name="meter", group_by=["invocation"])
        return got, invocations, per_invocation

    got, invocations, per_invocation = asyncio.run(scenario())
    assert len(emitted) == 6  # two model calls per turn
    want = {}
    for usage, version in emitted:
        row = want.setdefault(version, {"model": version, **dict.fromkeys(SUMS, 0), "llm_calls": 0})
        for key, value in zip(SUMS, (usage.prompt_token_count, usage.candidates_token_count,
                                     usage.cached_content_token_count, usage.thoughts_token_count,
                                     usage.tool_use_prompt_token_count, usage.total_token_count)):
            row[key] += value
        row["llm_calls"] += 1
    assert got == [want["metered-001"], want["metered-002"]]
    assert {r["invocation_id"] for r in per_invocation} == invocations and len(invocations) == 3
    assert all(r["llm_calls"] == 2 for r in per_invocation)


def test_import_adk_makes_usage_from_the_imported_events(tmp_path):
    pytest.importorskip("google.adk")
    from google.adk.events import Event as AdkEvent
    from google.adk.sessions.sqlite_session_service import SqliteSessionService
    from google.genai import types

    from adk_lite.adk import import_from_adk

    source = str(tmp_path / "adk.db")

    async def fill_adk():
        svc = SqliteSessionService(source)
        s = await svc.create_session(app_name="app", user_id="u", session_id="s")
        for i in range(3):
            await svc.append_event(s, AdkEvent(
                author="agent", invocation_id=f"i{i}", timestamp=T0 + i,
                usage_metadata=types.GenerateContentResponseUsageMetadata(prompt_token_count=i + 1,
                                                                          total_token_count=2 * i + 2),
                model_version="adk-model"))
        await svc.append_event(s, AdkEvent(author="user", invocation_id="i9", timestamp=T0 + 9))
    asyncio.run(fill_adk())
    target = str(tmp_path / "lite.db")
    import_from_adk(source, target)
    with DatabaseSessionService(target) as svc:
        assert svc.get_usage(group_by=["model"]) == [
            {"model": "adk-model", **dict.fromkeys(SUMS, 0), "prompt_tokens": 6, "total_tokens": 12, "llm_calls": 3}]


# -- the documentation ------------------------------------------------------------------------

def test_the_python_blocks_of_docs_usage_run(tmp_path):
    from tests.test_readme import run_code

    text = open(os.path.join(ROOT, "docs", "usage.md"), encoding="utf-8").read()
    blocks = re.findall(r"^```python\n(.*?)^```$", text, re.M | re.S)
    assert blocks
    for code in blocks:
        out = run_code(code, tmp_path)
        assert out.returncode == 0, out.stderr


def test_threads_appending_at_once_count_every_call_once(svc_any):
    """Appends of many threads (group commits on SQLite, one savepoint each; a stale
    one rolled back alone) keep the accounting exact."""
    sessions = [svc_any.create_session("app", f"u{i % 3}", session_id=f"s{i}") for i in range(8)]
    stale = [svc_any.get_session("app", s.user_id, s.id) for s in sessions]

    def work(i):
        for k in range(20):
            svc_any.append_event(sessions[i], llm(f"i{i}-{k}", T0 + k, (i + 1, k, 0, 0, 0, i + 1 + k)))
            if k == 10:
                try:
                    svc_any.append_event(stale[i], llm("stale", T0, (1000, 0, 0, 0, 0, 1000)))
                except ValueError:
                    pass

    assert run_threads(work, 8) == []
    got = {r["session_id"]: (r["prompt_tokens"], r["output_tokens"], r["llm_calls"])
           for r in svc_any.get_usage(group_by=["session"])}
    assert got == {f"s{i}": (20 * (i + 1), sum(range(20)), 20) for i in range(8)}
