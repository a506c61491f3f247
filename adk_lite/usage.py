"""Token usage: what counts as an LLM call's usage, the rows that keep it, and the
totals ``get_usage`` reads.

An event "carries usage" when its stored body has an object ``usage_metadata`` (or
``usageMetadata``), as ADK's ``LlmResponse`` writes it from the model's
``GenerateContentResponseUsageMetadata``. Its row in ``adk_usage`` (the ``Usage``
model of :mod:`adk_lite.models`) holds the event's ids, ``model`` (the body's
``model_version`` / ``modelVersion``, None when it has none), ``timestamp``, ``day``
(the UTC date of ``timestamp``) and six counts: ``prompt_tokens``
(``prompt_token_count``), ``output_tokens`` (``candidates_token_count``),
``cached_tokens`` (``cached_content_token_count``), ``thoughts_tokens``
(``thoughts_token_count``), ``tool_use_prompt_tokens``
(``tool_use_prompt_token_count``) and ``total_tokens`` (``total_token_count``); the
camelCase spellings (``promptTokenCount``, ...) are read too. A count that is missing,
null, or not an int from 0 to :data:`MAX_TOKENS` counts 0.

Which writes make rows (see :class:`adk_lite.store.Store`): an append of new events
(sync API and ADK adapter alike), in the appending transaction; an import (the
file's own ``usage`` rows, or, when a record has none, its events'); the migration
to schema version 5 (from stored events, a fork's copied events excepted). A fork's
copied events, a retried append and ``update_keys`` make none; a trim keeps them;
a deleted session takes its rows with it (the foreign key's cascade).

No database of its own: its statements are compiled from the Peewee models
(:mod:`adk_lite.compiled`), in the dialect of the database (or placeholder) given.
"""

from __future__ import annotations

import datetime
import functools
import math
import operator
from typing import Any, Callable, Iterable, Optional, Sequence

import orjson
import peewee as pw

from . import validate
from .compiled import compile_query, once_per_database, param
from .models import make_models

MAX_TOKENS = 2**31 - 1
"""The largest count a row takes (the Gemini API's counts are int32): a forged
count beyond it counts 0, so no sum of a realistic number of rows leaves int64."""

COUNTS = (
    ("prompt_tokens", "prompt_token_count", "promptTokenCount"),
    ("output_tokens", "candidates_token_count", "candidatesTokenCount"),
    ("cached_tokens", "cached_content_token_count", "cachedContentTokenCount"),
    ("thoughts_tokens", "thoughts_token_count", "thoughtsTokenCount"),
    ("tool_use_prompt_tokens", "tool_use_prompt_token_count", "toolUsePromptTokenCount"),
    ("total_tokens", "total_token_count", "totalTokenCount"),
)
"""Each count: its column (and ``get_usage`` key), then its names in ``usage_metadata``."""
SUMS = tuple(c[0] for c in COUNTS)
"""The count columns, in row order."""

GROUPS = {"app": "app_name", "user": "user_id", "session": "session_id", "invocation": "invocation_id",
          "model": "model", "day": "day"}
"""``group_by`` names and the keys (and columns) they give."""

ROW_FIELDS = ("event_id", "invocation_id", "model", "timestamp") + SUMS
"""The fields of an exported usage row (``day`` is derived from ``timestamp``)."""

_MARKS = ("usage_metadata", "usageMetadata")
_DIALECTS = {"?": pw.SqliteDatabase, "%s": pw.PostgresqlDatabase}
"""The Peewee database whose dialect each placeholder :func:`backfill` is given names."""
_EPOCH = datetime.date(1970, 1, 1)


def day_of(timestamp: float) -> str:
    """The UTC date ``YYYY-MM-DD`` of epoch seconds (whatever the local time zone).
    ``timestamp`` must be finite; years 1 to 9999 (:data:`adk_lite.validate.MIN_TIMESTAMP`..)."""
    return (_EPOCH + datetime.timedelta(days=math.floor(timestamp / 86400))).isoformat()


def _count(value: Any) -> int:
    if type(value) is int and 0 <= value <= MAX_TOKENS:
        return value
    if type(value) is float and value.is_integer() and 0 <= value <= MAX_TOKENS:
        return int(value)
    return 0


