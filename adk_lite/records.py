"""The records that move sessions between stores: their shapes and their checks.

A record is one JSON object of the export format (described in :mod:`adk_lite.transfer`):
``app_state``, ``user_state``, ``session`` (with its events, state, lineage and usage),
``memory`` and ``artifact``. This module builds them from a store's rows
(:func:`session_record`, :func:`state_records`, :func:`memory_record`,
:func:`artifact_record`) and checks one whole with the API's rules
(:func:`check_record`); :func:`content` is what makes two session records the same.
Every source of records (an export file, another adk_lite database, ADK's own stores)
hands them to :func:`adk_lite.load.load`, the one writer.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Callable, Optional, Sequence

import orjson

from . import codec, memory, scopes, usage, validate
from .artifacts import KINDS as ARTIFACT_KINDS
from .artifacts import VersionRow


KINDS = ("app_state", "user_state", "session", "memory", "artifact")
_PREFIX = {"app_state": scopes.APP_PREFIX, "user_state": scopes.USER_PREFIX, "session": ""}
_SCOPED = (scopes.APP_PREFIX, scopes.USER_PREFIX, scopes.TEMP_PREFIX)
LINEAGE_FIELDS = ("initial_state", "forked_from")
"""The session record's optional fields (format 2) compared by an import, beside state and events."""


# -- from a store's rows ------------------------------------------------------------

def _fragment(text: Optional[str]) -> Optional[orjson.Fragment]:
    return None if text is None else orjson.Fragment(text)


def session_record(key: tuple[str, str, str], found: Optional[tuple]) -> Optional[dict[str, Any]]:
    """A session as an export record, from ``Store.read_whole_session``'s result
    (None: gone).

    State values, ``initial_state``, ``forked_from`` and event bodies are embedded
    as stored, byte for byte (``orjson.Fragment``); the revision is exported, the
    incarnation is not (an imported session is a new incarnation).
    """
    if found is None:
        return None
    row, initial, forked_from, state_rows, event_rows, usage_rows = found
    return {"type": "session", "app_name": key[0], "user_id": key[1], "session_id": key[2],
            "created_at": row.created_at, "updated_at": row.updated_at, "revision": row.revision,
            "initial_state": _fragment(initial), "forked_from": _fragment(forked_from),
            "state": {k: orjson.Fragment(v) for scope, k, v in state_rows if scope == scopes.SESSION},
            "events": [{"event_id": e, "invocation_id": i, "author": a, "branch": b, "timestamp": t,
                        "body": orjson.Fragment(body)} for e, i, a, b, t, body in event_rows],
            "usage": [usage.to_record(u) for u in usage_rows]}


def state_records(rows: list[tuple[str, str, str, str, str]]) -> list[dict[str, Any]]:
    """Group ``Store.scope_rows`` rows into app_state / user_state records."""
    records: dict[tuple, dict] = {}
    for app, user, scope, key, value in rows:
        if (app, user, scope) not in records:
            head = {"type": "app_state", "app_name": app} if scope == scopes.APP else \
                {"type": "user_state", "app_name": app, "user_id": user}
            records[app, user, scope] = dict(head, state={})
        records[app, user, scope]["state"][key] = orjson.Fragment(value)
    return list(records.values())


def memory_record(row: memory.MemoryRow) -> dict[str, Any]:
    """A memory as an export record, its body embedded as stored."""
    record = row._asdict()
    record["body"] = None if row.body is None else orjson.Fragment(row.body)
    return {"type": "memory", **record}


def artifact_record(key: tuple[str, str, str, str], row: VersionRow, data: Optional[bytes]) -> dict[str, Any]:
    """One artifact version as an export record (the bytes in base64)."""
    return {"type": "artifact", "app_name": key[0], "user_id": key[1], "session_id": key[2] or None,
            "filename": key[3], "version": row.version, "kind": row.kind, "mime_type": row.mime_type,
            "part": orjson.Fragment(row.part), "custom_metadata": orjson.Fragment(row.custom_metadata),
            "create_time": row.create_time, "data": None if data is None else base64.b64encode(data).decode()}


