"""adk_lite.adk.DatabaseArtifactService: ADK's BaseArtifactService on the same database.

The first part re-states, for this service, the behaviour ADK's own artifact-service
tests (``tests/unittests/artifacts/test_artifact_service.py`` in google/adk-python)
ask of its in-memory, file and GCS services; the second part tries to break what
adk_lite adds: bytes stored once, blobs collected, erase gone from the raw bytes, the
database shared with the session service and other processes, a Runner, ADK's loader.
"""

from __future__ import annotations

import asyncio
from asyncio import run
import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime
from typing import Any
from unittest.mock import patch

import pytest

pytest.importorskip("google.adk")

from google.adk.artifacts.base_artifact_service import ArtifactVersion  # noqa: E402
from google.adk.errors.input_validation_error import InputValidationError  # noqa: E402
from google.genai import types  # noqa: E402

import adk_lite  # noqa: E402
from adk_lite.adk import DatabaseArtifactService, DatabaseSessionService, register  # noqa: E402
from tests.conftest import downgrade, on_postgres  # noqa: E402
from tests.workers import adk_loader, scripted_llm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXED = datetime(2025, 1, 1, 12, 0, 0).timestamp()
SCOPE = {"app_name": "app0", "user_id": "user0", "session_id": "123"}


@pytest.fixture
def arts(target):
    """A DatabaseArtifactService on a new target of the test's backend."""
    service = DatabaseArtifactService(target)
    yield service
    run(service.close())


@pytest.fixture(scope="module")
def file_arts(tmp_path_factory):
    """One SQLite service for the argument checks (they refuse before any SQL)."""
    service = DatabaseArtifactService(str(tmp_path_factory.mktemp("checks") / "a.db"))
    yield service
    run(service.close())


def save(svc, filename="f", artifact=None, **kw):
    args = {**SCOPE, **kw}
    return run(svc.save_artifact(filename=filename, artifact=artifact or types.Part(text="x"), **args))


def load(svc, filename="f", **kw):
    return run(svc.load_artifact(filename=filename, **{**SCOPE, **kw}))


def versions(svc, filename="f", **kw):
    return run(svc.list_versions(filename=filename, **{**SCOPE, **kw}))


def keys(svc, **kw):
    return run(svc.list_artifact_keys(**{**SCOPE, **kw}))


# -- ADK's semantics, per method (after ADK's own tests) ------------------------------------

def test_load_empty(arts):
    assert load(arts, "filename") is None
    assert run(arts.get_artifact_version(filename="filename", **SCOPE)) is None
    assert versions(arts, "filename") == [] and keys(arts) == []


def test_save_load_delete(arts):
    artifact = types.Part.from_bytes(data=b"test_data", mime_type="text/plain")
    assert save(arts, "file456", artifact) == 0
    assert load(arts, "file456") == artifact
    assert load(arts, "file456", version=3) is None and load(arts, "file456", version=-1) is None
    run(arts.delete_artifact(filename="file456", **SCOPE))
    assert load(arts, "file456") is None and versions(arts, "file456") == []
    assert save(arts, "file456", artifact) == 0  # numbering restarts after a delete


def test_versions_count_from_zero_and_load_latest_or_any(arts):
    parts = [types.Part.from_bytes(data=i.to_bytes(2, "big"), mime_type="text/plain") for i in range(3)]
    parts.append(types.Part.from_text(text="hello"))
    assert [save(arts, "with/slash/filename", p) for p in parts] == [0, 1, 2, 3]
    assert versions(arts, "with/slash/filename") == [0, 1, 2, 3]
    assert load(arts, "with/slash/filename") == parts[3]
    assert [load(arts, "with/slash/filename", version=i) for i in range(4)] == parts


def test_list_keys_sorted_with_user_prefix_and_scopes(arts):
    for name in ["filename4", "filename0", "user:image.png", "session_file.txt", "user:document.pdf"]:
        save(arts, name)
    save(arts, "elsewhere", session_id="other")
    assert keys(arts) == ["filename0", "filename4", "session_file.txt", "user:document.pdf", "user:image.png"]
    assert keys(arts, session_id=None) == ["user:document.pdf", "user:image.png"]
    assert keys(arts, session_id="other") == ["elsewhere", "user:document.pdf", "user:image.png"]


def test_user_scoped_artifacts_are_shared_across_sessions(arts):
    save(arts, "user:profile", types.Part(text="v0"), session_id="s1")
    save(arts, "user:profile", types.Part(text="v1"), session_id=None)
    assert load(arts, "user:profile", session_id="s2") == types.Part(text="v1")
    assert versions(arts, "user:profile", session_id=None) == [0, 1]
    with pytest.raises(InputValidationError, match="Session ID must be provided"):
        save(arts, "plain.txt", session_id=None)
    with pytest.raises(ValueError, match="Session ID must be provided"):
        load(arts, "plain.txt", session_id=None)


def test_nested_names_are_distinct_artifacts(arts):
    parent = types.Part.from_text(text="parent v0")
    save(arts, "doc", parent)
    for i in range(3):
        save(arts, "doc/nested", types.Part.from_text(text=f"nested v{i}"))
    assert versions(arts, "doc") == [0] and load(arts, "doc") == parent
    assert [v.version for v in run(arts.list_artifact_versions(filename="doc", **SCOPE))] == [0]
    assert save(arts, "doc", types.Part.from_text(text="parent v1")) == 1
    assert keys(arts) == ["doc", "doc/nested"]
    run(arts.delete_artifact(filename="doc", **SCOPE))
    assert versions(arts, "doc") == [] and versions(arts, "doc/nested") == [0, 1, 2]


