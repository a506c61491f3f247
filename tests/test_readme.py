"""README.md and docs/ work as written: every ```python block runs as pasted (in a new
process, in an empty folder), the two commands the README begins with are the ones CI runs,
the SQL and the services.yaml / services.py shown do what they say, every file named exists
and every relative link resolves (to a file, and to a heading where it names one).

A ```python block that is not meant to run on its own is marked ```python no-run; blocks
that use google.adk are skipped without it."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from tests.docs import FENCE, PAGES, TEXT, blocks
from tests.test_examples import QUICKSTART, ROOT, run

README = TEXT["README.md"]


def uses_adk(code: str) -> bool:
    return "google.adk" in code or "adk_lite.adk" in code


RUNNABLE = [(f"{page}:{line}", code) for page, line, info, code in blocks("python") if "no-run" not in info.split()]


def run_code(code: str, cwd, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` as a script in a new interpreter in ``cwd``, without $ADK_LITE_DB."""
    env = {k: v for k, v in os.environ.items() if k != "ADK_LITE_DB"}
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=timeout)


def test_the_readme_has_runnable_python_blocks():
    in_readme = [where for where, _code in RUNNABLE if where.startswith("README.md:")]
    assert len(in_readme) >= 3  # the API tour, the async snippet, the ADK snippet
    assert len(RUNNABLE) >= 6


@pytest.mark.parametrize("where, code", RUNNABLE, ids=[where for where, _ in RUNNABLE])
def test_python_block_runs_as_pasted(tmp_path, where, code):
    if uses_adk(code):
        pytest.importorskip("google.adk")
    out = run_code(code, tmp_path)
    assert out.returncode == 0, f"{where} failed:\n{out.stderr}"
    assert "Traceback" not in out.stderr


def test_the_api_tour_pages_until_next_cursor_is_none(tmp_path):
    """The pagination loop of the tour visits every session once and stops."""
    tour = next(code for _line, code in RUNNABLE if "list_sessions" in code and "after=cursor" in code)
    more = textwrap.dedent("""
        from adk_lite import DatabaseSessionService as _S
        with _S() as _svc:
            for _i in range(249):
                _svc.create_session("my_app", f"u{_i % 7}")
    """)
    # 250 sessions, 100 per page: the loop must print each exactly once, over three pages
    out = run_code(more + tour, tmp_path)
    assert out.returncode == 0, out.stderr
    printed = [line for line in out.stdout.splitlines() if line.startswith(("alice ", "u"))]
    assert len(printed) == len(set(printed)) == 250


def test_readme_begins_with_the_two_commands_ci_runs():
    first = FENCE.search(README)
    assert README[:first.start()].strip() == "# adk_lite" and first.group(1) == "bash"
    commands = [c for c in first.group(3).splitlines() if c and not c.startswith("#")]
    assert len(commands) == 2
    main_job, tests = commands
    assert main_job.count("python examples/quickstart.py") == 2 and 'pip install -e .' in main_job
    assert tests.endswith('pip install -e ".[adk,test]" && python -m pytest')
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert 'pip install -q -e ".[adk,test]"' in ci and "python -m pytest" in ci


def test_no_install_line_needs_a_package_index():
    """adk_lite is installed from the clone: every `pip install` of it is editable."""
    for match in re.finditer(r"pip install ([^`\n]*)", "\n".join(TEXT.values())):
        args = match.group(1)
        if "adk_lite" in args or args.lstrip().startswith(('".', "'.", ".")):
            assert args.lstrip().startswith("-e "), match.group(0)


def test_files_the_readme_names_exist():
    named = set(re.findall(r"\b((?:examples|tests|docs|bench|adk_lite)/[\w/.-]*\w)", README))
    missing = sorted(p for p in named if not os.path.exists(os.path.join(ROOT, p)))
    assert missing == []
    assert "docs/architecture.md" in named


def _anchors(text: str) -> set[str]:
    """GitHub's anchors of a page's headings (outside code blocks)."""
    text = FENCE.sub("", text)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
            for h in re.findall(r"^#{1,6} (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", FENCE.sub("", TEXT[page])):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        where = os.path.normpath(os.path.join(os.path.dirname(page), path)) if path else page
        if not os.path.exists(os.path.join(ROOT, where)):
            broken.append(target)
        elif anchor and where.endswith(".md") and anchor not in _anchors(TEXT.get(where) or open(
                os.path.join(ROOT, where), encoding="utf-8").read()):
            broken.append(target)
    assert broken == []


def test_the_readme_stays_short():
    assert len(README.splitlines()) <= 400


def test_the_sql_history_query_runs_on_the_quickstart_file(tmp_path):
    """The README's `sqlite3 .adk/sessions.sqlite3 "..."` shows the history of a key."""
    bash = next(code for _page, _line, _info, code in blocks("bash") if code.startswith("sqlite3 .adk/sessions.sqlite3"))
    sql = re.search(r'"(.*)"', bash, re.S).group(1)
    for _ in range(2):
        assert run(tmp_path, QUICKSTART).returncode == 0
    with sqlite3.connect(tmp_path / ".adk" / "sessions.sqlite3") as conn:
        rows = conn.execute(sql).fetchall()
    # set by the first run, set again by the second, then deleted by update_keys (a null)
    assert [(author, value) for _time, author, value in rows] == [
        ("weather_agent", "Lisbon"), ("weather_agent", "Porto"), ("system", None)]


def _registry_check(agents_dir, uri: str) -> subprocess.CompletedProcess:
    """What `adk api_server --session_service_uri=URI AGENTS_DIR` does to get its session
    service (google.adk.cli.fast_api): load services.yaml / services.py, then build it."""
    code = textwrap.dedent(f"""
        from google.adk.cli.service_registry import load_services_module
        from google.adk.cli.utils.service_factory import create_session_service_from_options
        load_services_module({str(agents_dir)!r})
        service = create_session_service_from_options(base_dir={str(agents_dir)!r}, session_service_uri={uri!r})
        print(type(service).__module__, service.path)
    """)
    return run_code(code, agents_dir.parent)


@pytest.mark.adk
@pytest.mark.parametrize("filename", ["services.yaml", "services.py"])
def test_the_services_file_makes_adk_use_adk_lite(tmp_path, filename):
    pytest.importorskip("google.adk")
    language = "yaml" if filename.endswith(".yaml") else "python"
    shown = [code for _page, _line, _info, code in blocks(language, ["docs/adk.md"])
             if "adklite" in code or "register()" in code]
    assert len(shown) == 1
    agents = tmp_path / "agents"
    agents.mkdir()
    uri = "adklite:///sessions.db"

    forgotten = _registry_check(agents, uri)  # the failure the README describes
    assert forgotten.returncode != 0
    assert "sqlalchemy" in forgotten.stderr or "Invalid database URL" in forgotten.stderr

    (agents / filename).write_text(shown[0])
    out = _registry_check(agents, uri)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["adk_lite.adk", "sessions.db"]
    assert (tmp_path / "sessions.db").is_file()  # relative to the current folder, not agents/