# -- checking ------------------------------------------------------------------------

def _check_state(kind: str, state: Any, field: str = "state") -> dict[str, Any]:
    """Check a record's state (or a session's ``initial_state``, named by ``field``)
    with the API's rules for the scope it is stored in."""
    if not isinstance(state, dict):
        raise TypeError(f"{field} must be an object, not {type(state).__name__}")
    if kind == "session":
        for key in state:
            if isinstance(key, str) and key.startswith(_SCOPED):
                raise ValueError(f"{field} key {key!r} has a scope prefix: a session record holds session keys only "
                                 "(app and user state go in app_state / user_state records; temp: keys are "
                                 "never stored)")
    # as the API sees the keys (app keys as "app:k"): the same key rules, then every value
    scopes.check_delta({_PREFIX[kind] + k: v for k, v in state.items()}, field)
    for key, value in state.items():  # each value must encode (its depth counted from the value, as the API does)
        _check_json(value, f"{field}[{key!r}]", depth=False)  # check_delta checked each value
    return state


def _check_lineage(lineage: Any) -> None:
    """Check a session record's ``forked_from``: null, or the lineage
    :meth:`adk_lite.store.Store.fork_session` stores (more keys are kept as they are)."""
    if lineage is None:
        return
    if not isinstance(lineage, dict):
        raise TypeError(f"forked_from must be an object or null, not {type(lineage).__name__}")
    for field in ("session_id", "before_invocation_id", "events", "forked_at", "state_exact"):
        if field not in lineage:
            raise ValueError(f"forked_from.{field} is missing")
    validate.session_id(lineage["session_id"], arg="forked_from.session_id")
    validate.event_text(lineage["before_invocation_id"], "forked_from.before_invocation_id", optional=True)
    if lineage["events"] is None:
        raise TypeError("forked_from.events must be an int, not None")
    validate.count(lineage["events"], "forked_from.events", 0)
    validate.timestamp(lineage["forked_at"], "forked_from.forked_at", optional=False)
    if type(lineage["state_exact"]) is not bool:
        raise TypeError(f"forked_from.state_exact must be true or false, not {type(lineage['state_exact']).__name__}")
    _check_json(lineage, "forked_from")


def _check_session_extras(record: dict[str, Any]) -> None:
    """The optional fields of a format 2 session record: ``revision``,
    ``initial_state``, ``forked_from``."""
    if "revision" in record:
        if record["revision"] is None:
            raise TypeError("revision must be an int, not None")
        validate.count(record["revision"], "revision", 0)
    if record.get("initial_state") is not None:
        _check_state("session", record["initial_state"], "initial_state")
    _check_lineage(record.get("forked_from"))


def _check_json(value: Any, where: str, depth: bool = True) -> None:
    """:func:`adk_lite.codec.check_json` (unless ``depth`` is false: the parts were
    checked already), and the value must encode (orjson refuses nesting deeper than
    254, which a check done in Python may let through).

    Raises:
        TypeError, ValueError: the message names ``where``.
    """
    if depth:
        codec.check_json(value, where)
    try:
        codec.dumps(value)
    except orjson.JSONEncodeError as e:
        raise ValueError(f"{where} cannot be stored as JSON: {e}") from e


def _check_body(body: Any, where: str) -> None:
    if not isinstance(body, dict):
        raise TypeError(f"{where}.body must be an object, not {type(body).__name__}")
    actions = body.get("actions")
    if actions is not None and not isinstance(actions, dict):
        raise TypeError(f"{where}.body.actions must be an object, not {type(actions).__name__}")
    delta = None if actions is None else actions.get("state_delta")
    if delta is not None and not isinstance(delta, dict):
        raise TypeError(f"{where}.body.actions.state_delta must be an object, not {type(delta).__name__}")
    # as the API checks an event (adk_lite.service): the body without its delta, then each
    # value of the delta (its depth counted from the value), then the whole must encode
    rest = body if delta is None else dict(body, actions={k: v for k, v in actions.items() if k != "state_delta"})
    codec.check_json(rest, f"{where}.body")
    scopes.check_delta(delta, f"{where}.body.actions.state_delta")
    _check_json(body, f"{where}.body", depth=False)
    if body.get("partial"):
        raise ValueError(f"{where}.body is a partial event: the API never stores those")


