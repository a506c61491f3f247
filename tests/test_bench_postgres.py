"""``python -m bench --backend postgres`` runs: the harness, not its figures (no timings
are checked). Needs a server (``ADK_LITE_TEST_PG``, see tests/conftest.py); the run
gets an emptied test database of its own."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

from adk_lite.target import parse_postgres
from tests.conftest import pg_databases
from tests.test_examples import ROOT


def _bench(*args: str, env: dict, timeout: float = 280) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", "--backend", "postgres", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_without_a_url_it_says_how_to_give_one():
    env = {k: v for k, v in os.environ.items() if k != "ADK_LITE_BENCH_PG"}
    out = _bench("--quick", env=env, timeout=60)
    assert out.returncode == 2
    assert "--url" in out.stderr and "ADK_LITE_BENCH_PG" in out.stderr


def test_the_quick_run_measures_every_service(tmp_path):
    url = pg_databases().fresh(0)
    # ADK's service on PostgreSQL needs asyncpg (the bench extra); without it only adk_lite runs
    with_adk = all(importlib.util.find_spec(m) for m in ("asyncpg", "google.adk", "sqlalchemy"))
    services = ["adk_lite", "adk_lite_adk", "adk_database"] if with_adk else ["adk_lite"]
    env = {k: v for k, v in os.environ.items() if k != "ADK_LITE_BENCH_PG"}
    out = _bench("--quick", "--url", url, "--json", str(tmp_path / "out.json"), "--services", *services, env=env)
    assert out.returncode == 0, out.stderr[-4000:]
    got = json.loads((tmp_path / "out.json").read_text())
    assert got["backend"] == "postgres" and got["quick"]
    for name in services:
        figures = got["services"][name]["figures"]
        assert {"create_session", "append_event", "get_session_full_1000", "get_session_recent20_100",
                "list_sessions_user"} <= set(figures), name
    assert "list_sessions_page_first" in got["services"]["adk_lite"]["figures"]
    runs = {(c["service"], c["processes"]): c for c in got["concurrency"]}
    assert set(runs) == {(name, n) for name in services for n in (1, 8)}
    assert all(c["events"] > 0 and not c["errors"] for c in runs.values())
    assert all(t["verdict"] == "not judged (smoke run)" or t["verdict"].startswith("n/a") for t in got["targets"])
    assert "| target (what it compares) |" in out.stdout
    password = parse_postgres(url).conninfo.get("password")
    assert not password or password not in out.stdout + out.stderr
