"""adk_lite: AI-agent sessions in one embedded SQLite file.

A synchronous session store on Peewee over SQLite in WAL mode, an asyncio wrapper,
and (with the ``adk`` extra) a drop-in ``google.adk`` session service in
:mod:`adk_lite.adk`. ``import adk_lite`` does not import google-adk.

The API is what this package exports (``__all__``), plus :mod:`adk_lite.adk` (the
ADK adapter) and the ``adk-lite`` command (:mod:`adk_lite.cli`). The other modules
are the implementation; ``docs/architecture.md`` says what each one owns.
"""

from . import errors
from ._version import __version__
from .aio import AsyncDatabaseSessionService
from .schema import SCHEMA_VERSION
from .target import DEFAULT_PATH, ENV_VAR
from .errors import *  # noqa: F401,F403 (the names are errors.__all__)
from .service import DatabaseSessionService
from .types import Event, EventActions, SearchHit, SearchResults, Session, SessionList
from .validate import MAX_COUNT, MAX_ID_LENGTH, MAX_TIMESTAMP, MIN_TIMESTAMP
from .codec import MAX_DEPTH

__all__ = [
    "DatabaseSessionService",
    "AsyncDatabaseSessionService",
    "Session",
    "SessionList",
    "SearchHit",
    "SearchResults",
    "Event",
    "EventActions",
    *errors.__all__,
    "DEFAULT_PATH",
    "ENV_VAR",
    "SCHEMA_VERSION",
    "MAX_ID_LENGTH",
    "MAX_COUNT",
    "MIN_TIMESTAMP",
    "MAX_TIMESTAMP",
    "MAX_DEPTH",
    "__version__",
]
