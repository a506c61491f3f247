"""What the session page shows of each event: its text, tool calls and responses,
state changes, compaction summaries, rewind markers and token usage, read from
the event's ADK JSON shape (:meth:`adk_lite.Event.to_dict`; snake_case and camelCase
keys alike, as ADK's pydantic models accept both)."""

from __future__ import annotations

import datetime
from typing import Any, Optional

import orjson


def iso(seconds: Optional[float]) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS`` UTC ('' for None). A number no date
    can hold (a stored compaction range of ``1e20``: event fields inside ``actions``
    are free JSON) is shown as the number, so one odd value never hides a page."""
    if seconds is None:
        return ""
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return f"{seconds!r} (epoch seconds, not a date)"


def _get(data: Any, snake: str) -> Any:
    """``data[snake]``, else its camelCase alias, else None (``data`` not a dict: None)."""
    if not isinstance(data, dict):
        return None
    if snake in data:
        return data[snake]
    first, *rest = snake.split("_")
    return data.get(first + "".join(word.capitalize() for word in rest))


def pretty(value: Any) -> str:
    """A JSON value as indented text (for ``<pre>``; the template escapes it)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def event_view(event: dict[str, Any]) -> dict[str, Any]:
    """The parts of one event (ADK's JSON shape) that the timeline renders.

    Returns:
        ``{"id", "author", "time", "branch", "texts": [str], "calls": [{"name",
        "args"}], "responses": [{"name", "response"}], "binary": [mime types],
        "state_delta": dict, "compaction": None or {"start", "end", "summary"},
        "rewind": None or the invocation id rewound before, "usage": None or the
        ``usage_metadata`` dict, "model"}``. Values are plain data: the template
        escapes every one of them.
    """
    content = event.get("content") or {}
    parts = _get(content, "parts") or []
    texts, calls, responses, binary = [], [], [], []
    for part in parts if isinstance(parts, list) else []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            texts.append(part["text"])
        call, response = _get(part, "function_call"), _get(part, "function_response")
        if isinstance(call, dict):
            calls.append({"name": call.get("name"), "args": pretty(call.get("args"))})
        if isinstance(response, dict):
            responses.append({"name": response.get("name"), "response": pretty(response.get("response"))})
        for kind in ("inline_data", "file_data"):
            blob = _get(part, kind)
            if isinstance(blob, dict):
                binary.append(str(_get(blob, "mime_type") or kind))
    actions = event.get("actions") or {}
    compaction = _get(actions, "compaction")
    if isinstance(compaction, dict):
        summary = _get(_get(compaction, "compacted_content"), "parts") or []
        compaction = {"start": iso(_number(_get(compaction, "start_timestamp"))),
                      "end": iso(_number(_get(compaction, "end_timestamp"))),
                      "summary": " ".join(p["text"] for p in summary if isinstance(p, dict)
                                          and isinstance(p.get("text"), str))}
    else:
        compaction = None
    rewind = _get(actions, "rewind_before_invocation_id")
    usage = _get(event, "usage_metadata")
    return {"id": event.get("id"), "invocation_id": event.get("invocation_id"), "author": event.get("author"),
            "time": iso(_number(event.get("timestamp"))), "branch": event.get("branch"), "texts": texts,
            "calls": calls, "responses": responses, "binary": binary,
            "state_delta": _get(actions, "state_delta") or {}, "compaction": compaction,
            "rewind": rewind if isinstance(rewind, str) else None,
            "usage": usage if isinstance(usage, dict) else None, "model": _get(event, "model_version")}


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def state_by_scope(state: dict[str, Any]) -> dict[str, dict[str, str]]:
    """A session's merged state split by scope, each value as indented JSON text:
    ``{"app": {...}, "user": {...}, "session": {...}}`` (prefixes removed)."""
    scopes: dict[str, dict[str, str]] = {"app": {}, "user": {}, "session": {}}
    for key, value in sorted(state.items()):
        scope, _, name = key.partition(":") if key.startswith(("app:", "user:")) else ("session", "", key)
        scopes[scope][name] = pretty(value)
    return scopes
