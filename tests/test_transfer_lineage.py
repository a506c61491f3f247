"""Moving sessions without loss: ``adk-lite copy`` and export -> import carry each
session's ``initial_state``, ``forked_from`` and revision (export format 2), so a fork
at a cut of the moved session equals a fork at the same cut of the original; forged
values of those fields are refused with their line number before anything is written.
Both backends."""

from __future__ import annotations

import os

import orjson
import pytest

from adk_lite import DatabaseSessionService, Event, EventActions, transfer
from adk_lite.cli import main
from tests.conftest import stored_contents

APP, USER = "app", "u"
CREATED = {"greeting": "olá", "n": 0, "nested": {"a": [1, 2.5, None]}, "user:lang": "pt", "app:v": 1}


def fill(svc: DatabaseSessionService) -> None:
    """One session with create-time keys that events later change, a fork of it at a
    cut, and a fork of a session with unknown initial state (imported from format 1)."""
    session = svc.create_session(APP, USER, state=dict(CREATED), session_id="s")
    deltas = [{"n": 1}, {"n": 2, "x": "y"}, {"greeting": "oi", "user:lang": "en"}, {"x": None}, {"n": 3}]
    for i, delta in enumerate(deltas):
        session = svc.get_session(APP, USER, "s")
        svc.append_event(session, Event(invocation_id=f"inv-{i}", author="user", timestamp=1000.0 + i,
                                        actions=EventActions(state_delta=delta)))
    svc.update_keys(APP, USER, "s", {"n": None})  # a deletion, recorded as an event
    svc.fork_session(APP, USER, "s", new_session_id="f", before_invocation_id="inv-3")


def move(kind: str, src: str, dst: str, tmp_path, capsys) -> None:
    if kind == "copy":
        assert main(["copy", src, dst]) == 0
    else:
        out = str(tmp_path / "export.jsonl")
        assert main(["export", src, "-o", out]) == 0
        header = orjson.loads(open(out, "rb").readline())
        assert header["format"] == transfer.FORMAT == 2
        assert main(["import", out, dst, "--create"]) == 0
    capsys.readouterr()


def fork_view(svc: DatabaseSessionService, source: str, cut, new: str) -> dict:
    fork = svc.fork_session(APP, USER, source, new_session_id=new, before_invocation_id=cut)
    lineage = svc.get_lineage(APP, USER, new)
    return {"state": fork.state, "events": [e.to_dict() for e in fork.events],
            "lineage": {k: v for k, v in lineage.items() if k != "forked_at"}}


@pytest.mark.parametrize("kind", ["copy", "export-import"])
def test_a_fork_at_a_cut_after_a_move_equals_the_fork_on_the_source(kind, new_target, tmp_path, capsys):
    src, dst = new_target("src"), new_target("dst")
    with DatabaseSessionService(src) as svc:
        fill(svc)
    move(kind, src, dst, tmp_path, capsys)
    cuts = [None] + [f"inv-{i}" for i in range(5)]
    with DatabaseSessionService(src) as a, DatabaseSessionService(dst) as b:
        for sid in ("s", "f"):
            ours, theirs = a.get_session(APP, USER, sid), b.get_session(APP, USER, sid)
            assert theirs.revision == ours.revision and (sid == "f" or ours.revision == 6)
            assert [e.to_dict() for e in theirs.events] == [e.to_dict() for e in ours.events]
            assert theirs.state == ours.state
            assert b.get_lineage(APP, USER, sid) == a.get_lineage(APP, USER, sid)
            assert b.store.read_whole_session(APP, USER, sid)[1:3] == a.store.read_whole_session(APP, USER, sid)[1:3]
        for i, cut in enumerate(cuts):
            expected = fork_view(a, "s", cut, f"cut{i}")
            assert fork_view(b, "s", cut, f"cut{i}") == expected
            assert expected["lineage"]["state_exact"] is True
            if cut == "inv-0":  # before any event: exactly the create-time session keys
                assert expected["state"] == {"greeting": "olá", "n": 0, "nested": {"a": [1, 2.5, None]},
                                             "user:lang": "en", "app:v": 1}
        # the fork moved with its lineage: a fork of the fork is the same too
        assert fork_view(b, "f", "inv-1", "ff") == fork_view(a, "f", "inv-1", "ff")


