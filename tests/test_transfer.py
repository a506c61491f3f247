"""The export/import format (adk_lite.transfer): header, whole-record validation, atomic
sessions. Imports run on both backends; a bad line is refused before any database is
opened (transfer.check_file), so that check runs on SQLite only."""

import os

import orjson
import pytest

from adk_lite import DatabaseSessionService, Event, EventActions, transfer
from adk_lite.cli import main

GOOD_EVENT = {"event_id": "e1", "invocation_id": "i", "author": "user", "branch": None, "timestamp": 1.5,
              "body": {"content": {"parts": [{"text": "hi"}]}}}


def session(**changes):
    record = {"type": "session", "app_name": "app", "user_id": "u", "session_id": "s", "created_at": 1.0,
              "updated_at": 2.0, "state": {"k": 1}, "events": [dict(GOOD_EVENT)]}
    record.update(changes)
    return record


DEEP = b"[" * 300 + b"1" + b"]" * 300
"""JSON nested 300 deep: orjson reads it, but cannot write it back (its limit is 254)."""


BAD_RECORDS = {
    "session state app: key": (session(state={"app:x": 1}), "app:x"),
    "session state user: key": (session(state={"user:x": 1}), "user:x"),
    "session state temp: key": (session(state={"temp:x": 1}), "temp:x"),
    "session state empty key": (session(state={"": 1}), "empty key"),
    "session state NUL key": (session(state={"a\x00": 1}), "NUL"),
    "state not an object": (session(state=[1]), "state must be an object"),
    "state value too big an int": (session(state={"k": 2**64 - 1}), "64-bit"),
    "app_state state not an object": ({"type": "app_state", "app_name": "a", "state": 3}, "state"),
    "user_state without user": ({"type": "user_state", "app_name": "a", "state": {}}, "user_id"),
    "duplicate event ids": (session(events=[GOOD_EVENT, dict(GOOD_EVENT, timestamp=3.0)]), "repeated"),
    "empty event id": (session(events=[dict(GOOD_EVENT, event_id="")]), "event_id"),
    "event id not text": (session(events=[dict(GOOD_EVENT, event_id=7)]), "event_id"),
    "author missing": (session(events=[{k: v for k, v in GOOD_EVENT.items() if k != "author"}]), "author"),
    "timestamp text": (session(events=[dict(GOOD_EVENT, timestamp="soon")]), "timestamp"),
    "created_at missing": (session(created_at=None), "created_at"),
    "body not an object": (session(events=[dict(GOOD_EVENT, body=[1])]), "body must be an object"),
    "body actions not an object": (session(events=[dict(GOOD_EVENT, body={"actions": 5})]), "actions"),
    "body state_delta not an object": (
        session(events=[dict(GOOD_EVENT, body={"actions": {"state_delta": [1]}})]), "state_delta"),
    "body partial": (session(events=[dict(GOOD_EVENT, body={"partial": True})]), "partial"),
    "events not a list": (session(events={}), "events must be a list"),
    "session id blank": (session(session_id="  "), "session_id"),
    "app name too long": (session(app_name="a" * 10_000), "app_name"),
    "unknown type": ({"type": "sessions", "app_name": "a"}, "type"),
    "not an object": ([1, 2], "JSON object"),
}


@pytest.mark.parametrize("name", list(BAD_RECORDS))
def test_bad_records_are_refused_by_check_record(name):
    record, words = BAD_RECORDS[name]
    with pytest.raises((TypeError, ValueError), match=words):
        transfer.check_record(orjson.loads(orjson.dumps(record)))


def write_lines(path, records):
    path.write_bytes(b"".join(r if isinstance(r, bytes) else orjson.dumps(r) + b"\n" for r in records))
    return str(path)


BAD_LINES = {
    "deep body": orjson.dumps(session(events=[dict(GOOD_EVENT, body={"x": "DEEP"})])).replace(b'"DEEP"', DEEP) + b"\n",
    "deep state": orjson.dumps(session(state={"k": "DEEP"})).replace(b'"DEEP"', DEEP) + b"\n",
    "too deep for JSON": b'{"type":"session","x":' + b"[" * 1100 + b"]" * 1100 + b"}\n",
    "not UTF-8": b'{"type":"app_state","app_name":"\xff","state":{}}\n',
    "lone surrogate": b'{"type":"app_state","app_name":"a\\ud800","state":{}}\n',
    "newer format": b'{"type":"adk_lite_export","format":%d}\n' % (transfer.FORMAT + 1),
    "format not int": b'{"type":"adk_lite_export","format":"1"}\n',
} | {name: orjson.dumps(record) + b"\n" for name, (record, _words) in BAD_RECORDS.items()}