def _check_events(events: Any) -> None:
    for where, e, _event_id in validate.keyed_objects(events, "events"):
        validate.event_text(e.get("invocation_id"), f"{where}.invocation_id")
        validate.event_text(e.get("author"), f"{where}.author")
        validate.event_text(e.get("branch"), f"{where}.branch", optional=True)
        validate.timestamp(e.get("timestamp"), f"{where}.timestamp", optional=False)
        _check_body(e.get("body"), where)


def _check_memory(record: dict[str, Any]) -> None:
    """Check a memory record's fields with the memory service's rules."""
    memory_id = validate.event_text(record.get("memory_id"), "memory_id")
    if not memory_id.strip():
        raise ValueError("memory_id must not be blank")
    session_id = validate.event_text(record.get("session_id"), "session_id")
    if session_id:
        validate.session_id(session_id)
    validate.event_text(record.get("event_id"), "event_id")
    validate.event_text(record.get("author"), "author", optional=True)
    for field in ("timestamp", "created_at"):
        validate.timestamp(record.get(field), field, optional=False)
    if not isinstance(record.get("outlives_session"), bool):
        raise TypeError("outlives_session must be true or false")
    body = record.get("body")
    if body is not None:
        if not isinstance(body, dict) or not isinstance(body.get("content"), dict):
            raise TypeError("body must be null or an object with a content object")
        _check_json(body, "body")


def memory_row(key: tuple[str, str, str], record: dict[str, Any]) -> memory.MemoryRow:
    """The :class:`adk_lite.memory.MemoryRow` of a checked memory record."""
    body = record["body"]
    return memory.MemoryRow(key[0], key[1], record["memory_id"], record["session_id"], record["event_id"],
                            record["author"], float(record["timestamp"]),
                            None if body is None else codec.dumps(body), record["outlives_session"],
                            float(record["created_at"]))


def _check_artifact(record: dict[str, Any]) -> str:
    """Check an artifact record (format 2) and decode its bytes into ``record["bytes"]``;
    return the stored session id (``""`` for a ``user:`` artifact)."""
    sid = record.get("session_id")
    sid = "" if sid is None else validate.session_id(sid)
    filename = record.get("filename")
    if not isinstance(filename, str) or not filename or "\x00" in filename:
        raise ValueError(f"filename {filename!r} must be a non-empty str without NUL")
    if (sid == "") != filename.startswith("user:"):
        raise ValueError(f"filename {filename!r} with session_id {sid or None!r}: user: names have no session, "
                         "other names one")
    validate.count(record.get("version"), "version", 0)
    kind = record.get("kind")
    if kind not in ARTIFACT_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(ARTIFACT_KINDS)}")
    if record.get("mime_type") is not None and not isinstance(record["mime_type"], str):
        raise TypeError("mime_type must be a str or null")
    for field in ("part", "custom_metadata"):
        if not isinstance(record.get(field), dict):
            raise TypeError(f"{field} must be an object")
        _check_json(record[field], field)
    validate.timestamp(record.get("create_time"), "create_time", optional=False)
    data = record.get("data")
    if (data is None) != (kind == "file"):
        raise ValueError(f"data must be null exactly for kind 'file' (kind is {kind!r})")
    if data is not None:
        if not isinstance(data, str):
            raise TypeError("data must be a base64 str")
        try:
            record["bytes"] = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ValueError(f"data is not base64: {e}") from e
    else:
        record["bytes"] = None
    part = record["part"]
    if kind == "text":
        try:
            record["bytes"].decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as e:
            raise ValueError(f"data of a text artifact is not UTF-8: {e}") from e
    elif kind == "inline" and not isinstance(part.get("inline_data"), dict):
        raise ValueError("part of an inline artifact must hold an inline_data object")
    elif kind == "file" and not (isinstance(part.get("file_data"), dict)
                                 and isinstance(part["file_data"].get("file_uri"), str)):
        raise ValueError("part of a file artifact must hold a file_data object with a file_uri")
    return sid


