"""The exception tree of adk_lite.

Every error adk_lite raises on purpose derives from :class:`AdkLiteError`.
Errors that resemble a stdlib type also derive from it, so ``except LookupError``
or ``except ValueError`` keeps working::

    AdkLiteError
    ├── SessionNotFoundError (LookupError)   no such session
    ├── InvocationNotFoundError (LookupError) fork_session: no event of that invocation
    ├── AlreadyExistsError (ValueError)      create_session with an id in use
    ├── StaleSessionError (ValueError)       append from an out-of-date Session
    ├── ImportFileError (ValueError)         a line of an import file is not a valid record
    └── DatabaseError                        the file or the driver failed
        ├── DatabaseOpenError (OSError)      path is a directory, unwritable, ...
        ├── DatabaseLockedError (TimeoutError) write lock not had within busy_timeout
        ├── CorruptDatabaseError             not SQLite, truncated, malformed
        ├── ForeignDatabaseError             SQLite, but not an adk_lite file
        ├── SchemaVersionError               written by a newer adk_lite
        └── ServiceClosedError               the service was closed

Bad arguments raise plain :class:`ValueError` / :class:`TypeError` with a message
that names the argument. Driver errors (``sqlite3.*``, ``peewee.*``) never reach a
caller raw: they are translated into a :class:`DatabaseError` subclass and chained
(``raise ... from e``).
"""

from __future__ import annotations

__all__ = [
    "AdkLiteError",
    "SessionNotFoundError",
    "InvocationNotFoundError",
    "AlreadyExistsError",
    "StaleSessionError",
    "ImportFileError",
    "DatabaseError",
    "DatabaseOpenError",
    "DatabaseLockedError",
    "CorruptDatabaseError",
    "ForeignDatabaseError",
    "SchemaVersionError",
    "ServiceClosedError",
]


class AdkLiteError(Exception):
    """Base class of every error adk_lite raises on purpose."""


class SessionNotFoundError(AdkLiteError, LookupError):
    """The session named by ``(app_name, user_id, session_id)`` is not stored."""


class InvocationNotFoundError(AdkLiteError, LookupError):
    """``fork_session(before_invocation_id=...)`` names an invocation that has no
    event in the source session (as ADK's ``InvocationNotFoundError`` for rewind)."""


class AlreadyExistsError(AdkLiteError, ValueError):
    """``create_session`` was given a ``session_id`` that is already stored."""


class StaleSessionError(AdkLiteError, ValueError):
    """An append came from a ``Session`` object read at an older revision.

    Another writer changed the session since this object was read. Reload it with
    ``get_session`` and retry. Nothing was written.
    """


class ImportFileError(AdkLiteError, ValueError):
    """A line of an import file is not JSON or not a valid record; the message
    starts with ``path:line:``. Nothing was written."""


class DatabaseError(AdkLiteError):
    """The database file or the SQLite driver failed; the message names the file."""


class DatabaseOpenError(DatabaseError, OSError):
    """The path cannot be opened as a database (a directory, no permission, a
    missing file for a read-only service, ...), or a read-only service was asked to write."""


class DatabaseLockedError(DatabaseError, TimeoutError):
    """Another connection held the write lock for longer than ``busy_timeout``."""


class CorruptDatabaseError(DatabaseError):
    """The file is not a SQLite database, or is truncated or malformed."""


class ForeignDatabaseError(DatabaseError):
    """The file is a SQLite database, but its tables are not adk_lite's."""


class SchemaVersionError(DatabaseError):
    """The file was written by a newer adk_lite (its ``schema_version`` is higher)."""


class ServiceClosedError(DatabaseError):
    """A method was called after ``close()``."""


def driver_error(kind: type, path: str, message: str, locked: str) -> "DatabaseError":
    """The error a backend's ``translate`` returns: ``kind`` (a :class:`DatabaseError`
    subclass) with a message naming ``path`` and the driver's ``message``; ``locked``
    says, for :class:`DatabaseLockedError`, what was waited for and how long."""
    if kind is DatabaseLockedError:
        return kind(f"database {path} is locked: {locked} ({message})")
    if kind is DatabaseOpenError:
        return kind(f"cannot open or write database {path}: {message}")
    if kind is CorruptDatabaseError:
        return kind(f"database {path} is corrupt: {message}")
    return kind(f"database {path}: {message}")


def install_hint(extra: str) -> str:
    """How to install one of adk_lite's extras (``adk``, ``postgres``, ``cli``), for the
    messages that need one: ``pip install -e ".[adk]"`` from a clone of adk_lite (the
    ``adk_lite[adk]`` extra)."""
    return f'pip install -e ".[{extra}]" from a clone of adk_lite (the adk_lite[{extra}] extra)'