@pytest.mark.parametrize("name", list(BAD_LINES))
def test_a_bad_line_anywhere_refuses_the_whole_file_with_its_line_number(tmp_path, capsys, name):
    db = str(tmp_path / "t.db")
    with DatabaseSessionService(db) as svc:
        svc.create_session("app", "someone", session_id="kept")
    size = os.path.getsize(db)
    bad = BAD_LINES[name]
    path = write_lines(tmp_path / "in.jsonl", [transfer.header(), {"type": "app_state", "app_name": "app",
                                                                   "state": {"v": 1}},
                                               session(session_id="first"), bad, session(session_id="last")])
    for argv in (["import", path, db], ["import", path, db, "--replace"], ["import", path, db, "--json"]):
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and f"{path}:4:" in err and "Traceback" not in err, err
    assert os.path.getsize(db) == size
    with DatabaseSessionService(db, read_only=True) as svc:
        assert [s.id for s in svc.list_sessions()] == ["kept"] and svc.get_app_state("app") == {}


def test_scoped_keys_go_only_where_the_api_puts_them(new_target, tmp_path, capsys):
    """An app_state record's keys are app keys as stored (the API's "app:" prefix removed),
    so an app key that itself looks like "user:x" round-trips; a session record's
    "user:x" would shadow user state and is refused."""
    db = new_target("a")
    with DatabaseSessionService(db) as svc:
        s = svc.create_session("app", "u", session_id="s", state={"app:user:x": 1, "user:temp:y": 2, "k": 3})
        svc.append_events(s, [Event(actions=EventActions(state_delta={"app:v": 1, "user:w": 2, "z": 3}))])
    out = str(tmp_path / "a.jsonl")
    assert main(["export", db, "-o", out]) == 0
    target = new_target("b")
    assert main(["import", out, target, "--create"]) == 0
    with DatabaseSessionService(target, read_only=True) as svc:
        assert svc.get_session("app", "u", "s").state == {"app:user:x": 1, "app:v": 1, "user:temp:y": 2,
                                                          "user:w": 2, "k": 3, "z": 3}
    capsys.readouterr()


def test_a_file_without_a_header_is_read_as_format_1(target, tmp_path, capsys):
    path = write_lines(tmp_path / "old.jsonl", [session()])
    db = target
    assert main(["import", path, db, "--create", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["created"] == 1
    path = write_lines(tmp_path / "two.jsonl", [transfer.header(), session(session_id="a"), transfer.header(),
                                                session(session_id="b")])  # concatenated exports
    assert main(["import", path, db]) == 0
    with DatabaseSessionService(db, read_only=True) as svc:
        assert sorted(s.id for s in svc.list_sessions()) == ["a", "b", "s"]


def test_an_imported_session_is_a_new_creation_and_equal_to_the_export(target, tmp_path, capsys):
    path = write_lines(tmp_path / "one.jsonl", [session(events=[dict(GOOD_EVENT, event_id=f"e{i}", timestamp=i)
                                                                for i in range(1200)])])
    db = target
    assert main(["import", path, db, "--create"]) == 0
    with DatabaseSessionService(db) as svc:
        got = svc.get_session("app", "u", "s")
        # a record without "revision" (format 1): one write per event, never 0 for a session with events
        assert got.incarnation and got.revision == 1200 and len(got.events) == 1200
        assert [e.id for e in got.events] == [f"e{i}" for i in range(1200)]
        assert got.last_update_time == 2.0 and got.state == {"k": 1}
        found = svc.store.read_whole_session("app", "u", "s")
        exported = transfer.session_record(("app", "u", "s"), found)
        assert transfer.content(exported) == transfer.content(orjson.loads(open(path, "rb").read()))
        assert "incarnation" not in orjson.dumps(exported).decode()
    capsys.readouterr()
    assert main(["import", path, db, "--json"]) == 0  # integer times in the file still match: unchanged
    assert orjson.loads(capsys.readouterr().out)["unchanged"] == 1
    with DatabaseSessionService(db) as svc:
        svc.append_event(svc.get_session("app", "u", "s"), Event(author="user"))  # it takes appends


def test_import_session_is_one_transaction(target):
    """A failure inside the write (here: a duplicate event id slipped past the checks)
    leaves nothing of the session."""
    db = target
    with DatabaseSessionService(db) as svc:
        rows = [("e", "i", "a", None, 1.0, "{}"), ("e", "i", "a", None, 2.0, "{}")]
        with pytest.raises(Exception):
            svc.store.import_session("app", "u", "s", 1.0, 2.0, [("session", "k", "1")], rows, replace=False)
        assert svc.get_session("app", "u", "s") is None
        assert svc.store.check()["stray_state_rows"] == 0
