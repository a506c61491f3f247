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
it. An export file, another adk_lite database (:func:`copy_records`) and ADK's own
stores (:mod:`adk_lite.adk.transfer`) are the three sources of records; each hands
them to :func:`adk_lite.load.load`, the one writer, which returns one
:class:`adk_lite.load.TransferReport`. Used by ``adk-lite export`` / ``import`` /
``copy``. The record shapes and their checks are :mod:`adk_lite.records` (re-exported
here).
"""

from __future__ import annotations

import functools
from typing import Any, BinaryIO, Callable, Iterator, NamedTuple, Optional

import orjson

from . import codec, errors, memory
from ._version import __version__
from .artifacts import ArtifactStore
from .load import TransferReport, load, locate
from .records import (KINDS, LINEAGE_FIELDS, artifact_record, check_record, checked, content, memory_record,
                      memory_row, one_line, session_record, state_records)

FORMAT = 2
"""The format version this release writes and the newest it reads (2: a session's
revision, initial state, lineage and token usage, memory records and artifact records;
format 1 is read too)."""
HEADER_TYPE = "adk_lite_export"


def header() -> dict[str, Any]:
    """The first record of an export: the format version and the writer's version."""
    return {"type": HEADER_TYPE, "format": FORMAT, "adk_lite": __version__}


def dumps_line(record: dict[str, Any]) -> bytes:
    """One record as a JSON line (``orjson.Fragment`` values are written as they are)."""
    return orjson.dumps(record) + b"\n"


# -- export ------------------------------------------------------------------------

class ExportPlan(NamedTuple):
    """What an export writes: the session keys (sorted), the state records, the
    memory records, and the artifact versions ``(app, user, session, filename,
    version)`` (None: a database without artifact tables)."""

    keys: list[tuple[str, str, str]]
    state_records: list[dict[str, Any]]
    memory_records: list[dict[str, Any]] = []
    artifacts: Optional[list[tuple[str, str, str, str, int]]] = None

    def size(self) -> int:
        """How many records :func:`plan_records` yields (the steps of a copy's progress)."""
        return len(self.keys) + len(self.state_records) + len(self.memory_records) + len(self.artifacts or ())


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


def plan_records(store: Any, plan: ExportPlan) -> Iterator[tuple[str, Optional[dict[str, Any]]]]:
    """Yield ``(type, record)`` for each thing ``plan`` lists, in the export's order:
    the app/user state records, one session per key (read whole in one snapshot when
    its turn comes; None: deleted since it was listed), the memory records (after the
    sessions: an import replacing one keeps them; each user's read again when their
    first comes, None: deleted or erased since), then each artifact version (None:
    gone; one version's bytes in memory at a time). Values are embedded as stored
    (``orjson.Fragment``).

    Raises:
        DatabaseError: a read failed.
    """
    for record in plan.state_records:
        yield record["type"], record
    for key in plan.keys:
        yield "session", session_record(key, store.read_whole_session(*key))
    fresh: dict[tuple[str, str], dict[str, Any]] = {}
    for record in plan.memory_records:  # read again at their turn: a user erased meanwhile is gone
        owner = (record["app_name"], record["user_id"])
        if owner not in fresh:
            fresh[owner] = {r.memory_id: r for r in memory.rows(store, *owner)}
        row = fresh[owner].get(record["memory_id"])
        yield "memory", None if row is None else memory_record(row)
    if plan.artifacts:
        artifacts = ArtifactStore(store)
        for app, user, session, filename, version in plan.artifacts:
            found = artifacts.load((app, user, session, filename), version)
            yield "artifact", None if found is None else artifact_record((app, user, session, filename), *found)


def write_export(store: Any, plan: ExportPlan, out: BinaryIO,
                 on_session: Optional[Callable[[], None]] = None) -> dict[str, int]:
    """Write the header, the state records, then one line per session still stored,
    the memories and the artifact versions (:func:`plan_records`).

    Args:
        store: a :class:`adk_lite.store.Store`.
        out: a binary file.
        on_session: called after each session key (for a progress bar).

    Returns:
        ``{"sessions": int, "events": int, "state_records": int, "memories": int}`` written,
        and ``"artifact_versions"`` when the database has artifact tables.

    Raises:
        DatabaseError: a read failed. OSError: the write failed (BrokenPipeError too).
    """
    counts = {"sessions": 0, "events": 0, "state_records": len(plan.state_records), "memories": 0}
    if plan.artifacts is not None:
        counts["artifact_versions"] = 0
    out.write(dumps_line(header()))
    for kind, record in plan_records(store, plan):
        if record is not None:
            out.write(dumps_line(record))
            if kind == "session":
                counts["sessions"] += 1
                counts["events"] += len(record["events"])
            elif kind == "artifact":
                counts["artifact_versions"] += 1
            elif kind == "memory":
                counts["memories"] += 1
        if kind == "session" and on_session is not None:
            on_session()
    return counts


