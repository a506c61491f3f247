"""Database names: a path or URL parsed into one file path (or ``":memory:"``) and
its options, or a PostgreSQL URL into its connection parameters, before any backend
sees it. :func:`target_kind` tells which backend a target is for.

Zero configuration: with no target, the file is ``$ADK_LITE_DB`` if set, else
:data:`DEFAULT_PATH` under the current directory.

Names never reach SQLite as they were given: :func:`parse_target` makes one path, and
the SQLite backend (:mod:`adk_lite.sqlite`) opens it through a ``file:`` URI it
builds from the absolute path, fully quoted.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from typing import Any, NamedTuple, Union

DEFAULT_PATH = os.path.join(".adk", "sessions.sqlite3")
"""Where ``DatabaseSessionService()`` keeps its file when ``$ADK_LITE_DB`` is unset."""
ENV_VAR = "ADK_LITE_DB"
MEMORY = ":memory:"

URL_SCHEMES = ("sqlite://", "sqlite+aiosqlite://", "sqlite+pysqlite://", "adklite://")
"""URL forms accepted as targets, as SQLAlchemy spells them: ``sqlite:///rel.db``,
``sqlite:////abs/path.db``, ``sqlite://`` or ``sqlite:///:memory:`` for memory."""

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+asyncpg://", "postgresql+psycopg://",
                    "postgresql+psycopg2://")
"""PostgreSQL URL forms, as libpq and SQLAlchemy (ADK's config) spell them; all are opened
with psycopg 3: ``postgresql://user:password@host:5432/dbname``."""

POSTGRES_OPTIONS = ("max_connections", "pool_timeout", "busy_timeout", "connect_timeout", "sslmode",
                    "application_name")
"""The ``?query`` options a PostgreSQL URL may carry: ``max_connections`` (pool size, 1-1000),
``pool_timeout`` (seconds to wait for a free connection), ``busy_timeout`` (seconds a
statement waits for a row lock: PostgreSQL's ``lock_timeout``), and the libpq parameters
``connect_timeout`` (seconds), ``sslmode`` and ``application_name``. Any other name is refused."""

SYNCHRONOUS = ("normal", "full")

URL_OPTIONS = ("synchronous", "busy_timeout", "read_only")
"""The ``?query`` options a URL may carry, as in ``adklite:///s.db?synchronous=full``:
``synchronous`` (``normal``/``full``), ``busy_timeout`` (seconds, digits with an optional
decimal part: ``2``, ``0.5``) and ``read_only``
(``true``/``false``/``1``/``0``). Any other name is refused."""

OPTION_DEFAULTS = {"synchronous": "normal", "busy_timeout": 5.0, "read_only": False}


class PostgresTarget(NamedTuple):
    """A parsed PostgreSQL URL.

    Attributes:
        display: the URL with its password replaced by ``***`` (for messages and repr).
        conninfo: the libpq connection parameters (``host``, ``port``, ``user``,
            ``password``, ``dbname`` and the libpq options given), for psycopg.
        options: adk_lite's own options given (``max_connections``: int,
            ``pool_timeout``, ``busy_timeout``: float seconds).
    """

    display: str
    conninfo: dict
    options: dict

    def __repr__(self) -> str:
        """The parts with the password shown as :data:`MASK` (a repr lands in logs and tracebacks)."""
        info = {k: (MASK if k == "password" else v) for k, v in self.conninfo.items()}
        return f"PostgresTarget(display={self.display!r}, conninfo={info!r}, options={self.options!r})"


def resolve_env(target: Union[str, os.PathLike, None]) -> Union[str, os.PathLike]:
    """``target``, or when None the zero-config one: ``$ADK_LITE_DB`` if set, else :data:`DEFAULT_PATH`."""
    return (os.environ.get(ENV_VAR) or DEFAULT_PATH) if target is None else target


def target_kind(target: Union[str, os.PathLike, None]) -> str:
    """``"postgres"`` for a URL in :data:`POSTGRES_SCHEMES` (``$ADK_LITE_DB`` when
    ``target`` is None), else ``"sqlite"`` (a path, ``":memory:"`` or a SQLite URL,
    checked later by :func:`parse_target`). Reads no file and imports no driver."""
    target = resolve_env(target)
    if isinstance(target, str) and url_scheme(target) in POSTGRES_SCHEMES:
        return "postgres"
    return "sqlite"


