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

import functools
import hashlib
from typing import Any, NamedTuple, Optional, Sequence

import orjson
import peewee as pw

from .compiled import compile_query, once_per_database, param
from .models import make_models

MAX_ARTIFACT_BYTES = 64 * 2**20
"""Default largest artifact, in bytes (64 MiB): the bytes of an ``inline_data`` part,
or the UTF-8 bytes of a text part. A larger one is refused before anything is written."""

WRITE_LOCK = 0x61646B61  # 'adka': the pg_advisory_xact_lock key of artifact writes (PostgreSQL only)

KINDS = ("text", "inline", "file")
"""What a version holds: ``text`` (a text part; its UTF-8 bytes are the blob),
``inline`` (``inline_data``; its bytes are the blob), ``file`` (``file_data``: a URI,
no bytes)."""

# Raw SQL, since it is PostgreSQL's own function (Peewee has no advisory locks): the
# artifact write lock, held to the end of the transaction.
_LOCK_SQL = f"SELECT pg_advisory_xact_lock({WRITE_LOCK})"

_SCOPES = {"artifact": ("app", "user", "session", "filename"), "session": ("app", "user", "session"),
           "user": ("app", "user")}
"""What :func:`delete_versions` deletes by: the parameters of each scope, in order."""


def _statements(db: Any) -> dict[str, str]:
    """Every artifact statement, compiled from ``db``'s models on its Peewee database
    (:func:`adk_lite.compiled.once_per_database` keeps them: use :func:`_sql`)."""
    V, B = db.models.ArtifactVersion, db.models.ArtifactBlob
    columns = (V.version, V.kind, V.mime_type, V.part, V.custom_metadata, V.sha256, V.size, V.create_time)
    by = {"app": V.app_name, "user": V.user_id, "session": V.session_id, "filename": V.filename}

    def where(*names):
        return functools.reduce(lambda a, b: a & b, (by[n] == param(n) for n in names))

    key = _SCOPES["artifact"]
    sql = {
        "blob_exists": compile_query(B.select(pw.SQL("1")).where(B.sha256 == param("sha")), "sha"),
        "blob_insert": compile_query(B.insert_many([(param("sha"), param("size"), param("data"))],
                                                   fields=[B.sha256, B.size, B.data]).returning(),
                                     "sha", "size", "data"),
        "blob_data": compile_query(B.select(B.data).where(B.sha256 == param("sha")), "sha"),
        # a blob goes once no version refers to it
        "blob_delete_unused": compile_query(
            B.delete().where((B.sha256 == param("sha"))
                             & ~pw.fn.EXISTS(V.select(pw.SQL("1")).where(V.sha256 == param("sha")))), "sha", "sha"),
        "next_version": compile_query(V.select(pw.fn.COALESCE(pw.fn.MAX(V.version) + pw.SQL("1"), pw.SQL("0")))
                                      .where(where(*key)), *key),
        "version_insert": compile_query(
            V.insert_many([tuple(param(n) for n in key + tuple(c.name for c in columns))],
                          fields=[V.app_name, V.user_id, V.session_id, V.filename, *columns]).returning(),
            *key, *(c.name for c in columns)),
        "latest": compile_query(V.select(*columns).where(where(*key)).order_by(V.version.desc()).limit(pw.SQL("1")), *key),
        "version": compile_query(V.select(*columns).where(where(*key) & (V.version == param("version"))),
                                 *key, "version"),
        "versions": compile_query(V.select(*columns).where(where(*key)).order_by(V.version), *key),
        "stored_keys": compile_query(V.select(V.app_name, V.user_id, V.session_id, V.filename, V.version)
                                     .order_by(V.app_name, V.user_id, V.session_id, V.filename, V.version)),
        "count_user": compile_query(V.select(pw.fn.COUNT(pw.SQL("*"))).where(where("app", "user")), "app", "user"),
    }
    for scope, names in _SCOPES.items():
        sql["shas_" + scope] = compile_query(
            V.select(V.sha256).distinct().where(where(*names) & V.sha256.is_null(False)), *names)
        sql["delete_" + scope] = compile_query(V.delete().where(where(*names)), *names)
    # the scopes a listing reads: the user: scope alone, or with one session ([] : every scope)
    for suffix, scopes in (("user", ("scope",)), ("session", ("scope", "session")), ("all", ())):
        cond = where("app", "user")
        if scopes:
            cond &= V.session_id.in_([param(n) for n in scopes])
        if suffix != "all":
            sql["filenames_" + suffix] = compile_query(V.select(V.filename).distinct().where(cond),
                                                       "app", "user", *scopes)
        if suffix == "user":
            continue
        part = (V.session_id, V.filename)
        inner = V.select(V.session_id, V.filename, V.version, V.kind, V.mime_type, V.size, V.create_time,
                         pw.fn.COUNT(pw.SQL("*")).over(partition_by=part).alias("versions"),
                         pw.fn.ROW_NUMBER().over(partition_by=part, order_by=[V.version.desc()]).alias("n")
                         ).where(cond).alias("v")
        c = inner.c
        sql["listing_" + suffix] = compile_query(
            pw.Select([inner], [c.session_id, c.filename, c.versions, c.version, c.kind, c.mime_type, c.size,
                                c.create_time]).where(c.n == pw.SQL("1")).order_by(c.session_id, c.filename)
            .bind(db.peewee), "app", "user", *scopes)
    return sql