def copy_records(src: Any, dst: Any, plan: ExportPlan,
                 on_record: Optional[Callable[[], None]] = None) -> TransferReport:
    """Copy what ``plan`` lists (:func:`plan_export` of ``src``) from the store ``src``
    into the store ``dst`` (any two backends), as an import of an export would: the
    records of :func:`plan_records`, each checked and written by
    :func:`adk_lite.load.load` (app/user state first, then each session whole in one
    transaction, the memories, then each artifact version with its number).
    Resumable: what ``dst`` holds with the same content is left alone, so a re-run
    completes an interrupted copy without duplicates; what differs is reported in
    ``conflicts`` and left as it is (no ``replace``); a record ``dst``'s checks refuse
    (a hand-edited source) or its backend cannot hold (a NUL in JSON, on PostgreSQL) is
    reported in ``refused`` and skipped.

    Args:
        on_record: called after each record of the plan (:meth:`ExportPlan.size` in all).

    Returns:
        The :class:`adk_lite.load.TransferReport` (conflicts without ``line``).

    Raises:
        DatabaseLockedError, DatabaseError: a read or write failed (the sessions copied
            before it stay, each whole).
    """
    def items() -> Iterator[tuple[dict, Any]]:
        for _kind, record in plan_records(src, plan):
            record = None if record is None else codec.loads_exact(dumps_line(record))
            yield locate(record), record
    return load(dst, items(), on_record=on_record)


# -- reading an export file ----------------------------------------------------------

def _check_header(record: dict[str, Any]) -> None:
    version = record.get("format")
    if type(version) is not int or version < 1:
        raise ValueError(f"the header's format {version!r} is not a format version (an int >= 1)")
    if version > FORMAT:
        raise ValueError(f"the file has format {version}, newer than this adk_lite reads ({FORMAT}); "
                         "upgrade adk_lite to import it")


def _bad_line(path: str, where: dict, error: BaseException) -> None:
    raise errors.ImportFileError(f"{path}:{where['line']}: {one_line(error)}") from error


def file_records(path: str) -> Iterator[tuple[dict[str, Any], Any]]:
    """Yield ``(where, record)`` for each record line of an export file, decoded
    exactly (:func:`adk_lite.codec.loads_exact`) but not yet checked; ``where`` is
    ``{"line"}`` and :func:`adk_lite.load.locate`'s fields. Blank
    lines are skipped; header lines are checked and skipped (a file without one is
    read as format 1).

    Raises:
        ImportFileError: a line that is not JSON, or a header of a newer format; the
            message starts with ``path:line:``.
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
            except (orjson.JSONDecodeError, TypeError, ValueError, RecursionError) as e:
                _bad_line(path, {"line": number}, e)
            yield {"line": number, **locate(record)}, record


def read_records(path: str) -> Iterator[tuple[int, str, tuple[str, str, str], dict[str, Any]]]:
    """Yield ``(line number, kind, key, record)`` for each record of a file, checked
    by :func:`adk_lite.records.check_record` (see :func:`file_records`).

    Raises:
        ImportFileError: a line that is not JSON, not a valid record, or a header
            of a newer format; the message starts with ``path:line:``.
        OSError: the file cannot be read.
    """
    bad = functools.partial(_bad_line, path)
    for where, record in file_records(path):
        yield (where["line"], *checked(where, record, bad))  # type: ignore[misc]  (bad raises)


def check_file(path: str) -> int:
    """Check every line of an import file; return how many records it holds.

    Raises:
        ImportFileError, OSError: see :func:`read_records`.
    """
    return sum(1 for _ in read_records(path))


# -- import --------------------------------------------------------------------------

def import_file(store: Any, path: str, *, replace: bool = False,
                on_record: Optional[Callable[[], None]] = None) -> TransferReport:
    """Import a file written by :func:`write_export` (or a previous release's export):
    its records (:func:`file_records`) checked and written by :func:`adk_lite.load.load`.

    Call :func:`check_file` first to refuse a bad file before anything is written.
    Each session is written whole in one transaction; a session already stored
    with the same state and events is left alone (so re-running an interrupted
    import completes it); one that differs is a conflict unless ``replace``.
    App/user state keys are added, and differing ones overwritten only with
    ``replace``, one transaction per record.

    Memory records: a memory id not stored in its app and user is added; a stored one
    is left alone, or overwritten with ``replace`` (one transaction per record).

    Args:
        on_record: called after each record (:func:`check_file` counts them).

    Returns:
        The :class:`adk_lite.load.TransferReport`: ``{"created", "unchanged",
        "replaced", "events", "state_keys", "memories", "artifact_versions",
        "artifacts_unchanged": int, "conflicts": [{"line", "type", "app_name",
        "user_id", "session_id" or "keys" (artifacts: "session_id", "filename",
        "version")}]}`` and the report's other keys (``refused`` stays empty: a bad
        line raises). An artifact version already stored differently is a conflict
        even with ``replace`` (versions are never rewritten).

    Raises:
        ImportFileError, OSError: see :func:`read_records`.
        DatabaseLockedError, DatabaseError: a write failed (the sessions written
            before it stay, each whole).
    """
    return load(store, file_records(path), replace=replace, on_bad=functools.partial(_bad_line, path),
                on_record=on_record)


__all__ = ["FORMAT", "HEADER_TYPE", "KINDS", "LINEAGE_FIELDS", "header", "session_record", "state_records",
           "memory_record", "memory_row", "artifact_record", "ExportPlan", "plan_export", "plan_records",
           "write_export", "check_record", "file_records", "read_records", "check_file", "content", "import_file",
           "copy_records", "TransferReport"]
