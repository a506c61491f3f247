"""``adk-lite serve``: the read-only browser, driven in a real headless Chromium
(Debian's ``chromium`` and ``chromium-driver``, through selenium), plus the rules a
browser cannot show (methods, tokens, the bind rule, hostile paths) over HTTP.

The browser tests skip with a reason where Chromium, its driver or selenium is
absent; under ``CI=true`` they fail instead (CI installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytest.importorskip("starlette")
pytest.importorskip("jinja2")
pytest.importorskip("uvicorn")

from adk_lite import DatabaseSessionService, Event, EventActions  # noqa: E402
from adk_lite.web.app import EVENTS_PER_PAGE, check_bind, session_url  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
XSS = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, *, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, str]:
    """One request without following redirects: (status, headers, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def _fill(path: str) -> None:
    """alice and bob in two apps; a fork with a cut; an event with markup; a compaction."""
    with DatabaseSessionService(path) as svc:
        a = svc.create_session("shop", "alice", state={"user:lang": "en", "app:motd": "hi"}, session_id="chat-1")
        svc.append_events(a, [
            Event(author="user", invocation_id="inv-1",
                  content={"role": "user", "parts": [{"text": "Where is my zebrafrog order?"}]},
                  actions=EventActions(state_delta={"topic": "orders"})),
            Event(author="agent", invocation_id="inv-1",
                  content={"role": "model", "parts": [{"function_call": {"name": "lookup", "args": {"order": 7}}}]}),
            Event(author="user", invocation_id="inv-2", content={"role": "user", "parts": [{"text": XSS}]}),
            Event(author="agent", invocation_id="inv-3", actions=EventActions(extra={"compaction": {
                "start_timestamp": 1.0, "end_timestamp": 2.0,
                "compacted_content": {"role": "model", "parts": [{"text": "user asked about an order"}]}}})),
        ])
        svc.fork_session("shop", "alice", "chat-1", new_session_id="chat-1-fork", before_invocation_id="inv-2")
        b = svc.create_session("help desk", "bob/x", session_id="a/b ?#%")
        svc.append_event(b, Event(author="user", content={"role": "user", "parts": [{"text": "hello there"}]}))


@pytest.fixture
def server(tmp_path):
    """``adk-lite serve`` on a filled file, in a subprocess; yields (base URL, path)."""
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    yield from _serve(path)


def _serve(path: str, *extra: str, env: dict | None = None, started: list | None = None):
    port = _free_port()
    env = dict(os.environ, **(env or {}), PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "adk_lite", "serve", path, "--port", str(port), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode())
            time.sleep(0.1)
    if started is not None:
        started.append(proc)
    try:
        yield base, path
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (Debian's), driven by selenium through chromedriver."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        webdriver = None
    if not (chromium and driver and webdriver):
        reason = "browser tests need Debian's chromium and chromium-driver and selenium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    b = webdriver.Chrome(service=Service(driver), options=options)
    b.set_page_load_timeout(30)
    yield b
    b.quit()


def _by(b, css):
    from selenium.webdriver.common.by import By

    return b.find_elements(By.CSS_SELECTOR, css)


# -- in the browser ------------------------------------------------------------------------

def test_sessions_page_lists_every_session_newest_first(server, browser):
    base, _path = server
    browser.get(base + "/")
    rows = [r.text for r in _by(browser, "#sessions tr.session")]
    assert len(rows) == 3
    assert rows[0].startswith("help desk bob/x a/b ?#%")  # the last written comes first
    assert {r.split()[2] for r in rows[1:]} == {"chat-1", "chat-1-fork"}
    assert _by(browser, "nav a[href='/stats']") and _by(browser, "#search input[name=q]")


def test_every_session_link_resolves_even_with_slashes_and_marks_in_ids(server, browser):
    base, _path = server
    browser.get(base + "/")
    links = [a.get_attribute("href") for a in _by(browser, "#sessions a")]
    assert len(links) == 3
    titles = []
    for link in links:
        browser.get(link)
        titles.append(browser.find_element("id", "session-title").text)
    assert titles == ["help desk / bob/x / a/b ?#%", "shop / alice / chat-1-fork", "shop / alice / chat-1"]


def test_search_box_finds_a_word_and_links_to_its_event(server, browser):
    from selenium.webdriver.common.keys import Keys

    base, _path = server
    browser.get(base + "/")
    box = _by(browser, "#search input[name=q]")[0]
    box.send_keys("zebrafrog", Keys.ENTER)
    deadline = time.monotonic() + 10
    while not _by(browser, "#hits li.hit") and time.monotonic() < deadline:
        time.sleep(0.1)
    hits = _by(browser, "#hits li.hit")
    assert len(hits) == 2  # the source and the fork's copy
    assert [m.text for m in _by(browser, "#hits mark")][:1] == ["zebrafrog"]
    href = _by(hits[0], "a")[0].get_attribute("href")
    browser.get(href)
    fragment = urllib.parse.urlsplit(href).fragment
    assert fragment.startswith("event-")
    event = browser.find_element("id", fragment)
    assert "zebrafrog" in event.text


def test_a_fork_links_to_its_source_and_the_source_to_its_fork(server, browser):
    base, _path = server
    browser.get(base + session_url("shop", "alice", "chat-1-fork"))
    source = browser.find_element("css selector", "#forked-from a")
    assert source.text == "chat-1" and "inv-2" in browser.find_element("id", "forked-from").text
    source.click()
    assert browser.find_element("id", "session-title").text == "shop / alice / chat-1"
    assert [f.text for f in _by(browser, "#forks a.fork")] == ["chat-1-fork"]


def test_stored_markup_is_shown_as_text_never_run(server, browser):
    base, _path = server
    browser.get(base + session_url("shop", "alice", "chat-1"))
    assert browser.title.endswith("adk-lite") and "pwned" not in browser.title
    texts = [p.text for p in _by(browser, "p.text")]
    assert XSS in texts
    assert not _by(browser, "main script") and not _by(browser, "main img")


def test_session_page_shows_calls_state_and_compaction(server, browser):
    base, _path = server
    browser.get(base + session_url("shop", "alice", "chat-1"))
    assert "lookup" in _by(browser, "details.call summary")[0].text
    assert "topic" in _by(browser, "details.state-delta")[0].get_attribute("innerHTML")
    assert "user asked about an order" in _by(browser, "p.compaction-summary")[0].text
    assert [d.text for d in _by(browser, "dl.state-user dt")] == ["lang"]
    assert [d.text for d in _by(browser, "dl.state-app dt")] == ["motd"]


def test_stats_page_shows_get_stats(server, browser):
    base, _path = server
    browser.get(base + "/stats")
    cells = {r.find_element("css selector", "th").text: r.find_element("css selector", "td").text
             for r in _by(browser, "#stats tr")}
    assert cells["sessions"] == "3" and cells["events"] == "7"


# -- over HTTP: what a browser does not show -------------------------------------------------

def test_every_method_but_get_is_refused_and_writes_nothing(server):
    base, path = server
    before = open(path, "rb").read()
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
        status, _headers, _body = _get(base + "/", method=method)
        assert status == 405, method
    assert open(path, "rb").read() == before


def test_json_twins_have_the_library_shapes(server):
    base, path = server
    status, _h, body = _get(base + "/api/sessions")
    import json

    data = json.loads(body)
    assert status == 200 and len(data["sessions"]) == 3 and "next_cursor" in data
    with DatabaseSessionService(path, read_only=True) as svc:
        assert {s["id"] for s in data["sessions"]} == {s.id for s in svc.list_sessions()}
        hits = json.loads(_get(base + "/api/search?q=zebrafrog")[2])["hits"]
        assert [h["event_id"] for h in hits] == [h.event_id for h in svc.search_events("zebrafrog")]
        one = json.loads(_get(base + session_url("shop", "alice", "chat-1", api=True))[2])
        assert one["session"]["events"] == [e.to_dict() for e in svc.get_session("shop", "alice", "chat-1").events]
        assert json.loads(_get(base + "/api/stats")[2])["sessions"] == svc.get_stats()["sessions"]


@pytest.mark.parametrize("path", ["/sessions/shop/alice", "/sessions/shop/alice/nope", "/sessions/%2e%2e/x/y",
                                  "/sessions/shop/alice/chat-1/extra", "/?after=forged", "/sessions/a/b/%ff",
                                  "/sessions/shop/alice/chat-1?page=0", "/sessions/shop/alice/chat-1?page=x"])
def test_hostile_paths_are_one_line_errors(server, path):
    base, _path = server
    status, _headers, body = _get(base + path)
    assert status in (400, 404)
    assert "Traceback" not in body and 'id="error"' in body


def test_security_headers_on_every_page(server):
    base, _path = server
    for path in ("/", "/stats", "/api/sessions", session_url("shop", "alice", "chat-1")):
        _status, headers, _body = _get(base + path)
        lower = {k.lower(): v for k, v in headers.items()}
        assert "script-src" not in lower["content-security-policy"]  # default-src 'none': no script runs
        assert lower["x-content-type-options"] == "nosniff"


def test_a_request_for_another_host_name_is_refused_without_a_token(server):
    base, _path = server
    status, _headers, _body = _get(base + "/", headers={"Host": "attacker.example:8765"})
    assert status == 403


def test_token_is_required_on_every_route_and_sets_a_cookie(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    for base, _p in _serve(path, "--token", "s3cret"):
        for route in ("/", "/stats", "/api/sessions", "/api/stats", session_url("shop", "alice", "chat-1")):
            assert _get(base + route)[0] == 401
            assert _get(base + route, headers={"Authorization": "Bearer wrong"})[0] == 401
            assert _get(base + route, headers={"Authorization": "Bearer s3cret"})[0] == 200
        status, headers, _body = _get(base + "/stats?token=s3cret")
        assert status == 303 and headers["location"] == "/stats"
        cookie = headers["set-cookie"].split(";")[0]
        assert "httponly" in headers["set-cookie"].lower()
        assert _get(base + "/stats", headers={"Cookie": cookie})[0] == 200
        assert _get(base + "/stats?token=nope")[0] == 401


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "::", "example.com"])
def test_binding_beyond_loopback_needs_a_token(tmp_path, host):
    with pytest.raises(ValueError, match="--token"):
        check_bind(host, None)
    check_bind(host, "t")
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    out = subprocess.run([sys.executable, "-m", "adk_lite", "serve", path, "--host", host], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "--token" in out.stderr


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]"])
def test_loopback_needs_no_token(host):
    check_bind(host, None)


def test_a_missing_database_is_one_line_and_not_created(tmp_path):
    missing = tmp_path / "nope.sqlite3"
    out = subprocess.run([sys.executable, "-m", "adk_lite", "serve", str(missing)], capture_output=True, text=True,
                         timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not missing.exists()


def test_a_huge_session_is_paged(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("a", "u", session_id="long")
        svc.append_events(s, [Event(author="user", content={"parts": [{"text": f"message {i}"}]})
                              for i in range(EVENTS_PER_PAGE + 20)])
    for base, _p in _serve(path):
        import json

        last = json.loads(_get(base + session_url("a", "u", "long", api=True))[2])
        assert last["pages"] == 2 and last["page"] == 2 and len(last["session"]["events"]) == 20
        first = json.loads(_get(base + session_url("a", "u", "long", api=True) + "?page=1")[2])
        assert len(first["session"]["events"]) == EVENTS_PER_PAGE
        assert first["session"]["events"][0]["content"]["parts"][0]["text"] == "message 0"
        status, _h, body = _get(base + session_url("a", "u", "long"))
        assert status == 200 and body.count('class="event') == 20


# -- hostile review: in process (Starlette's test client), on both backends --------------

def _client(svc, token=None):
    """A test client of the app on ``svc``, addressed to a loopback name."""
    import warnings

    with warnings.catch_warnings():  # Starlette asks for httpx2; httpx is what the environment has
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from adk_lite.web.app import make_app

    return TestClient(make_app(svc, token=token), base_url="http://127.0.0.1:8765", follow_redirects=False)


def test_a_stored_time_no_date_can_hold_still_renders_the_session(svc_any):
    # a compaction's range is free JSON inside actions: 1e20 or -1e18 seconds pass validation
    s = svc_any.create_session("a", "u", session_id="odd")
    for i, (start, end) in enumerate(((1e20, 2.0), (-1e18, 1e300))):
        svc_any.append_event(s, Event(author="agent", invocation_id=f"i{i}", actions=EventActions(extra={
            "compaction": {"start_timestamp": start, "end_timestamp": end,
                           "compacted_content": {"parts": [{"text": f"summary {i}"}]}}})))
    page = _client(svc_any).get(session_url("a", "u", "odd"))
    assert page.status_code == 200
    assert "summary 0" in page.text and "summary 1" in page.text and "1e+20" in page.text


@pytest.mark.parametrize("path", ["//evil.example", "//evil.example/x", "///evil.example", "/\\evil.example"])
def test_the_token_redirect_never_leaves_the_server(svc_any, path):
    response = _client(svc_any, token="s3cret").get(f"http://127.0.0.1:8765{path}?token=s3cret")
    assert response.status_code == 303
    location = response.headers["location"]
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert urllib.parse.urlsplit(location).netloc == ""


def test_the_token_redirect_keeps_percent_encoded_ids(svc_any):
    s = svc_any.create_session("help desk", "bob/x", session_id="a/b ?#%")
    svc_any.append_event(s, Event(author="user", content={"parts": [{"text": "hello"}]}))
    client = _client(svc_any, token="s3cret")
    url = session_url("help desk", "bob/x", "a/b ?#%")
    response = client.get(url + "?page=1&token=s3cret")
    assert response.status_code == 303 and response.headers["location"] == url + "?page=1"
    followed = client.get(response.headers["location"], headers={"Authorization": "Bearer s3cret"})
    assert followed.status_code == 200 and "hello" in followed.text


def test_a_terminated_server_leaves_the_file_as_it_found_it(tmp_path):
    # SIGTERM (kill, systemd, a test's terminate()): the service is closed, so reading
    # leaves no -wal/-shm behind, and the main file's bytes and mtime never change
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    assert not os.path.exists(path + "-wal") and not os.path.exists(path + "-shm")
    before, mtime = open(path, "rb").read(), os.stat(path).st_mtime_ns
    for base, _p in _serve(path):
        for route in ("/", "/stats", "/api/sessions", "/?q=zebrafrog", session_url("shop", "alice", "chat-1")):
            assert _get(base + route)[0] == 200
        assert os.path.exists(path + "-shm")  # SQLite's, while reading
    assert sorted(os.listdir(tmp_path)) == ["s.sqlite3"]
    assert open(path, "rb").read() == before and os.stat(path).st_mtime_ns == mtime


@pytest.mark.parametrize("spelling", [("--token", "zq8Tok3n"), ("--token=zq8Tok3n",), ("--tok", "zq8Tok3n")])
def test_the_token_is_not_in_the_process_command_line(tmp_path, spelling):
    pytest.importorskip("setproctitle")
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    started: list = []
    for base, _p in _serve(path, *spelling, started=started):
        assert _get(base + "/api/stats", headers={"Authorization": "Bearer zq8Tok3n"})[0] == 200
        with open(f"/proc/{started[0].pid}/cmdline", "rb") as f:
            cmdline = f.read()
        assert b"zq8Tok3n" not in cmdline and b"serve" in cmdline


def test_the_token_can_come_from_the_environment(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    for base, _p in _serve(path, env={"ADK_LITE_TOKEN": "envTok3n"}):
        assert _get(base + "/api/stats")[0] == 401
        assert _get(base + "/api/stats", headers={"Authorization": "Bearer envTok3n"})[0] == 200
    out = subprocess.run([sys.executable, "-m", "adk_lite", "serve", path, "--host", "0.0.0.0", "--port", "1"],
                         capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=ROOT, ADK_LITE_TOKEN=""))
    assert out.returncode == 2 and "--token" in out.stderr  # an empty variable is no token


def test_the_cookie_carries_a_digest_not_the_token_and_is_this_servers_own(svc_any):
    # a cookie of 127.0.0.1 goes to every server on the host, whatever its port
    client = _client(svc_any, token="s3cret")
    response = client.get("/stats?token=s3cret")
    assert response.status_code == 303
    name, value = response.headers["set-cookie"].split(";")[0].split("=", 1)
    assert "s3cret" not in response.headers["set-cookie"] and name.endswith("8765")
    assert client.get("/stats", headers={"Cookie": f"{name}={value}"}).status_code == 200
    assert client.get("/stats", headers={"Cookie": f"{name}=s3cret"}).status_code == 401
    assert client.get("/stats", headers={"Cookie": f"adk_lite_9999={value}"}).status_code == 401


@pytest.mark.parametrize("token", ["pässwörd", "t€k", "two words", "tab\there", " "])
def test_a_token_no_header_can_carry_is_refused_up_front(tmp_path, token):
    from adk_lite.web.app import make_app

    with pytest.raises(ValueError, match="--token"):
        check_bind("127.0.0.1", token)
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    with DatabaseSessionService(path, read_only=True) as svc, pytest.raises(ValueError, match="token"):
        make_app(svc, token=token)


def test_chart_labels_are_cut_before_they_are_escaped():
    import xml.etree.ElementTree as ET

    from adk_lite.web.charts import bar_chart

    labels = ["a" * 38 + "<script>", "&" * 50, "x" * 39 + '"']
    svg = ET.fromstring(bar_chart([(label, 5) for label in labels], "t <b>"))
    shown = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text") if t.get("class") == "label"]
    assert shown == [label[:40] for label in labels]
    assert [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")][0] == "t <b>"


class _WithUsage:
    """A read-only service with a ``get_usage`` that returns hostile model names and days."""

    MODEL = "<svg onload=alert(1)><script>document.title='pwned'</script>"

    def __init__(self, svc):
        self._svc = svc

    def __getattr__(self, name):
        return getattr(self._svc, name)

    def get_usage(self, app_name=None, user_id=None, session_id=None, *, group_by=()):
        sums = {"prompt_tokens": 7, "output_tokens": 5, "cached_tokens": 0, "thoughts_tokens": 0,
                "tool_use_prompt_tokens": 0, "total_tokens": 12, "llm_calls": 1}
        if group_by == ("day",):
            return [{"day": "<i>2026-01-01</i>", **sums}]
        if group_by == ("model",):
            return [{"model": self.MODEL, **sums}, {"model": None, **sums}]
        return [sums]


def test_the_usage_page_escapes_model_names_in_charts_and_tables(svc_any):
    import html.parser

    class Tags(html.parser.HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags, self.data = [], []

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

        def handle_data(self, data):
            self.data.append(data)

    page = _client(_WithUsage(svc_any)).get("/usage?app=%3Cb%3Ex")
    assert page.status_code == 200
    parser = Tags()
    parser.feed(page.text)
    assert "script" not in parser.tags and "i" not in parser.tags
    assert parser.tags.count("svg") == 2  # the two charts, nothing from the data
    assert _WithUsage.MODEL in parser.data and _WithUsage.MODEL[:40] in parser.data
    assert 'value="&lt;b&gt;x"' in page.text
    data = _client(_WithUsage(svc_any)).get("/api/usage").json()
    assert data["by_model"][0]["model"] == _WithUsage.MODEL


@pytest.mark.parametrize("host", ["localhost:8765@evil.example", "localhost:80:80", "evil.example:80:localhost",
                                  "localhost/evil", "[::1]x", "localhost.evil.example", "127.0.0.1.nip.io",
                                  "[::ffff:7f00:1]evil", "", "localhost :80"])
def test_only_a_loopback_host_header_is_answered_without_a_token(svc, host):
    assert _client(svc).get("/api/stats", headers={"Host": host}).status_code == 403


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8765", "127.0.0.1:1", "127.9.9.9", "[::1]", "[::1]:8765"])
def test_a_loopback_host_header_is_answered(svc, host):
    assert _client(svc).get("/api/stats", headers={"Host": host}).status_code == 200


def test_a_port_in_use_is_one_line_and_port_0_prints_the_port_chosen(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        out = subprocess.run([sys.executable, "-m", "adk_lite", "serve", path, "--port", str(busy.getsockname()[1])],
                             capture_output=True, text=True, timeout=60, env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "in use" in out.stderr and "Traceback" not in out.stderr
    proc = subprocess.Popen([sys.executable, "-m", "adk_lite", "serve", path, "--port", "0"], stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        line = proc.stderr.readline()
        url = line.split(" on ", 1)[1].split()[0]
        assert urllib.parse.urlsplit(url).port not in (None, 0), line
        assert _get(url + "api/stats")[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0  # SIGTERM: shut down and closed, not killed


def test_a_page_of_a_huge_session_reads_only_its_own_events(svc_any, monkeypatch):
    import adk_lite.admin
    import adk_lite.service

    s = svc_any.create_session("a", "u", session_id="long")
    svc_any.append_events(s, [Event(author="user", timestamp=1000.0 + (i // 3), content={"parts": [{"text": f"m{i}"}]})
                              for i in range(2 * EVENTS_PER_PAGE + 7)])
    every = [e.to_dict() for e in svc_any.get_session("a", "u", "long").events]
    decoded = []
    for module in (adk_lite.service, adk_lite.admin):
        original = module.event_from_row
        monkeypatch.setattr(module, "event_from_row", lambda row, original=original: decoded.append(1) or original(row))
    client = _client(svc_any)
    for page, want in ((1, every[:EVENTS_PER_PAGE]), (2, every[EVENTS_PER_PAGE:2 * EVENTS_PER_PAGE]),
                       (3, every[2 * EVENTS_PER_PAGE:])):
        decoded.clear()
        data = client.get(session_url("a", "u", "long", api=True) + f"?page={page}").json()
        assert data["session"]["events"] == want and data["first_event"] == (page - 1) * EVENTS_PER_PAGE + 1
        assert len(decoded) == len(want)  # the events before the page are not read


HOSTILE = {
    "app": "<img src=x onerror=document.title='pwned'>",
    "user": "\"><script>document.title='pwned'</script>",
    "session": "javascript:document.title='pwned'//'\"><b>",
}


def _fill_hostile(path: str) -> None:
    """Markup in every stored name and value the pages show, around one searchable word."""
    app, user, sid = HOSTILE["app"], HOSTILE["user"], HOSTILE["session"]
    with DatabaseSessionService(path) as svc:
        s = svc.create_session(app, user, session_id=sid, state={
            "<i>k</i>": "<script>document.title='pwned'</script>", f"user:{XSS}": {"<b>": XSS}, f"app:{XSS}": 1})
        svc.append_events(s, [
            Event(author=XSS, invocation_id=XSS, branch=XSS,
                  content={"parts": [{"text": f"quokkamarker « not a mark » {XSS}"}]},
                  actions=EventActions(state_delta={XSS: XSS})),
            Event(author="agent", invocation_id="i2", content={"parts": [
                {"function_call": {"name": XSS, "args": {XSS: "</pre><script>document.title='pwned'</script>"}}},
                {"function_response": {"name": XSS, "response": {"r": XSS}}},
                {"inline_data": {"mime_type": XSS, "data": "AA=="}}]},
                  actions=EventActions(extra={"compaction": {"start_timestamp": 1.0, "end_timestamp": 2.0,
                                                             "compacted_content": {"parts": [{"text": XSS}]}},
                                              "rewind_before_invocation_id": XSS})),
        ])
        svc.fork_session(app, user, sid, new_session_id=XSS, before_invocation_id="i2")


def test_markup_in_every_stored_field_is_text_on_every_page(tmp_path, browser):
    path = str(tmp_path / "s.sqlite3")
    _fill_hostile(path)
    for base, _p in _serve(path):
        pages = ["/", "/?q=quokkamarker", "/stats", "/?app=" + urllib.parse.quote(HOSTILE["app"]),
                 session_url(HOSTILE["app"], HOSTILE["user"], HOSTILE["session"]),
                 session_url(HOSTILE["app"], HOSTILE["user"], XSS)]
        for page in pages:
            browser.get(base + page)
            assert browser.title.endswith(" · adk-lite"), page  # a script would have set it to 'pwned'
            assert not _by(browser, "script") and not _by(browser, "img"), page
            assert not _by(browser, "main b:not([class])") and not _by(browser, "main i"), page
        browser.get(base + "/")
        links = [a.get_attribute("href") for a in _by(browser, "#sessions a")]
        assert len(links) == 2 and all(link.startswith(base + "/sessions/") for link in links)
        browser.get(base + "/?q=quokkamarker")
        assert [m.text for m in _by(browser, "#hits mark")][:1] == ["quokkamarker"]
        hit = _by(browser, "#hits li.hit a")[0].get_attribute("href")
        assert hit.startswith(base + "/sessions/")
        browser.get(hit)
        assert browser.find_element("id", "session-title").text in (" / ".join(HOSTILE.values()),
                                                                    " / ".join([HOSTILE["app"], HOSTILE["user"], XSS]))
        browser.get(base + session_url(HOSTILE["app"], HOSTILE["user"], HOSTILE["session"]))
        text = browser.find_element("tag name", "main").text
        for shown in (XSS, "quokkamarker « not a mark »"):
            assert shown in text
        assert browser.find_element("css selector", "#forks a.fork").text == XSS
        assert "</pre><script>" in _by(browser, "details.call pre")[0].get_attribute("textContent")


def test_the_browser_opened_by_serve_gets_a_one_time_code_not_the_token(svc_any):
    # --open hands the URL to a browser process, whose command line any user can read
    client = _client(svc_any, token="s3cret")
    client.app.login_codes.add("once-code")
    from adk_lite.web.app import make_app

    app = make_app(svc_any, token="s3cret", login_code="c0de")
    assert app.login_codes == {"c0de"}
    first = client.get("/stats?token=once-code")
    assert first.status_code == 303
    cookie = first.headers["set-cookie"].split(";")[0]
    assert client.get("/stats", headers={"Cookie": cookie}).status_code == 200
    client.cookies.clear()
    assert client.get("/stats?token=once-code").status_code == 401  # used up
    assert make_app(svc_any, login_code="c0de").login_codes == set()  # no token: no code either


def test_serve_open_gives_the_browser_a_one_time_code(tmp_path, monkeypatch):
    import threading

    import adk_lite.web.app as web_app

    opened, stop = [], threading.Event()
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or stop.set())

    class FakeServer:
        def __init__(self, config):
            self.config = config

        def run(self, sockets):
            stop.wait(10)
            FakeServer.app = self.config.app

    monkeypatch.setattr("uvicorn.Server", FakeServer)
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    with DatabaseSessionService(path, read_only=True) as svc:
        web_app.serve(svc, "127.0.0.1", 0, token="s3cret", open_browser=True)
    assert len(opened) == 1 and "s3cret" not in opened[0]
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(opened[0]).query)["token"][0]
    assert FakeServer.app.login_codes == {code}


def test_an_ipv6_address_in_brackets_is_served(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    proc = subprocess.Popen([sys.executable, "-m", "adk_lite", "serve", path, "--host", "[::1]", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    try:
        line = proc.stderr.readline()
        assert " on http://[::1]:" in line, line
        assert _get(line.split(" on ", 1)[1].split()[0] + "api/stats")[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


class _DeletedMeanwhile:
    """A service whose sessions are deleted (by another process) right after it lists or reads them."""

    def __init__(self, svc, writer):
        self._svc, self._writer = svc, writer

    def __getattr__(self, name):
        return getattr(self._svc, name)

    def list_sessions(self, *args, **kwargs):
        page = self._svc.list_sessions(*args, **kwargs)
        for s in page:
            self._writer.delete_session(s.app_name, s.user_id, s.id)
        return page

    def get_session(self, *args, **kwargs):
        found = self._svc.get_session(*args, **kwargs)
        if found is not None:
            self._writer.delete_session(found.app_name, found.user_id, found.id)
        return found


def test_sessions_deleted_while_a_page_is_built_do_not_fail_it(tmp_path):
    path = str(tmp_path / "s.sqlite3")
    _fill(path)
    with DatabaseSessionService(path) as writer, DatabaseSessionService(path, read_only=True) as svc:
        client = _client(_DeletedMeanwhile(svc, writer))
        listed = client.get("/api/sessions")
        assert listed.status_code == 200 and [s["events"] for s in listed.json()["sessions"]] == [0, 0, 0]
    _fill(str(tmp_path / "t.sqlite3"))
    with DatabaseSessionService(str(tmp_path / "t.sqlite3")) as writer, \
            DatabaseSessionService(str(tmp_path / "t.sqlite3"), read_only=True) as svc:
        gone = _client(_DeletedMeanwhile(svc, writer)).get(session_url("shop", "alice", "chat-1"))
        assert gone.status_code == 404 and "chat-1" in gone.text


def test_forks_are_found_in_one_statement_among_many_sessions(svc_any):
    src = svc_any.create_session("a", "u", session_id="src")
    svc_any.append_event(src, Event(author="user", invocation_id="i1", content={"parts": [{"text": "x"}]}))
    for i in range(30):
        svc_any.create_session("a", "u", session_id=f"other{i}")
    for name in ("f1", "f2"):
        svc_any.fork_session("a", "u", "src", new_session_id=name)
    svc_any.fork_session("a", "u", "f1", new_session_id="f1-child")
    svc_any.create_session("a", "v", session_id="src")
    svc_any.fork_session("a", "v", "src", new_session_id="other-user-fork")
    client = _client(svc_any)
    assert client.get(session_url("a", "u", "src", api=True)).json()["forks"] == ["f1", "f2"]
    assert client.get(session_url("a", "u", "f1", api=True)).json()["forks"] == ["f1-child"]
    assert client.get(session_url("a", "u", "other3", api=True)).json()["forks"] == []


def test_usage_page_charts_tokens_by_day_and_model(tmp_path, browser):
    """``/usage`` draws get_usage's totals by day and by model as SVG bars, with the table
    below; model names are stored text, shown escaped."""
    path = str(tmp_path / "u.sqlite3")
    with DatabaseSessionService(path) as svc:
        s = svc.create_session("shop", "alice", session_id="c")
        for model, tokens, day in (("gemini-x", 15, 0), ("<b>m</b>", 7, 86400)):
            svc.append_event(s, Event(author="agent", timestamp=1_767_225_600 + day,
                                      content={"parts": [{"text": "answer"}]},
                                      extra={"usage_metadata": {"prompt_token_count": tokens - 1,
                                                                "candidates_token_count": 1,
                                                                "total_token_count": tokens},
                                             "model_version": model}))
    for base, _p in _serve(path):
        browser.get(base + "/usage")
        assert len(_by(browser, "#chart-day svg rect.bar")) == 2
        assert len(_by(browser, "#chart-model svg rect.bar")) == 2
        rows = [r.text for r in _by(browser, "#usage tbody tr")]
        assert rows[0].startswith("2026-01-01 14 1 0 0 15 1") and rows[1].startswith("2026-01-02 6 1 0 0 7 1")
        assert "<b>m</b>" in [r.text.split(" ")[0] for r in _by(browser, "#usage-models tbody tr")]
        assert not _by(browser, "#usage-models b")


def test_without_the_web_extra_the_import_error_names_it(monkeypatch):
    import importlib

    for name in [m for m in sys.modules if m == "adk_lite.web" or m.startswith("adk_lite.web.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "jinja2", None)  # as if not installed
    with pytest.raises(ImportError, match=r'adk_lite.web needs the web extra: pip install -e "\.\[web\]"'):
        importlib.import_module("adk_lite.web")
