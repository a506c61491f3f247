"""adk_lite: AI-agent sessions in one embedded SQLite file.

A synchronous session store on Peewee over SQLite in WAL mode, an asyncio wrapper,
and (with the ``adk`` extra) a drop-in ``google.adk`` session service in
:mod:`adk_lite.adk`. ``import adk_lite`` does not import google-adk.
"""

from .aio import AsyncDatabaseSessionService
from .database import DEFAULT_PATH, ENV_VAR, SCHEMA_VERSION
from .errors import (
    AdkLiteError,
    AlreadyExistsError,
    CorruptDatabaseError,
    DatabaseError,
    DatabaseLockedError,
    DatabaseOpenError,
    ForeignDatabaseError,
    SchemaVersionError,
    ServiceClosedError,
    SessionNotFoundError,
    StaleSessionError,
)
from .service import DatabaseSessionService
from .types import Event, EventActions, Session, SessionList
from .validate import MAX_ID_LENGTH

__version__ = "0.1.0"

__all__ = [
    "DatabaseSessionService",
    "AsyncDatabaseSessionService",
    "Session",
    "SessionList",
    "Event",
    "EventActions",
    "AdkLiteError",
    "SessionNotFoundError",
    "AlreadyExistsError",
    "StaleSessionError",
    "DatabaseError",
    "DatabaseOpenError",
    "DatabaseLockedError",
    "CorruptDatabaseError",
    "ForeignDatabaseError",
    "SchemaVersionError",
    "ServiceClosedError",
    "DEFAULT_PATH",
    "ENV_VAR",
    "SCHEMA_VERSION",
    "MAX_ID_LENGTH",
    "__version__",
]
