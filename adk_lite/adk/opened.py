"""What the three ADK services of adk_lite (sessions, memory, artifacts) share: opening
a database the way :class:`adk_lite.DatabaseSessionService` does, one executor hop per
call, the database's path, and closing."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Callable, Optional, Union

from .. import service
from ..executor import Executor

logger = logging.getLogger(__name__)

REGISTRY_KWARGS = frozenset({"agents_dir"})
"""Keyword arguments ADK's service registry passes that these services do not use."""


class OnDatabase:
    """A mixin: the service runs its calls on a core :class:`adk_lite.DatabaseSessionService`
    through its own executor. Subclasses check their own arguments, then call :meth:`_open`."""

    _executor: Executor
    _core: service.DatabaseSessionService

    def _open(self, db: Union[str, os.PathLike, None], db_url: Optional[str], uri: Optional[str],
              synchronous: str, busy_timeout: float, max_workers: Optional[int], kwargs: dict[str, Any]) -> None:
        """Open the database given once as ``db``, ``db_url`` or ``uri`` (None: the
        zero-config default), with an executor of ``max_workers`` threads.

        Raises:
            ValueError: more than one of db/db_url/uri; a bad ``max_workers``.
            DatabaseError: as :class:`adk_lite.DatabaseSessionService`.
        """
        given = [target for target in (db, db_url, uri) if target is not None]
        if len(given) > 1:
            raise ValueError(f"give the database once, as db, db_url or uri; got {given!r}")
        unknown = sorted(set(kwargs) - REGISTRY_KWARGS)
        if unknown:  # as ADK's own factories: ignored, with a warning
            logger.warning("adk_lite.adk.%s ignores the arguments %s", type(self).__name__, ", ".join(unknown))
        self._executor = Executor(max_workers)  # checks max_workers before the file is opened
        self._core = service.DatabaseSessionService(given[0] if given else None, synchronous=synchronous,
                                                    busy_timeout=busy_timeout)
        self._executor.name = self._core.path

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory; a PostgreSQL URL without its password)."""
        return self._core.path

    async def _run(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on the executor (one hop)."""
        return await self._executor.run(fn, *args)

    async def _close(self) -> None:
        """Stop the executor (waiting for running calls), then close every connection."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.close)
        self._core.close()

    async def close(self) -> None:
        """Stop the executor, checkpoint the WAL and close every connection. Later calls
        raise ``ServiceClosedError``."""
        await self._close()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"adk_lite.adk.{type(self).__name__}({self.path!r})"