def test_a_move_is_idempotent_and_a_differing_initial_state_is_a_conflict(new_target, tmp_path, capsys):
    src, dst = new_target("src"), new_target("dst")
    with DatabaseSessionService(src) as svc:
        fill(svc)
    assert main(["copy", src, dst]) == 0
    capsys.readouterr()
    assert main(["copy", src, dst, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["unchanged"] == 2
    out = str(tmp_path / "e.jsonl")
    assert main(["export", src, "-o", out]) == 0
    capsys.readouterr()
    lines = [orjson.loads(line) for line in open(out, "rb")]
    session = next(r for r in lines if r.get("session_id") == "s")
    session["initial_state"] = {"greeting": "other"}
    open(out, "wb").write(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    assert main(["import", out, dst, "--json"]) == 1  # same state and events, another initial state
    report = orjson.loads(capsys.readouterr().out)
    assert [c["session_id"] for c in report["conflicts"]] == ["s"]
    assert main(["import", out, dst, "--replace"]) == 0
    with DatabaseSessionService(dst) as svc:
        fork = svc.fork_session(APP, USER, "s", new_session_id="g", before_invocation_id="inv-0")
        assert fork.state == {"greeting": "other", "user:lang": "en", "app:v": 1}


def test_a_format_1_file_still_imports_with_an_unknown_initial_state(target, tmp_path):
    record = {"type": "session", "app_name": APP, "user_id": USER, "session_id": "old", "created_at": 1.0,
              "updated_at": 2.0, "state": {"k": 2},
              "events": [{"event_id": "e1", "invocation_id": "i1", "author": "user", "branch": None,
                          "timestamp": 1.5, "body": {"actions": {"state_delta": {"k": 2}}}}]}
    path = tmp_path / "old.jsonl"
    path.write_bytes(b'{"type":"adk_lite_export","format":1}\n' + orjson.dumps(record) + b"\n")
    assert main(["import", str(path), target, "--create"]) == 0
    with DatabaseSessionService(target) as svc:
        assert svc.get_session(APP, USER, "old").revision == 1  # one append per event, not 0
        assert svc.store.read_whole_session(APP, USER, "old")[1:3] == (None, None)
        fork = svc.fork_session(APP, USER, "old", new_session_id="f", before_invocation_id="i1")
        assert svc.get_lineage(APP, USER, "f")["state_exact"] is False and fork.state == {}


def _session(**changes):
    record = {"type": "session", "app_name": APP, "user_id": USER, "session_id": "bad", "created_at": 1.0,
              "updated_at": 2.0, "state": {"k": 1}, "events": [], "revision": 0, "initial_state": {"k": 1},
              "forked_from": None}
    record.update(changes)
    return orjson.dumps(record)


LINEAGE = {"session_id": "s", "before_invocation_id": "inv-1", "events": 1, "forked_at": 5.0, "state_exact": True}
BIG = b"123456789012345678901234567890"
BAD = {
    "initial_state a list": (_session(initial_state=[1]), "initial_state must be an object"),
    "initial_state a string": (_session(initial_state="k"), "initial_state must be an object"),
    "initial_state a number": (_session(initial_state=5), "initial_state must be an object"),
    "initial_state app: key": (_session(initial_state={"app:x": 1}), "app:x"),
    "initial_state user: key": (_session(initial_state={"user:x": 1}), "user:x"),
    "initial_state temp: key": (_session(initial_state={"temp:x": 1}), "temp:x"),
    "initial_state empty key": (_session(initial_state={"": 1}), "initial_state"),
    "initial_state int beyond 64 bits": (_session(initial_state={"k": "BIG"}).replace(b'"BIG"', BIG), "64-bit"),
    "initial_state int64+1": (_session(initial_state={"k": 2**63}), "64-bit"),
    "forked_from a string": (_session(forked_from="s"), "forked_from must be an object"),
    "forked_from a list": (_session(forked_from=[LINEAGE]), "forked_from must be an object"),
    "forked_from a number": (_session(forked_from=3), "forked_from must be an object"),
    "forked_from empty": (_session(forked_from={}), "forked_from.session_id is missing"),
    "forked_from session id a number": (_session(forked_from=dict(LINEAGE, session_id=5)), "forked_from.session_id"),
    "forked_from events negative": (_session(forked_from=dict(LINEAGE, events=-1)), "forked_from.events"),
    "forked_from events text": (_session(forked_from=dict(LINEAGE, events="1")), "forked_from.events"),
    "forked_from state_exact text": (_session(forked_from=dict(LINEAGE, state_exact="yes")), "state_exact"),
    "forked_from forked_at text": (_session(forked_from=dict(LINEAGE, forked_at="now")), "forked_at"),
    "forked_from cut a list": (_session(forked_from=dict(LINEAGE, before_invocation_id=[1])), "before_invocation"),
    "revision negative": (_session(revision=-1), "revision"),
    "revision text": (_session(revision="3"), "revision"),
    "revision bool": (_session(revision=True), "revision"),
    "revision null": (_session(revision=None), "revision"),
    "revision beyond 64 bits": (_session(revision=0).replace(b'"revision":0', b'"revision":' + BIG), "revision"),
    "state int beyond 64 bits": (_session(state={"k": "BIG"}).replace(b'"BIG"', BIG), "64-bit"),
    "body custom_metadata int beyond 64 bits": (_session(events=[
        {"event_id": "e", "invocation_id": "i", "author": "a", "timestamp": 1.0,
         "body": {"custom_metadata": {"n": "BIG"}}}]).replace(b'"BIG"', BIG), "64-bit"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_a_forged_session_record_is_refused_with_its_line_and_writes_nothing(name, target, tmp_path, capsys):
    line, words = BAD[name]
    good = orjson.loads(_session(session_id="good"))
    path = tmp_path / "forged.jsonl"
    path.write_bytes(orjson.dumps(transfer.header()) + b"\n" + orjson.dumps(good) + b"\n" + line + b"\n"
                     + orjson.dumps(dict(good, session_id="last")) + b"\n")
    with DatabaseSessionService(target) as svc:
        svc.create_session(APP, USER, session_id="kept")
    with DatabaseSessionService(target) as svc:
        before = stored_contents(svc)
    for argv in (["import", str(path), target], ["import", str(path), target, "--replace", "--json"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{path}:3:" in err and words in err and "Traceback" not in err, err
    with DatabaseSessionService(target) as svc:
        assert stored_contents(svc) == before
        assert [s.id for s in svc.list_sessions(APP, USER)] == ["kept"]


def test_copy_refuses_the_source_itself_in_another_spelling(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = str(tmp_path / "src.sqlite3")
    with DatabaseSessionService(src) as svc:
        fill(svc)
    os.symlink(src, tmp_path / "link.sqlite3")
    os.link(src, tmp_path / "hard.sqlite3")
    before = open(src, "rb").read()
    for dst in ("src.sqlite3", "./src.sqlite3", str(tmp_path / "link.sqlite3"), "hard.sqlite3", src + "-wal",
                src + "-shm", src + "-journal"):
        assert main(["copy", src, dst]) == 2, dst
        assert "is SRC" in capsys.readouterr().err
        assert not os.path.exists(src + "-wal") and not os.path.exists(src + "-journal"), dst
    assert open(src, "rb").read() == before
