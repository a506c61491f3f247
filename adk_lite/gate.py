"""The call gate of a store: counting calls in and out (refused after close or,
for writes, on a read-only database), running a function in one transaction on a
pooled connection with driver errors translated, the group commit of concurrent
writes, and closing the database once. Driver errors are translated by the
backend's ``translate`` (:meth:`adk_lite.backend.Backend.translate`).

Every write is one ``BEGIN IMMEDIATE`` transaction (a deferred one that reads
then writes fails at once under a second writer); reads that need one snapshot
run in a deferred transaction and are fetched fully.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import weakref
from typing import Any, Callable, Optional

from . import errors
from .backend import Backend


def _copy_error(exc: BaseException) -> BaseException:
    """The error a group commit's failure gives each other caller of the group."""
    if isinstance(exc, errors.AdkLiteError):
        return type(exc)(*exc.args)
    return errors.DatabaseError(f"the group commit this call was part of failed ({type(exc).__name__}: {exc}); "
                                "nothing of it was written")


class _Pending:
    """A write waiting for a group commit, and then its outcome."""

    __slots__ = ("fn", "args", "result", "error", "done")

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args = fn, args
        self.result: Any = None
        self.error: Optional[BaseException] = None
        self.done = False



class Gate:
    """The call gate and transactions over one open database (a
    :class:`~adk_lite.backend.Backend`): every call of a store goes through it.

    Thread-safe: each call takes a connection from the database's pool for its
    transaction and gives it back (a ``":memory:"`` database shares one,
    serialized by the database's lock). :meth:`close` waits for the calls in
    flight, so no connection is ever closed under a running statement.
    """

    def __init__(self, db: Backend) -> None:
        self.db = db
        self._guard = db.lock or contextlib.nullcontext()
        self._closed = False
        self._active = 0  # calls between _enter and _leave
        self._calls = threading.Condition(threading.Lock())
        self._writer = threading.RLock()  # one write transaction at a time in this process
        self._serial = db.SINGLE_WRITER  # else writes run at once, each in its own transaction
        self._no_lock = contextlib.nullcontext()
        self._queue: list[_Pending] = []  # appends waiting for the next group commit
        self._queue_lock = threading.Lock()
        self.write_transactions = 0
        """How many write transactions this store has committed (a group commit counts once)."""
        # closes the database once: at close(), at interpreter exit, or when the store is collected
        self._closer = weakref.finalize(self, _shut, weakref.ref(self), db, self._guard)

    # -- plumbing -----------------------------------------------------------
    def _enter(self, write: bool) -> None:
        """Count a call in, or refuse it.

        Raises:
            ServiceClosedError: after :meth:`close`.
            DatabaseOpenError: a write on a read-only service.
        """
        if write and self.db.read_only:
            raise errors.DatabaseOpenError(f"database {self.db.path} is open read-only (read_only=True): "
                                           "this call would write")
        with self._calls:
            if self._closed:
                raise errors.ServiceClosedError(f"the service on {self.db.path} is closed")
            self._active += 1

    def _leave(self) -> None:
        with self._calls:
            self._active -= 1
            if self._closed and not self._active:  # close() is waiting
                self._calls.notify_all()

    def _run(self, fn: Callable, *args: Any, write: bool = False) -> Any:
        """Run ``fn(conn, *args)`` in one transaction (IMMEDIATE when ``write``)
        on a pooled connection; driver errors are translated."""
        return self._use(fn, args, write, True)

    def _use(self, fn: Callable, args: tuple, write: bool, transaction: bool) -> Any:
        """Run ``fn(conn, *args)`` on a pooled connection, inside the call gate, in a
        transaction when ``transaction``; driver errors are translated.

        Writes of this process take turns on a lock of their own first, so threads
        queue on it (woken at once) rather than in SQLite's busy handler (which sleeps).
        """
        self._enter(write)
        try:
            with self._writer if write and self._serial else self._no_lock, self._guard:
                conn = self.db.peewee.acquire()
                try:
                    if not transaction:
                        return fn(conn, *args)
                    return self._transact(conn, fn, args, write)
                finally:
                    self.db.peewee.release(conn)
        except self.db.DRIVER_ERRORS as e:
            raise self.db.translate(e) from e
        finally:
            self._leave()

    def _grouped(self, fn: Callable, *args: Any) -> Any:
        """Run the write ``fn(conn, *args)`` in a group commit: every write waiting
        when the previous transaction ends is committed with it in one IMMEDIATE
        transaction, each in its own savepoint, so one that fails (stale, not
        found, bad input) is rolled back alone. The thread that takes the writer
        lock commits the group (its own write included); each caller returns, or
        raises its own error, only after the group's commit.

        Raises:
            What ``fn`` raises for this call; a driver error of the whole
            transaction (translated) for every call of the group.
        """
        if not self._serial:
            return self._use(fn, args, True, True)
        if not self._queue and self._writer.acquire(blocking=False):
            try:  # nobody is waiting: no group to gather (callers arriving now queue for the next)
                return self._use(fn, args, True, True)
            finally:
                self._writer.release()
        pending = _Pending(fn, args)
        with self._queue_lock:
            self._queue.append(pending)
        with self._writer:
            if not pending.done:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                try:
                    self._use(self._commit_group, (group,), True, True)
                except BaseException as e:
                    for other in group:
                        other.error = e if other is pending else _copy_error(e)
                finally:
                    for other in group:
                        other.done = True
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _grouped_all(self, fns: list[Callable]) -> list[tuple[Any, Optional[BaseException]]]:
        """Run the writes ``fn(conn)`` of ``fns`` in ONE group commit (with the writes
        other threads queued meanwhile), each in its own savepoint, so one that fails
        is rolled back alone: what :meth:`_grouped` does for writes that happen to
        wait at once, for a batch one caller gathered. Returns after the commit.
        For a backend of one writer at a time (SQLite); where writers run at once,
        :meth:`adk_lite.store.Store.append_many` runs each write on its own.

        Returns:
            ``(result, None)`` or ``(None, error)`` per write, in order: its own error,
            or a copy of the transaction's (translated) when the commit failed.
        """
        group = [_Pending(fn, ()) for fn in fns]
        with self._writer:
            with self._queue_lock:
                queued, self._queue = self._queue, []
            everything = queued + group
            try:
                self._use(self._commit_group, (everything,), True, True)
            except BaseException as e:
                for other in everything:
                    other.error = e if len(everything) == 1 else _copy_error(e)
                if not isinstance(e, Exception):
                    raise
            finally:
                for other in queued:
                    other.done = True
        return [(p.result, p.error) for p in group]

    def _commit_group(self, conn: Any, group: list[_Pending]) -> None:
        if len(group) == 1:  # nothing to isolate: its error rolls the transaction back
            group[0].result = group[0].fn(conn, *group[0].args)
            return
        for pending in group:
            conn.execute("SAVEPOINT adk_lite_append")
            try:
                pending.result = pending.fn(conn, *pending.args)
            except Exception as e:  # this call's own failure: undo it alone
                conn.execute("ROLLBACK TO adk_lite_append")
                pending.error = self.db.translate(e) if isinstance(e, self.db.DRIVER_ERRORS) else e
            conn.execute("RELEASE adk_lite_append")

    def _transact(self, conn: sqlite3.Connection, fn: Callable, args: tuple, write: bool) -> Any:
        """Run ``fn(conn, *args)`` in one transaction on ``conn`` (IMMEDIATE when
        ``write``): committed when it returns, rolled back when it raises."""
        conn.execute(self.db.BEGIN_WRITE if write else self.db.BEGIN_READ)
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")
            if write:
                self.write_transactions += 1
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    def close(self) -> None:
        """Refuse new calls, wait for the calls in flight to finish, then close
        every connection. Later calls raise :class:`ServiceClosedError`; closing
        twice is harmless."""
        self._refuse()
        self._closer()

    def _refuse(self) -> None:
        """Refuse new calls and wait until the calls in flight have left."""
        with self._calls:
            self._closed = True
            while self._active:
                self._calls.wait()



def _shut(ref: "weakref.ref[Gate]", db: Backend, guard: Any) -> None:
    """Close a store's database once: from :meth:`Gate.close`, at interpreter exit
    for a store still open (after its calls in flight), or when the store is
    garbage-collected. Closing checkpoints the file (see the backend's ``close``).
    Never raises: at exit there is no caller left to tell."""
    store = ref()
    if store is not None:
        store._refuse()
    try:
        with guard:
            db.close()
    except (errors.AdkLiteError, OSError, *db.DRIVER_ERRORS):
        pass