def _get(mapping: dict, names: Sequence[str]) -> Any:
    for name in names:
        value = mapping.get(name)
        if value is not None:
            return value
    return None


def extract(body: str) -> Optional[tuple]:
    """What an event body (JSON text, as stored) carries: ``(model, prompt, output,
    cached, thoughts, tool_use_prompt, total)``, or None when it carries no usage.

    Bodies that do not mention ``usage_metadata`` / ``usageMetadata`` are not parsed
    (one substring scan). Never raises on text that is a stored body.
    """
    if _MARKS[0] not in body and _MARKS[1] not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    meta = _get(data, _MARKS)
    if not isinstance(meta, dict):
        return None
    model = _get(data, ("model_version", "modelVersion"))
    return (model if isinstance(model, str) else None, *(_count(_get(meta, names[1:])) for names in COUNTS))


def rows_of(events: Iterable[Sequence]) -> list[tuple]:
    """The usage rows of event rows ``(event_id, invocation_id, author, branch,
    timestamp, body)`` that carry usage: ``(event_id, invocation_id, model,
    timestamp, day, *counts)``, in the order of ``events``."""
    rows = []
    for event in events:
        found = extract(event[5])
        if found is not None:
            rows.append((event[0], event[1], found[0], event[4], day_of(event[4]), *found[1:]))
    return rows


# -- exported rows (the export file's ``usage`` field of a session record) ------------

def to_record(row: Sequence) -> dict[str, Any]:
    """A stored row ``(event_id, invocation_id, model, timestamp, day, *counts)`` as an
    export record's dict (:data:`ROW_FIELDS`)."""
    return dict(zip(ROW_FIELDS, (*row[:4], *row[5:])))


def check_records(value: Any, where: str = "usage") -> list[tuple]:
    """Check an export record's ``usage`` list and return its rows as stored
    ``(event_id, invocation_id, model, timestamp, day, *counts)``.

    Raises:
        TypeError, ValueError: a field of the wrong type or out of range, a repeated
            event id; the message names ``usage[i].field``.
    """
    rows = []
    for at, item, event_id in validate.keyed_objects(value, where):
        unknown = sorted(set(item) - set(ROW_FIELDS))
        if unknown:
            raise ValueError(f"{at} has unknown fields {', '.join(map(repr, unknown))}")
        invocation = validate.event_text(item.get("invocation_id"), f"{at}.invocation_id")
        model = validate.event_text(item.get("model"), f"{at}.model", optional=True)
        ts = validate.timestamp(item.get("timestamp"), f"{at}.timestamp", optional=False)
        counts = []
        for name in SUMS:
            n = item.get(name, 0)
            if type(n) is not int:
                raise TypeError(f"{at}.{name} must be an int, not {type(n).__name__}")
            if not 0 <= n <= MAX_TOKENS:
                raise ValueError(f"{at}.{name} must be from 0 to {MAX_TOKENS}, got {n}")
            counts.append(n)
        rows.append((event_id, invocation, model, float(ts), day_of(ts), *counts))
    return rows


# -- get_usage -----------------------------------------------------------------------

def _bound(value: Any, arg: str) -> Optional[float]:
    if value is None:
        return None
    if type(value) not in (int, float):
        raise ValueError(f"{arg} must be epoch seconds (an int or float) or None, not {type(value).__name__} "
                         f"{value!r:.40}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{arg} must be finite epoch seconds, got {value!r:.40}")
    return number


