"""The export/import file format (JSON Lines) and the import and export steps.

One JSON object per line:

- a header, first: ``{"type": "adk_lite_export", "format": 2, "adk_lite": "<version>"}``
  (format 1 files and files written before the header existed are read too);
- ``{"type": "app_state", "app_name", "state"}`` and
  ``{"type": "user_state", "app_name", "user_id", "state"}``: app and user state,
  keys stored without their ``app:``/``user:`` prefix;
- ``{"type": "session", "app_name", "user_id", "session_id", "created_at",
  "updated_at", "state", "events"}``: a session with its session-scope state and
  every event ``{"event_id", "invocation_id", "author", "branch", "timestamp",
  "body"}`` in append order (times in epoch seconds; bodies and values as stored);
  since format 2 also ``"revision"`` (its write count), ``"initial_state"`` (the
  session-scope state it was created with, null when unknown) and ``"forked_from"``
  (a fork's lineage, null for other sessions), so that a fork of the imported copy
  at a cut equals a fork of the original. The three are optional when read: a
  format 1 record imports with an unknown initial state, no lineage and the number
  of its events as its revision.
- ``{"type": "memory", "app_name", "user_id", "memory_id", "session_id", "event_id",
  "author", "timestamp", "body", "outlives_session", "created_at"}`` (format 2): one
  memory (:mod:`adk_lite.memory`), ``body`` as stored (null: the marker of a deleted
  memory of an event), written after the sessions.
  and ``"usage"``: the session's token usage rows ``{"event_id",
  "invocation_id", "model", "timestamp", "prompt_tokens", "output_tokens",
  "cached_tokens", "thoughts_tokens", "tool_use_prompt_tokens", "total_tokens"}``
  (:mod:`adk_lite.usage`), those of trimmed events included and none for a fork's
  copied events: the accounting itself, imported as it is. A session record without
  ``usage`` (format 1, an ADK store) gets rows made from its events.
- ``{"type": "artifact", "app_name", "user_id", "session_id" (null: a ``user:``
  artifact), "filename", "version", "kind" (``text``, ``inline``, ``file``),
  "mime_type", "part" (the ``Part``'s JSON without its payload), "custom_metadata",
  "create_time", "data" (the bytes in base64, null for ``file``)}``: one artifact
  version (format 2; see :mod:`adk_lite.artifacts`).

Import validates every line with the API's rules before it writes anything, then
writes each session (row, state and events) in one transaction, so an import killed
at any point leaves each session whole or absent, and running it again completes
it. Used by ``adk-lite export`` / ``import``; meant to be shared by copy and an ADK
importer.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, BinaryIO, Callable, Iterator, NamedTuple, Optional, Sequence

import orjson

from . import codec, errors, memory, scopes, usage, validate
from ._version import __version__
from .artifacts import KINDS as ARTIFACT_KINDS
from .artifacts import ArtifactStore, VersionRow

FORMAT = 2
"""The format version this release writes and the newest it reads (2: a session's
revision, initial state, lineage and token usage, memory records and artifact records;
format 1 is read too)."""
HEADER_TYPE = "adk_lite_export"
KINDS = ("app_state", "user_state", "session", "memory", "artifact")
_SCOPE = {"app_state": scopes.APP, "user_state": scopes.USER, "session": scopes.SESSION}
_PREFIX = {"app_state": scopes.APP_PREFIX, "user_state": scopes.USER_PREFIX, "session": ""}
_SCOPED = (scopes.APP_PREFIX, scopes.USER_PREFIX, scopes.TEMP_PREFIX)
LINEAGE_FIELDS = ("initial_state", "forked_from")
"""The session record's optional fields (format 2) compared by an import, beside state and events."""


def header() -> dict[str, Any]:
    """The first record of an export: the format version and the writer's version."""
    return {"type": HEADER_TYPE, "format": FORMAT, "adk_lite": __version__}


def dumps_line(record: dict[str, Any]) -> bytes:
    """One record as a JSON line (``orjson.Fragment`` values are written as they are)."""
    return orjson.dumps(record) + b"\n"


# -- export ------------------------------------------------------------------------

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


class ExportPlan(NamedTuple):
    """What an export writes: the session keys (sorted), the state records, the
    memory records, and the artifact versions ``(app, user, session, filename,
    version)`` (None: a database without artifact tables)."""

    keys: list[tuple[str, str, str]]
    state_records: list[dict[str, Any]]
    memory_records: list[dict[str, Any]] = []
    artifacts: Optional[list[tuple[str, str, str, str, int]]] = None


def memory_record(row: memory.MemoryRow) -> dict[str, Any]:
    """A memory as an export record, its body embedded as stored."""
    record = row._asdict()
    record["body"] = None if row.body is None else orjson.Fragment(row.body)
    return {"type": "memory", **record}