@pytest.mark.parametrize("filename, prefix", [("filename", "sessions/123/"), ("user:document.pdf", "")])
def test_list_artifact_versions_and_get_artifact_version(arts, filename, prefix):
    parts = [types.Part.from_bytes(data=i.to_bytes(2, "big"), mime_type="text/plain") for i in range(4)]
    with patch("google.adk.artifacts.base_artifact_service.platform_time") as clock:
        clock.get_time.return_value = FIXED
        for i in range(4):
            save(arts, filename, parts[i], custom_metadata={"key": f"value{i}"})
    expected = [ArtifactVersion(version=i, canonical_uri=f"adklite://apps/app0/users/user0/{prefix}artifacts/"
                                f"{filename}/versions/{i}", custom_metadata={"key": f"value{i}"},
                                mime_type="text/plain", create_time=FIXED) for i in range(4)]
    assert run(arts.list_artifact_versions(filename=filename, **SCOPE)) == expected
    assert run(arts.get_artifact_version(filename=filename, **SCOPE)) == expected[-1]
    assert run(arts.get_artifact_version(filename=filename, version=2, **SCOPE)) == expected[2]
    assert run(arts.get_artifact_version(filename=filename, version=7, **SCOPE)) is None


def test_artifact_version_fields(arts):
    save(arts, "t", types.Part(text="hi"))
    save(arts, "ext", types.Part(file_data=types.FileData(file_uri="gs://b/r.pdf", mime_type="application/pdf")))
    text, ext = (run(arts.get_artifact_version(filename=n, **SCOPE)) for n in ("t", "ext"))
    assert text.mime_type == "text/plain" and text.custom_metadata == {} and text.canonical_uri
    assert ext.mime_type == "application/pdf"
    assert load(arts, "ext").file_data == types.FileData(file_uri="gs://b/r.pdf", mime_type="application/pdf")


@pytest.mark.parametrize("text", ['{"key": "value"}', "some other text", "", "ünï \ud83d\ude00 \x00 end"])
@pytest.mark.parametrize("filename", ["data.json", "user:data.json"])
def test_text_round_trips_as_text(arts, text, filename):
    save(arts, filename, types.Part.from_text(text=text))
    for version in (None, 0):
        loaded = load(arts, filename, version=version)
        assert loaded == types.Part(text=text) and loaded.inline_data is None


@pytest.mark.parametrize("data", [b"", bytes(range(256)), b"\x89PNG\r\n\x1a\n" * 1000])
def test_bytes_round_trip_exactly(arts, data):
    artifact = types.Part(inline_data=types.Blob(mime_type="image/png", data=data, display_name="My (final).png"))
    save(arts, "img", artifact)
    assert load(arts, "img") == artifact
    assert load(arts, "img").inline_data.data == data


def test_rewind_marker_loads_as_absent(arts):
    save(arts, "gone", types.Part(inline_data=types.Blob(mime_type="application/octet-stream", data=b"")))
    assert load(arts, "gone") is None and versions(arts, "gone") == [0]


@pytest.mark.parametrize("raw", [{"inlineData": {"mimeType": "image/png", "data": "dGVzdF9pbWFnZV9kYXRh"}},
                                 {"inline_data": {"mime_type": "text/plain", "data": "aGVsbG8="}}])
def test_dict_artifacts(arts, raw):
    assert save(arts, "uploaded", raw) == 0
    loaded = load(arts, "uploaded")
    assert loaded == types.Part.model_validate(raw) and loaded.inline_data.data


def test_refused_parts_write_nothing(arts):
    with pytest.raises(InputValidationError, match="must contain data"):
        save(arts, "img", types.Part(inline_data=types.Blob(mime_type="image/png", data=None)))
    with pytest.raises(InputValidationError, match="Not supported"):
        save(arts, "img", types.Part())
    deep: Any = {"a": 1}
    for _ in range(500):
        deep = {"a": deep}
    save(arts, "report.txt", types.Part(text="v0"))
    with pytest.raises(ValueError):
        save(arts, "report.txt", types.Part(text="poison"), custom_metadata=deep)
    with pytest.raises(ValueError):
        save(arts, "report.txt", types.Part(text="nan"), custom_metadata={"x": float("nan")})
    assert versions(arts, "report.txt") == [0] and load(arts, "report.txt").text == "v0"
    assert versions(arts, "img") == []


def test_padded_session_id_is_the_trimmed_one(arts):
    artifact = types.Part(text="hello")
    save(arts, "report.txt", artifact, session_id="sess0\n")
    assert load(arts, "report.txt", session_id="sess0") == artifact
    assert load(arts, "report.txt", session_id="sess0\n") == artifact
    assert "report.txt" in keys(arts, session_id="sess0")
    run(arts.delete_artifact(filename="report.txt", **{**SCOPE, "session_id": "sess0"}))
    assert load(arts, "report.txt", session_id="sess0\n") is None


@pytest.mark.parametrize("session_id", ["user", "user/x", "user\\x"])
def test_reserved_user_session_ids_read_delete_and_save(arts, session_id):
    """Reads and deletes with a session id of ``user`` never raise (ADK); sessions have
    their own column here, so saving under them is accepted too (as ADK's file service)."""
    assert keys(arts, session_id=session_id) == []
    assert load(arts, "report.txt", session_id=session_id) is None
    assert versions(arts, "report.txt", session_id=session_id) == []
    run(arts.delete_artifact(filename="report.txt", **{**SCOPE, "session_id": session_id}))
    save(arts, "report.txt", types.Part(text="hello"), session_id=session_id)
    assert load(arts, "report.txt", session_id=session_id) == types.Part(text="hello")
    assert keys(arts, session_id=None) == []