def check_query(app_name: Any, user_id: Any, session_id: Any, since: Any, until: Any,
                group_by: Any) -> tuple[Optional[str], Optional[str], Optional[str], Optional[float],
                                        Optional[float], tuple[str, ...]]:
    """Check ``get_usage``'s arguments; return them normalized (the session id
    stripped, bounds as floats, ``group_by`` as a tuple of names without repeats).

    Raises:
        TypeError: an id that is not a str.
        ValueError: a blank or too long id; a bound that is not an int or float
            (a str too), or not finite; ``since > until``; ``group_by`` that is not
            a name of :data:`GROUPS` or a list/tuple of them. Each names the argument.
    """
    app = validate.optional_name(app_name, "app_name")
    user = validate.optional_name(user_id, "user_id")
    session = None if session_id is None else validate.session_id(session_id)
    low, high = _bound(since, "since"), _bound(until, "until")
    if low is not None and high is not None and low > high:
        raise ValueError(f"since ({since!r}) is after until ({until!r})")
    if isinstance(group_by, str):
        group_by = (group_by,)
    if not isinstance(group_by, (list, tuple)):
        raise ValueError(f"group_by must be a list or tuple of {', '.join(GROUPS)}, not {type(group_by).__name__}")
    groups: list[str] = []
    for name in group_by:
        if not isinstance(name, str) or name not in GROUPS:
            raise ValueError(f"group_by has {name!r:.40}, which is not one of {', '.join(GROUPS)}")
        if name not in groups:
            groups.append(name)
    return app, user, session, low, high, tuple(groups)


def _filters(db: Any) -> dict[str, Any]:
    """``get_usage``'s conditions on ``db``'s ``Usage`` model, by parameter name."""
    U = db.models.Usage
    return {"app": U.app_name == param("app"), "user": U.user_id == param("user"),
            "session": U.session_id == param("session"), "since": U.timestamp >= param("since"),
            "until": U.timestamp < param("until")}


def _compile_query(db: Any, filters: tuple[str, ...], groups: tuple[str, ...]) -> str:
    """``get_usage``'s statement for the ``filters`` given and ``groups``, from the models."""
    U = db.models.Usage
    columns = [getattr(U, GROUPS[g]) for g in groups]
    # PostgreSQL's SUM of a bigint is numeric: each sum comes back a BIGINT on both
    sums = [pw.Cast(pw.fn.COALESCE(pw.fn.SUM(getattr(U, c)), pw.SQL("0")), "BIGINT") for c in SUMS]
    query = U.select(*columns, pw.fn.COUNT(pw.SQL("*")), *sums)
    conditions = _filters(db)
    if filters:
        query = query.where(functools.reduce(operator.and_, (conditions[f] for f in filters)))
    if columns:
        query = query.group_by(*columns)
    return compile_query(query, *filters)


def _no_statements(db: Any) -> dict:
    return {}


def query(db: Any, app: Optional[str], user: Optional[str], session: Optional[str], since: Optional[float],
          until: Optional[float], groups: tuple[str, ...]) -> tuple[str, list[Any]]:
    """The SQL of ``get_usage`` on the open backend ``db`` (in its dialect) and its
    parameters: the group columns, ``COUNT(*)``, then each count's sum as a BIGINT.
    Each combination of filters given and ``groups`` is compiled from the models once
    per database, on first use (:func:`adk_lite.compiled.once_per_database`)."""
    given = [(name, value) for name, value in (("app", app), ("user", user), ("session", session),
                                               ("since", since), ("until", until)) if value is not None]
    filters = tuple(name for name, _ in given)
    statements = once_per_database(db, _no_statements)
    sql = statements.get((filters, groups))
    if sql is None:
        sql = statements.setdefault((filters, groups), _compile_query(db, filters, groups))
    return sql, [value for _, value in given]


def shape(rows: Sequence[Sequence], groups: Sequence[str]) -> list[dict[str, Any]]:
    """``get_usage``'s dicts from the query's rows: the group keys, the sums and
    ``llm_calls``, ordered by the group keys in ``groups`` order (None first, then
    by code point: the same on both backends, whatever their collation). With no
    groups, one dict (zeros when nothing matched)."""
    keys = [GROUPS[g] for g in groups]
    out = []
    for row in rows:
        n = len(keys)
        item = dict(zip(keys, row[:n]))
        item.update(zip(SUMS, (int(v) for v in row[n + 1:])))
        item["llm_calls"] = int(row[n])
        out.append(item)
    if keys:
        out.sort(key=lambda d: [(d[k] is not None, d[k] or "") for k in keys])
    elif not out:
        out.append({**dict.fromkeys(SUMS, 0), "llm_calls": 0})
    return out


