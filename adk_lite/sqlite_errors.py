"""SQLite's errors as adk_lite's: the :class:`~adk_lite.errors.DatabaseError` subclass
for a ``sqlite3`` or ``peewee`` error, keyed on SQLite's result code."""

from __future__ import annotations

import sqlite3

from . import errors

_ERROR_CLASSES = {
    "SQLITE_BUSY": errors.DatabaseLockedError, "SQLITE_LOCKED": errors.DatabaseLockedError,
    "SQLITE_CORRUPT": errors.CorruptDatabaseError, "SQLITE_NOTADB": errors.CorruptDatabaseError,
    "SQLITE_CANTOPEN": errors.DatabaseOpenError, "SQLITE_READONLY": errors.DatabaseOpenError,
    "SQLITE_PERM": errors.DatabaseOpenError, "SQLITE_AUTH": errors.DatabaseOpenError,
}
"""adk_lite's error class for SQLite's primary result codes (``sqlite3.Error.sqlite_errorname``
names the extended code, e.g. ``SQLITE_BUSY_SNAPSHOT``; its first two words are the primary one)."""

_MESSAGE_WORDS = (
    (errors.DatabaseLockedError, ("locked", "busy")),
    (errors.CorruptDatabaseError, ("malformed", "not a database", "disk image", "encrypted", "corrupt",
                                   "could not decode")),
    (errors.DatabaseOpenError, ("unable to open", "readonly", "read-only", "permission")),
)
"""The fallback where the driver gives no result code (Python 3.10, Peewee's own errors)."""



def error_class(exc: BaseException) -> type:
    """The :class:`DatabaseError` subclass for a driver error: by SQLite's result code
    when the driver gives it (Python 3.11+), else by the words of its message."""
    if isinstance(exc, UnicodeDecodeError):  # text in the file that is not UTF-8
        return errors.CorruptDatabaseError
    cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__ or exc.__context__
    name = getattr(cause, "sqlite_errorname", None)
    if isinstance(name, str) and name.startswith("SQLITE_"):
        return _ERROR_CLASSES.get("_".join(name.split("_")[:2]), errors.DatabaseError)
    lowered = str(exc).lower()
    for kind, words in _MESSAGE_WORDS:
        if any(word in lowered for word in words):
            return kind
    return errors.DatabaseError


def translate(exc: BaseException, path: str, busy_timeout: float) -> errors.DatabaseError:
    """Map a ``sqlite3`` or ``peewee`` error to the matching :class:`DatabaseError`,
    keyed on SQLite's result code (``sqlite_errorname``; the message on Python 3.10).

    The message names the file; a lock error also names the busy timeout (seconds).
    """
    message = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        message = f"it holds text that is not valid UTF-8 ({exc})"
    return errors.driver_error(error_class(exc), path, message,
                        f"another connection held the write lock for more than busy_timeout={busy_timeout:g} s")
