"""An append in one round trip on a pipelined backend (PostgreSQL).

The checked append (:meth:`adk_lite.store.Store.append`) reads the session row and
looks up the event ids before it writes, so it waits for the server twice: once for
those reads, once for the commit. When the caller's Session object names the
revision and incarnation it holds, every statement can be sent at once instead, the
``COMMIT`` included, with :func:`guard_sql` before the writes: it updates the
session row (so locks it) and divides by zero, which fails the transaction on the server (every statement
after it is skipped and nothing is written), unless the stored session has that
revision and incarnation and none of the event ids is stored: what the checked
append would decide.

A refused guard (:func:`refused`) is no error of the caller's: the store runs the
checked append again in a new transaction, which raises the precise error (stale,
not found, some ids stored) or returns the retried append's stored events.
"""

from __future__ import annotations

from typing import Any

from .models import EVENTS, SESSIONS

REFUSED = "22012"
"""The SQLSTATE of the guard's refusal (``division_by_zero``): no other statement of
an append divides."""


def guard_sql() -> str:
    """The guard (PostgreSQL placeholders), which is also the session row's update
    (``revision + 1``, ``updated_at``): parameters ``(updated_at, app, user, session,
    revision, incarnation, [event ids])``.

    At READ COMMITTED an UPDATE that waited for another writer's row lock checks the
    row's conditions again on the version that writer committed (the revision it
    bumped); the event-id check reads the statement's snapshot, and an event committed
    after it comes from a writer that held the row lock and bumped the revision too."""
    return (f"WITH touched AS (UPDATE {SESSIONS} AS s SET revision = s.revision + 1, updated_at = %s "
            "WHERE s.app_name = %s AND s.user_id = %s AND s.session_id = %s AND s.revision = %s "
            f"AND s.incarnation = %s AND NOT EXISTS (SELECT 1 FROM {EVENTS} AS e WHERE e.app_name = s.app_name "
            "AND e.user_id = s.user_id AND e.session_id = s.session_id AND e.event_id = ANY(%s)) RETURNING 1) "
            "SELECT 1 / count(*)::int FROM touched")


def refused(exc: Any) -> bool:
    """True when ``exc`` (a driver error, or None) is the guard's refusal."""
    return getattr(exc, "sqlstate", None) == REFUSED