@pytest.mark.parametrize("user_id", ["group/user123", "mdbuser/username"])
def test_namespaced_ids_are_accepted(arts, user_id):
    scope = {"app_name": "projects/123/locations/us-central1/reasoningEngines/456", "user_id": user_id,
             "session_id": "sess123"}
    run(arts.save_artifact(filename="safe.txt", artifact=types.Part.from_bytes(data=b"data", mime_type="text/plain"),
                           **scope))
    assert run(arts.load_artifact(filename="safe.txt", **scope)).inline_data.data == b"data"


INVALID = (
    ("../escape", "must not contain traversal segments"), ("foo/../../bar", "must not contain traversal segments"),
    ("..", "must not contain traversal segments"), (".", "must not contain traversal segments"),
    ("null\x00byte", "must not contain null bytes"), ("", "must not be empty"),
    ("/etc/passwd", "must not be an absolute path or start with a slash"),
    ("\\leading\\backslash", "must not be an absolute path or start with a slash"),
    (r"C:\absolute", "must not be drive-qualified"), ("C:drive-relative", "must not be drive-qualified"),
    ("victim/sessions/s1", "must not contain reserved path segments"),
    ("victim/versions", "must not contain reserved path segments"),
)


@pytest.mark.parametrize("field", ["app_name", "user_id", "session_id"])
@pytest.mark.parametrize("value, match", INVALID)
@pytest.mark.parametrize("method", ["save", "load", "delete", "list_keys", "list_versions", "get_version"])
def test_bad_ids_raise_adks_error(file_arts, field, value, match, method):
    scope = {"app_name": "myapp", "user_id": "user123", "session_id": None, field: value}
    name = "safe.txt" if field == "session_id" else "user:safe.txt"
    calls = {
        "save": lambda: file_arts.save_artifact(filename=name, artifact=types.Part(text="d"), **scope),
        "load": lambda: file_arts.load_artifact(filename=name, **scope),
        "delete": lambda: file_arts.delete_artifact(filename=name, **scope),
        "list_keys": lambda: file_arts.list_artifact_keys(**scope),
        "list_versions": lambda: file_arts.list_versions(filename=name, **scope),
        "get_version": lambda: file_arts.get_artifact_version(filename=name, **scope),
    }
    with pytest.raises(InputValidationError, match=match):
        run(calls[method]())


def test_other_bad_arguments(file_arts):
    with pytest.raises(TypeError, match="user_id"):
        run(file_arts.load_artifact(app_name="a", user_id=5, filename="user:x"))
    with pytest.raises(TypeError, match="filename"):
        run(file_arts.load_artifact(app_name="a", user_id="u", filename=None))
    with pytest.raises(TypeError, match="custom_metadata"):
        run(file_arts.save_artifact(app_name="a", user_id="u", filename="user:x", artifact=types.Part(text="x"),
                                    custom_metadata=["no"]))
    with pytest.raises(ValueError, match="max_artifact_bytes"):
        DatabaseArtifactService(":memory:", max_artifact_bytes=-1)


# -- artifact:// references, as ADK's in-memory service ------------------------------------

def ref(uri: str) -> types.Part:
    return types.Part(file_data=types.FileData(file_uri=uri, mime_type="text/plain"))


def test_references_resolve_within_scope(arts):
    s = {"app_name": "app0", "user_id": "user0"}
    run(arts.save_artifact(**s, session_id="sess0\n", filename="folder/source.txt", artifact=types.Part(text="hello")))
    run(arts.save_artifact(**s, session_id="sess0", filename="user:profile.txt", artifact=types.Part(text="profile")))
    run(arts.save_artifact(**s, session_id="sess0\n", filename="ref.txt", artifact=ref(
        "artifact://apps/app0/users/user0/sessions/sess0/artifacts/folder/source.txt/versions/0")))
    run(arts.save_artifact(**s, session_id="sess1", filename="ref.txt", artifact=ref(
        "artifact://apps/app0/users/user0/artifacts/user:profile.txt/versions/0")))
    assert run(arts.load_artifact(**s, session_id="sess0", filename="ref.txt")) == types.Part(text="hello")
    assert run(arts.load_artifact(**s, session_id="sess1", filename="ref.txt")) == types.Part(text="profile")
    assert run(arts.get_artifact_version(**s, session_id="sess1", filename="ref.txt")).mime_type is None


@pytest.mark.parametrize("uri, scope, match", [
    ("artifact://apps/app0/users/victim/artifacts/user:secret.txt/versions/0", {"user_id": "attacker"},
     "same app and user scope"),
    ("artifact://apps/victim-app/users/user0/artifacts/user:secret.txt/versions/0", {}, "same app and user scope"),
    ("artifact://apps/app0/users/user0/sessions/other/artifacts/x/versions/0", {}, "same session scope"),
    ("artifact://apps/app0/invalid", {}, "Invalid artifact reference URI"),
])
def test_references_out_of_scope_are_refused_on_save(arts, uri, scope, match):
    with pytest.raises(InputValidationError, match=match):
        save(arts, "ref.txt", ref(uri), **scope)
    assert versions(arts, "ref.txt", **scope) == []