def _sql(db: Any) -> dict[str, str]:
    """The artifact statements of the open backend ``db``, compiled on first use."""
    return once_per_database(db, _statements)


@functools.lru_cache(maxsize=1)
def _count_statements() -> tuple[str, str, str]:
    """The three statements of :func:`counts`: they take no parameter, so their SQL is
    the same in both dialects (compiled once, on an unbound SQLite database)."""
    m = make_models(pw.SqliteDatabase(None))
    V, B = m.ArtifactVersion, m.ArtifactBlob
    star = pw.fn.COUNT(pw.SQL("*"))
    return (compile_query(V.select(V.app_name, V.user_id, V.session_id, V.filename).distinct().select_from(star)),
            compile_query(V.select(star)),
            compile_query(B.select(star, pw.fn.COALESCE(pw.fn.SUM(B.size), pw.SQL("0")))))


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
        conn.execute(_LOCK_SQL).fetchone()


def delete_versions(conn: Any, db: Any, scope: str, params: Sequence[Any]) -> int:
    """Delete the version rows of one ``scope`` of :data:`_SCOPES` (``"artifact"``:
    ``(app, user, session, filename)``; ``"session"``: ``(app, user, session)``;
    ``"user"``: ``(app, user)``, every scope of theirs), ``params`` in that order, and
    every blob no version refers to any more, in the caller's write transaction (the
    lock is taken here).

    Returns:
        How many versions were deleted.
    """
    lock(conn, db)
    sql = _sql(db)
    shas = [r[0] for r in conn.execute(sql["shas_" + scope], params).fetchall()]
    gone = conn.execute(sql["delete_" + scope], params).rowcount
    for sha in shas:
        conn.execute(sql["blob_delete_unused"], (sha, sha))
    return gone


def delete_user(conn: Any, db: Any, app: str, user: str) -> int:
    """Delete every artifact of one user of one app (session-scoped and ``user:``)
    and the blobs only they referred to; returns the versions deleted."""
    return delete_versions(conn, db, "user", (app, user))


def delete_sessions(conn: Any, db: Any, keys: Sequence[tuple[str, str, str]]) -> int:
    """Delete the session-scoped artifacts of sessions ``(app, user, session)`` (the
    user's ``user:`` artifacts stay) and the blobs only they referred to; returns the
    versions deleted."""
    return sum(delete_versions(conn, db, "session", key) for key in keys if key[2] != "")


def count_user(conn: Any, db: Any, app: str, user: str) -> int:
    """How many artifact versions one user of one app has (every scope)."""
    return conn.execute(_sql(db)["count_user"], (app, user)).fetchone()[0]


