"""Rules on a session's stored event log that fork and trim apply: the state at a
cut, and which events compaction made redundant.

Type-free: functions of :class:`~adk_lite.store.EventRow` rows (the body as JSON
text), shared by the sync API and the ADK adapter through the store.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from . import codec
from .scopes import APP_PREFIX, SESSION, TEMP_PREFIX, USER_PREFIX
from .store import EventRow

UPDATE_KEYS_MARK = {"adk_lite": "update_keys"}
"""``custom_metadata`` of the events ``update_keys`` records (there None means deleted)."""

_NOT_SESSION = (APP_PREFIX, USER_PREFIX, TEMP_PREFIX)


def _pick(data: Any, snake: str, camel: str) -> Any:
    """``data[snake]`` or ``data[camel]`` (ADK dumps either, by alias or not), else None."""
    if not isinstance(data, dict):
        return None
    value = data.get(snake)
    return data.get(camel) if value is None else value


def replay(initial: Optional[str], rows: Sequence[EventRow]) -> list[tuple[str, str, str]]:
    """The session-scope state after ``rows``: the initial state then every event's
    ``state_delta`` in order, as the store applied them.

    A value replaces the old one and ``None`` is a stored null, except in the events
    ``update_keys`` records (``custom_metadata`` == :data:`UPDATE_KEYS_MARK`), where
    ``None`` deletes the key. ``app:``, ``user:`` and ``temp:`` keys are skipped.

    Args:
        initial: the session's ``initial_state`` JSON object text, or None when it
            is unknown (replayed from ``{}``).
        rows: event rows oldest first.

    Returns:
        ``(scope, key, JSON)`` rows, scope ``"session"``.
    """
    state: dict[str, Any] = codec.loads(initial) if initial is not None else {}
    for row in rows:
        body = codec.loads(row.body)
        delta = _pick(body.get("actions"), "state_delta", "stateDelta") or {}
        deletes = body.get("custom_metadata") == UPDATE_KEYS_MARK
        for key, value in delta.items():
            if key.startswith(_NOT_SESSION):
                continue
            if value is None and deletes:
                state.pop(key, None)
            else:
                state[key] = value
    return [(SESSION, key, codec.dumps(value)) for key, value in state.items()]


def _call_ids(body: dict, kind: tuple[str, str]) -> set[str]:
    """The ids of the function calls (or responses) in an event body's content."""
    content = body.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    found = set()
    for part in parts if isinstance(parts, list) else ():
        call_id = _pick(_pick(part, *kind), "id", "id")
        if isinstance(call_id, str):
            found.add(call_id)
    return found


_CALL, _RESPONSE = ("function_call", "functionCall"), ("function_response", "functionResponse")


def _range(body: dict) -> Optional[tuple[float, float]]:
    """``(start, end)`` epoch seconds of a compaction event as ADK's context building
    counts it (both bounds and the summary present, start <= end), else None."""
    compaction = _pick(body.get("actions"), "compaction", "compaction")
    if not isinstance(compaction, dict) or _pick(compaction, "compacted_content", "compactedContent") is None:
        return None
    start = _pick(compaction, "start_timestamp", "startTimestamp")
    end = _pick(compaction, "end_timestamp", "endTimestamp")
    if type(start) not in (int, float) or type(end) not in (int, float) or start > end:
        return None
    return float(start), float(end)


def _is_compaction(body: dict) -> bool:
    return _pick(body.get("actions"), "compaction", "compaction") is not None


def _is_rewind(body: dict) -> bool:
    return _pick(body.get("actions"), "rewind_before_invocation_id", "rewindBeforeInvocationId") is not None


def _sees_all_of(summary: tuple, row: EventRow, scope: Any) -> bool:
    """True when every agent that sees the raw event also sees the compaction
    summary: the summary's branch is none or an ancestor of (or equal to) the
    event's, and its isolation scope is none or the event's."""
    branch, summary_scope = summary
    branch_ok = branch is None or (row.branch is not None and (row.branch == branch
                                                               or row.branch.startswith(branch + ".")))
    return branch_ok and (summary_scope is None or summary_scope == scope)


def compacted(rows: Sequence[EventRow]) -> list[str]:
    """The ids of the events a session no longer needs to build the model's
    context, because a compaction event summarises them (what ADK's
    ``_process_compaction_events`` leaves out).

    An event is picked when its timestamp lies inside the range of a compaction
    event that every agent seeing it also sees (same or ancestor branch, same or no
    isolation scope), and it is neither a compaction nor a rewind event. Kept, to
    stay conservative: compactions before the last rewind event (a rewind can annul
    them), function-call events whose response survives outside the ranges (ADK puts
    such a call back into the request) and their sibling responses.

    Args:
        rows: a session's event rows, oldest first.

    Returns:
        Event ids, in ``rows`` order.
    """
    bodies = [codec.loads(r.body) for r in rows]
    last_rewind = max((i for i, b in enumerate(bodies) if _is_rewind(b)), default=-1)
    ranges = []
    for i, (row, body) in enumerate(zip(rows, bodies)):
        bounds = _range(body) if i > last_rewind else None
        if bounds:
            ranges.append((*bounds, (row.branch, body.get("isolation_scope"))))
    if not ranges:
        return []
    picked = {i for i, (row, body) in enumerate(zip(rows, bodies))
              if not _is_compaction(body) and not _is_rewind(body)
              and any(start <= row.timestamp <= end and _sees_all_of(seen, row, body.get("isolation_scope"))
                      for start, end, seen in ranges)}
    surviving = set().union(*(_call_ids(b, _RESPONSE) for i, b in enumerate(bodies) if i not in picked))
    keep = {i for i in picked if _call_ids(bodies[i], _CALL) & surviving}
    kept_calls = set().union(*(_call_ids(bodies[i], _CALL) for i in keep))
    keep |= {i for i in picked if _call_ids(bodies[i], _RESPONSE) & kept_calls}
    return [rows[i].event_id for i in sorted(picked - keep)]