def test_tampered_reference_is_refused_on_load_and_cycles_end(arts):
    save(arts, "source.txt", types.Part(text="source"), session_id="sess0")
    save(arts, "source.txt", types.Part(text="other-session"), session_id="sess1")
    save(arts, "ref.txt", ref("artifact://apps/app0/users/user0/sessions/sess0/artifacts/source.txt/versions/0"),
         session_id="sess0")
    core = arts._core.store
    p = core.db.peewee.param
    tampered = ref("artifact://apps/app0/users/user0/sessions/sess1/artifacts/source.txt/versions/0").model_dump_json(
        exclude_none=True)
    core._run(lambda c: c.execute(f"UPDATE adk_artifact_versions SET part = {p} WHERE filename = {p}",
                                  (tampered, "ref.txt")), write=True)
    with pytest.raises(InputValidationError, match="same session scope"):
        load(arts, "ref.txt", session_id="sess0")
    save(arts, "loop.txt", ref("artifact://apps/app0/users/user0/sessions/123/artifacts/loop.txt/versions/0"))
    with pytest.raises(InputValidationError, match="Exceeded maximum recursion depth"):
        load(arts, "loop.txt")


# -- what adk_lite adds ----------------------------------------------------------------------

def blob_rows(svc) -> list[tuple]:
    return svc._core.store.read(lambda c: [tuple(r) for r in c.execute(
        "SELECT sha256, size FROM adk_artifact_blobs ORDER BY sha256").fetchall()])


def test_identical_bytes_are_stored_once(arts):
    data = os.urandom(50_000)
    for sid in ("s1", "s2"):
        save(arts, "photo.png", types.Part.from_bytes(data=data, mime_type="image/png"), session_id=sid)
    save(arts, "copy.png", types.Part.from_bytes(data=data, mime_type="image/jpeg"), session_id="s1")
    save(arts, "user:again", types.Part.from_bytes(data=data, mime_type="image/png"))
    assert len(blob_rows(arts)) == 1
    stats = run(arts.get_stats())
    assert (stats["artifacts"], stats["artifact_versions"], stats["artifact_blobs"], stats["artifact_bytes"]) == (
        4, 4, 1, 50_000)
    assert load(arts, "copy.png", session_id="s1").inline_data.mime_type == "image/jpeg"


def test_a_blob_goes_with_the_last_version_referring_to_it(arts):
    shared, own = b"shared" * 100, b"own" * 100
    save(arts, "a", types.Part.from_bytes(data=shared, mime_type="x/y"), session_id="s1")
    save(arts, "a", types.Part.from_bytes(data=own, mime_type="x/y"), session_id="s1")
    save(arts, "b", types.Part.from_bytes(data=shared, mime_type="x/y"), session_id="s2")
    assert len(blob_rows(arts)) == 2
    run(arts.delete_artifact(filename="a", app_name="app0", user_id="user0", session_id="s1"))
    assert [size for _sha, size in blob_rows(arts)] == [len(shared)]  # still referred to by s2's b
    run(arts.delete_artifact(filename="b", app_name="app0", user_id="user0", session_id="s2"))
    assert blob_rows(arts) == []
    assert run(arts.get_stats())["artifact_bytes"] == 0


def test_deleting_a_session_deletes_its_artifacts_not_the_users(target):
    arts, sessions = DatabaseArtifactService(target), DatabaseSessionService(target)
    try:
        for sid in ("s1", "s2"):
            run(sessions.create_session(app_name="app0", user_id="user0", session_id=sid))
            save(arts, "notes", types.Part(text=f"{sid} notes"), session_id=sid)
        save(arts, "user:profile", types.Part(text="kept"), session_id="s1")
        run(sessions.delete_session(app_name="app0", user_id="user0", session_id="s1"))
        assert load(arts, "notes", session_id="s1") is None
        assert load(arts, "notes", session_id="s2") == types.Part(text="s2 notes")
        assert load(arts, "user:profile", session_id=None) == types.Part(text="kept")
        with adk_lite.DatabaseSessionService(target) as core:  # prune takes them along too
            assert core.store.prune(time.time() + 3600, "app0", None, None, True)[0] == 1
        assert load(arts, "notes", session_id="s2") is None and len(blob_rows(arts)) == 1
    finally:
        run(arts.close())
        run(sessions.close())


def raw_holds(target: str, needle: bytes) -> bool:
    """True when the SQLite file or its WAL holds ``needle`` anywhere (free pages too)."""
    found = False
    for path in (target, target + "-wal"):
        if os.path.exists(path):
            with open(path, "rb") as fh:
                found = found or needle in fh.read()
    return found


def test_erase_removes_artifacts_and_their_bytes(target):
    """Erasing a user deletes their artifacts of every scope and the bytes no one else
    refers to, gone from the raw file and WAL (secure delete + checkpoint); bytes
    another user also saved stay until that user is erased."""
    own, shared = b"zq-own-secret-91c" * 500, b"zq-shared-secret-4d" * 500
    arts = DatabaseArtifactService(target)
    try:
        save(arts, "user:card", types.Part.from_bytes(data=own, mime_type="x/y"), user_id="alice", session_id=None)
        save(arts, "doc", types.Part(text=own.decode() + "2"), user_id="alice")
        save(arts, "both", types.Part.from_bytes(data=shared, mime_type="x/y"), user_id="alice")
        save(arts, "both", types.Part.from_bytes(data=shared, mime_type="x/y"), user_id="bob")
        sqlite = not on_postgres(target)
        if sqlite:
            assert raw_holds(target, b"zq-own-secret-91c")  # the checks below can fail
            arts._core.store.read(lambda c: c.execute("PRAGMA secure_delete = 0"))  # off, as in most builds
        run(arts.delete_user(app_name="app0", user_id="alice"))
        assert keys(arts, user_id="alice") == [] and keys(arts, user_id="alice", session_id=None) == []
        assert load(arts, "both", user_id="bob").inline_data.data == shared
        if sqlite:
            assert not raw_holds(target, b"zq-own-secret-91c") and raw_holds(target, b"zq-shared-secret-4d")
        with adk_lite.DatabaseSessionService(target) as core:
            core.delete_user("app0", "bob")
        assert blob_rows(arts) == [] and run(arts.get_stats())["artifact_versions"] == 0
        if sqlite:
            assert not raw_holds(target, b"zq-shared-secret-4d")
    finally:
        run(arts.close())


