"""Artifact storage: versioned artifacts whose bytes are content-addressed, in the
same database as the sessions (tables ``adk_artifact_versions`` and
``adk_artifact_blobs``, see :mod:`adk_lite.models`).

This module knows rows, bytes and SQL; it does not know ``google.adk`` (the ADK
service, :mod:`adk_lite.adk.artifacts`, maps ADK's ``Part`` to a row and back).

Rules kept here, in every transaction that writes:

- A version row names its bytes by SHA-256; identical bytes are stored once in
  ``adk_artifact_blobs`` however many versions (of any artifact, session or user)
  refer to them.
- A blob goes in the same transaction as the last version that refers to it
  (:func:`delete_versions`), whoever deletes it: ``delete_artifact``, deleting or
  pruning a session, erasing a user.
- On PostgreSQL (several writers at once) every artifact write first takes one
  transaction-level advisory lock (:data:`WRITE_LOCK`), so version numbers and the
  blobs' reference counts are decided by one writer at a time; SQLite's write lock
  already does that. A save takes the user's lock (``Backend.lock_user``) shared before
  it, as every write that adds a user's rows does, so an erase of that user is exact.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple, Optional, Sequence

import orjson

from .models import ARTIFACT_BLOBS, ARTIFACT_VERSIONS

MAX_ARTIFACT_BYTES = 64 * 2**20
"""Default largest artifact, in bytes (64 MiB): the bytes of an ``inline_data`` part,
or the UTF-8 bytes of a text part. A larger one is refused before anything is written."""

WRITE_LOCK = 0x61646B61  # 'adka': the pg_advisory_xact_lock key of artifact writes (PostgreSQL only)

KINDS = ("text", "inline", "file")
"""What a version holds: ``text`` (a text part; its UTF-8 bytes are the blob),
``inline`` (``inline_data``; its bytes are the blob), ``file`` (``file_data``: a URI,
no bytes)."""

_V, _B = ARTIFACT_VERSIONS, ARTIFACT_BLOBS
_COLUMNS = "version, kind, mime_type, part, custom_metadata, sha256, size, create_time"


class VersionRow(NamedTuple):
    """One stored version of an artifact, without its bytes."""

    version: int
    kind: str
    mime_type: Optional[str]
    part: str
    """The rest of the part as JSON text (its fields but the bytes or the text)."""
    custom_metadata: str
    """A JSON object, as text."""
    sha256: Optional[str]
    """64 hex digits naming the bytes, or None (``file``)."""
    size: int
    """Bytes (0 for ``file``)."""
    create_time: float
    """Epoch seconds."""


class ListedArtifact(NamedTuple):
    """One artifact of a listing: its scope, name and latest version."""

    session_id: str
    """``''`` for a user-scoped artifact."""
    filename: str
    versions: int
    latest: int
    kind: str
    mime_type: Optional[str]
    size: int
    create_time: float


def digest(data: bytes) -> str:
    """The SHA-256 of ``data`` as 64 lowercase hex digits (the blob's key)."""
    return hashlib.sha256(data).hexdigest()


def lock(conn: Any, db: Any) -> None:
    """Take the artifact write lock for the rest of ``conn``'s transaction on a
    database with several writers (PostgreSQL: ``pg_advisory_xact_lock``); nothing on
    SQLite, whose write transaction is already the only one."""
    if not db.SINGLE_WRITER:
        conn.execute(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})").fetchone()


def delete_versions(conn: Any, db: Any, where: str, params: Sequence[Any]) -> int:
    """Delete the version rows matching ``where`` (SQL on the versions table, with the
    backend's placeholders) and every blob no version refers to any more, in the
    caller's write transaction (the lock is taken here).

    Returns:
        How many versions were deleted.
    """
    lock(conn, db)
    p = db.peewee.param
    shas = [r[0] for r in conn.execute(f"SELECT DISTINCT sha256 FROM {_V} WHERE ({where}) AND sha256 IS NOT NULL",
                                       params).fetchall()]
    gone = conn.execute(f"DELETE FROM {_V} WHERE {where}", params).rowcount
    for sha in shas:
        conn.execute(f"DELETE FROM {_B} WHERE sha256 = {p} AND NOT EXISTS "
                     f"(SELECT 1 FROM {_V} WHERE sha256 = {p})", (sha, sha))
    return gone


def delete_user(conn: Any, db: Any, app: str, user: str) -> int:
    """Delete every artifact of one user of one app (session-scoped and ``user:``)
    and the blobs only they referred to; returns the versions deleted."""
    p = db.peewee.param
    return delete_versions(conn, db, f"app_name = {p} AND user_id = {p}", (app, user))


def delete_sessions(conn: Any, db: Any, keys: Sequence[tuple[str, str, str]]) -> int:
    """Delete the session-scoped artifacts of sessions ``(app, user, session)`` (the
    user's ``user:`` artifacts stay) and the blobs only they referred to; returns the
    versions deleted."""
    p = db.peewee.param
    where = f"app_name = {p} AND user_id = {p} AND session_id = {p}"
    return sum(delete_versions(conn, db, where, key) for key in keys if key[2] != "")


