"""Rules on a session's stored event log that fork and trim apply: the state at a
cut, and which events compaction made redundant.

Type-free: functions of :class:`~adk_lite.store.EventRow` rows (the body as JSON
text), shared by the sync API and the ADK adapter through the store.
"""

from __future__ import annotations

import bisect
import itertools
from typing import Any, Optional, Sequence

from . import codec
from .scopes import APP_PREFIX, SESSION, TEMP_PREFIX, USER_PREFIX
from .rows import EventRow

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


def _field(data: Any, snake: str, camel: str) -> Any:
    """``data``'s value for a field as ADK's pydantic models read it: the camelCase
    alias wins when its key is present (even holding null), else the snake_case name."""
    if not isinstance(data, dict):
        return None
    return data.get(camel) if camel in data else data.get(snake)


class _Seen:
    """What ADK's context building reads of one stored event (google-adk's
    ``flows/llm_flows/context/_contents.py`` and ``_compaction.py``,
    ``events/_rewind_events.py``), from its row as the adapter turns it into an Event:
    the columns, with the body's ``invocationId`` and ``branch`` where pydantic
    takes them over the columns."""

    __slots__ = ("invocation", "branch", "scope", "timestamp", "path", "user_no_response", "submitted",
                 "calls", "responses", "ids", "compaction", "range", "rewind", "plain")

    def __init__(self, row: EventRow) -> None:
        body = codec.loads(row.body)
        body = body if isinstance(body, dict) else {}
        self.invocation = body.get("invocationId") if "invocationId" in body else row.invocation_id
        self.branch = row.branch if row.branch is not None else body.get("branch")
        self.scope = _field(body, "isolation_scope", "isolationScope")
        self.timestamp = row.timestamp
        self.path = _field(_field(body, "node_info", "nodeInfo"), "path", "path") or ""
        content = body.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        parts = [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []
        self.calls = [_field(_field(p, "function_call", "functionCall"), "id", "id") for p in parts
                      if _field(p, "function_call", "functionCall") is not None]
        self.responses = [_field(_field(p, "function_response", "functionResponse"), "id", "id") for p in parts
                          if _field(p, "function_response", "functionResponse") is not None]
        self.ids = {i for i in self.calls + self.responses if isinstance(i, str) and i}
        self.user_no_response = row.author == "user" and not self.responses
        self.submitted = row.author == "user" and bool(self.responses)  # a tool result posted back
        actions = body.get("actions")
        self.compaction = isinstance(actions, dict) and actions.get("compaction") is not None
        rewind = _field(actions, "rewind_before_invocation_id", "rewindBeforeInvocationId")
        self.rewind = rewind if isinstance(rewind, str) else None
        # a key present but not a usable string: kept, never trimmed (and never a range)
        self.plain = not self.compaction and not (isinstance(actions, dict) and (
            "rewind_before_invocation_id" in actions or "rewindBeforeInvocationId" in actions))
        # a summary trusted to hide events: authored "user" (as ADK's summarizer writes it, so it
        # starts a turn for every agent with include_contents="none"), no function parts
        # (ADK drops framework/auth events) and no transfer (not a turn start)
        trusted = (self.compaction and row.author == "user" and not (self.calls or self.responses)
                   and _field(actions, "transfer_to_agent", "transferToAgent") is None)
        self.range = _range(actions) if trusted else None


def _range(actions: dict) -> Optional[tuple[float, float]]:
    """``(start, end)`` epoch seconds of a compaction as ADK's context building counts
    it (both bounds and the summary present, start <= end), else None. Bounds that
    pydantic would have to coerce (strings, booleans) are not trusted: a range left
    out only keeps more."""
    compaction = actions.get("compaction")
    if not isinstance(compaction, dict) or _field(compaction, "compacted_content", "compactedContent") is None:
        return None
    start = _field(compaction, "start_timestamp", "startTimestamp")
    end = _field(compaction, "end_timestamp", "endTimestamp")
    if type(start) not in (int, float) or type(end) not in (int, float) or not start <= end:
        return None
    return float(start), float(end)


def _live(seen: Sequence[_Seen]) -> list[bool]:
    """Which events survive the rewinds, exactly as ADK's ``_apply_rewinds``: walking
    backwards, a rewind marker drops itself and everything back to the first event of
    the invocation it names; a marker never survives."""
    first: dict[str, int] = {}
    for i, event in enumerate(seen):
        if event.invocation and isinstance(event.invocation, str):
            first.setdefault(event.invocation, i)
    live = [False] * len(seen)
    i = len(seen) - 1
    while i >= 0:
        if seen[i].rewind:
            start = first.get(seen[i].rewind)
            if start is not None and start < i:
                i = start
        else:
            live[i] = True
        i -= 1
    return live


def _segments(branch: Any) -> list[str]:
    """A branch as ADK's ``_BranchPath`` splits it (None and ``""``: no branch)."""
    return branch.split(".") if isinstance(branch, str) and branch else []


def _summary_reaches(summary: _Seen, event: _Seen) -> bool:
    """True when every view of ADK's context building that shows ``event`` also shows
    the compaction ``summary`` (so its range hides the event there):

    - isolation scope: ADK shows an event only to the exact same scope;
    - branch: the summary has none, or the event's branch is the summary's or below it
      (an agent sees its own branch's ancestors; an agent with no branch sees all, and
      then a tool sub-branch that hides the summary hides the event too);
    - node path: the summary has none, or the same as the event (single-turn nodes and
      user messages of workflow nodes are filtered by it).
    """
    if summary.scope != event.scope:
        return False
    top, below = _segments(summary.branch), _segments(event.branch)
    if top and below[:len(top)] != top:
        return False
    if summary.path and (summary.path != event.path or (summary.user_no_response and not event.user_no_response)):
        return False
    return True


def compacted(rows: Sequence[EventRow]) -> list[str]:
    """The ids of the events a session can lose without changing the LLM request ADK
    builds for any agent, branch, isolation scope or node path (google-adk 2.13's
    ``_get_contents`` and ``_get_current_turn_contents``), because a compaction
    summary hides them there (``_process_compaction_events``).

    An event is picked when a later compaction event covers its timestamp and is seen
    by every view that sees the event (:func:`_summary_reaches`: the same isolation
    scope, either spelling; the same or an ancestor branch; no or the same node path).
    Such a summary must survive the rewinds (``_apply_rewinds``), have a valid range
    and a summary, be authored ``"user"`` as ADK's summarizer writes it (so it starts
    the turn of an ``include_contents="none"`` agent) and have no tool result posted
    back after it (which would reach back past it). Never picked:

    - compaction and rewind events, and every event of an invocation a rewind names
      (the first one decides where the rewind starts);
    - tool results the user posted back, and function calls still waiting for a
      response that survives the rewinds (a long-running tool's result may come
      later; ADK then puts the call back), whose id is an
      isolation scope in the session (a task agent's first turn is built from it) or
      ends a ``name@id`` branch segment (a tool's sub-branch);
    - any event linked by a function-call id (calls, responses, siblings) to an
      event that stays: ADK puts a compacted call back when its response survives.

    Args:
        rows: a session's event rows, in the order the session lists them.

    Returns:
        Event ids, in ``rows`` order.
    """
    seen = [_Seen(r) for r in rows]
    live = _live(seen)
    posted = max((i for i, s in enumerate(seen) if s.submitted), default=-1)
    summaries = [(i, s) for i, s in enumerate(seen) if s.range is not None and live[i] and i > posted]
    if not summaries:
        return []
    rewound = {s.rewind for s in seen if s.rewind}
    by_scope: dict[Any, list[tuple[int, _Seen]]] = {}
    for j, c in summaries:
        by_scope.setdefault(c.scope if isinstance(c.scope, (str, type(None))) else repr(c.scope), []).append((j, c))
    starts = {scope: [j for j, _ in found] for scope, found in by_scope.items()}

    def hidden(i: int, s: _Seen) -> bool:
        found = by_scope.get(s.scope)
        if not found:
            return False
        later = itertools.islice(found, bisect.bisect_right(starts[s.scope], i), None)  # summaries after i
        return any(c.range[0] <= s.timestamp <= c.range[1] and _summary_reaches(c, s) for _, c in later)

    picked = {i for i, s in enumerate(seen)
              if s.plain and s.invocation not in rewound and isinstance(s.scope, (str, type(None))) and hidden(i, s)}
    scopes = {s.scope for s in seen if isinstance(s.scope, str)}
    tools = {seg.rpartition("@")[2] for s in seen for seg in _segments(s.branch) if "@" in seg}
    answered = {i for s, alive in zip(seen, live) if alive for i in s.responses if isinstance(i, str)}
    held = {i for i, s in enumerate(seen) if s.submitted or any(c in scopes or c in tools or c not in answered
                                                                  for c in s.calls if isinstance(c, str) and c)}
    # a group linked by call ids goes whole or not at all
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(seen):
        for call_id in s.ids:
            groups.setdefault(call_id, []).append(i)
    keep = set(held)
    todo = list(keep | {i for i, s in enumerate(seen) if s.ids and i not in picked})
    while todo:
        for call_id in seen[todo.pop()].ids:
            for j in groups.pop(call_id, ()):
                if j not in keep:
                    keep.add(j)
                    todo.append(j)
    return [rows[i].event_id for i in sorted(picked - keep)]
