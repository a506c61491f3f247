"""Database names: a path or URL parsed into one file path (or ``":memory:"``) and
its options, before any backend sees it.

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
from typing import Any, Union

DEFAULT_PATH = os.path.join(".adk", "sessions.sqlite3")
"""Where ``DatabaseSessionService()`` keeps its file when ``$ADK_LITE_DB`` is unset."""
ENV_VAR = "ADK_LITE_DB"
MEMORY = ":memory:"

URL_SCHEMES = ("sqlite://", "sqlite+aiosqlite://", "sqlite+pysqlite://", "adklite://")
"""URL forms accepted as targets, as SQLAlchemy spells them: ``sqlite:///rel.db``,
``sqlite:////abs/path.db``, ``sqlite://`` or ``sqlite:///:memory:`` for memory."""

SYNCHRONOUS = ("normal", "full")

URL_OPTIONS = ("synchronous", "busy_timeout", "read_only")
"""The ``?query`` options a URL may carry, as in ``adklite:///s.db?synchronous=full``:
``synchronous`` (``normal``/``full``), ``busy_timeout`` (seconds, digits with an optional
decimal part: ``2``, ``0.5``) and ``read_only``
(``true``/``false``/``1``/``0``). Any other name is refused."""

OPTION_DEFAULTS = {"synchronous": "normal", "busy_timeout": 5.0, "read_only": False}


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
    if target is None:
        target = os.environ.get(ENV_VAR) or DEFAULT_PATH
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if isinstance(target, bytes) or not isinstance(target, str):
        raise TypeError(f"db must be a str path, a PathLike or a sqlite:/// URL, not {type(target).__name__}")
    options: dict[str, Any] = {}
    if "://" in target:
        url = target
        scheme = url.split("://", 1)[0] + "://"
        if scheme not in URL_SCHEMES:
            raise ValueError(f"db URL {url!r}: only {', '.join(URL_SCHEMES)} URLs name a SQLite file")
        rest, _, query = url[len(scheme):].partition("?")
        if "#" in url:
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
            raise ValueError(f"db URL {url!r}: its path {target!r} holds '://', which would read as another URL")
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
        raise ValueError(f"db URL {url!r}: cannot read its query {query!r}: write name=value pairs "
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