def test_larger_than_the_limit_is_refused_before_writing(new_target):
    arts = DatabaseArtifactService(new_target(), max_artifact_bytes=1000)
    try:
        assert save(arts, "ok", types.Part.from_bytes(data=b"x" * 1000, mime_type="x/y")) == 0
        with pytest.raises(ValueError, match="1001 bytes; the limit is 1000"):
            save(arts, "big", types.Part.from_bytes(data=b"x" * 1001, mime_type="x/y"))
        with pytest.raises(ValueError, match="limit"):
            save(arts, "big", types.Part(text="é" * 501))
        assert versions(arts, "big") == [] and run(arts.get_stats())["artifact_versions"] == 1
    finally:
        run(arts.close())


def test_concurrent_saves_get_distinct_versions(arts):
    async def main():
        return await asyncio.gather(*(arts.save_artifact(filename="r", artifact=types.Part(text=f"t{i}"), **SCOPE)
                                      for i in range(12)))
    assert sorted(run(main())) == list(range(12))
    assert sorted(load(arts, "r", version=i).text for i in range(12)) == sorted(f"t{i}" for i in range(12))


SAVER = textwrap.dedent("""
    import asyncio, sys
    from google.genai import types
    from adk_lite.adk import DatabaseArtifactService
    async def main():
        svc = DatabaseArtifactService(sys.argv[1])
        for i in range(int(sys.argv[2])):
            await svc.save_artifact(app_name="app0", user_id="user0", session_id="123", filename="shared",
                                    artifact=types.Part.from_bytes(data=b"p" * i, mime_type="x/y"))
        await svc.close()
    asyncio.run(main())
""")


def test_other_processes_share_the_database(target):
    """Two processes save to one artifact at once: every version is numbered once, and
    what they wrote is read back here."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    DatabaseSessionService(target)  # the schema exists before both start
    procs = [subprocess.Popen([sys.executable, "-c", SAVER, target, "15"], env=env, stderr=subprocess.PIPE)
             for _ in range(2)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    arts = DatabaseArtifactService(target)
    try:
        assert versions(arts, "shared") == list(range(30))
        assert sorted(len(load(arts, "shared", version=v).inline_data.data) for v in range(30)) == sorted(
            list(range(15)) * 2)
        assert run(arts.get_stats())["artifact_blobs"] == 15
    finally:
        run(arts.close())


@pytest.mark.parametrize("first", ["artifacts", "sessions"])
def test_either_service_may_create_the_file(tmp_path, first):
    path = str(tmp_path / "new" / "db.sqlite3")
    opened = [DatabaseArtifactService(path) if first == "artifacts" else DatabaseSessionService(path)]
    opened.append(DatabaseSessionService(path) if first == "artifacts" else DatabaseArtifactService(path))
    arts, sessions = opened if first == "artifacts" else opened[::-1]
    save(arts, "f", types.Part(text="in the same file"))
    run(sessions.create_session(app_name="app0", user_id="user0", session_id="123"))
    for service in opened:
        run(service.close())
    assert set(os.listdir(tmp_path / "new")) <= {"db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm"}
    with adk_lite.DatabaseSessionService(path, read_only=True) as core:
        stats = core.get_stats()
        assert stats["sessions"] == 1 and stats["artifacts"] == 1 and core.store.check()["missing_tables"] == []


def test_a_version_4_database_gets_the_artifact_tables(target):
    with adk_lite.DatabaseSessionService(target) as core:
        core.create_session("app0", "user0", session_id="old")
        downgrade(core, 4)
    arts = DatabaseArtifactService(target)
    try:
        save(arts, "f", types.Part(text="after the migration"))
        assert run(arts.get_stats())["schema_version"] == adk_lite.SCHEMA_VERSION and load(arts, "f").text == "after the migration"
    finally:
        run(arts.close())


@pytest.mark.parametrize("spelling", ["db", "db_url", "uri", "adklite_rel", "adklite_abs", "env"])
def test_opening_spellings(tmp_path, monkeypatch, spelling):
    path = tmp_path / "x" / "a.sqlite3"
    monkeypatch.chdir(tmp_path)
    kwargs = {"db": {"db": str(path)}, "db_url": {"db_url": f"sqlite:///{path}"},
              "uri": {"uri": f"sqlite:///{path}", "agents_dir": str(tmp_path)},
              "adklite_rel": {"uri": "adklite:///x/a.sqlite3"}, "adklite_abs": {"uri": f"adklite:///{path}"},
              "env": {}}[spelling]
    monkeypatch.setenv("ADK_LITE_DB", str(path))
    arts = DatabaseArtifactService(**kwargs)
    assert os.path.abspath(arts.path) == str(path) and repr(arts).startswith("adk_lite.adk.DatabaseArtifactService(")
    run(arts.close())
    with pytest.raises(ValueError, match="once"):
        DatabaseArtifactService(str(path), uri=f"sqlite:///{path}")


def test_register_claims_the_scheme_for_artifacts(tmp_path):
    from google.adk.cli.service_registry import ServiceRegistry

    registry = ServiceRegistry()
    register(registry, scheme="mylite", busy_timeout=2.0, event_cache_size=10, max_artifact_bytes=5)
    arts = registry.create_artifact_service(f"mylite:///{tmp_path}/r.db", agents_dir=str(tmp_path))
    assert isinstance(arts, DatabaseArtifactService) and arts.path == f"{tmp_path}/r.db"
    assert arts.max_artifact_bytes == 5
    run(arts.close())


_CLI_LOAD = textwrap.dedent("""
    async def use(svc):
        return await svc.save_artifact(app_name="a", user_id="u", session_id="s", filename="f",
                                       artifact=types.Part(text="from adk"))