def url_scheme(target: str) -> str:
    """The scheme of a URL in lower case with its ``://`` (``"POSTGRESQL://u@h/db"`` gives
    ``"postgresql://"``), or ``""`` when ``target`` holds no ``://``. Every decision on
    a URL's kind goes through here, so no spelling of a scheme is told apart by its case."""
    scheme, sep, _ = target.partition("://")
    return scheme.lower() + sep if sep else ""


MASK = "***"
"""What a password is shown as."""
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_PASSWORD_NAME = r"(?:[\w.+-]|%[0-9A-F]{2})*" + "".join(f"(?:{c}|%{ord(c):X}|%{ord(c.upper()):X})" for c in "password")
"""An option name that reads as ``password`` or ends in it (``sslpassword``, libpq's client key
passphrase), any letter of it maybe percent-encoded (``pass%77ord`` is parsed as ``password``)."""
_PASSWORD_OPTION = re.compile(rf"([?&;]{_PASSWORD_NAME}=)((?:[^&]|&(?![\w.+-]*=))*)", re.IGNORECASE)
"""A ``password=`` query option; its value runs to the next ``&name=`` (a raw ``&`` stays in it)."""
_CONNINFO_PASSWORD = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s'\"]+)", re.IGNORECASE)


def mask_password(text: str) -> str:
    """``text`` (a URL, or a message holding URLs) with every password in it replaced by
    :data:`MASK`. The one place adk_lite hides passwords: ``PostgresTarget.display``,
    ``svc.path``, reprs, every error message, CLI output and logs come from here.

    Parsed, not matched on spelling: a URL of any scheme in any case (``POSTGRESQL://``,
    ``Postgres://``, ``sqlite://``, ...) runs to the next URL or the end of the text; its
    userinfo is everything before its last ``@`` (a raw ``/``, ``?``, ``#``, space or
    ``@`` in a password still counts as password), and all after the first ``:`` there
    is masked. A
    ``password=`` query option (any case; up to the next ``&``) and a libpq ``password=``
    parameter (``password=x`` or ``password='a b'``) are masked too. When in doubt more
    is hidden, never less (``postgresql://h:5432/db?application_name=a@b`` shows as
    ``postgresql://h:***@b``). Never raises for a str."""
    starts = [m.start() for m in _URL_START.finditer(text)] + [len(text)]
    pieces = [text[:starts[0]]]
    i = 0
    while i < len(starts) - 1:
        j = i + 1  # a "scheme://" inside an unfinished userinfo (u:pass://word@h) is still password
        while j < len(starts) - 1 and _open_secret(text[starts[i]:starts[j]]):
            j += 1
        pieces.append(_mask_url(text[starts[i]:starts[j]]))
        i = j
    return _CONNINFO_PASSWORD.sub(_masked_value, "".join(pieces))


def _open_secret(url: str) -> bool:
    """True when ``url`` (``scheme://...``) ends inside what may be a password: it began a
    ``user:`` and holds no ``@`` yet, or its last ``password=`` option runs to its end. What
    follows (another ``scheme://`` included) is then still part of it."""
    rest = url.partition("://")[2]
    if "@" not in rest and re.match(r"[^/?#@]*:", rest) is not None:
        return True
    last = None
    for last in _PASSWORD_OPTION.finditer(rest):
        pass
    return last is not None and last.end() == len(rest)


def _masked_value(match: "re.Match[str]") -> str:
    """A ``name=value`` match with its value masked (a value already masked is kept)."""
    return match.group(1) + MASK if not match.group(2).startswith(MASK) else match.group(0)


def _mask_url(url: str) -> str:
    """One URL (``scheme://...``, to the end of the text) with its password masked (see
    :func:`mask_password`)."""
    head, _, rest = url.partition("://")
    rest = _PASSWORD_OPTION.sub(_masked_value, rest)  # first: an "@" in such a value is not the userinfo's
    at = rest.rfind("@")  # a raw "@" (or "/", "?") in a password: the last "@" ends the userinfo
    if at > 0:
        userinfo, tail = rest[:at], rest[at:]
        user, colon, _password = userinfo.partition(":")
        if colon and not re.search(r"[/?#]", user):
            rest = user + ":" + MASK + tail
    return head + "://" + rest