def count_user(conn: Any, db: Any, app: str, user: str) -> int:
    """How many artifact versions one user of one app has (every scope)."""
    p = db.peewee.param
    return conn.execute(f"SELECT COUNT(*) FROM {_V} WHERE app_name = {p} AND user_id = {p}",
                        (app, user)).fetchone()[0]


def counts(conn: Any) -> dict[str, int]:
    """``{"artifacts", "artifact_versions", "artifact_blobs", "artifact_bytes"}``:
    distinct artifacts (scope + filename), their versions, the stored blobs and the
    bytes those hold (each blob once); all 0 for ``conn`` None (a database without
    the artifact tables: an older file opened read-only)."""
    if conn is None:
        return {"artifacts": 0, "artifact_versions": 0, "artifact_blobs": 0, "artifact_bytes": 0}
    artifacts = conn.execute(f"SELECT COUNT(*) FROM (SELECT DISTINCT app_name, user_id, session_id, filename "
                             f"FROM {_V}) AS a").fetchone()[0]
    versions = conn.execute(f"SELECT COUNT(*) FROM {_V}").fetchone()[0]
    blobs, size = conn.execute(f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM {_B}").fetchone()
    return {"artifacts": artifacts, "artifact_versions": versions, "artifact_blobs": blobs,
            "artifact_bytes": int(size)}


class ArtifactStore:
    """The artifact statements over one open :class:`adk_lite.store.Store` (its call
    gate, pool and transactions): each method is one transaction.

    Keys: ``(app, user, session, filename)`` with ``session`` ``''`` for a
    user-scoped artifact; the caller has checked them.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.db = store.db
        p = self.p = store.db.peewee.param
        self._key = f"app_name = {p} AND user_id = {p} AND session_id = {p} AND filename = {p}"

    def save(self, key: tuple[str, str, str, str], kind: str, mime_type: Optional[str], part: str,
             custom_metadata: str, data: Optional[bytes], create_time: float) -> int:
        """Store a new version of the artifact ``key``: its bytes (once per content) and
        its row, numbered one past the highest stored version (0 for the first, and
        again 0 after the artifact was deleted). One write transaction.

        Args:
            data: the bytes (``text``: its UTF-8 bytes), or None for ``file``.

        Returns:
            The new version number.
        """
        p, sha = self.p, None if data is None else digest(data)

        def run(conn):
            self.db.lock_user(conn, key[0], key[1], False)  # an erase of this user waits for it, or it for the erase
            lock(conn, self.db)
            if sha is not None and conn.execute(f"SELECT 1 FROM {_B} WHERE sha256 = {p}", (sha,)).fetchone() is None:
                conn.execute(f"INSERT INTO {_B} (sha256, size, data) VALUES ({p}, {p}, {p})", (sha, len(data), data))
            version = conn.execute(f"SELECT COALESCE(MAX(version) + 1, 0) FROM {_V} WHERE {self._key}",
                                   key).fetchone()[0]
            conn.execute(f"INSERT INTO {_V} (app_name, user_id, session_id, filename, {_COLUMNS}) VALUES "
                         f"({', '.join([p] * 12)})",
                         (*key, version, kind, mime_type, part, custom_metadata, sha,
                          0 if data is None else len(data), create_time))
            return version
        return self.store._run(run, write=True)

    def _row(self, conn: Any, key: tuple[str, str, str, str], version: Optional[int]) -> Optional[VersionRow]:
        if version is None:
            row = conn.execute(f"SELECT {_COLUMNS} FROM {_V} WHERE {self._key} ORDER BY version DESC LIMIT 1",
                               key).fetchone()
        else:
            row = conn.execute(f"SELECT {_COLUMNS} FROM {_V} WHERE {self._key} AND version = {self.p}",
                               (*key, version)).fetchone()
        return None if row is None else VersionRow._make(row)

    def version(self, key: tuple[str, str, str, str], version: Optional[int]) -> Optional[VersionRow]:
        """The row of one version (None: the latest), or None when not stored."""
        return self.store._run(self._row, key, version)

    def load(self, key: tuple[str, str, str, str], version: Optional[int]
             ) -> Optional[tuple[VersionRow, Optional[bytes]]]:
        """One version (None: the latest) and its bytes (None for ``file``), read in one
        snapshot; only this version's blob is read. None when not stored."""

        def run(conn):
            row = self._row(conn, key, version)
            if row is None:
                return None
            if row.sha256 is None:
                return row, None
            found = conn.execute(f"SELECT data FROM {_B} WHERE sha256 = {self.p}", (row.sha256,)).fetchone()
            return row, bytes(found[0])
        return self.store._run(run)

    def versions(self, key: tuple[str, str, str, str]) -> list[VersionRow]:
        """Every stored version of the artifact, oldest first ([] when none)."""
        return self.store._run(lambda conn: [VersionRow._make(r) for r in conn.execute(
            f"SELECT {_COLUMNS} FROM {_V} WHERE {self._key} ORDER BY version", key).fetchall()])

    def filenames(self, app: str, user: str, session: Optional[str]) -> list[str]:
        """The filenames of the user's ``user:``-scope artifacts, and with ``session``
        those of that session too, sorted (each once)."""
        p = self.p
        scopes = ("",) if session is None else ("", session)
        marks = ", ".join([p] * len(scopes))
        rows = self.store._run(lambda conn: conn.execute(
            f"SELECT DISTINCT filename FROM {_V} WHERE app_name = {p} AND user_id = {p} AND session_id IN ({marks})",
            (app, user, *scopes)).fetchall())
        return sorted({r[0] for r in rows})

    def delete(self, key: tuple[str, str, str, str]) -> int:
        """Delete every version of the artifact and the blobs only it referred to, in
        one write transaction; returns the versions deleted (0: none stored)."""
        return self.store._run(lambda conn: delete_versions(conn, self.db, self._key, key), write=True)

    def listing(self, app: str, user: str, session: Optional[str]) -> list[ListedArtifact]:
        """The artifacts of one user (``session`` None: every scope; ``''``: the
        ``user:`` scope; else that session and the ``user:`` scope), each with its
        version count and latest version's facts, by scope then filename."""
        p = self.p
        where, params = f"app_name = {p} AND user_id = {p}", [app, user]
        if session is not None:
            where += f" AND session_id IN ({p}, {p})"
            params += ["", session]
        sql = (f"SELECT session_id, filename, versions, version, kind, mime_type, size, create_time FROM "
               f"(SELECT session_id, filename, version, kind, mime_type, size, create_time, "
               "COUNT(*) OVER (PARTITION BY session_id, filename) AS versions, "
               "ROW_NUMBER() OVER (PARTITION BY session_id, filename ORDER BY version DESC) AS n "
               f"FROM {_V} WHERE {where}) AS v WHERE n = 1 ORDER BY session_id, filename")
        return [ListedArtifact._make(r) for r in self.store._run(lambda conn: conn.execute(sql, params).fetchall())]

    def stored_keys(self) -> list[tuple[str, str, str, str, int]]:
        """Every stored version as ``(app, user, session, filename, version)``, in key order."""
        return [tuple(r) for r in self.store._run(lambda conn: conn.execute(
            f"SELECT app_name, user_id, session_id, filename, version FROM {_V} "
            "ORDER BY app_name, user_id, session_id, filename, version").fetchall())]

    def put(self, key: tuple[str, str, str, str], row: VersionRow, data: Optional[bytes]) -> str:
        """Store one version as it is (its number, kind, part, metadata, time and bytes),
        for a copy from another database. One write transaction.

        Returns:
            ``"created"``; ``"unchanged"`` when that version is stored with the same
            bytes, part and metadata (a re-run copy); ``"conflict"`` when it is stored
            otherwise (left as it is).
        """
        p, sha = self.p, None if data is None else digest(data)

        def run(conn):
            self.db.lock_user(conn, key[0], key[1], False)
            lock(conn, self.db)
            have = self._row(conn, key, row.version)
            if have is not None:
                same = (have.sha256 == sha and have.kind == row.kind and orjson_equal(have.part, row.part)
                        and orjson_equal(have.custom_metadata, row.custom_metadata))
                return "unchanged" if same else "conflict"
            if sha is not None and conn.execute(f"SELECT 1 FROM {_B} WHERE sha256 = {p}", (sha,)).fetchone() is None:
                conn.execute(f"INSERT INTO {_B} (sha256, size, data) VALUES ({p}, {p}, {p})", (sha, len(data), data))
            conn.execute(f"INSERT INTO {_V} (app_name, user_id, session_id, filename, {_COLUMNS}) VALUES "
                         f"({', '.join([p] * 12)})",
                         (*key, row.version, row.kind, row.mime_type, row.part, row.custom_metadata, sha,
                          0 if data is None else len(data), row.create_time))
            return "created"
        return self.store._run(run, write=True)


def orjson_equal(a: str, b: str) -> bool:
    """True when two JSON texts hold equal values (key order and spacing aside)."""
    return a == b or orjson.loads(a) == orjson.loads(b)


def copy_all(src: "ArtifactStore", dst: "ArtifactStore") -> dict[str, Any]:
    """Copy every artifact version of ``src`` into ``dst`` with its number, one version
    (and only its bytes in memory) per transaction; resumable like the session copy.

    Returns:
        ``{"artifact_versions": created, "artifacts_unchanged": int, "conflicts":
        [{"type": "artifact", "app_name", "user_id", "session_id", "filename", "version"}]}``.
    """
    report: dict[str, Any] = {"artifact_versions": 0, "artifacts_unchanged": 0, "conflicts": []}
    for app, user, session, filename, version in src.stored_keys():
        key = (app, user, session, filename)
        found = src.load(key, version)
        if found is None:  # deleted meanwhile
            continue
        outcome = dst.put(key, *found)
        if outcome == "conflict":
            report["conflicts"].append({"type": "artifact", "app_name": app, "user_id": user, "session_id": session,
                                        "filename": filename, "version": version})
        else:
            report["artifact_versions" if outcome == "created" else "artifacts_unchanged"] += 1
    return report
