"""The routes of ``adk-lite serve``: a read-only Starlette app on an open
:class:`adk_lite.DatabaseSessionService`.

Routes (scripts and bookmarks rely on these paths):

- ``/``: sessions, newest update first (``?app=``, ``?user=``, ``?after=`` cursor), or
  with ``?q=`` the events that match (``search_events``, best first, each hit
  linking to its event); ``/api/sessions`` and ``/api/search?q=`` are their JSON.
- ``/sessions/{app}/{user}/{session_id}``: one session (``?page=``, at most
  :data:`EVENTS_PER_PAGE` events a page); ids are percent-encoded path segments
  (``%2F`` for a ``/`` inside an id). ``/api/sessions/{app}/{user}/{session_id}``.
- ``/usage`` (tokens by day and by model, when the service has ``get_usage``) and
  ``/stats`` (``get_stats()``); ``/api/usage``, ``/api/stats``.

Every request that is not ``GET`` gets 405 and nothing else happens: the service
is opened read-only as well. With a token, every request must carry it
(``Authorization: Bearer T``, or ``?token=T`` once, which sets a cookie and
redirects to the same page without it). Without a token, only requests whose
``Host`` is a loopback name are answered (a page of another site cannot reach the
server through DNS rebinding).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import ipaddress
import math
import pathlib
import re
import secrets
import signal
import socket
import threading
import urllib.parse
from typing import Any, Callable, Iterator, Optional

import jinja2
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import errors
from ..service import DatabaseSessionService
from .charts import bar_chart
from .timeline import event_view, iso, state_by_scope

EVENTS_PER_PAGE = 500
"""Events on one page of a session (a huge session is paged, never rendered whole)."""
SESSIONS_PER_PAGE = 50
"""Sessions (or search hits) on one page of the list."""
FORK_SCAN = 500
"""How many of the user's forks (most recently updated first) are looked at for forks of a session."""
COOKIE = "adk_lite_"
"""The start of the cookie's name; the port follows (each server on this host has its own)."""
HERE = pathlib.Path(__file__).parent
LOOPBACK_NAMES = ("localhost",)
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff", "referrer-policy": "no-referrer", "cache-control": "no-store",
    "x-frame-options": "DENY",
}

_templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                autoescape=True, undefined=jinja2.StrictUndefined)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1`` (brackets allowed)."""
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_HOST = re.compile(r"(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]@/\s]+))(?::[0-9]{1,5})?")


def _host_name(header: str) -> str:
    """The name or address of a ``Host`` header, without its port (``[::1]:80`` -> ``::1``);
    '' for anything else (``localhost:80@evil.example``, two ports), which no name matches."""
    match = _HOST.fullmatch(header)
    return (match.group(1) or match.group(2)) if match else ""


def check_bind(host: str, token: Optional[str]) -> None:
    """Refuse to serve beyond this machine without a token.

    Raises:
        ValueError: ``host`` is not a loopback name or address and ``token`` is
            empty or None; or ``token`` is given but blank or not printable ASCII
            (it travels in HTTP headers, which are bytes: ``é`` could never match).
    """
    _check_token(token, "--token")
    if not is_loopback(host) and not token:
        raise ValueError(f"refusing to serve on {host}, beyond this machine, without --token "
                         "(every request must then carry it)")


def _check_token(token: Optional[str], what: str) -> None:
    """Raise ValueError for a blank token or one with characters beyond printable ASCII."""
    if token is None:
        return
    if not isinstance(token, str) or not token.strip():
        raise ValueError(f"{what} must not be empty")
    if not all("!" <= c <= "~" for c in token):
        raise ValueError(f"{what} must be printable ASCII without spaces (it travels in HTTP headers)")


def _cookie(token: str) -> str:
    """The cookie's value: a digest of the token, never the token itself (a cookie of
    127.0.0.1 is also sent to every other server on this host, whatever its port)."""
    return hmac.new(token.encode(), b"adk-lite serve cookie", "sha256").hexdigest()


def session_url(app_name: str, user_id: str, session_id: str, api: bool = False) -> str:
    """The path of a session's page (or its JSON, ``api=True``): each id one
    percent-encoded segment, so ids with ``/``, ``?``, ``#`` or ``..`` stay ids."""
    ids = "/".join(urllib.parse.quote(part, safe="") for part in (app_name, user_id, session_id))
    return ("/api" if api else "") + "/sessions/" + ids


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS), status_code=status,
                    media_type="application/json")