def parse_postgres(url: str) -> PostgresTarget:
    """Parse a PostgreSQL URL (one of :data:`POSTGRES_SCHEMES`) into its connection
    parameters and :data:`POSTGRES_OPTIONS`.

    ``postgresql://user:password@host:port/dbname?option=value``: user, password and
    dbname are percent-decoded; a missing host, port or user is left to libpq's
    defaults (``PGHOST``, ``PGPORT``, ``PGUSER``, ``~/.pgpass``). Messages never hold the password.

    Raises:
        ValueError: not such a URL, no database name, a ``#fragment``, a bad port,
            a NUL, or an unknown, repeated or bad option.
    """
    scheme, _, rest = url.partition("://")
    display = mask_password(url)
    if target_kind(url) != "postgres":
        raise ValueError(f"db URL {display!r}: not a PostgreSQL URL ({', '.join(POSTGRES_SCHEMES)})")
    if "#" in url or "\x00" in url:
        raise ValueError(f"db URL {display!r}: a '#' fragment or a NUL is not allowed (write %23 for '#')")
    parts = urllib.parse.urlsplit("postgresql://" + rest)
    conninfo: dict[str, Any] = {}
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"db URL {display!r}: its port is not a number from 0 to 65535") from None
    dbname = urllib.parse.unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not dbname or "/" in dbname:
        raise ValueError(f"db URL {display!r}: name one database, as in postgresql://user@host:5432/dbname")
    for name, value in (("host", parts.hostname), ("port", port),
                        ("user", urllib.parse.unquote(parts.username) if parts.username else None),
                        ("password", urllib.parse.unquote(parts.password) if parts.password is not None else None),
                        ("dbname", dbname)):
        if value not in (None, ""):
            conninfo[name] = value
    options: dict[str, Any] = {}
    if parts.query:
        try:
            pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True, errors="strict")
        except ValueError:
            raise ValueError(f"db URL {display!r}: cannot read its query: write name=value pairs of "
                             f"{', '.join(POSTGRES_OPTIONS)}") from None
        seen = set()
        for name, value in pairs:
            if name.lower() == "password":
                raise ValueError(f"db URL {display!r}: a password is not taken as an option (where a URL shows "
                                 "up it is in plain sight): give it in PGPASSWORD or ~/.pgpass, or as user:password@")
            if name not in POSTGRES_OPTIONS:
                raise ValueError(f"db URL {display!r}: unknown option {name!r}; the options are "
                                 f"{', '.join(POSTGRES_OPTIONS)}")
            if name in seen:
                raise ValueError(f"db URL {display!r}: option {name!r} is given more than once")
            seen.add(name)
            if name == "max_connections":
                if not re.fullmatch(r"[0-9]{1,4}", value) or not 1 <= int(value) <= 1000:
                    raise ValueError(f"db URL {display!r}: max_connections must be a number from 1 to 1000")
                options[name] = int(value)
            elif name in ("pool_timeout", "busy_timeout"):
                if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", value):
                    raise ValueError(f"db URL {display!r}: {name} must be seconds, as in 5 or 0.5")
                options[name] = check_busy_timeout(float(value))
            else:
                conninfo[name] = value
    return PostgresTarget(display, conninfo, options)


def parse_target(target: Union[str, os.PathLike, None]) -> tuple[str, dict[str, Any]]:
    """Parse a target into one file path (or ``":memory:"``) and its URL options.

    adk_lite, not SQLite, reads the name: SQLite only ever gets a ``file:`` URI that
    adk_lite builds from the absolute path, every special character quoted, so no
    part of a name can become a SQLite URI parameter (``mode=``, ``vfs=``, ...).

    A plain path is a file name, taken as is (``?``, ``#``, ``%`` and spaces are
    part of it), except ``":memory:"``. A path starting with ``file:`` (in any case)
    is refused rather than guessed at: write a plain path (``./file:x.db`` names a
    file called ``file:x.db``). A URL's path is percent-decoded once (as UTF-8).

    Args:
        target: None (zero config: ``$ADK_LITE_DB``, else :data:`DEFAULT_PATH`), a
            path (str or PathLike), ``":memory:"``, or a URL in one of
            :data:`URL_SCHEMES` (``sqlite+aiosqlite:///sessions.db`` as ADK writes it),
            optionally with a query of :data:`URL_OPTIONS`.

    Returns:
        ``(path, options)``: options holds the URL's options that were given, parsed
        (``synchronous``: str, ``busy_timeout``: float seconds, ``read_only``: bool).

    Raises:
        TypeError: not a str, PathLike or None.
        ValueError: an empty path, a NUL, text that is not UTF-8, a ``file:`` name, a
            path ending in ``/``, a URL of another database (postgresql://...), a URL
            with a host, a ``#fragment``, a path holding ``://``, or an unknown,
            repeated or bad option.
    """
    target = resolve_env(target)
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, bytes) or not isinstance(target, str):
        raise TypeError(f"db must be a str path, a PathLike or a sqlite:/// URL, not {type(target).__name__}")
    options: dict[str, Any] = {}
    if "://" in target:
        scheme = url_scheme(target)
        url = mask_password(target)  # what messages show: a password given by mistake never shows
        if scheme not in URL_SCHEMES:
            raise ValueError(f"db URL {url!r}: only {', '.join(URL_SCHEMES)} URLs name a SQLite file")
        rest, _, query = target[len(scheme):].partition("?")
        if "#" in target:
            raise ValueError(f"db URL {url!r}: a '#' fragment is not allowed (write %23 for a '#' in a file name)")
        options = _url_options(query, url)
        try:
            rest = urllib.parse.unquote(rest, errors="strict")
        except UnicodeDecodeError as e:
            raise ValueError(f"db URL {url!r}: its %-escapes are not UTF-8 text") from e
        if rest in ("", "/", "/" + MEMORY):
            return MEMORY, options
        if not rest.startswith("/"):
            raise ValueError(f"db URL {url!r}: expected three slashes, as in sqlite:///path/to/file.db")
        target = rest[1:]
        if "://" in target:
            raise ValueError(f"db URL {url!r}: its path holds '://', which would read as another URL")
    if not target:
        raise ValueError("db must not be an empty path")
    if "\x00" in target:
        raise ValueError("db path contains a NUL character")
    try:
        target.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"db path {target!r} is not valid UTF-8 text (SQLite takes UTF-8 file names)") from e
    if target.endswith("/"):
        raise ValueError(f"db path {target!r} ends with '/': it names a folder, not a file")
    if target[:5].lower() == "file:":
        raise ValueError(f"db path {target!r} starts with 'file:': adk_lite does not take SQLite URIs; "
                         f"write a plain path (./{target} for a file of that name)")
    return target, options