def plan_export(store: Any, app: Optional[str], user: Optional[str]) -> ExportPlan:
    """List what :func:`write_export` writes, optionally only one app and/or user.

    Raises:
        DatabaseError: a read failed (translated driver error).
    """
    artifact_keys = None
    if store.read(store.has_artifacts):
        artifact_keys = [k for k in ArtifactStore(store).stored_keys() if app in (None, k[0]) and user in (None, k[1])]
    return ExportPlan(store.session_keys(app, user), state_records(store.scope_rows(app, user)),
                      [memory_record(r) for r in memory.rows(store, app, user)], artifact_keys)


def write_export(store: Any, plan: ExportPlan, out: BinaryIO,
                 on_session: Optional[Callable[[], None]] = None) -> dict[str, int]:
    """Write the header, the state records, then one line per session still stored.

    Args:
        store: a :class:`adk_lite.store.Store`.
        out: a binary file.
        on_session: called after each session key (for a progress bar).

    Returns:
        ``{"sessions": int, "events": int, "state_records": int, "memories": int}`` written.

    Raises:
        DatabaseError: a read failed. OSError: the write failed (BrokenPipeError too).
    """
    counts = {"sessions": 0, "events": 0, "state_records": len(plan.state_records),
              "memories": len(plan.memory_records)}
    out.write(dumps_line(header()))
    for record in plan.state_records:
        out.write(dumps_line(record))
    for key in plan.keys:
        record = session_record(key, store.read_whole_session(*key))
        if record is not None:
            out.write(dumps_line(record))
            counts["sessions"] += 1
            counts["events"] += len(record["events"])
        if on_session is not None:
            on_session()
    for record in plan.memory_records:  # after the sessions: an import replacing one keeps them
        out.write(dumps_line(record))
    if plan.artifacts is not None:
        counts["artifact_versions"] = 0
        artifacts = ArtifactStore(store)
        for app, user, session, filename, version in plan.artifacts:
            found = artifacts.load((app, user, session, filename), version)
            if found is not None:  # one version's bytes in memory at a time
                out.write(dumps_line(artifact_record((app, user, session, filename), *found)))
                counts["artifact_versions"] += 1
    return counts


def artifact_record(key: tuple[str, str, str, str], row: VersionRow, data: Optional[bytes]) -> dict[str, Any]:
    """One artifact version as an export record (the bytes in base64)."""
    return {"type": "artifact", "app_name": key[0], "user_id": key[1], "session_id": key[2] or None,
            "filename": key[3], "version": row.version, "kind": row.kind, "mime_type": row.mime_type,
            "part": orjson.Fragment(row.part), "custom_metadata": orjson.Fragment(row.custom_metadata),
            "create_time": row.create_time, "data": None if data is None else base64.b64encode(data).decode()}


# -- reading and checking ------------------------------------------------------------

def _check_header(record: dict[str, Any]) -> None:
    version = record.get("format")
    if type(version) is not int or version < 1:
        raise ValueError(f"the header's format {version!r} is not a format version (an int >= 1)")
    if version > FORMAT:
        raise ValueError(f"the file has format {version}, newer than this adk_lite reads ({FORMAT}); "
                         "upgrade adk_lite to import it")


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
    _check_json(state, field)
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


def _check_json(value: Any, where: str) -> None:
    """:func:`adk_lite.codec.check_json`, and the value must encode (orjson refuses
    nesting deeper than 254, which a check done in Python may let through).

    Raises:
        TypeError, ValueError: the message names ``where``.
    """
    codec.check_json(value, where)
    try:
        codec.dumps(value)
    except orjson.JSONEncodeError as e:
        raise ValueError(f"{where} cannot be stored as JSON: {e}") from e


def _check_body(body: Any, where: str) -> None:
    if not isinstance(body, dict):
        raise TypeError(f"{where}.body must be an object, not {type(body).__name__}")
    _check_json(body, f"{where}.body")
    if body.get("partial"):
        raise ValueError(f"{where}.body is a partial event: the API never stores those")
    actions = body.get("actions")
    if actions is not None:
        if not isinstance(actions, dict):
            raise TypeError(f"{where}.body.actions must be an object, not {type(actions).__name__}")
        delta = actions.get("state_delta")
        if delta is not None and not isinstance(delta, dict):
            raise TypeError(f"{where}.body.actions.state_delta must be an object, not {type(delta).__name__}")
        scopes.check_delta(delta, f"{where}.body.actions.state_delta")