def _html(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    return HTMLResponse(_templates.get_template(name).render(session_url=session_url, iso=iso, **context),
                        status_code=status)


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return _json({"error": message}, status)
    return _html("error.html", status, title="error", message=message)


def _param(request: Request, name: str) -> Optional[str]:
    value = request.query_params.get(name)
    return value if value else None


def _session_ids(request: Request, prefix: str) -> Optional[tuple[str, str, str]]:
    """The three ids of a session path, decoded segment by segment from the raw path
    (so ``%2F`` inside an id is not taken for a separator); None if not three."""
    path = _same_path(request)
    if not path.startswith(prefix):
        return None
    parts = path[len(prefix):].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    try:
        return tuple(urllib.parse.unquote(p, errors="strict") for p in parts)  # type: ignore[return-value]
    except UnicodeDecodeError:
        return None


def _same_path(request: Request) -> str:
    """The request's path as it was sent (still percent-encoded, so ``%2F`` inside an
    id stays one), with one leading slash: ``//evil.example/`` would send a browser
    to another host, so a redirect to it goes to ``/evil.example/`` instead."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else urllib.parse.quote(request.url.path)
    return "/" + path.split("?", 1)[0].lstrip("/\\")


def _session_dict(session: Any) -> dict[str, Any]:
    return {"app_name": session.app_name, "user_id": session.user_id, "id": session.id, "state": session.state,
            "last_update_time": session.last_update_time, "revision": session.revision}


class _Views:
    """The pages and their JSON twins, on one read-only service."""

    def __init__(self, svc: DatabaseSessionService) -> None:
        self.svc = svc

    # -- data ------------------------------------------------------------------
    def sessions(self, request: Request) -> dict[str, Any]:
        page = self.svc.list_sessions(_param(request, "app"), _param(request, "user"), limit=SESSIONS_PER_PAGE,
                                      after=_param(request, "after"), order="newest")
        # one snapshot; a session deleted since it was listed counts 0 (get_event_count would raise)
        counts = self.svc.event_counts([(s.app_name, s.user_id, s.id) for s in page])
        rows = [{**_session_dict(s), "events": n} for s, n in zip(page, counts)]
        return {"sessions": rows, "next_cursor": page.next_cursor}

    def search(self, request: Request, query: str) -> dict[str, Any]:
        hits = self.svc.search_events(query, app_name=_param(request, "app"), user_id=_param(request, "user"),
                                      limit=SESSIONS_PER_PAGE, after=_param(request, "after"))
        return {"query": query, "hits": [dataclasses.asdict(h) for h in hits], "next_cursor": hits.next_cursor}

    def session(self, request: Request, ids: tuple[str, str, str]) -> Optional[dict[str, Any]]:
        app, user, sid = ids
        head = self.svc.get_session(app, user, sid, num_recent_events=0)
        if head is None:
            return None
        try:
            count = self.svc.get_event_count(app, user, sid)
        except errors.SessionNotFoundError:  # deleted since it was read
            return None
        pages = max(1, math.ceil(count / EVENTS_PER_PAGE))
        wanted = request.query_params.get("page")
        if wanted is None:
            page = pages
        elif wanted.isascii() and wanted.isdigit() and 1 <= int(wanted) <= pages:
            page = int(wanted)
        else:
            raise ValueError(f"page must be a whole number from 1 to {pages}, not {wanted[:40]!r}")
        skip = (page - 1) * EVENTS_PER_PAGE
        # only this page's events are read (a huge session's first page would read them all)
        events = [e.to_dict() for e in self.svc.read_events(app, user, sid, offset=skip, limit=EVENTS_PER_PAGE)]
        lineage = self._lineage(app, user, sid)
        forks = self.svc.list_forks(app, user, sid, scan=FORK_SCAN)
        return {"session": {**_session_dict(head), "events": events}, "event_count": count, "page": page,
                "pages": pages, "events_per_page": EVENTS_PER_PAGE, "first_event": skip + 1 if events else 0,
                "page_bytes": sum(len(orjson.dumps(e)) for e in events), "lineage": lineage, "forks": forks}

    def _lineage(self, app: str, user: str, sid: str) -> Optional[dict[str, Any]]:
        """``get_lineage``, or None for a session another process deleted meanwhile."""
        try:
            return self.svc.get_lineage(app, user, sid)
        except errors.SessionNotFoundError:
            return None

    def usage(self, request: Request) -> Optional[dict[str, Any]]:
        get_usage = getattr(self.svc, "get_usage", None)
        if get_usage is None:
            return None
        where = {"app_name": _param(request, "app"), "user_id": _param(request, "user")}
        return {"total": get_usage(**where), "by_day": get_usage(**where, group_by=("day",)),
                "by_model": get_usage(**where, group_by=("model",))}

    # -- routes ----------------------------------------------------------------
    def home(self, request: Request) -> Response:
        query = _param(request, "q")
        data = self.search(request, query) if query else self.sessions(request)
        filters = {k: request.query_params.get(k, "") for k in ("app", "user", "q")}
        return _html("sessions.html", title="search" if query else "sessions", filters=filters, **data)

    def api_sessions(self, request: Request) -> Response:
        return _json(self.sessions(request))

    def api_search(self, request: Request) -> Response:
        query = _param(request, "q")
        if query is None:
            return _error(request, 400, "give the words to find as ?q=")
        return _json(self.search(request, query))

    def session_page(self, request: Request) -> Response:
        api = request.url.path.startswith("/api/")
        ids = _session_ids(request, "/api/sessions/" if api else "/sessions/")
        if ids is None:
            return _error(request, 404, "a session's path is /sessions/APP/USER/SESSION_ID "
                                        "(each id percent-encoded)")
        data = self.session(request, ids)
        if data is None:
            return _error(request, 404, f"no session {ids[2]!r} of user {ids[1]!r} in app {ids[0]!r}")
        if api:
            return _json(data)
        events = [event_view(e) for e in data["session"]["events"]]
        return _html("session.html", title=f"session {ids[2]}", events=events,
                     scopes=state_by_scope(data["session"]["state"]), **data)

    def usage_page(self, request: Request) -> Response:
        data = self.usage(request)
        if data is None:
            return _error(request, 404, "this adk_lite has no token usage accounting (get_usage)")
        if request.url.path.startswith("/api/"):
            return _json(data)
        charts = {name: bar_chart([(str(r.get(key) or "(none)"), int(r["total_tokens"])) for r in data[name]],
                                  f"total tokens by {key}")
                  for name, key in (("by_day", "day"), ("by_model", "model"))}
        filters = {k: request.query_params.get(k, "") for k in ("app", "user")}
        return _html("usage.html", title="usage", charts=charts, filters=filters, **data)

    def stats_page(self, request: Request) -> Response:
        stats = self.svc.get_stats()
        if request.url.path.startswith("/api/"):
            return _json(stats)
        return _html("stats.html", title="stats", stats=stats)

    def style(self, request: Request) -> Response:
        return FileResponse(HERE / "static" / "style.css", media_type="text/css")


class _Guard:
    """ASGI middleware: only GET; the token (when set) or a loopback ``Host``
    (when not); security headers on every answer; library errors as one line."""

    def __init__(self, app: Any, token: Optional[str], login_code: Optional[str] = None) -> None:
        self.app, self.token = app, token
        self.login_codes = {login_code} if login_code else set()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is not None:
            await refusal(scope, receive, send)
            return

        async def send_with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.decode("latin-1").lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _use_login_code(self, given: str) -> bool:
        """True once for a login code (it is then forgotten)."""
        for code in list(self.login_codes):
            if hmac.compare_digest(given.encode(), code.encode()):
                self.login_codes.discard(code)
                return True
        return False

    @staticmethod
    def _cookie_name(request: Request) -> str:
        server = request.scope.get("server") or (None, None)
        return f"{COOKIE}{server[1] or ''}"

    def _refusal(self, request: Request) -> Optional[Response]:
        if request.method != "GET":
            return PlainTextResponse("read-only: only GET is answered\n", status_code=405,
                                     headers={"allow": "GET", **SECURITY_HEADERS})
        if self.token is None:
            if not is_loopback(_host_name(request.headers.get("host", ""))):
                return PlainTextResponse("this server answers only to localhost names\n", status_code=403,
                                         headers=SECURITY_HEADERS)
            return None
        given = request.query_params.get("token")
        if given is not None and (hmac.compare_digest(given.encode(), self.token.encode())
                                  or self._use_login_code(given)):
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = _same_path(request) + ("?" + urllib.parse.urlencode(rest) if rest else "")
            response = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
            response.set_cookie(self._cookie_name(request), _cookie(self.token), httponly=True, samesite="strict",
                                path="/")
            return response
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth[:7].lower() == "bearer " else None
        cookie = request.cookies.get(self._cookie_name(request))
        if ((bearer is not None and hmac.compare_digest(bearer.encode(), self.token.encode()))
                or (cookie is not None and hmac.compare_digest(cookie.encode(), _cookie(self.token).encode()))):
            return None
        return PlainTextResponse("a token is needed: Authorization: Bearer TOKEN, or ?token=TOKEN once\n",
                                 status_code=401, headers={"www-authenticate": "Bearer", **SECURITY_HEADERS})


def _guarded(view: Any) -> Any:
    """Run a view; a bad argument (a forged cursor, page or query) is a 400 page, and a
    database error a 503, each one line, never a traceback."""

    def endpoint(request: Request) -> Response:
        try:
            return view(request)
        except (TypeError, ValueError) as e:
            return _error(request, 400, str(e))
        except errors.AdkLiteError as e:
            return _error(request, 503, str(e))

    return endpoint


def make_app(svc: DatabaseSessionService, *, token: Optional[str] = None, login_code: Optional[str] = None) -> Any:
    """The ASGI app of ``adk-lite serve`` on ``svc`` (open it with ``read_only=True``).

    Args:
        svc: the service the pages read; it stays open (the caller closes it).
        token: None (answer only requests addressed to a loopback name), or the
            token every request must carry.
        login_code: with ``token``, a code ``?token=`` accepts ONCE in its place (then
            forgotten): the URL ``serve(open_browser=True)`` gives the browser, whose
            command line every user of the machine can read.

    Returns:
        An ASGI application (Starlette's, wrapped by the read-only guard).

    Raises:
        ValueError: a blank token, or one beyond printable ASCII.
    """
    _check_token(token, "the token")
    views = _Views(svc)
    routes = [Route(path, _guarded(view), methods=["GET"]) for path, view in (
        ("/", views.home), ("/usage", views.usage_page), ("/stats", views.stats_page),
        ("/api/sessions", views.api_sessions), ("/api/search", views.api_search),
        ("/api/usage", views.usage_page), ("/api/stats", views.stats_page),
        ("/sessions/{rest:path}", views.session_page), ("/api/sessions/{rest:path}", views.session_page),
        ("/static/style.css", views.style))]
    return _Guard(Starlette(routes=routes), token, login_code if token else None)


class _Terminated(Exception):
    """SIGTERM arrived: :func:`serve` returns, so the caller closes the service."""


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into a return from the block (uvicorn shuts down on it, then
    raises the signal again: with the default action the process would end there,
    before the service is closed and a read-only open's ``-wal``/``-shm`` removed).
    Only in the main thread (signals cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(_signum: int, _frame: Any) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def serve(svc: DatabaseSessionService, host: str = "127.0.0.1", port: int = 8765, *,
          token: Optional[str] = None, open_browser: bool = False,
          on_listen: Optional[Callable[[str], None]] = None) -> None:
    """Serve :func:`make_app` with uvicorn until interrupted (Ctrl-C, which raises
    ``KeyboardInterrupt`` here) or terminated (SIGTERM: returns normally once the
    server has shut down, so the caller can close the service).

    Args:
        host: the address to bind; beyond loopback only with ``token``.
        port: the TCP port (0 picks a free one).
        token: see :func:`make_app`.
        open_browser: open the default browser on the first page once listening
            (with a token, through a one-time login code, never the token itself).
        on_listen: called with the server's URL (the port chosen, for ``port=0``)
            once the socket listens (a request from then on waits, never refused).

    Raises:
        ValueError: :func:`check_bind` refuses ``host`` without ``token``.
        OSError: the address cannot be bound (in use, not on this machine), one line.
    """
    import uvicorn

    check_bind(host, token)
    login_code = secrets.token_urlsafe(24) if token and open_browser else None
    address = host[1:-1] if host.startswith("[") and host.endswith("]") else host  # [::1] as in a URL
    sock = _listen(address, port)
    port = sock.getsockname()[1]
    url = f"http://{f'[{address}]' if ':' in address else address}:{port}/"
    config = uvicorn.Config(make_app(svc, token=token, login_code=login_code), log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    if on_listen is not None:
        on_listen(url)
    if open_browser:
        import webbrowser

        # a one-time code, not the token: the browser's command line shows the URL
        threading.Timer(1.0, webbrowser.open, (url + (f"?token={login_code}" if login_code else ""),)).start()
    with sock, _stop_on_sigterm():
        server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host:port`` (as uvicorn would bind it), or a one-line
    OSError naming the address (in use, not an address of this machine)."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's backlog: connections wait from here on, none is refused
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    return sock
