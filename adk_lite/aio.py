"""The asyncio wrapper: :class:`AsyncDatabaseSessionService`.

Every method is a coroutine twin of :class:`~adk_lite.service.DatabaseSessionService`'s
method of the same name and arguments. It runs the whole sync call on a thread
executor (:class:`adk_lite.executor.Executor`: one hop per call, not per query), so
the event loop never blocks on SQLite.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from typing import Any, BinaryIO, Callable, Optional, Sequence, TypeVar, Union

from .executor import Executor
from .memory import MAX_RESULTS
from .service import DatabaseSessionService
from .types import Event, SearchResults, Session, SessionList

T = TypeVar("T")


def _twin(sync_method: Callable) -> Callable[[Callable], Callable]:
    """Give a coroutine method the docstring of the sync method it runs."""
    def decorate(method: Callable) -> Callable:
        method.__doc__ = (f"Coroutine twin of :meth:`DatabaseSessionService.{sync_method.__name__}`, run on the "
                          "executor; after :meth:`aclose` it raises ``ServiceClosedError``.\n\n"
                          + inspect.getdoc(sync_method))
        return method
    return decorate


class AsyncDatabaseSessionService:
    """Async twin of :class:`DatabaseSessionService`: same methods, as coroutines.

    Args:
        db, synchronous, busy_timeout, read_only: as :class:`DatabaseSessionService`.
        max_workers: worker threads, started as calls need them (default 4).
            Writes to one file are serialized by SQLite anyway; more threads
            help concurrent reads.

    Attributes:
        sync: the underlying :class:`DatabaseSessionService`.

    Raises:
        As :class:`DatabaseSessionService`; ValueError for a bad ``max_workers``.

    Use ``async with`` or call :meth:`aclose`: it stops the worker threads and
    closes every connection they opened. After it, every method raises
    ``ServiceClosedError``.
    """

    def __init__(self, db: Union[str, os.PathLike, None] = None, *, synchronous: str = "normal",
                 busy_timeout: float = 5.0, read_only: bool = False, max_workers: Optional[int] = None) -> None:
        self._executor = Executor(max_workers)  # checks max_workers before the file is opened
        self.sync = DatabaseSessionService(db, synchronous=synchronous, busy_timeout=busy_timeout,
                                           read_only=read_only)
        self._executor.name = self.sync.path

    @property
    def path(self) -> str:
        """The database file's path (``":memory:"`` in memory)."""
        return self.sync.path

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on this service's executor and await its result.

        For callers that do several sync steps per call and want them in one
        executor hop. An exception ``fn`` raises is raised here.

        Raises:
            ServiceClosedError: after :meth:`aclose` / :meth:`close`.
        """
        return await self._executor.run(fn, *args, **kwargs)

    # -- the twins of DatabaseSessionService's methods ------------------------------
    @_twin(DatabaseSessionService.create_session)
    async def create_session(self, app_name: str, user_id: str, state: Optional[dict[str, Any]] = None,
                             session_id: Optional[str] = None) -> Session:
        return await self.run(self.sync.create_session, app_name, user_id, state, session_id)

    @_twin(DatabaseSessionService.get_session)
    async def get_session(self, app_name: str, user_id: str, session_id: str, *,
                          num_recent_events: Optional[int] = None,
                          after_timestamp: Optional[float] = None) -> Optional[Session]:
        return await self.run(self.sync.get_session, app_name, user_id, session_id,
                              num_recent_events=num_recent_events, after_timestamp=after_timestamp)

    @_twin(DatabaseSessionService.list_sessions)
    async def list_sessions(self, app_name: Optional[str] = None, user_id: Optional[str] = None, *,
                            limit: Optional[int] = None, after: Optional[str] = None,
                            order: str = "oldest") -> SessionList:
        return await self.run(self.sync.list_sessions, app_name, user_id, limit=limit, after=after, order=order)

    @_twin(DatabaseSessionService.search_events)
    async def search_events(self, query: str, *, app_name: Optional[str] = None, user_id: Optional[str] = None,
                            session_id: Optional[str] = None, author: Optional[str] = None, limit: int = 20,
                            after: Optional[str] = None, raw: bool = False) -> SearchResults:
        return await self.run(self.sync.search_events, query, app_name=app_name, user_id=user_id,
                              session_id=session_id, author=author, limit=limit, after=after, raw=raw)

    @_twin(DatabaseSessionService.delete_session)
    async def delete_session(self, app_name: str, user_id: str, session_id: str) -> None:
        await self.run(self.sync.delete_session, app_name, user_id, session_id)

    @_twin(DatabaseSessionService.fork_session)
    async def fork_session(self, app_name: str, user_id: str, session_id: str, *,
                           new_session_id: Optional[str] = None,
                           before_invocation_id: Optional[str] = None) -> Session:
        return await self.run(self.sync.fork_session, app_name, user_id, session_id, new_session_id=new_session_id,
                              before_invocation_id=before_invocation_id)

    @_twin(DatabaseSessionService.get_lineage)
    async def get_lineage(self, app_name: str, user_id: str, session_id: str) -> Optional[dict[str, Any]]:
        return await self.run(self.sync.get_lineage, app_name, user_id, session_id)

    @_twin(DatabaseSessionService.delete_user)
    async def delete_user(self, app_name: str, user_id: str, *, dry_run: bool = False) -> dict[str, Any]:
        return await self.run(self.sync.delete_user, app_name, user_id, dry_run=dry_run)

    @_twin(DatabaseSessionService.trim_compacted)
    async def trim_compacted(self, app_name: str, user_id: str, session_id: Optional[str] = None, *,
                             dry_run: bool = False) -> dict[str, Any]:
        return await self.run(self.sync.trim_compacted, app_name, user_id, session_id, dry_run=dry_run)

    @_twin(DatabaseSessionService.append_event)
    async def append_event(self, session: Session, event: Event) -> Event:
        return await self.run(self.sync.append_event, session, event)

    @_twin(DatabaseSessionService.append_events)
    async def append_events(self, session: Session, events: Sequence[Event]) -> list[Event]:
        return await self.run(self.sync.append_events, session, events)

    @_twin(DatabaseSessionService.update_keys)
    async def update_keys(self, app_name: str, user_id: str, session_id: str, delta: dict[str, Any]) -> None:
        await self.run(self.sync.update_keys, app_name, user_id, session_id, delta)

    @_twin(DatabaseSessionService.get_user_state)
    async def get_user_state(self, app_name: str, user_id: str) -> dict[str, Any]:
        return await self.run(self.sync.get_user_state, app_name, user_id)

    @_twin(DatabaseSessionService.get_app_state)
    async def get_app_state(self, app_name: str) -> dict[str, Any]:
        return await self.run(self.sync.get_app_state, app_name)

    @_twin(DatabaseSessionService.get_event_count)
    async def get_event_count(self, app_name: str, user_id: str, session_id: str) -> int:
        return await self.run(self.sync.get_event_count, app_name, user_id, session_id)

    @_twin(DatabaseSessionService.get_stats)
    async def get_stats(self, top: int = 0) -> dict[str, Any]:
        return await self.run(self.sync.get_stats, top)

    @_twin(DatabaseSessionService.get_usage)
    async def get_usage(self, app_name: Optional[str] = None, user_id: Optional[str] = None,
                        session_id: Optional[str] = None, *, since: Optional[float] = None,
                        until: Optional[float] = None, group_by: Sequence[str] = ()) -> list[dict[str, Any]]:
        return await self.run(self.sync.get_usage, app_name, user_id, session_id, since=since, until=until,
                              group_by=group_by)

    @_twin(DatabaseSessionService.event_counts)
    async def event_counts(self, keys: Sequence[tuple[str, str, str]]) -> list[int]:
        return await self.run(self.sync.event_counts, keys)

    @_twin(DatabaseSessionService.read_events)
    async def read_events(self, app_name: str, user_id: str, session_id: str, *, offset: int = 0,
                          limit: int = 100) -> list[Event]:
        return await self.run(self.sync.read_events, app_name, user_id, session_id, offset=offset, limit=limit)

    @_twin(DatabaseSessionService.list_forks)
    async def list_forks(self, app_name: str, user_id: str, session_id: str, *, scan: int = 500) -> list[str]:
        return await self.run(self.sync.list_forks, app_name, user_id, session_id, scan=scan)

    @_twin(DatabaseSessionService.check)
    async def check(self) -> dict[str, Any]:
        return await self.run(self.sync.check)

    @_twin(DatabaseSessionService.prune)
    async def prune(self, updated_before: float, *, app_name: Optional[str] = None, user_id: Optional[str] = None,
                    dry_run: bool = False, batch: int = 500,
                    progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
        return await self.run(self.sync.prune, updated_before, app_name=app_name, user_id=user_id, dry_run=dry_run,
                              batch=batch, progress=progress)

    @_twin(DatabaseSessionService.trim_all)
    async def trim_all(self, app_name: Optional[str] = None, user_id: Optional[str] = None, *,
                       dry_run: bool = False) -> dict[str, Any]:
        return await self.run(self.sync.trim_all, app_name, user_id, dry_run=dry_run)

    @_twin(DatabaseSessionService.search_memory)
    async def search_memory(self, app_name: str, user_id: str, query: str, limit: int = MAX_RESULTS) -> list[Any]:
        return await self.run(self.sync.search_memory, app_name, user_id, query, limit)

    @_twin(DatabaseSessionService.list_artifacts)
    async def list_artifacts(self, app_name: str, user_id: str, session_id: Optional[str] = None) -> list[Any]:
        return await self.run(self.sync.list_artifacts, app_name, user_id, session_id)

    @_twin(DatabaseSessionService.load_artifact)
    async def load_artifact(self, app_name: str, user_id: str, session_id: str, filename: str,
                            version: Optional[int] = None) -> Optional[tuple[Any, Optional[bytes]]]:
        return await self.run(self.sync.load_artifact, app_name, user_id, session_id, filename, version)

    @_twin(DatabaseSessionService.export)
    async def export(self, out: BinaryIO, *, app_name: Optional[str] = None, user_id: Optional[str] = None,
                     progress: Optional[Callable[[int, int], None]] = None) -> dict[str, int]:
        return await self.run(self.sync.export, out, app_name=app_name, user_id=user_id, progress=progress)

    @_twin(DatabaseSessionService.import_file)
    async def import_file(self, path: str, *, replace: bool = False,
                          on_record: Optional[Callable[[], None]] = None) -> dict[str, Any]:
        return await self.run(self.sync.import_file, path, replace=replace, on_record=on_record)

    @_twin(DatabaseSessionService.copy_to)
    async def copy_to(self, other: Any, *, progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
        # other: a DatabaseSessionService or an AsyncDatabaseSessionService
        return await self.run(self.sync.copy_to, getattr(other, "sync", other), progress=progress)

    @_twin(DatabaseSessionService.vacuum)
    async def vacuum(self) -> dict[str, int]:
        return await self.run(self.sync.vacuum)

    @_twin(DatabaseSessionService.checkpoint)
    async def checkpoint(self) -> dict[str, Any]:
        return await self.run(self.sync.checkpoint)

    @_twin(DatabaseSessionService.backup)
    async def backup(self, dest: Union[str, os.PathLike], *, force: bool = False,
                     progress: Optional[Callable[[int, int], None]] = None) -> dict[str, Any]:
        return await self.run(self.sync.backup, dest, force=force, progress=progress)

    async def aclose(self) -> None:
        """Stop the workers (waiting for running calls) and close every connection.

        After it, no file descriptor on the database stays open; later calls raise
        ``ServiceClosedError``. Closing twice is harmless.
        """
        await asyncio.get_running_loop().run_in_executor(None, self._executor.close)
        self.sync.close()

    def close(self) -> None:
        """Synchronous :meth:`aclose`, for code outside an event loop."""
        self._executor.close()
        self.sync.close()

    async def __aenter__(self) -> "AsyncDatabaseSessionService":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncDatabaseSessionService({self.path!r})"