def get_usage(store: Any, app_name: Any = None, user_id: Any = None, session_id: Any = None, *, since: Any = None,
              until: Any = None, group_by: Any = ()) -> list[dict[str, Any]]:
    """``get_usage`` on a :class:`adk_lite.store.Store` (see
    :meth:`adk_lite.DatabaseSessionService.get_usage`): check, read in one
    snapshot, shape.

    Raises:
        TypeError, ValueError: see :func:`check_query`.
        DatabaseError: the database has no usage table (written by an older adk_lite
            and opened read-only: open it read-write once to build it).
    """
    app, user, session, low, high, groups = check_query(app_name, user_id, session_id, since, until, group_by)
    sql, params = query(store.db, app, user, session, low, high, groups)
    return shape(store.usage_rows(sql, params), groups)


# -- the migration to schema version 5 (both backends) ---------------------------------

BACKFILL_BATCH = 500
"""Events read, and rows written, per statement of :func:`backfill`."""


def backfill(execute: Callable[..., Any], mark: str, like: str, body: str = "body") -> int:
    """Fill ``adk_usage`` from every stored event that carries usage, except a fork's
    copied events (the first ``forked_from.events`` events of a fork, in append
    order: they count 0), inside the caller's transaction; return the rows written.

    Args:
        execute: ``execute(sql, params)`` returning a cursor (``fetchall``): a
            sqlite3 connection's, or Peewee's ``execute_sql`` on PostgreSQL.
        mark: the parameter placeholder (``?``: SQLite, ``%s``: PostgreSQL), which picks
            the dialect the statements are compiled in.
        like: the SQL test that picks the bodies that may carry usage
            (``body LIKE '%usage%metadata%'``: case-insensitive for ASCII on SQLite;
            ``body::text ILIKE ...`` on PostgreSQL).
        body: the SQL that reads the body as text (``body::text`` where the driver
            would decode a ``json`` column).
    """
    m = make_models(_DIALECTS[mark](None))  # unbound: it only compiles, for the dialect ``mark`` names
    S, E, U = m.Session, m.Event, m.Usage
    copies: dict[tuple, int] = {}
    for app, user, session, lineage in execute(*S.select(S.app_name, S.user_id, S.session_id, S.forked_from)
                                               .where(S.forked_from.is_null(False)).sql()).fetchall():
        try:
            copied = orjson.loads(lineage).get("events")
        except (orjson.JSONDecodeError, AttributeError):
            copied = None
        if type(copied) is int and copied > 0:
            copies[(app, user, session)] = copied
    skip: set[int] = set()
    first_ids = compile_query(E.select(E.id).where((E.app_name == param("app")) & (E.user_id == param("user"))
                                                   & (E.session_id == param("session")))
                              .order_by(E.id).limit(param("limit")), "app", "user", "session", "limit")
    for key, copied in copies.items():
        skip.update(r[0] for r in execute(first_ids, (*key, copied)).fetchall())
    # ``like`` and ``body`` are the caller's SQL for its dialect's JSON column, written in as given
    read = compile_query(E.select(E.id, E.app_name, E.user_id, E.session_id, E.event_id, E.invocation_id, E.author,
                                  E.branch, E.timestamp, pw.SQL(body)).where((E.id > param("last")) & pw.SQL(like))
                         .order_by(E.id).limit(param("limit")), "last", "limit")
    fields = [U.app_name, U.user_id, U.session_id, U.event_id, U.invocation_id, U.model, U.timestamp, U.day,
              *(getattr(U, c) for c in SUMS)]
    written, last = 0, -1
    while True:
        batch = execute(read, (last, BACKFILL_BATCH)).fetchall()
        if not batch:
            return written
        last = batch[-1][0]
        rows = [(*r[1:4], *u) for r in batch if r[0] not in skip for u in rows_of([r[4:]])]
        if rows:  # one statement per batch: one round trip to a server
            execute(*U.insert_many(rows, fields=fields).returning().sql())
            written += len(rows)


__all__ = ["MAX_TOKENS", "COUNTS", "SUMS", "GROUPS", "ROW_FIELDS", "day_of", "extract", "rows_of", "to_record",
           "check_records", "check_query", "query", "shape", "get_usage", "backfill"]
