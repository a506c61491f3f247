"""The one writer of records: every way in (an export file, another adk_lite database,
ADK's own session stores) yields records, and :func:`load` checks and writes them and
returns one :class:`TransferReport`.

A source is an iterable of ``(where, record)`` pairs. ``record`` is one record of the
export format (:mod:`adk_lite.records`), decoded but not yet checked, or None for a
unit of the source with nothing to write (a session deleted while it was read): only
the progress moves. ``where`` is how the report names the record: the fields every
``conflicts`` or ``refused`` entry about it starts with (``{"line": 3, "type": ...,
"app_name": ..., "user_id": ..., "session_id": ...}`` for a line of a file,
:func:`locate`'s fields for a record read from a database, ``{"app_name", "user_id",
"session_id"}`` for a session of ADK's stores).

Each app/user state record, session (row, state, events and usage), memory and artifact
version is written in one transaction of its own, so a load killed at any point leaves
each session whole or absent; what is stored already with the same content is left
alone, so running the same load again completes it without writing anything twice.
Used by :func:`adk_lite.transfer.import_file`, :func:`adk_lite.transfer.copy_records`
and :func:`adk_lite.adk.import_from_adk`; :func:`adk_lite.adk.export_to_adk` (which
writes into ADK's stores, not here) counts into the same report.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable, Optional

from . import codec, errors, memory, scopes, usage
from .artifacts import ArtifactStore, VersionRow
from .records import LINEAGE_FIELDS, checked, content, memory_row, one_line, session_record

_SCOPE = {"app_state": scopes.APP, "user_state": scopes.USER}

OnBad = Callable[[dict, BaseException], None]
"""``on_bad(where, error)``: what becomes of a record that fails the checks."""


class TransferReport(dict):
    """What a move of records did, whatever the source: a dict (the CLI prints it as
    JSON) that always holds every key below.

    - ``created``, ``replaced``, ``unchanged``: sessions written new, written over
      (``replace``), and left alone because stored with the same content;
    - ``sessions`` (``created + replaced``) and ``skipped`` (``unchanged``): the same
      counts under the names ``import-adk`` / ``export-adk`` have always used;
    - ``events``: events written (those of created and replaced sessions);
    - ``state_keys``: app/user state keys written; ``memories``: memories written;
    - ``artifact_versions``, ``artifacts_unchanged``: artifact versions written, and
      found stored the same;
    - ``conflicts``: one entry per record stored otherwise and left alone (use
      ``replace``): its ``where`` plus ``session_id`` (a session), ``keys`` (the
      differing app/user keys) or ``session_id`` (null for a ``user:`` artifact),
      ``filename`` and ``version`` (an artifact version: never rewritten, even with
      ``replace``);
    - ``refused``: one entry per record that fails the checks, skipped: its ``where``
      plus ``error`` (one line);
    - ``apps``, ``users``: distinct apps and ``(app, user)`` pairs among the records met;
    - ``seconds``: wall-clock seconds from the report's making to :meth:`finish`.

    Callers add their own keys (``analyzed``, ``source``, ``destination``).
    """

    def __init__(self) -> None:
        super().__init__(created=0, replaced=0, unchanged=0, sessions=0, skipped=0, events=0, state_keys=0,
                         memories=0, artifact_versions=0, artifacts_unchanged=0, conflicts=[], refused=[], apps=0,
                         users=0, seconds=0.0)
        self._started = time.monotonic()
        self._pairs: set[tuple[str, str]] = set()

    def met(self, where: dict) -> None:
        """Count the app and user that ``where`` names (for ``apps`` and ``users``)."""
        app, user = where.get("app_name"), where.get("user_id") or ""
        if isinstance(app, str) and isinstance(user, str):
            self._pairs.add((app, user))

    def session(self, outcome: str, events: int, where: dict) -> None:
        """Count one session: ``outcome`` ``"created"`` or ``"replaced"`` (with its
        ``events`` written), ``"unchanged"``, or ``"conflict"`` (``where``, with
        ``session_id``, goes to ``conflicts``)."""
        if outcome == "conflict":
            self["conflicts"].append(where)
            return
        self[outcome] += 1
        if outcome != "unchanged":
            self["events"] += events

    def finish(self) -> "TransferReport":
        """Fill in the derived keys (``sessions``, ``skipped``, ``apps``, ``users``,
        ``seconds``); return the report."""
        self["sessions"], self["skipped"] = self["created"] + self["replaced"], self["unchanged"]
        self["apps"] = len({app for app, _user in self._pairs})
        self["users"] = len({pair for pair in self._pairs if pair[1]})
        self["seconds"] = round(time.monotonic() - self._started, 3)
        return self


def locate(record: Any) -> dict[str, Any]:
    """How a report names a record read from a file or a database: ``{"type",
    "app_name", "user_id"}`` as the record gives them (``user_id`` ``""`` for app
    state), and ``"session_id"`` where the record has one."""
    if not isinstance(record, dict):
        return {}
    kind = record.get("type")
    where = {"type": kind, "app_name": record.get("app_name"),
             "user_id": "" if kind == "app_state" else record.get("user_id")}
    if "session_id" in record:
        where["session_id"] = record["session_id"]
    return where


def load(store: Any, items: Iterable[tuple[dict, Any]], *, replace: bool = False, on_bad: Optional[OnBad] = None,
         on_record: Optional[Callable[[], None]] = None, report: Optional[TransferReport] = None) -> TransferReport:
    """Check each record of ``items`` (:func:`adk_lite.records.check_record`) and write
    it into ``store``, one transaction per record (a session whole: row, state, events,
    usage rows, lineage).

    A session stored with the same state and events (and, where the record carries
    them, ``initial_state`` and ``forked_from``: :func:`adk_lite.records.content`) is
    left alone; one stored otherwise is a conflict, or deleted and written again with
    ``replace``. App/user state keys are added; a differing stored key is a conflict,
    or overwritten with ``replace``. A memory id not stored for its app and user is
    added; a stored one is left alone, or overwritten with ``replace``. An artifact
    version is added with its number; one stored differently is a conflict even with
    ``replace`` (versions are never rewritten).

    Args:
        store: the :class:`adk_lite.store.Store` written.
        items: ``(where, record)`` pairs (see the module's docstring).
        replace: overwrite what differs (sessions, app/user keys, memories).
        on_bad: ``on_bad(where, error)`` for a record that fails the checks (the
            ``TypeError``/``ValueError`` naming the field); it may raise to stop the
            load (an import file does). None: the record goes to ``refused``.
        on_record: called after each item (a progress bar).
        report: a report to count into (its clock already running); None: a new one.

    Returns:
        The :class:`TransferReport`, finished.

    A record holding a value ``store``'s backend cannot hold (PostgreSQL: a NUL in
    JSON, a key over its index limit) writes nothing and goes to ``on_bad`` too.

    Raises:
        Whatever ``items`` or ``on_bad`` raise; DatabaseLockedError, DatabaseError:
        a write failed (what was written before it stays, each session whole).
    """
    report = TransferReport() if report is None else report
    refuse = on_bad or (lambda where, e: report["refused"].append(dict(where, error=one_line(e))))
    for where, record in items:
        found = None if record is None else checked(where, record, refuse)
        if found is not None:
            try:
                _write(store, where, *found, replace, report)
            except ValueError as e:  # a value this backend cannot hold (PostgreSQL: a NUL in JSON, a long key)
                if isinstance(e, errors.AdkLiteError):
                    raise
                refuse(where, e)
        report.met(where)
        if on_record is not None:
            on_record()
    return report.finish()


def _write(store: Any, where: dict, kind: str, key: tuple[str, str, str], record: dict, replace: bool,
           report: TransferReport) -> None:
    """Write one checked record and count it into ``report``."""
    if kind == "session":
        report.session(_write_session(store, key, record, replace), len(record["events"]),
                       {**where, "session_id": key[2]})
    elif kind == "memory":
        report["memories"] += memory.add(store, [memory_row(key, record)], replace=replace)
    elif kind == "artifact":
        outcome = _write_artifact(store, key, record)
        if outcome == "conflict":
            report["conflicts"].append(dict(where, session_id=key[2] or None, filename=record["filename"],
                                            version=record["version"]))
        else:
            report["artifact_versions" if outcome == "created" else "artifacts_unchanged"] += 1
    else:
        written, differ = _write_state(store, kind, key, record, replace)
        report["state_keys"] += written
        if differ and not replace:
            report["conflicts"].append(dict(where, keys=differ))


def _write_state(store: Any, kind: str, key: tuple, record: dict, replace: bool) -> tuple[int, list[str]]:
    """Write one app/user state record (one transaction that reads and writes under
    the user's lock: :meth:`adk_lite.store.Store.merge_scope_state`); return ``(keys
    written, differing keys)``."""
    app, user, _ = key
    wanted = {k: codec.dumps(v) for k, v in record["state"].items()}
    return store.merge_scope_state(app, user, _SCOPE[kind], wanted, replace, time.time())


def _write_session(store: Any, key: tuple, record: dict, replace: bool) -> str:
    """Write one session record; return ``"created"``, ``"replaced"``,
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


def _write_artifact(store: Any, key: tuple[str, str, str], record: dict[str, Any]) -> str:
    """Write one artifact version with its number; ``"created"``, ``"unchanged"`` or
    ``"conflict"`` (see :meth:`adk_lite.artifacts.ArtifactStore.put`)."""
    row = VersionRow(record["version"], record["kind"], record.get("mime_type"), codec.dumps(record["part"]),
                     codec.dumps(record["custom_metadata"]), None, 0, float(record["create_time"]))
    return ArtifactStore(store).put((*key, record["filename"]), row, record["bytes"])


__all__ = ["TransferReport", "locate", "load"]
