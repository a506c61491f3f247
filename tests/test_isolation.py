"""Isolation and permissions: one session id under two apps and two users never
crosses between them; a new file and its WAL/SHM are private (0600); an existing
file keeps its mode."""

from __future__ import annotations

import os
import stat

import pytest

from adk_lite import DatabaseSessionService, Event, EventActions, Session, SessionNotFoundError

KEYS = [(app, user) for app in ("app1", "app2") for user in ("u1", "u2")]


def tag(app, user):
    return f"{app}/{user}"


@pytest.fixture
def svc(target):
    with DatabaseSessionService(target) as svc:
        for app, user in KEYS:
            s = svc.create_session(app, user, state={"owner": tag(app, user), "user:who": user, "app:name": app},
                                   session_id="s")
            svc.append_event(s, Event(id=f"first-{tag(app, user)}", author=tag(app, user)))
        yield svc


def snapshot(svc):
    out = {}
    for app, user in KEYS:
        s = svc.get_session(app, user, "s")
        out[app, user] = None if s is None else (s.state, [e.id for e in s.events], s.revision)
    return out


def test_get_sees_only_its_own(svc):
    for app, user in KEYS:
        s = svc.get_session(app, user, "s")
        assert (s.app_name, s.user_id) == (app, user)
        assert s.state == {"owner": tag(app, user), "user:who": user, "app:name": app}
        assert [e.id for e in s.events] == [f"first-{tag(app, user)}"]
        assert svc.get_event_count(app, user, "s") == 1
    assert svc.get_session("app1", "u3", "s") is None
    assert svc.get_session("app3", "u1", "s") is None


def test_append_touches_only_its_session(svc):
    before = snapshot(svc)
    s = svc.get_session("app1", "u1", "s")
    svc.append_events(s, [Event(author="x", actions=EventActions(state_delta={"owner": "changed", "n": i})) for i in range(3)])
    after = snapshot(svc)
    assert after["app1", "u1"][0]["owner"] == "changed" and len(after["app1", "u1"][1]) == 4
    for key in KEYS[1:]:
        assert after[key] == before[key]
    with pytest.raises(SessionNotFoundError, match=r"user_id='u3'"):
        svc.append_event(Session(id="s", app_name="app1", user_id="u3"), Event(author="x"))
    assert snapshot(svc) == after


def test_update_keys_respects_scopes(svc):
    svc.update_keys("app1", "u1", "s", {"owner": None, "user:who": None, "app:name": None, "extra": 1})
    state = {key: svc.get_session(*key, "s").state for key in KEYS}
    assert state["app1", "u1"] == {"extra": 1}
    assert state["app1", "u2"] == {"owner": "app1/u2", "user:who": "u2"}  # app:name is app1's, shared: gone
    assert state["app2", "u1"] == {"owner": "app2/u1", "user:who": "u1", "app:name": "app2"}  # same user, other app
    assert state["app2", "u2"] == {"owner": "app2/u2", "user:who": "u2", "app:name": "app2"}
    assert svc.get_user_state("app2", "u1") == {"who": "u1"}
    assert svc.get_app_state("app2") == {"name": "app2"}
    assert [svc.get_event_count(*key, "s") for key in KEYS] == [2, 1, 1, 1]


def test_delete_removes_only_its_session(svc):
    before = snapshot(svc)
    svc.delete_session("app2", "u1", "s")
    after = snapshot(svc)
    assert after.pop(("app2", "u1")) is None
    assert after == {k: v for k, v in before.items() if k != ("app2", "u1")}
    assert svc.get_user_state("app2", "u1") == {"who": "u1"}  # user state outlives the session
    assert svc.get_stats()["events"] == 3


def test_list_never_crosses(svc):
    def ids(page):
        return sorted((s.app_name, s.user_id, s.id, s.state["owner"]) for s in page)

    assert ids(svc.list_sessions("app1")) == [("app1", "u1", "s", "app1/u1"), ("app1", "u2", "s", "app1/u2")]
    assert ids(svc.list_sessions(user_id="u2")) == [("app1", "u2", "s", "app1/u2"), ("app2", "u2", "s", "app2/u2")]
    assert ids(svc.list_sessions("app2", "u1")) == [("app2", "u1", "s", "app2/u1")]
    assert ids(svc.list_sessions("app1", "u3")) == []
    for s in svc.list_sessions():
        assert s.state == {"owner": tag(s.app_name, s.user_id), "user:who": s.user_id, "app:name": s.app_name}


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_file_and_its_wal_and_shm_are_0600(tmp_path):
    path = str(tmp_path / "deep" / "new.db")
    old_umask = os.umask(0)  # so the 0600 comes from adk_lite, not from the umask
    try:
        with DatabaseSessionService(path) as svc:
            s = svc.create_session("app", "u")
            svc.append_event(s, Event(author="user"))
            assert os.path.exists(path + "-wal") and os.path.exists(path + "-shm")
            assert {suffix: _mode(path + suffix) for suffix in ("", "-wal", "-shm")} == {
                "": 0o600, "-wal": 0o600, "-shm": 0o600}
    finally:
        os.umask(old_umask)
    assert _mode(path) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o666])
def test_existing_file_keeps_its_mode(tmp_path, mode):
    path = str(tmp_path / "shared.db")
    DatabaseSessionService(path).close()
    os.chmod(path, mode)
    with DatabaseSessionService(path) as svc:
        svc.create_session("app", "u")
        assert _mode(path) == mode
    assert _mode(path) == mode
