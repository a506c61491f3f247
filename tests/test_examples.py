"""examples/: the quickstart is the README's main job (sessions persist across a restart,
real counters, get_stats printed); adk_agent.py --resume never creates a database."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from adk_lite import SCHEMA_VERSION

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUICKSTART = os.path.join(ROOT, "examples", "quickstart.py")
ADK_AGENT = os.path.join(ROOT, "examples", "adk_agent.py")


def run(cwd, script, *args, env=None):
    """Run an example in ``cwd`` as a new process, with ``env`` added to the
    environment ($ADK_LITE_DB unset unless ``env`` sets it)."""
    full = {k: v for k, v in os.environ.items() if k != "ADK_LITE_DB"}
    full.update(env or {}, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=cwd, env=full,
                          timeout=240)


def test_quickstart_persists_across_restarts_and_counts(tmp_path):
    first = run(tmp_path, QUICKSTART)
    assert first.returncode == 0, first.stderr
    assert "First run" in first.stdout and first.stderr == ""
    assert (tmp_path / ".adk" / "sessions.sqlite3").is_file()
    # bob's lookup came after alice's: the app-wide count is 2, not a constant 1
    bob = re.search(r"^  bob: .*state = (.*)$", first.stdout, re.M).group(1)
    assert '"app:total_lookups": 2' in bob and '"user:lookups": 1' in bob

    second = run(tmp_path, QUICKSTART)
    assert second.returncode == 0, second.stderr
    out = second.stdout
    assert out.startswith("Resumed from .adk/sessions.sqlite3")
    # the first process's conversation and state came back from the file
    assert "user: What's the weather in Lisbon?" in out and "weather_agent: Rain, 18 degrees in Osaka." in out
    assert "temp:raw_api_reply" not in out
    assert "alice looked up Porto: user:lookups = 2, app:total_lookups = 3" in out
    assert 'delta {"last_city": null}' in out
    stats = dict(re.findall(r"^\s+(\w+): (.*)$", out.split("get_stats():", 1)[1], re.M))
    assert stats["sessions"] == "2" and stats["events"] == "7" and stats["schema_version"] == str(SCHEMA_VERSION)
    assert "db_bytes" in stats and "wal_bytes" in stats

    third = run(tmp_path, QUICKSTART)  # the counts go on from where the last process left them
    assert "alice looked up Porto: user:lookups = 3, app:total_lookups = 4" in third.stdout


def test_quickstart_uses_adk_lite_db(tmp_path):
    out = run(tmp_path, QUICKSTART, env={"ADK_LITE_DB": str(tmp_path / "elsewhere.db")})
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "elsewhere.db").is_file() and not (tmp_path / ".adk").exists()


adk = pytest.mark.adk


@adk
@pytest.mark.parametrize("db", ["missing.db", "sub/dir/missing.db", None, "adklite:///missing.db"])
def test_adk_agent_resume_refuses_a_missing_database_without_creating_it(tmp_path, db):
    pytest.importorskip("google.adk")
    args = ["--resume"] + (["--db", db] if db else [])
    out = run(tmp_path, ADK_AGENT, *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("error: database ") and "run without --resume first" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1
    assert os.listdir(tmp_path) == []  # no file, no folder, no -wal/-shm


@adk
def test_adk_agent_resume_refuses_an_empty_file_unchanged(tmp_path):
    pytest.importorskip("google.adk")
    (tmp_path / "empty.db").write_bytes(b"")
    out = run(tmp_path, ADK_AGENT, "--resume", "--db", "empty.db")
    assert out.returncode == 2 and "run without --resume first" in out.stderr
    assert sorted(os.listdir(tmp_path)) == ["empty.db"] and (tmp_path / "empty.db").stat().st_size == 0


@adk
@pytest.mark.parametrize("db, message", [
    ("postgresql://u:pw@127.0.0.1:1/db", "only sqlite://"),  # the example takes files only
    ("notsqlite.db", "is not a SQLite database"),
])
def test_adk_agent_unusable_database_is_one_line_exit_2(tmp_path, db, message):
    pytest.importorskip("google.adk")
    (tmp_path / "notsqlite.db").write_bytes(b"not a database at all")
    for args in (["--db", db], ["--resume", "--db", db]):
        out = run(tmp_path, ADK_AGENT, *args)
        assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert (tmp_path / "notsqlite.db").read_bytes() == b"not a database at all"


@adk
@pytest.mark.parametrize("target", ["agent.db", "agent.db-wal", "./agent.db-shm", "hardlink"])
def test_adk_agent_json_output_never_names_the_database(tmp_path, target):
    pytest.importorskip("google.adk")
    assert run(tmp_path, ADK_AGENT, "--db", "agent.db").returncode == 0
    os.link(tmp_path / "agent.db", tmp_path / "hardlink")
    before = (tmp_path / "agent.db").read_bytes()
    out = run(tmp_path, ADK_AGENT, "--resume", "--db", "agent.db", "--json", target)
    assert out.returncode == 2 and "is the database" in out.stderr, out.stdout + out.stderr
    assert (tmp_path / "agent.db").read_bytes() == before