def _check_reference(record: dict[str, Any], app: str, user: str, sid: str) -> None:
    """Refuse a file artifact whose ``artifact://`` reference leaves its app and user (or,
    from a session's artifact, its session), as a save refuses it
    (``google.adk.artifacts.artifact_util.validate_artifact_reference_scope``); a
    forged one would be stored and could never be loaded."""
    uri = record["part"].get("file_data", {}).get("file_uri", "") if record["kind"] == "file" else ""
    if not uri.startswith("artifact://"):
        return
    prefix = f"artifact://apps/{app}/users/{user}/"
    rest = uri[len(prefix):] if uri.startswith(prefix) else ""
    if not rest.startswith(("artifacts/", f"sessions/{sid}/artifacts/" if sid else "sessions/")):
        raise ValueError(f"file_uri {uri[:200]!r} refers to an artifact outside app {app!r}, user {user!r}"
                         + (f", session {sid!r}" if sid else "") + " (a save refuses such a reference)")


def check_record(record: Any) -> tuple[str, tuple[str, str, str], dict[str, Any]]:
    """Check one record whole, with the API's rules; return ``(kind, key, record)``.

    ``key`` is ``(app_name, user_id, session_id)`` with ``""`` where it does not
    apply (and the session id stripped, as the API does).

    Raises:
        TypeError, ValueError: the message names the field.
    """
    if not isinstance(record, dict):
        raise TypeError(f"a record must be a JSON object, not {type(record).__name__}")
    kind = record.get("type")
    if kind not in KINDS:
        raise ValueError(f"type {kind!r} is not one of {', '.join(KINDS)}")
    app = validate.name(record.get("app_name"), "app_name")
    user = "" if kind == "app_state" else validate.name(record.get("user_id"), "user_id")
    if kind == "artifact":
        sid = _check_artifact(record)
        _check_reference(record, app, user, sid)
        return kind, (app, user, sid), record
    sid = validate.session_id(record.get("session_id")) if kind == "session" else ""
    if kind == "memory":
        _check_memory(record)
        return kind, (app, user, sid), record
    _check_state(kind, record.get("state"))
    if kind == "session":
        for field in ("created_at", "updated_at"):
            validate.timestamp(record.get(field), field, optional=False)
        _check_session_extras(record)
        _check_events(record.get("events"))
        if record.get("usage") is not None:
            usage.check_records(record["usage"])
    return kind, (app, user, sid), record


def one_line(error: BaseException) -> str:
    """An error's message on one line (runs of white space made one space)."""
    return " ".join(str(error).split())


def checked(where: dict, record: Any, on_bad: Callable[[dict, BaseException], None]
            ) -> Optional[tuple[str, tuple[str, str, str], dict[str, Any]]]:
    """:func:`check_record`; a record that fails is handed to ``on_bad(where, error)``
    (which may raise) and None returned."""
    try:
        return check_record(record)
    except (TypeError, ValueError, RecursionError) as e:
        on_bad(where, e)
        return None


def content(record: dict[str, Any], fields: Sequence[str] = ()) -> bytes:
    """What must match for a stored session to count as the same as a record: its
    session state and its events (canonical JSON, keys sorted; times as floats,
    as they are stored, so a file with integer times matches what it imported),
    and the ``fields`` named (of :data:`LINEAGE_FIELDS`; a missing one is null)."""
    record = orjson.loads(orjson.dumps(record))  # embedded fragments decoded, so keys sort
    return orjson.dumps([record["state"], [[e["event_id"], e["invocation_id"], e["author"], e.get("branch"),
                                            float(e["timestamp"]), e["body"]] for e in record["events"]],
                         *[record.get(field) for field in fields]],
                        option=orjson.OPT_SORT_KEYS)


__all__ = ["KINDS", "LINEAGE_FIELDS", "session_record", "state_records", "memory_record", "artifact_record",
           "memory_row", "check_record", "checked", "one_line", "content"]