""")


@pytest.mark.parametrize("how", ["services.yaml", "services.py"])
def test_adk_loader_builds_the_artifact_service(tmp_path, how):
    target = tmp_path / "data" / "sessions.db"
    printed = adk_loader(tmp_path, how, "artifact", _CLI_LOAD, f"adklite:///{target}",
                         options=", strict_uri=True")
    assert printed == ["adk_lite.adk.DatabaseArtifactService", str(target), "0"]
    with adk_lite.DatabaseSessionService(str(target), read_only=True) as core:
        assert core.get_stats()["artifacts"] == 1


def test_a_runner_tool_saves_and_loads_an_artifact(target):
    """An agent's tool saves an artifact through ADK's ToolContext in one turn and loads
    it in the next, with sessions and artifacts in one database."""
    from google.adk.agents import LlmAgent
    from google.adk.runners import Runner
    from google.adk.tools import FunctionTool, ToolContext

    def reply(last):
        if last.function_response is not None:
            return types.Part(text=f"done: {last.function_response.response}")
        if (last.text or "").startswith("write"):
            return types.Part(function_call=types.FunctionCall(name="write", args={"text": last.text[6:]}))
        return types.Part(function_call=types.FunctionCall(name="read", args={}))

    async def write(text: str, tool_context: ToolContext) -> dict:
        """Save a report."""
        version = await tool_context.save_artifact("report.txt", types.Part(text=text))
        await tool_context.save_artifact("user:img.png", types.Part.from_bytes(data=b"\x89PNG", mime_type="image/png"))
        return {"version": version}

    async def read(tool_context: ToolContext) -> dict:
        """Read the report back."""
        part = await tool_context.load_artifact("report.txt")
        return {"text": part.text, "names": await tool_context.list_artifacts()}

    async def main():
        sessions, arts = DatabaseSessionService(target), DatabaseArtifactService(target)
        agent = LlmAgent(name="writer", model=scripted_llm(reply), tools=[FunctionTool(write), FunctionTool(read)])
        runner = Runner(app_name="app0", agent=agent, session_service=sessions, artifact_service=arts)
        await sessions.create_session(app_name="app0", user_id="user0", session_id="s")
        said = []
        for text in ("write the quarterly report", "read it"):
            message = types.Content(role="user", parts=[types.Part(text=text)])
            async for event in runner.run_async(user_id="user0", session_id="s", new_message=message):
                said += [p.text for p in (event.content.parts if event.content else []) if p.text]
        await runner.close()
        await arts.close()
        await sessions.close()
        return said

    said = run(main())
    assert said[0] == "done: {'version': 0}"
    assert said[-1] == "done: {'text': 'the quarterly report', 'names': ['report.txt', 'user:img.png']}"
    arts = DatabaseArtifactService(target)  # persisted: a new service reads it
    try:
        assert load(arts, "report.txt", session_id="s").text == "the quarterly report"
        delta = run(arts.get_stats())
        assert delta["sessions"] == 1 and delta["artifacts"] == 2
    finally:
        run(arts.close())


# -- the command line --------------------------------------------------------------------------

def run_cli(capsys, *argv):
    from adk_lite import cli

    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_lists_and_writes_out_artifacts(target, tmp_path, capsys):
    import json
    import stat

    arts = DatabaseArtifactService(target)
    try:
        for data in (b"%PDF v0", b"%PDF v1"):
            save(arts, "report.pdf", types.Part.from_bytes(data=data, mime_type="application/pdf"), session_id="c1")
        save(arts, "user:notes", types.Part(text="héllo"), session_id=None)
        save(arts, "other", types.Part(text="not listed"), session_id="c2")
    finally:
        run(arts.close())
    code, out, _ = run_cli(capsys, "artifacts", target, "app0", "user0", "c1", "--json")
    listed = json.loads(out)["artifacts"]
    assert code == 0 and [(a["session_id"], a["filename"], a["versions"], a["latest_version"], a["bytes"])
                          for a in listed] == [(None, "user:notes", 1, 0, 6), ("c1", "report.pdf", 2, 1, 7)]
    code, out, _ = run_cli(capsys, "artifacts", target, "app0", "user0")
    assert code == 0 and "other" in out and "report.pdf" in out
    dest = tmp_path / "out" / "r.pdf"
    dest.parent.mkdir()
    code, out, _ = run_cli(capsys, "artifact", target, "app0", "user0", "report.pdf", "--session", "c1",
                           "--version", "0", "-o", str(dest))
    assert code == 0 and dest.read_bytes() == b"%PDF v0" and stat.S_IMODE(dest.stat().st_mode) == 0o600
    code, _, err = run_cli(capsys, "artifact", target, "app0", "user0", "report.pdf", "--session", "c1",
                           "-o", str(dest))
    assert code == 2 and "exists" in err and dest.read_bytes() == b"%PDF v0"
    code, out, _ = run_cli(capsys, "artifact", target, "app0", "user0", "user:notes")
    assert code == 0 and out == "héllo"
    code, _, err = run_cli(capsys, "artifact", target, "app0", "user0", "report.pdf")
    assert code == 2 and "--session" in err
    code, _, err = run_cli(capsys, "artifact", target, "app0", "user0", "report.pdf", "--session", "c1",
                           "--version", "9")
    assert code == 2 and "no artifact 'report.pdf' version 9" in err
    if not on_postgres(target):
        for victim in (target, target + "-wal"):
            before = open(victim, "rb").read() if os.path.exists(victim) else None
            code, _, err = run_cli(capsys, "artifact", target, "app0", "user0", "user:notes", "-o", victim, "--force")
            assert code == 2 and "refusing" in err
            assert (open(victim, "rb").read() if os.path.exists(victim) else None) == before


def test_copy_carries_artifacts_and_resumes(new_target, capsys):
    import json

    src, dst = new_target("src"), new_target("dst")
    arts = DatabaseArtifactService(src)
    try:
        save(arts, "report.pdf", types.Part.from_bytes(data=b"%PDF v0", mime_type="application/pdf"))
        save(arts, "report.pdf", types.Part(text="v1"), custom_metadata={"n": 1})
        save(arts, "user:avatar", types.Part.from_bytes(data=b"%PDF v0", mime_type="image/png"), session_id=None)
        run(arts.delete_artifact(filename="report.pdf", **SCOPE))
        save(arts, "report.pdf", types.Part(text="after delete"))  # version 0 again
        expected = run(arts.list_artifact_versions(filename="user:avatar", **SCOPE))
    finally:
        run(arts.close())
    code, out, _ = run_cli(capsys, "copy", src, dst, "--json")
    assert code == 0 and json.loads(out)["artifact_versions"] == 2
    code, out, _ = run_cli(capsys, "copy", src, dst, "--json")  # a re-run: nothing twice
    assert code == 0 and json.loads(out)["artifact_versions"] == 0 and json.loads(out)["artifacts_unchanged"] == 2
    copy = DatabaseArtifactService(dst)
    try:
        assert load(copy, "report.pdf") == types.Part(text="after delete")
        assert run(copy.list_artifact_versions(filename="user:avatar", **SCOPE)) == [
            v.model_copy(update={"canonical_uri": v.canonical_uri}) for v in expected]
        save(copy, "report.pdf", types.Part(text="only in dst"), session_id="x")
    finally:
        run(copy.close())
    arts = DatabaseArtifactService(src)
    try:
        save(arts, "report.pdf", types.Part(text="only in src"), session_id="x")
    finally:
        run(arts.close())
    code, out, _ = run_cli(capsys, "copy", src, dst, "--json")
    conflicts = json.loads(out)["conflicts"]
    assert code == 1 and conflicts == [{"type": "artifact", "app_name": "app0", "user_id": "user0", "session_id": "x",
                                        "filename": "report.pdf", "version": 0}]


def test_export_and_import_carry_artifacts(new_target, tmp_path, capsys):
    import json

    src, dst = new_target("src"), new_target("dst")
    arts = DatabaseArtifactService(src)
    payload = bytes(range(256)) * 10
    try:
        save(arts, "img", types.Part(inline_data=types.Blob(mime_type="image/png", data=payload, display_name="p")),
             custom_metadata={"k": [1, 2]})
        save(arts, "img", types.Part(text="v1 ✓"))
        save(arts, "user:link", types.Part(file_data=types.FileData(file_uri="gs://b/x", mime_type="text/csv")),
             session_id=None)
        save(arts, "other", types.Part(text="other user"), user_id="bob")
        expected = [load(arts, "img", version=v) for v in (0, 1)] + [load(arts, "user:link", session_id=None)]
        metadata = run(arts.list_artifact_versions(filename="img", **SCOPE))
    finally:
        run(arts.close())
    out = tmp_path / "export.jsonl"
    code, _, _ = run_cli(capsys, "export", src, "--user", "user0", "-o", str(out))
    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["format"] == 2
    assert [(r["filename"], r["version"]) for r in lines if r["type"] == "artifact"] == [
        ("user:link", 0), ("img", 0), ("img", 1)]
    for _ in range(2):  # the second import changes nothing
        code, report, _ = run_cli(capsys, "import", str(out), dst, "--create", "--json")
        assert code == 0
    assert json.loads(report)["artifacts_unchanged"] == 3 and json.loads(report)["artifact_versions"] == 0
    copy = DatabaseArtifactService(dst)
    try:
        assert [load(copy, "img", version=v) for v in (0, 1)] + [load(copy, "user:link", session_id=None)] == expected
        assert run(copy.list_artifact_versions(filename="img", **SCOPE)) == metadata
        assert keys(copy, user_id="bob") == []
    finally:
        run(copy.close())
    bad = tmp_path / "bad.jsonl"
    record = next(r for r in lines if r["type"] == "artifact" and r["filename"] == "img")
    for field, value in (("data", "not base64!"), ("kind", "video"), ("session_id", None), ("version", -1)):
        bad.write_text(json.dumps(dict(record, **{field: value})) + "\n")
        code, _, err = run_cli(capsys, "import", str(bad), dst)
        assert code == 2 and "bad.jsonl:1" in err, field


def test_names_too_long_or_not_text_are_refused_before_writing(arts):
    for name, error in (("f" * 1025, "1025 characters"), ("bad\ud800", "lone surrogate"), ("nul\x00", "null bytes")):
        with pytest.raises(ValueError, match=error):
            save(arts, name)
    if on_postgres(arts.path):
        with pytest.raises(ValueError, match="on PostgreSQL the limit is 600"):
            save(arts, "é" * 400)
    else:
        assert save(arts, "é" * 1024) == 0
    with pytest.raises(TypeError, match="filename"):
        save(arts, b"bytes")
    assert run(arts.get_stats())["artifact_versions"] == (0 if on_postgres(arts.path) else 1)


def test_forged_artifact_records_are_refused(tmp_path, capsys):
    import base64
    import json

    path = str(tmp_path / "db.sqlite3")
    DatabaseSessionService(path)
    good = {"type": "artifact", "app_name": "a", "user_id": "u", "session_id": "s", "filename": "f", "version": 0,
            "kind": "text", "mime_type": "text/plain", "part": {}, "custom_metadata": {}, "create_time": 1.0,
            "data": base64.b64encode(b"ok").decode()}
    forged = [{"data": base64.b64encode(b"\xff\xfe").decode()}, {"kind": "inline", "part": {}},
              {"kind": "file", "data": None, "part": {"file_data": {}}}, {"custom_metadata": [1]},
              {"filename": "user:f"}, {"version": 2**70}, {"create_time": "yesterday"}, {"data": None},
              *({"kind": "file", "data": None, "part": {"file_data": {"file_uri": f"artifact://apps/{where}"}}}
                for where in ("b/users/u/artifacts/g/versions/0", "a/users/v/artifacts/g/versions/0",
                              "a/users/u/sessions/t/artifacts/g/versions/0", "a/users/uu/artifacts/g/versions/0"))]
    for change in forged:
        (tmp_path / "f.jsonl").write_text(json.dumps({**good, **change}) + "\n")
        code, _, err = run_cli(capsys, "import", str(tmp_path / "f.jsonl"), path)
        assert code == 2 and "f.jsonl:1" in err, change
    inside = [{**good, "filename": name, "kind": "file", "data": None, "mime_type": None,
               "part": {"file_data": {"file_uri": f"artifact://apps/a/users/u/{where}"}}}
              for name, where in (("g", "sessions/s/artifacts/f/versions/0"), ("h", "artifacts/user:x/versions/0"))]
    (tmp_path / "f.jsonl").write_text("".join(json.dumps(r) + "\n" for r in (good, *inside)))
    assert run_cli(capsys, "import", str(tmp_path / "f.jsonl"), path)[0] == 0
    arts = DatabaseArtifactService(path)
    try:
        assert run(arts.load_artifact(app_name="a", user_id="u", session_id="s", filename="f")) == types.Part(text="ok")
    finally:
        run(arts.close())


LOOPER = textwrap.dedent("""
    import asyncio, os, sys
    from google.genai import types
    from adk_lite.adk import DatabaseArtifactService
    async def main():
        svc = DatabaseArtifactService(sys.argv[1])
        i = 0
        while True:
            await svc.save_artifact(app_name="app0", user_id="user0", session_id="123", filename=f"f{i % 3}",
                                    artifact=types.Part.from_bytes(data=os.urandom(20000), mime_type="x/y"))
            await svc.delete_artifact(app_name="app0", user_id="user0", session_id="123", filename=f"f{(i + 1) % 3}")
            i += 1
            if i == 5:
                print("saving", flush=True)
    asyncio.run(main())