def _url_options(query: str, url: str) -> dict[str, Any]:
    """Parse a URL's query into :data:`URL_OPTIONS` values (see :func:`parse_target`)."""
    options: dict[str, Any] = {}
    if not query:
        return options
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError as e:  # a field without '=', or %-escapes that are not UTF-8
        raise ValueError(f"db URL {url!r}: cannot read its query: write name=value pairs "
                         f"of {', '.join(URL_OPTIONS)}") from e
    for name, value in pairs:
        if name not in URL_OPTIONS:
            raise ValueError(f"db URL {url!r}: unknown option {name!r}; the options are {', '.join(URL_OPTIONS)}")
        if name in options:
            raise ValueError(f"db URL {url!r}: option {name!r} is given more than once")
        if name == "synchronous":
            options[name] = check_synchronous(value)
        elif name == "busy_timeout":
            decimal = re.fullmatch(r"[0-9]+(\.[0-9]+)?", value)
            options[name] = check_busy_timeout(float(value) if decimal else value)
        elif value.lower() in ("true", "1", "false", "0"):
            options[name] = value.lower() in ("true", "1")
        else:
            raise ValueError(f"db URL {url!r}: read_only must be true, false, 1 or 0, got {value!r}")
    return options


def check_synchronous(value: Any) -> str:
    """Return ``value`` (``"normal"`` or ``"full"``, any case) in lower case.

    Raises:
        ValueError: anything else.
    """
    if not isinstance(value, str) or value.lower() not in SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {SYNCHRONOUS}, got {value!r}")
    return value.lower()


def check_busy_timeout(value: Any) -> float:
    """Return ``value`` (seconds, an int or float in ``[0, 1e6)``) as a float.

    Raises:
        ValueError: anything else (NaN, infinite, negative, a bool or a str).
    """
    if type(value) not in (int, float) or not 0 <= value < 1e6:
        raise ValueError(f"busy_timeout must be a number of seconds >= 0, got {value!r}")
    return float(value)


def merge_options(options: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The keyword values ``given`` (already checked) with the URL's ``options``: a
    keyword at its default defers to the URL; one that differs from both is refused.

    Raises:
        ValueError: a keyword and the URL's option disagree.
    """
    merged = dict(given)
    for name, value in options.items():
        if given[name] != OPTION_DEFAULTS[name] and given[name] != value:
            raise ValueError(f"{name}={given[name]!r} conflicts with the URL's {name}={value}; give {name} once")
        merged[name] = value
    return merged


def resolve(target: Union[str, os.PathLike, None]) -> str:
    """Turn a target into a file path, or ``":memory:"``: :func:`parse_target`
    without the URL's options (which are checked, then dropped).

    Raises:
        TypeError, ValueError: as :func:`parse_target`.
    """
    return parse_target(target)[0]
