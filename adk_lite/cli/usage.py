"""``adk-lite usage``: its flags, the times they take, and its table.

The command itself (:func:`cmd_usage`) opens the database read-only and calls
:meth:`adk_lite.DatabaseSessionService.get_usage`; this module turns the command
line into that call's arguments and its result into rows to print.
"""

from __future__ import annotations

import argparse
import datetime
import re
import time
from typing import Any, Callable, Optional, Sequence

from ..admin import USAGE_GROUPS, USAGE_SUMS
from .common import EXIT_OK, Command, _filters, _open, _print_json, _print_table, add_db, add_filters, parse_duration

_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_HEADERS = {"app_name": "app", "user_id": "user", "session_id": "session", "invocation_id": "invocation",
            "model": "model", "day": "day", "prompt_tokens": "prompt", "output_tokens": "output",
            "cached_tokens": "cached", "thoughts_tokens": "thoughts", "tool_use_prompt_tokens": "tool prompt",
            "total_tokens": "total", "llm_calls": "calls"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``usage`` besides DB, ``--app`` and ``--user``."""
    parser.add_argument("--session", help="only this session_id")
    parser.add_argument("--since", metavar="TIME",
                        help="events at or after TIME: a duration back from now (7d, 12h), a UTC date or time "
                             "(2026-11-01, 2026-11-01T12:00:00Z) or epoch seconds")
    parser.add_argument("--until", metavar="TIME", help="events before TIME (the same forms as --since)")
    parser.add_argument("--by", metavar="GROUPS", default="",
                        help=f"group by these, comma-separated: {','.join(USAGE_GROUPS)} (day: UTC date)")


def parse_time(text: Optional[str], flag: str, now: float, duration: Callable[[str], float]) -> Optional[float]:
    """``--since`` / ``--until`` as epoch seconds: ``7d`` (now minus that duration,
    parsed by ``duration``), an ISO date or time (UTC unless it says otherwise), or
    epoch seconds; None stays None.

    Raises:
        ValueError: any other text; the message names ``flag``.
    """
    if text is None:
        return None
    value = text.strip()
    if _NUMBER.match(value):
        return float(value)
    try:
        return now - duration(value)
    except (argparse.ArgumentTypeError, ValueError):
        pass
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{flag} {text!r} is not a duration (7d, 12h), an ISO date (2026-11-01) or epoch "
                         "seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def parse_groups(text: str) -> tuple[str, ...]:
    """``--by day,model`` as ``group_by``.

    Raises:
        ValueError: a name that is not a group; the message names ``--by``.
    """
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    for name in names:
        if name not in USAGE_GROUPS:
            raise ValueError(f"--by {name!r} is not one of {', '.join(USAGE_GROUPS)}")
    return names


def table(rows: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the table ``usage`` prints (a missing model as ``-``)."""
    keys = list(rows[0]) if rows else [*USAGE_SUMS, "llm_calls"]
    return ([_HEADERS[k] for k in keys],
            [["-" if r[k] is None else r[k] for k in keys] for r in rows])


__all__ = ["add_arguments", "parse_time", "parse_groups", "table", "cmd_usage", "COMMANDS"]


def cmd_usage(args: argparse.Namespace) -> int:
    """``adk-lite usage``: token usage totals, grouped (``get_usage``; read-only)."""
    app, user = _filters(args)
    now = time.time()
    since, until = (parse_time(args.since, "--since", now, parse_duration),
                    parse_time(args.until, "--until", now, parse_duration))
    groups = parse_groups(args.by)
    with _open(args) as svc:
        rows = svc.get_usage(app, user, args.session, since=since, until=until, group_by=groups)
    if args.json:
        _print_json(rows)
    else:
        _print_table(*table(rows))
    return EXIT_OK


def _usage_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    add_filters(p)
    add_arguments(p)


COMMANDS = [
    Command("usage", cmd_usage, "token usage totals of the stored LLM calls, grouped by app, user, session, "
                                "invocation, model or day",
            "adk-lite usage .adk/sessions.sqlite3 --user alice --since 30d --by day,model", _usage_arguments),
]
