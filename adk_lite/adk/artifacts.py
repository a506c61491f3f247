"""ADK's ``BaseArtifactService`` on adk_lite's database: :class:`DatabaseArtifactService`.

Artifacts live in the same database as the sessions (a SQLite file or PostgreSQL),
versioned per ``(app, user, session, filename)`` and content-addressed: the bytes
are stored once per SHA-256 however many versions refer to them
(:mod:`adk_lite.artifacts` holds the storage rules). See docs/artifacts.md.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional, Union

import orjson
from google.adk.artifacts import artifact_util
from google.adk.artifacts import base_artifact_service as _base
from google.adk.artifacts.base_artifact_service import ArtifactVersion, BaseArtifactService, ensure_part
from google.adk.errors.input_validation_error import InputValidationError
from google.genai import types
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from .. import codec, validate
from ..artifacts import MAX_ARTIFACT_BYTES, ArtifactStore, VersionRow
from ..target import target_kind
from .opened import OnDatabase

__all__ = ["DatabaseArtifactService", "MAX_ARTIFACT_BYTES"]



USER_PREFIX = "user:"
"""Filenames starting with it are user-scoped: shared by every session of the user."""

MAX_FILENAME_LENGTH = 1024
"""Longest artifact filename, in characters."""

Key = tuple[str, str, str, str]


def _segment(value: Any, field: str) -> str:
    """Check an app/user/session id as ADK's artifact services do
    (``artifact_util.validate_path_segment``: ADK's messages), then adk_lite's limits."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, not {type(value).__name__}")
    artifact_util.validate_path_segment(value, field)
    return validate.name(value, field)


def _session(session_id: Any) -> str:
    """A session id checked (:func:`_segment`) and stripped of surrounding whitespace,
    the id its session is stored under (as ADK's session services strip it)."""
    _segment(session_id, "session_id")
    stripped = session_id.strip()
    if stripped != session_id:
        artifact_util.validate_path_segment(stripped, "session_id")
    return stripped


def _filename(filename: Any) -> str:
    if not isinstance(filename, str):
        raise TypeError(f"filename must be a str, not {type(filename).__name__}")
    if not filename:
        raise InputValidationError("filename must not be empty.")
    if "\x00" in filename:
        raise InputValidationError("filename must not contain null bytes.")
    if len(filename) > MAX_FILENAME_LENGTH:
        raise ValueError(f"filename is {len(filename)} characters long; the limit is {MAX_FILENAME_LENGTH}")
    if not codec.is_text(filename):
        raise ValueError(f"filename holds a lone surrogate ({filename!r:.80}), which UTF-8 cannot store")
    return filename


def _scope(session_id: Any, filename: str) -> tuple[str, Optional[str]]:
    """``(stored session id, caller's session id normalized)``: ``''`` for a ``user:``
    filename, whose session id is not used (nor checked, as ADK's services) but to
    check an ``artifact://`` reference's scope; a session-scoped name needs a valid
    session id (ADK's in-memory service's rule)."""
    if filename.startswith(USER_PREFIX):
        return "", session_id.strip() if isinstance(session_id, str) else None
    if session_id is None:
        raise InputValidationError("Session ID must be provided for session-scoped artifacts.")
    normalized = _session(session_id)
    return normalized, normalized


def _canonical_uri(key: Key, version: int) -> str:
    app, user, session, filename = key
    scope = f"/sessions/{session}" if session else ""
    return f"adklite://apps/{app}/users/{user}{scope}/artifacts/{filename}/versions/{version}"


def _artifact_version(key: Key, row: VersionRow) -> ArtifactVersion:
    return ArtifactVersion(version=row.version, canonical_uri=_canonical_uri(key, row.version),
                           custom_metadata=orjson.loads(row.custom_metadata), create_time=row.create_time,
                           mime_type=row.mime_type)