def counts(conn: Any) -> dict[str, int]:
    """``{"artifacts", "artifact_versions", "artifact_blobs", "artifact_bytes"}``:
    distinct artifacts (scope + filename), their versions, the stored blobs and the
    bytes those hold (each blob once); all 0 for ``conn`` None (a database without
    the artifact tables: an older file opened read-only)."""
    if conn is None:
        return {"artifacts": 0, "artifact_versions": 0, "artifact_blobs": 0, "artifact_bytes": 0}
    artifacts_sql, versions_sql, blobs_sql = _count_statements()
    artifacts = conn.execute(artifacts_sql).fetchone()[0]
    versions = conn.execute(versions_sql).fetchone()[0]
    blobs, size = conn.execute(blobs_sql).fetchone()
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
        self._sql = _sql(store.db)

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
        sql, sha = self._sql, None if data is None else digest(data)

        def run(conn):
            self.db.lock_user(conn, key[0], key[1], False)  # an erase of this user waits for it, or it for the erase
            lock(conn, self.db)
            self._put_blob(conn, sha, data)
            version = conn.execute(sql["next_version"], key).fetchone()[0]
            conn.execute(sql["version_insert"], (*key, version, kind, mime_type, part, custom_metadata, sha,
                                                 0 if data is None else len(data), create_time))
            return version
        return self.store._run(run, write=True)

    def _put_blob(self, conn: Any, sha: Optional[str], data: Optional[bytes]) -> None:
        """Store ``data`` under its digest ``sha`` unless stored already (None: no bytes)."""
        if sha is not None and conn.execute(self._sql["blob_exists"], (sha,)).fetchone() is None:
            conn.execute(self._sql["blob_insert"], (sha, len(data), data))

    def _row(self, conn: Any, key: tuple[str, str, str, str], version: Optional[int]) -> Optional[VersionRow]:
        if version is None:
            row = conn.execute(self._sql["latest"], key).fetchone()
        else:
            row = conn.execute(self._sql["version"], (*key, version)).fetchone()
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
            found = conn.execute(self._sql["blob_data"], (row.sha256,)).fetchone()
            return row, bytes(found[0])
        return self.store._run(run)

    def versions(self, key: tuple[str, str, str, str]) -> list[VersionRow]:
        """Every stored version of the artifact, oldest first ([] when none)."""
        return self.store._run(lambda conn: [VersionRow._make(r) for r in conn.execute(
            self._sql["versions"], key).fetchall()])

    def filenames(self, app: str, user: str, session: Optional[str]) -> list[str]:
        """The filenames of the user's ``user:``-scope artifacts, and with ``session``
        those of that session too, sorted (each once)."""
        sql, scopes = (self._sql["filenames_user"], ("",)) if session is None else \
            (self._sql["filenames_session"], ("", session))
        rows = self.store._run(lambda conn: conn.execute(sql, (app, user, *scopes)).fetchall())
        return sorted({r[0] for r in rows})

    def delete(self, key: tuple[str, str, str, str]) -> int:
        """Delete every version of the artifact and the blobs only it referred to, in
        one write transaction; returns the versions deleted (0: none stored)."""
        return self.store._run(lambda conn: delete_versions(conn, self.db, "artifact", key), write=True)

    def listing(self, app: str, user: str, session: Optional[str]) -> list[ListedArtifact]:
        """The artifacts of one user (``session`` None: every scope; ``''``: the
        ``user:`` scope; else that session and the ``user:`` scope), each with its
        version count and latest version's facts, by scope then filename."""
        sql, params = ((self._sql["listing_all"], (app, user)) if session is None
                       else (self._sql["listing_session"], (app, user, "", session)))
        return [ListedArtifact._make(r) for r in self.store._run(lambda conn: conn.execute(sql, params).fetchall())]

    def stored_keys(self) -> list[tuple[str, str, str, str, int]]:
        """Every stored version as ``(app, user, session, filename, version)``, in key order."""
        return [tuple(r) for r in self.store._run(lambda conn: conn.execute(self._sql["stored_keys"]).fetchall())]

    def put(self, key: tuple[str, str, str, str], row: VersionRow, data: Optional[bytes]) -> str:
        """Store one version as it is (its number, kind, part, metadata, time and bytes),
        for a copy from another database. One write transaction.

        Returns:
            ``"created"``; ``"unchanged"`` when that version is stored with the same
            bytes, part and metadata (a re-run copy); ``"conflict"`` when it is stored
            otherwise (left as it is).

        Raises:
            ValueError: what the backend cannot hold, as a save refuses it (PostgreSQL:
                a NUL in the part or metadata JSON, a key over its index limit).
        """
        db = self.db
        if db.check_json is not None:
            db.check_json((row.part, row.custom_metadata))
        if db.check_keys is not None:
            db.check_keys(zip(("app_name", "user_id", "session_id", "filename"), key))
        sha = None if data is None else digest(data)

        def run(conn):
            self.db.lock_user(conn, key[0], key[1], False)
            lock(conn, self.db)
            have = self._row(conn, key, row.version)
            if have is not None:
                same = (have.sha256 == sha and have.kind == row.kind and orjson_equal(have.part, row.part)
                        and orjson_equal(have.custom_metadata, row.custom_metadata))
                return "unchanged" if same else "conflict"
            self._put_blob(conn, sha, data)
            conn.execute(self._sql["version_insert"], (*key, row.version, row.kind, row.mime_type, row.part,
                                                       row.custom_metadata, sha, 0 if data is None else len(data),
                                                       row.create_time))
            return "created"
        return self.store._run(run, write=True)


def orjson_equal(a: str, b: str) -> bool:
    """True when two JSON texts hold equal values (key order and spacing aside)."""
    return a == b or orjson.loads(a) == orjson.loads(b)