""")


def test_killed_while_saving_and_deleting_leaves_whole_versions(target):
    """SIGKILL a process that saves and deletes artifacts in a loop: every stored version
    loads whole, and no blob is left that nothing refers to."""
    import signal

    from tests.conftest import settle

    DatabaseSessionService(target)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for delay in (0.05, 0.3):
        proc = subprocess.Popen([sys.executable, "-c", LOOPER, target], env=env, stdout=subprocess.PIPE)
        assert proc.stdout.readline() == b"saving\n"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        settle(target)
        arts = DatabaseArtifactService(target)
        try:
            for name in keys(arts):
                for v in versions(arts, name):
                    assert len(load(arts, name, version=v).inline_data.data) == 20000
            orphans = arts._core.store.read(lambda c: c.execute(
                "SELECT COUNT(*) FROM adk_artifact_blobs b WHERE NOT EXISTS "
                "(SELECT 1 FROM adk_artifact_versions v WHERE v.sha256 = b.sha256)").fetchone()[0])
            assert orphans == 0
        finally:
            run(arts.close())


def _nested_list(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def test_a_part_that_could_not_move_is_refused_at_save(arts, target, new_target):
    """A part whose JSON holds an int beyond 64 bits or nests deeper than the limit (a
    function call's args beside the text) was stored, then refused by every copy and
    import of the database; it is refused by save, by name, and writes nothing. What
    save takes, copy carries."""
    from adk_lite import DatabaseSessionService as Core
    from adk_lite import MAX_DEPTH
    for args in ({"x": 2**70}, {"x": _nested_list(MAX_DEPTH)}):
        part = types.Part(text="t", function_call=types.FunctionCall(name="f", args=args))
        with pytest.raises(ValueError, match="'bad'.*function_call"):
            save(arts, "bad", part)
    assert versions(arts, "bad") == []
    save(arts, "ok", types.Part(text="t", function_call=types.FunctionCall(name="f", args={"x": 2**63 - 1})))
    with Core(target) as src, Core(new_target("copy")) as dst:
        report = src.copy_to(dst)
    assert (report["refused"], report["artifact_versions"]) == ([], 1)
