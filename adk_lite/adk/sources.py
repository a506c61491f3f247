"""ADK's SQLite session files as import-adk and export-adk meet them: which file a path
or URL names (by the rules ADK's own services open it with), so that neither
direction ever touches the adk_lite database itself; and the check of every JSON cell
of a source snapshot before anything is written, naming the table, row and column of
a bad one. Used by :mod:`adk_lite.adk.transfer`; imports ``google.adk`` (its
``Event`` model) like it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.parse
from typing import Any, Optional

from google.adk.events import Event

from .. import codec, outfile
from ..target import MEMORY, parse_postgres, target_kind, url_scheme

__all__ = ["sqlite_files", "source_file", "refuse_same", "refuse_same_server", "check_source"]

_SQLITE_URLS = ("sqlite://", "sqlite+aiosqlite://")


def _uri_file(uri: str) -> Optional[str]:
    """The file an SQLite URI filename names (``file:path``, ``file:///path``,
    ``file://localhost/path``; percent-decoded, query and fragment dropped), or
    None for an in-memory one. SQLite's rules (https://sqlite.org/uri.html)."""
    rest, _, query = uri[len("file:"):].split("#", 1)[0].partition("?")
    if "mode=memory" in query.split("&"):
        return None
    if rest.startswith("//"):
        rest = "/" + rest[2:].partition("/")[2]
    return urllib.parse.unquote(rest) or None


def sqlite_files(where: str, *, adk_sqlite: bool = False) -> Optional[list[str]]:
    """Every file name SQLite may open for a path or URL, as ADK's services turn it
    into a connection: a URL with ``://`` through SQLAlchemy's own SQLite dialect
    (``create_connect_args``, as ADK's ``DatabaseSessionService`` does), or with
    ``adk_sqlite`` a path or ``sqlite:`` URL through the rules of ADK's
    ``SqliteSessionService`` (its ``_parse_db_path``); a ``file:`` URI as SQLite
    reads it. A name that starts with ``file:`` is given both ways, as a plain
    name and as the file its SQLite URI names (this SQLite reads such names as
    URIs even without ``uri=True``).

    Returns:
        The names (possibly relative to the current folder; ``[]`` in memory),
        or None for a URL of another database (a server).
    """
    if "://" in where:  # a scheme in any case names the same driver (SQLITE:///x.db is x.db)
        where = url_scheme(where) + where.split("://", 1)[1]
    if where.startswith("file:"):  # an SQLite URI filename (file:///path too)
        names = [where]
    elif "://" in where and not (adk_sqlite and where.startswith("sqlite:")):
        try:
            from sqlalchemy.engine import make_url
            url = make_url(where)
            if url.get_backend_name() != "sqlite":
                return None
            names = [url.get_dialect()().create_connect_args(url)[0][0]]
        except ImportError:
            names = [where.split("://", 1)[1][1:].split("?", 1)[0]] if where.startswith(_SQLITE_URLS) else []
        except Exception:  # a URL SQLAlchemy refuses: ADK refuses it too, with its own message
            return None
    else:
        try:
            from google.adk.sessions.sqlite_session_service import _parse_db_path
            names = [_parse_db_path(where)[1]]
        except ImportError:
            names = [where]
    files = []
    for name in names:
        if name in ("", ":memory:"):
            continue
        files.append(name)
        if name.startswith("file:"):
            files += [f for f in [_uri_file(name)] if f]
    return files


def source_file(source: str) -> Optional[str]:
    """The file behind a bare path, a ``file:`` URI or a ``sqlite://`` /
    ``sqlite+aiosqlite://`` URL (three slashes then a relative path, four for an
    absolute one, ``/file:...?uri=true`` too; see :func:`sqlite_files`): the first
    name that is an existing file, else the first name; None for another URL."""
    files = sqlite_files(source)
    if files is None:
        return None
    if not files:
        return ":memory:"
    return next((f for f in files if os.path.isfile(f)), files[0])


def refuse_same(files: Optional[list[str]], db_path: str, message: str) -> None:
    """Raise ``ValueError(message)`` when one of ``files`` is the adk_lite database
    ``db_path`` or one of its side files (:func:`adk_lite.outfile.is_database_file`:
    by name once symlinks are resolved, and by device and inode)."""
    if db_path == MEMORY or target_kind(db_path) == "postgres":
        return
    if any(outfile.is_database_file(f, db_path) for f in files or ()):
        raise ValueError(message)


_SERVER_IDENTITY = ("SELECT pg_postmaster_start_time()::text, oid::text FROM pg_database "
                    "WHERE datname = current_database()")
"""What tells one database of one PostgreSQL server from any other, whatever the host is called."""


def refuse_same_server(target: str, svc: Any, message: str) -> None:
    """Raise ``ValueError(message)`` when ``svc`` (an open adk_lite service) is on
    PostgreSQL and the ADK ``target`` URL names the same database of the same server,
    compared by what the servers answer (the server's start time and the database's
    oid), never by host names (``localhost``, ``127.0.0.1`` and a socket are one
    server). A target that cannot be parsed or reached is left to ADK to refuse."""
    if target_kind(svc.path) != "postgres" or target_kind(target) != "postgres":
        return
    try:
        import psycopg

        with psycopg.connect(**parse_postgres(target).conninfo, connect_timeout=10) as conn:
            theirs = tuple(conn.execute(_SERVER_IDENTITY).fetchone())
        ours = tuple(svc.store.read(lambda conn: conn.execute(_SERVER_IDENTITY).fetchone()))
    except Exception:  # unreachable, refused, not parsed: ADK says why when it tries
        return
    if theirs == ours:
        raise ValueError(message)


# (table, the columns that name a row, the JSON column) ADK's two services share
_JSON_COLUMNS = (("app_states", ("app_name",), "state"),
                 ("user_states", ("app_name", "user_id"), "state"),
                 ("sessions", ("app_name", "user_id", "id"), "state"),
                 ("events", ("app_name", "user_id", "session_id", "id"), "event_data"))
_ROW_NAMES = {"sessions": {"id": "session_id"}, "events": {"id": "event_id"}}


def _decode(value: Any, where: str) -> Any:
    """One JSON column of the snapshot, decoded exactly (:func:`adk_lite.codec.loads_exact`)
    and held to adk_lite's JSON rules; bytes are never unpickled.

    Raises:
        ValueError: the message starts with ``where`` (table, row, column).
    """
    if not isinstance(value, str):
        kind = {bytes: "binary data (a BLOB: pickled or foreign; never unpickled)",
                type(None): "NULL"}.get(type(value), type(value).__name__)
        raise ValueError(f"{where} holds {kind}, not JSON text")
    try:
        decoded = codec.loads_exact(value)
    except (ValueError, RecursionError) as e:
        raise ValueError(f"{where} is not valid JSON: {' '.join(str(e).split())}") from e
    if not isinstance(decoded, dict):
        raise ValueError(f"{where} holds a JSON {type(decoded).__name__}, not an object")
    try:
        codec.check_json(decoded, "value")
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from e
    return decoded


def check_source(copy: str, kind: str, source: str) -> None:
    """Read every JSON column of the snapshot with plain SQL before anything is
    written, so a forged or damaged file is refused whole, with the table, the row
    (app, user, session and event ids) and the column named: text that is not JSON
    (truncated, binary, pickled), a value that is not an object, an integer beyond
    64 bits (never read as a float), a value adk_lite cannot store, and an
    ``event_data`` that is not an ADK ``Event``.

    Raises:
        ValueError: the first bad cell, named.
    """
    with contextlib.closing(sqlite3.connect(copy)) as conn:
        for table, names, column in _JSON_COLUMNS:
            for row in conn.execute(f"SELECT {', '.join(names)}, {column} FROM {table}"):
                row_names = ", ".join(f"{_ROW_NAMES.get(table, {}).get(n, n)}={v!r}" for n, v in zip(names, row))
                where = f"ADK source {source}: table {table}, {row_names}, column {column}"
                data = _decode(row[-1], where)
                if table == "events":
                    _check_event(data, row, kind, where)


def _check_event(data: dict[str, Any], row: tuple, kind: str, where: str) -> None:
    """An ``event_data`` as ADK's service will read it (its ``Event`` model)."""
    if kind == "database":  # ADK's DatabaseSessionService takes the id and invocation id from columns
        data = dict(data, id=row[3], invocation_id=data.get("invocation_id", ""),
                    timestamp=data.get("timestamp", 0.0))
    try:
        Event.model_validate(data)
    except Exception as e:  # pydantic's ValidationError, or whatever a validator raises
        raise ValueError(f"{where} is not an ADK Event: {' '.join(str(e).split())[:500]}") from e
