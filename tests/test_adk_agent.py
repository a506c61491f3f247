"""examples/adk_agent.py: a real ADK Runner on adk_lite, resumed by a second process,
gives the same events and state as the same script on InMemorySessionService."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

pytest.importorskip("google.adk")

pytestmark = pytest.mark.adk

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "examples", "adk_agent.py")


def run_example(tmp_path, *args):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("ADK_LITE_DB", None)
    out = subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, env=env,
                         cwd=tmp_path, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_second_process_resumes_and_matches_in_memory(tmp_path):
    on_file = run_example(tmp_path, "--db", "agent.db", "--json", "file.json")
    run_example(tmp_path, "--in-memory", "--json", "memory.json")

    first, second = (int(p) for p in re.findall(r"^\[process (\d+)\] (?:new|resumed)", on_file, re.M))
    assert first != second
    resumed = re.search(r"resumed 'demo' from agent.db: (\d+) events, state (.*)$", on_file, re.M)
    assert int(resumed.group(1)) == 8  # 2 turns x (user, call, response, text) from the first process
    assert json.loads(resumed.group(2)) == {"app:facts_stored": 2, "last_key": "city",
                                            "user:city": "Lisbon", "user:colour": "blue"}
    # the recall tool, in the second process, read the first process's state and events
    assert "You told me: city = Lisbon, colour = blue, food = pizza. I have seen 4 of your messages" in on_file

    file_run = json.loads((tmp_path / "file.json").read_text())
    memory_run = json.loads((tmp_path / "memory.json").read_text())
    assert len(file_run["events"]) == 16
    assert file_run == memory_run
    assert file_run["state"] == {"app:facts_stored": 3, "last_key": "food", "user:city": "Lisbon",
                                 "user:colour": "blue", "user:food": "pizza"}


def test_resume_without_a_stored_session_says_so(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT)
    out = subprocess.run([sys.executable, SCRIPT, "--resume", "--db", "empty.db"], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=240)
    assert out.returncode != 0 and "run without --resume first" in out.stderr
