"""``adk-lite import`` killed with SIGKILL at random points: every session is whole or
absent, and running the same import again completes it (no "conflict")."""

import contextlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import orjson

from adk_lite import DatabaseSessionService, transfer

from .test_cli import ROOT

ENV = dict(os.environ, PYTHONPATH=ROOT)


def make_export(path, sessions=12, events=400):
    lines = [transfer.header(), {"type": "app_state", "app_name": "app", "state": {"v": 1}},
             {"type": "user_state", "app_name": "app", "user_id": "u0", "state": {"lang": "en"}}]
    for s in range(sessions):
        lines.append({"type": "session", "app_name": "app", "user_id": f"u{s % 3}", "session_id": f"s{s}",
                      "created_at": 1000.0 + s, "updated_at": 2000.0 + s, "state": {"n": s},
                      "events": [{"event_id": f"e{i}", "invocation_id": "inv", "author": "user", "branch": None,
                                  "timestamp": 1000.0 + i, "body": {"content": {"parts": [{"text": "x" * 200}]}}}
                                 for i in range(events)]})
    with open(path, "wb") as fh:
        fh.write(b"".join(orjson.dumps(r) + b"\n" for r in lines))
    return lines[1:]


def stored_sessions(db):
    """{session_id: its export record} of what the file holds."""
    with DatabaseSessionService(db, read_only=True) as svc:
        return {k[2]: transfer.session_record(k, svc.store.read_whole_session(*k))
                for k in svc.store.session_keys(None, None)}


def committed(db):
    """How many sessions the file holds (0 when it has no tables yet); read through SQLite."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)) as conn:
            return conn.execute("SELECT COUNT(*) FROM adk_sessions").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_import_killed_at_random_points_then_rerun_completes(tmp_path):
    export = str(tmp_path / "e.jsonl")
    records = make_export(export, sessions=30, events=1000)
    wanted = {r["session_id"]: transfer.content(r) for r in records if r["type"] == "session"}
    db = str(tmp_path / "t.db")
    rng = random.Random(9)
    argv = [sys.executable, "-m", "adk_lite", "import", export, db, "--create"]
    killed_midway = 0
    for run in range(6):
        proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # kill once some more sessions are in, plus a random delay: somewhere inside a session's transaction
        target = rng.randint(min(committed(db) + 1, len(wanted) - 1), len(wanted) - 1) if run else 0
        while proc.poll() is None and committed(db) < target:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        got = stored_sessions(db) if committed(db) else {}
        for sid, record in got.items():  # whole or absent, never partial
            assert transfer.content(record) == wanted[sid], sid
        killed_midway += 0 < len(got) < len(wanted)
    assert killed_midway >= 3
    done = subprocess.run(argv + ["--json"], env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert report["conflicts"] == [] and report["created"] + report["unchanged"] == len(wanted)
    got = stored_sessions(db)
    assert {sid: transfer.content(r) for sid, r in got.items()} == wanted
    with DatabaseSessionService(db, read_only=True) as svc:
        assert svc.get_app_state("app") == {"v": 1} and svc.get_user_state("app", "u0") == {"lang": "en"}
    again = subprocess.run(argv + ["--json"], env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and orjson.loads(again.stdout)["unchanged"] == len(wanted)