def _check_events(events: Any) -> None:
    if not isinstance(events, list):
        raise TypeError(f"events must be a list, not {type(events).__name__}")
    seen = set()
    for i, e in enumerate(events):
        where = f"events[{i}]"
        if not isinstance(e, dict):
            raise TypeError(f"{where} must be an object, not {type(e).__name__}")
        event_id = validate.event_text(e.get("event_id"), f"{where}.event_id")
        if not event_id:
            raise ValueError(f"{where}.event_id must not be empty")
        if event_id in seen:
            raise ValueError(f"{where}.event_id {event_id!r} is repeated in this session")
        seen.add(event_id)
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


def _import_artifact(store: Any, key: tuple[str, str, str], record: dict[str, Any]) -> str:
    """Import one artifact version with its number; ``"created"``, ``"unchanged"`` or
    ``"conflict"`` (see :meth:`adk_lite.artifacts.ArtifactStore.put`)."""
    row = VersionRow(record["version"], record["kind"], record.get("mime_type"), codec.dumps(record["part"]),
                     codec.dumps(record["custom_metadata"]), None, 0, float(record["create_time"]))
    return ArtifactStore(store).put((*key, record["filename"]), row, record["bytes"])


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
        return kind, (app, user, _check_artifact(record)), record
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


def read_records(path: str) -> Iterator[tuple[int, str, tuple[str, str, str], dict[str, Any]]]:
    """Yield ``(line number, kind, key, record)`` for each record of a file, checked
    by :func:`check_record`. Blank lines are skipped; header lines are checked and
    skipped (a file without one is read as format 1).

    Raises:
        ImportFileError: a line that is not JSON, not a valid record, or a header
            of a newer format; the message starts with ``path:line:``.
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = codec.loads_exact(line)
                if isinstance(record, dict) and record.get("type") == HEADER_TYPE:
                    _check_header(record)
                    continue
                checked = check_record(record)
            except (orjson.JSONDecodeError, TypeError, ValueError, RecursionError) as e:
                raise errors.ImportFileError(f"{path}:{number}: {' '.join(str(e).split())}") from e
            yield (number, *checked)


def check_file(path: str) -> int:
    """Check every line of an import file; return how many records it holds.

    Raises:
        ImportFileError, OSError: see :func:`read_records`.
    """
    return sum(1 for _ in read_records(path))


# -- import --------------------------------------------------------------------------

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


def _import_state(store: Any, kind: str, key: tuple, record: dict, replace: bool) -> tuple[int, list[str]]:
    """Write one app/user state record (one transaction); return ``(keys written, differing keys)``."""
    app, user, _ = key
    scope = _SCOPE[kind]
    stored = {k: v for _s, k, v in store.scope_state(app, user, scope)}
    wanted = {k: codec.dumps(v) for k, v in record["state"].items()}
    differ = sorted(k for k in wanted if k in stored and stored[k] != wanted[k])
    put = [(scope, k, v) for k, v in wanted.items() if stored.get(k) != v and (replace or k not in stored)]
    if put:
        store.put_state(app, user, "", put, (), time.time())
    return len(put), differ


def _import_one(store: Any, key: tuple, record: dict, replace: bool) -> str:
    """Import one session record; return ``"created"``, ``"replaced"``,
    ``"unchanged"`` or ``"conflict"``. ``initial_state`` and ``forked_from`` count
    as content where the record carries them (format 2); a record without
    ``revision`` gets the number of its events (each event was one append)."""
    existing = session_record(key, store.read_whole_session(*key))
    fields = [field for field in LINEAGE_FIELDS if field in record]
    if existing is not None:
        if content(existing, fields) == content(record, fields):
            return "unchanged"
        if not replace:
            return "conflict"
    state = [(scopes.SESSION, k, codec.dumps(v)) for k, v in record["state"].items()]
    events = [(e["event_id"], e["invocation_id"], e["author"], e.get("branch"), float(e["timestamp"]),
               codec.dumps(e["body"])) for e in record["events"]]
    initial, forked_from = (record.get(field) for field in LINEAGE_FIELDS)
    used = None if record.get("usage") is None else usage.check_records(record["usage"])
    try:
        store.import_session(*key, float(record["created_at"]), float(record["updated_at"]), state, events,
                             replace=existing is not None,
                             initial=None if initial is None else codec.dumps(initial),
                             forked_from=None if forked_from is None else codec.dumps(forked_from),
                             revision=record.get("revision", len(events)), usage_rows=used)
    except errors.AlreadyExistsError:  # created by another writer since it was read
        return "conflict"
    return "created" if existing is None else "replaced"


def import_file(store: Any, path: str, *, replace: bool = False,
                on_record: Optional[Callable[[], None]] = None) -> dict[str, Any]:
    """Import a file written by :func:`write_export` (or a previous release's export).

    Call :func:`check_file` first to refuse a bad file before anything is written.
    Each session is written whole in one transaction; a session already stored
    with the same state and events is left alone (so re-running an interrupted
    import completes it); one that differs is a conflict unless ``replace``.
    App/user state keys are added, and differing ones overwritten only with
    ``replace``, one transaction per record.

    Memory records: a memory id not stored in its app and user is added; a stored one
    is left alone, or overwritten with ``replace`` (one transaction per record).

    Returns:
        ``{"created", "unchanged", "replaced", "events", "state_keys", "memories",
        "artifact_versions", "artifacts_unchanged": int, "conflicts": [{"line", "type",
        "app_name", "user_id", "session_id" or "keys" (artifacts: "session_id",
        "filename", "version")}]}``. An artifact version already stored differently
        is a conflict even with ``replace`` (versions are never rewritten).

    Raises:
        ImportFileError, OSError: see :func:`read_records`.
        DatabaseLockedError, DatabaseError: a write failed (the sessions written
            before it stay, each whole).
    """
    report: dict[str, Any] = {"created": 0, "unchanged": 0, "replaced": 0, "events": 0, "state_keys": 0,
                              "memories": 0, "artifact_versions": 0, "artifacts_unchanged": 0, "conflicts": []}
    for number, kind, key, record in read_records(path):
        app, user, sid = key
        where = {"line": number, "type": kind, "app_name": app, "user_id": user}
        if kind == "memory":
            report["memories"] += memory.add(store, [memory_row(key, record)], replace=replace)
        elif kind == "artifact":
            outcome = _import_artifact(store, key, record)
            if outcome == "conflict":
                report["conflicts"].append(dict(where, session_id=sid or None, filename=record["filename"],
                                                version=record["version"]))
            else:
                report["artifact_versions" if outcome == "created" else "artifacts_unchanged"] += 1
        elif kind != "session":
            written, differ = _import_state(store, kind, key, record, replace)
            report["state_keys"] += written
            if differ and not replace:
                report["conflicts"].append(dict(where, keys=differ))
        else:
            outcome = _import_one(store, key, record, replace)
            if outcome == "conflict":
                report["conflicts"].append(dict(where, session_id=sid))
            else:
                report[outcome] += 1
                if outcome != "unchanged":
                    report["events"] += len(record["events"])
        if on_record is not None:
            on_record()
    return report


def copy_database(src: Any, dst: Any, plan: ExportPlan,
                  on_session: Optional[Callable[[], None]] = None) -> dict[str, Any]:
    """Copy what ``plan`` lists (:func:`plan_export` of ``src``) from the store ``src``
    into the store ``dst`` (any two backends): app/user state records first, then each
    session whole in one transaction (``Store.import_session``), as an import of an
    export would. Resumable: a session already in ``dst`` with the same state and events
    is left alone, so a re-run completes an interrupted copy without duplicates; one that
    differs is reported, not overwritten, and so is a differing app/user key.

    Memories (``plan.memory_records``) come last; a memory id already in ``dst`` is left alone.

    Returns:
        ``{"created", "unchanged", "events", "state_keys", "memories": int, "conflicts":
        [{"type", "app_name", "user_id", "session_id" or "keys"}]}``.

    Raises:
        DatabaseLockedError, DatabaseError: a read or write failed (the sessions copied
            before it stay, each whole); ValueError: a value ``dst`` cannot store.
    """
    report: dict[str, Any] = {"created": 0, "unchanged": 0, "events": 0, "state_keys": 0, "memories": 0,
                              "conflicts": []}
    for record in plan.state_records:
        record = orjson.loads(dumps_line(record))
        key = (record["app_name"], record.get("user_id", ""), "")
        written, differ = _import_state(dst, record["type"], key, record, False)
        report["state_keys"] += written
        if differ:
            report["conflicts"].append({"type": record["type"], "app_name": key[0], "user_id": key[1], "keys": differ})
    for key in plan.keys:
        record = session_record(key, src.read_whole_session(*key))
        if record is not None:
            outcome = _import_one(dst, key, orjson.loads(dumps_line(record)), False)
            if outcome == "conflict":
                report["conflicts"].append({"type": "session", "app_name": key[0], "user_id": key[1],
                                            "session_id": key[2]})
            else:
                report[outcome] += 1
                report["events"] += len(record["events"]) if outcome == "created" else 0
        if on_session is not None:
            on_session()
    rows = [memory_row((r["app_name"], r["user_id"], ""), orjson.loads(dumps_line(r))) for r in plan.memory_records]
    if rows:
        report["memories"] = memory.add(dst, rows)
    return report


__all__ = ["FORMAT", "HEADER_TYPE", "LINEAGE_FIELDS", "header", "session_record", "state_records", "memory_record",
           "memory_row", "artifact_record", "ExportPlan",
           "plan_export", "write_export", "check_record", "read_records", "check_file", "content", "import_file",
           "copy_database"]