def _part(row: VersionRow, data: Optional[bytes]) -> types.Part:
    """The stored ``Part``: its JSON (every field but the payload) plus the bytes.

    Raises:
        ValueError: a stored row that is not a valid part (written by hand).
    """
    try:
        part = types.Part.model_validate_json(row.part)
        if row.kind == "inline":
            if part.inline_data is None:
                part.inline_data = types.Blob(mime_type=row.mime_type)
            part.inline_data.data = data
        elif row.kind == "text":
            part.text = data.decode("utf-8", "surrogatepass")
    except (ValidationError, UnicodeDecodeError) as e:
        raise ValueError(f"the stored artifact version {row.version} is not a valid Part: {e}") from e
    return part


class DatabaseArtifactService(OnDatabase, BaseArtifactService):
    """ADK's ``BaseArtifactService`` on an adk_lite database (a SQLite file or a
    PostgreSQL server), shared with :class:`adk_lite.adk.DatabaseSessionService`.

    Versions are numbered from 0 per ``(app_name, user_id, session_id, filename)``;
    a filename starting with ``user:`` is user-scoped (shared across the user's
    sessions, stored with session id ``''``). Bytes are content-addressed: identical
    bytes are stored once, and go with the last version that refers to them. Text
    parts, ``inline_data`` parts (bytes, mime type, display name) and ``file_data``
    parts round-trip exactly; an ``artifact://`` reference is resolved on load, as
    ADK's services do. Deleting a session (or pruning it) deletes its
    session-scoped artifacts; ``user:`` artifacts stay until the user is erased
    (``delete_user`` / ``adk-lite erase``).

    Args:
        db, db_url, uri: the database, as :class:`adk_lite.adk.DatabaseSessionService`
            takes it (a path, ``sqlite:///``, ``adklite:///rel`` or ``adklite:////abs``,
            a PostgreSQL URL; None: ``$ADK_LITE_DB``, else ``.adk/sessions.sqlite3``).
            Give at most one.
        max_artifact_bytes: the largest artifact, in bytes (default
            :data:`MAX_ARTIFACT_BYTES`, 64 MiB): the bytes of ``inline_data``, or
            the UTF-8 bytes of a text.
        synchronous, busy_timeout, max_workers: as for the session service.
        **kwargs: ``agents_dir`` (what ADK's service registry passes) is accepted
            and ignored; other unknown keywords are ignored with a logged warning.

    Raises:
        ValueError: more than one of db/db_url/uri, a URL of another database, or a
            ``max_artifact_bytes`` that is not an int >= 0.
        DatabaseError: as :class:`adk_lite.DatabaseSessionService` (a foreign,
            corrupt or newer file is refused and left unchanged).
    """

    def __init__(self, db: Union[str, os.PathLike, None] = None, *, db_url: Optional[str] = None,
                 uri: Optional[str] = None, max_artifact_bytes: int = MAX_ARTIFACT_BYTES,
                 synchronous: str = "normal", busy_timeout: float = 5.0, max_workers: Optional[int] = None,
                 **kwargs: Any) -> None:
        if type(max_artifact_bytes) is not int or max_artifact_bytes < 0:
            raise ValueError(f"max_artifact_bytes must be an int >= 0 (bytes), not {max_artifact_bytes!r}")
        self.max_artifact_bytes = max_artifact_bytes
        self._open(db, db_url, uri, synchronous, busy_timeout, max_workers, kwargs)
        self._artifacts = ArtifactStore(self._core.store)

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory; the masked URL on PostgreSQL)."""
        return self._core.path

    # -- ADK's BaseArtifactService ----------------------------------------------
    async def save_artifact(self, *, app_name: str, user_id: str, filename: str,
                            artifact: Union[types.Part, dict[str, Any]], session_id: Optional[str] = None,
                            custom_metadata: Optional[dict[str, Any]] = None) -> int:
        """Save a new version of an artifact, as ADK's ``save_artifact``.

        Args:
            filename: ``user:...`` for a user-scoped artifact; any other name is
                session-scoped and needs ``session_id`` (else ``ValueError``:
                ADK's ``InputValidationError``).
            artifact: a ``types.Part`` (or its dict, camelCase or snake_case) with
                ``inline_data`` (bytes may be empty, not None), ``text`` or
                ``file_data`` (an external URI, or an ``artifact://`` reference
                within the same app, user and session).
            session_id: surrounding whitespace is stripped (the id the session is
                stored under).
            custom_metadata: a JSON object, stored with the version.

        Returns:
            The version: 0 for the first, one more for each save after.

        Raises:
            InputValidationError (a ``ValueError``): a bad id (ADK's messages), no
                session id for a session-scoped name, a part of no supported kind,
                ``inline_data`` without data, a bad or out-of-scope reference.
            ValueError: larger than ``max_artifact_bytes``, metadata that is not
                JSON (NaN, too deep), a NUL on PostgreSQL; nothing is written.
            TypeError: an id or filename that is not a str, metadata of other types.
        """
        return await self._run(self._save, app_name, user_id, filename, artifact, session_id, custom_metadata)

    def _save(self, app_name: Any, user_id: Any, filename: Any, artifact: Any, session_id: Any,
              custom_metadata: Any) -> int:
        key, caller_session = self._key(app_name, user_id, filename, session_id)
        try:
            part = ensure_part(artifact)
        except ValidationError as e:
            raise InputValidationError(f"artifact is not a valid types.Part: {e}") from e
        if not isinstance(part, types.Part):
            raise TypeError(f"artifact must be a google.genai.types.Part or a dict, not {type(part).__name__}")
        exclude: Any = None
        data: Optional[bytes] = None
        if part.inline_data is not None:
            if part.inline_data.data is None:
                raise InputValidationError("Artifact inline_data must contain data.")
            kind, mime_type, data = "inline", part.inline_data.mime_type, bytes(part.inline_data.data)
            exclude = {"inline_data": {"data"}}
        elif part.text is not None:
            kind, mime_type = "text", "text/plain"
            data, exclude = part.text.encode("utf-8", "surrogatepass"), {"text"}
        elif part.file_data is not None:
            kind, mime_type = "file", part.file_data.mime_type
            if not part.file_data.file_uri:
                raise InputValidationError("Artifact file_data must have a file_uri.")
            if artifact_util.is_artifact_ref(part):
                parsed = artifact_util.parse_artifact_uri(part.file_data.file_uri)
                if not parsed:
                    raise InputValidationError(f"Invalid artifact reference URI: {part.file_data.file_uri}")
                artifact_util.validate_artifact_reference_scope(app_name=key[0], user_id=key[1],
                                                                session_id=caller_session, parsed_uri=parsed)
                mime_type = None  # known only when the reference is loaded (as ADK's in-memory service)
        else:
            raise InputValidationError("Not supported artifact type.")
        if data is not None and len(data) > self.max_artifact_bytes:
            raise ValueError(f"artifact {key[3]!r} is {len(data)} bytes; the limit is {self.max_artifact_bytes} "
                             "(max_artifact_bytes)")
        try:
            part_json = part.model_dump_json(exclude_none=True, exclude=exclude)
        except PydanticSerializationError as e:
            raise ValueError(f"artifact {key[3]!r} cannot be stored as JSON: {e}") from e
        try:  # what an export, import or copy checks (adk_lite.records): ints in 64 bits, depth
            codec.check_json(codec.loads_exact(part_json), "part")
        except RecursionError as e:
            raise ValueError(f"artifact {key[3]!r}: part is nested too deep to store") from e
        except (TypeError, ValueError) as e:
            raise ValueError(f"artifact {key[3]!r}: {e}") from e
        metadata = {} if custom_metadata is None else custom_metadata
        if not isinstance(metadata, dict):
            raise TypeError(f"custom_metadata must be a dict or None, not {type(metadata).__name__}")
        codec.check_json(metadata, "custom_metadata")
        metadata_json = codec.dumps(metadata)
        self._check_writable(key, part_json, metadata_json)
        return self._artifacts.save(key, kind, mime_type, part_json, metadata_json, data, _base.platform_time.get_time())

    def _check_writable(self, key: Key, *texts: str) -> None:
        """What the backend cannot store (PostgreSQL: NUL in JSON, keys over 600 bytes)."""
        db = self._core.store.db
        if db.check_json is not None:
            db.check_json(texts)
        if db.check_keys is not None:
            db.check_keys(zip(("app_name", "user_id", "session_id", "filename"), key))

    def _key(self, app_name: Any, user_id: Any, filename: Any, session_id: Any) -> tuple[Key, Optional[str]]:
        app, user, name = _segment(app_name, "app_name"), _segment(user_id, "user_id"), _filename(filename)
        stored, caller = _scope(session_id, name)
        return (app, user, stored, name), caller

    async def load_artifact(self, *, app_name: str, user_id: str, filename: str, session_id: Optional[str] = None,
                            version: Optional[int] = None) -> Optional[types.Part]:
        """Load one version (None: the latest) of an artifact, as ADK's
        ``load_artifact``: the ``Part`` as saved (an ``artifact://`` reference is
        followed, at most ADK's 5 hops), or None when it is not stored or holds
        ADK's rewind marker. Reads only this version's bytes.

        Raises:
            InputValidationError: a bad id, no session id for a session-scoped name,
                a reference out of scope or too deep.
        """
        return await self._run(self._load, app_name, user_id, filename, session_id, version,
                               artifact_util._MAX_ARTIFACT_REFERENCE_DEPTH)

    def _load(self, app_name: Any, user_id: Any, filename: Any, session_id: Any, version: Any,
              depth: int) -> Optional[types.Part]:
        key, caller_session = self._key(app_name, user_id, filename, session_id)
        version = self._version_arg(version)
        found = self._artifacts.load(key, version)
        if found is None:
            return None
        part = _part(*found)
        if artifact_util.is_artifact_ref(part):
            parsed = artifact_util.resolve_artifact_reference(
                file_uri=part.file_data.file_uri, app_name=key[0], user_id=key[1], session_id=caller_session,
                remaining_depth=depth)
            return self._load(parsed.app_name, parsed.user_id, parsed.filename, parsed.session_id, parsed.version,
                              depth - 1)
        if part == types.Part() or artifact_util._is_rewind_tombstone(part):
            return None
        return part

    @staticmethod
    def _version_arg(version: Any) -> Optional[int]:
        if version is None:
            return None
        if type(version) is not int:
            raise TypeError(f"version must be an int or None, not {type(version).__name__}")
        return version if 0 <= version <= validate.MAX_COUNT else -1

    async def list_artifact_keys(self, *, app_name: str, user_id: str, session_id: Optional[str] = None) -> list[str]:
        """The filenames, sorted: the user's ``user:`` artifacts, and with
        ``session_id`` that session's too (as ADK's ``list_artifact_keys``).

        Raises:
            InputValidationError: a bad id.
        """
        return await self._run(self._keys, app_name, user_id, session_id)

    def _keys(self, app_name: Any, user_id: Any, session_id: Any) -> list[str]:
        app, user = _segment(app_name, "app_name"), _segment(user_id, "user_id")
        session = None if session_id is None else _session(session_id)
        return self._artifacts.filenames(app, user, session)

    async def delete_artifact(self, *, app_name: str, user_id: str, filename: str,
                              session_id: Optional[str] = None) -> None:
        """Delete every version of an artifact (and the bytes no other version refers
        to); a no-op when none is stored. Saving the name again starts at version 0.

        Raises:
            InputValidationError: a bad id, no session id for a session-scoped name.
        """
        await self._run(self._delete, app_name, user_id, filename, session_id)

    def _delete(self, app_name: Any, user_id: Any, filename: Any, session_id: Any) -> None:
        self._artifacts.delete(self._key(app_name, user_id, filename, session_id)[0])

    async def list_versions(self, *, app_name: str, user_id: str, filename: str,
                            session_id: Optional[str] = None) -> list[int]:
        """The stored version numbers of an artifact, ascending ([] when none).

        Raises:
            InputValidationError: a bad id, no session id for a session-scoped name.
        """
        return await self._run(lambda: [r.version for r in self._artifacts.versions(
            self._key(app_name, user_id, filename, session_id)[0])])

    async def list_artifact_versions(self, *, app_name: str, user_id: str, filename: str,
                                     session_id: Optional[str] = None) -> list[ArtifactVersion]:
        """Every version's ``ArtifactVersion`` (version, ``canonical_uri``
        ``adklite://apps/<app>/users/<user>[/sessions/<session>]/artifacts/<filename>/versions/<n>``,
        ``custom_metadata``, ``create_time``, ``mime_type``: ``text/plain`` for a
        text), oldest first ([] when none).

        Raises:
            InputValidationError: a bad id, no session id for a session-scoped name.
        """
        return await self._run(self._list_versions, app_name, user_id, filename, session_id)

    def _list_versions(self, app_name: Any, user_id: Any, filename: Any, session_id: Any) -> list[ArtifactVersion]:
        key = self._key(app_name, user_id, filename, session_id)[0]
        return [_artifact_version(key, row) for row in self._artifacts.versions(key)]

    async def get_artifact_version(self, *, app_name: str, user_id: str, filename: str,
                                   session_id: Optional[str] = None,
                                   version: Optional[int] = None) -> Optional[ArtifactVersion]:
        """One version's ``ArtifactVersion`` (None: the latest), or None when not stored.

        Raises:
            InputValidationError: a bad id, no session id for a session-scoped name.
        """
        return await self._run(self._get_version, app_name, user_id, filename, session_id, version)

    def _get_version(self, app_name: Any, user_id: Any, filename: Any, session_id: Any,
                     version: Any) -> Optional[ArtifactVersion]:
        key = self._key(app_name, user_id, filename, session_id)[0]
        row = self._artifacts.version(key, self._version_arg(version))
        return None if row is None else _artifact_version(key, row)

    # -- adk_lite extras -----------------------------------------------------------
    async def get_stats(self) -> dict[str, Any]:
        """Counts and file facts of the database (``artifacts``,
        ``artifact_versions``, ``artifact_blobs``, ``artifact_bytes`` among them);
        see :meth:`adk_lite.DatabaseSessionService.get_stats`."""
        return await self._run(self._core.get_stats)

    async def delete_user(self, *, app_name: str, user_id: str, dry_run: bool = False) -> dict[str, Any]:
        """Erase one user of one app: sessions, events, state and artifacts with their
        bytes (secure delete, then a WAL checkpoint); see
        :meth:`adk_lite.DatabaseSessionService.delete_user`."""
        return await self._run(lambda: self._core.delete_user(app_name, user_id, dry_run=dry_run))

    async def close(self) -> None:
        """Stop the executor, checkpoint the WAL and close every connection."""
        await self._close()



_OPTIONS = frozenset({"synchronous", "busy_timeout", "max_workers", "max_artifact_bytes"})
"""The options of :func:`adk_lite.adk.register` that this service takes (the others are the session service's)."""


def make_factory(scheme: str, options: dict[str, Any]) -> Callable[..., DatabaseArtifactService]:
    """The registry factory for ``<scheme>://`` artifact URIs (see :func:`adk_lite.adk.register`),
    called by ADK as ``factory(uri, **kwargs)``; ``options`` not for this service are left out."""
    options = {k: v for k, v in options.items() if k in _OPTIONS}
    prefix = scheme + "://"

    def factory(uri: str, **kwargs: Any) -> DatabaseArtifactService:
        if uri.startswith(prefix) and target_kind(uri) != "postgres":
            uri = "sqlite://" + uri[len(prefix):]
        return DatabaseArtifactService(uri=uri, **{**options, **kwargs})
    return factory
