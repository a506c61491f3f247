"""A drop-in ``google.adk`` session service on adk_lite's store (the ``adk`` extra).

Change one import and an ADK ``Runner``, ``adk web`` or ``adk api_server`` keeps its
sessions in one SQLite file in WAL mode::

    from adk_lite.adk import DatabaseSessionService   # was: from google.adk.sessions import ...
    session_service = DatabaseSessionService("sessions.db")

:class:`DatabaseSessionService` takes and returns ADK's own types (``Session``,
``Event``, ``GetSessionConfig``, ``ListSessionsResponse``) and raises ADK's own
errors. Each call is one hop to the core's thread executor
(:class:`adk_lite.AsyncDatabaseSessionService`), where the rows are read or written
by :class:`adk_lite.store.Store` and converted to ADK types: an event is serialized
once (pydantic's ``model_dump_json``) into the ``body`` column and parsed once on
its first read (``orjson.loads`` + ``Event.model_validate``); later reads get
copies from a bounded cache of the validated events
(:class:`adk_lite.adk.cache.EventCache`, ``event_cache_size=``).

:class:`DatabaseArtifactService` is ADK's ``BaseArtifactService`` on the same
database: versioned artifacts, their bytes stored once per content (see
docs/artifacts.md).

For ``adk web`` / ``adk api_server``, :func:`register` adds the ``adklite://`` URI
scheme to ADK's service registry (sessions and artifacts) (call it from ``<agents_dir>/services.py``), or a
``services.yaml`` names the class; see the README, "Using with ADK".

:class:`DatabaseMemoryService` is ADK's ``BaseMemoryService`` on the same database
(``load_memory`` / ``preload_memory`` search it); see ``docs/memory.md``.

This package (sessions, memory, its event cache, the conversions, the moves in from and out
to ADK's stores) is the only part of adk_lite that imports ``google.adk``.
"""

try:
    import google.adk  # noqa: F401 - only to say which extra is missing, in one line
except ImportError as _missing:
    from ..errors import install_hint as _hint

    raise ImportError(f"adk_lite.adk needs google-adk, the adk extra: {_hint('adk')} ({_missing})",
                      name=__name__) from None

from .artifacts import DatabaseArtifactService
from .sessions import (AlreadyExistsError, DatabaseSessionService, InvocationNotFoundError, ListSessionsPage,
                       SessionNotFoundError, StaleSessionError, register)
from .memory import DatabaseMemoryService
from .transfer import export_to_adk, import_from_adk

__all__ = ["DatabaseSessionService", "DatabaseMemoryService", "DatabaseArtifactService", "ListSessionsPage", "register",
           "SessionNotFoundError", "AlreadyExistsError", "StaleSessionError", "InvocationNotFoundError",
           "import_from_adk", "export_to_adk"]

for _name in __all__:  # shown (repr, logs, ADK's registry) under the name users import them by
    globals()[_name].__module__ = __name__
del _name
