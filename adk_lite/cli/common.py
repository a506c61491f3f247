"""Shared pieces of the ``adk-lite`` commands: errors, output (tables, ``--json``),
argument types, progress bars, confirmations, and opening the DB argument through
the public :class:`adk_lite.service.DatabaseSessionService`.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from typing import Any, Callable, NamedTuple, Optional, Sequence

import orjson

from .. import outfile, validate
from ..admin import stored_schema_version
from ..target import ENV_VAR, MEMORY, target_kind, resolve
from ..service import DatabaseSessionService

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
BATCH = 500
"""Sessions per prune transaction."""
MAX_COUNT = 2**63 - 1
"""The largest count a flag takes (``--limit``, ``--top``, ``--events``): SQLite's integer range."""
MAX_DURATION = 36500 * 86400
"""The longest ``--older-than``: 36500 days (100 years), in seconds."""

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhdw])$")


class UsageError(Exception):
    """A user error: printed as one line on stderr, exit code 2."""


class NotConfirmed(Exception):
    """A person at the terminal answered no: nothing was changed, exit code 1 (not a usage error)."""


class _ParseError(UsageError):
    """A command line argparse refused; ``prog`` is the (sub)command's name."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


# -- small helpers ---------------------------------------------------------------

def parse_duration(text: str) -> float:
    """Parse ``30d``, ``12h``, ``45m``, ``90s`` or ``2w`` into seconds (at most
    :data:`MAX_DURATION`, 36500 days).

    Raises:
        argparse.ArgumentTypeError: any other text, or a longer duration.
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30d, 12h, 45m, 90s or 2w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > MAX_DURATION:
        raise argparse.ArgumentTypeError(f"{text!r} is longer than the maximum, 36500d (100 years)")
    return seconds


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 1e6:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds from 0 to 999999")
    return value


def _count(minimum: int):
    """An argparse type: an integer from ``minimum`` to :data:`MAX_COUNT` (ASCII digits)."""
    def parse(text: str) -> int:
        if re.fullmatch(r"[0-9]{1,19}", text.strip()) and minimum <= int(text) <= MAX_COUNT:
            return int(text)
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer from {minimum} to 2**63-1")
    return parse


def plural(count: int, noun: str, many: Optional[str] = None) -> str:
    """``1 app``, ``2 apps``: the count with the noun, plural only when needed."""
    return f"{count} {noun if count == 1 else (many or noun + 's')}"


def iso(ts: Optional[float]) -> str:
    """Format epoch seconds as an ISO 8601 UTC time, e.g. ``2026-11-21T08:21:22Z``.

    A time ``datetime`` cannot show (beyond year 9999, before year 1) is given
    as the number itself; None gives ``""``. Never raises.
    """
    if ts is None:
        return ""
    try:
        return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec="seconds").replace(
            "+00:00", "Z")
    except (OverflowError, OSError, ValueError, TypeError):
        return repr(ts)


def _print_json(value: Any) -> None:
    sys.stdout.write(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() + "\n")


def _report(args: argparse.Namespace, doc: Any, line: str) -> int:
    """Print ``doc`` as JSON with ``--json``, else the one ``line``; return :data:`EXIT_OK`."""
    if args.json:
        _print_json(doc)
    else:
        print(line)
    return EXIT_OK


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, desc: str, unit: str):
    """A tqdm bar on stderr when stderr is a terminal and tqdm is installed, else a no-op."""
    if not sys.stderr.isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


def _filters(args: argparse.Namespace) -> tuple[Optional[str], Optional[str]]:
    """The ``--app`` / ``--user`` filters, checked (messages name the flags)."""
    return validate.optional_name(args.app, "--app"), validate.optional_name(args.user, "--user")


def _on_server(args: argparse.Namespace) -> bool:
    """True when the DB argument (or ``$ADK_LITE_DB``) is a PostgreSQL URL, not a file."""
    return target_kind(args.db) == "postgres"


def _path(args: argparse.Namespace, *, create: bool = False) -> str:
    """The DB argument as a file path: refused when in memory, missing (unless
    ``create``), empty (0 bytes, unless ``create``) or when stdout is that file.
    A PostgreSQL URL is returned as given (the server checks it when it is opened)."""
    if _on_server(args):
        return args.db if args.db is not None else os.environ[ENV_VAR]
    path = resolve(args.db)
    if path == MEMORY:
        raise UsageError("an in-memory database has nothing to inspect: give a database file")
    hint = f" ({args.command} --create makes a new one)" if args.command in ("import", "import-adk") else ""
    if not os.path.exists(path):
        if create:
            return path
        raise UsageError(f"database {path} does not exist{hint}")
    if not create and os.path.isfile(path) and os.path.getsize(path) == 0:
        raise UsageError(f"database {path} is empty (0 bytes): not an adk_lite database{hint}")
    if outfile.same_file(1, path):
        raise UsageError(f"standard output is the database {path} or one of its side files: refusing to write there")
    return path


def _open(args: argparse.Namespace, *, write: bool = False, create: bool = False) -> DatabaseSessionService:
    """Open the DB argument: read-only unless ``write``. A missing or empty file, or a
    server database without adk_lite's tables, is refused unless ``create``: no schema
    is written there."""
    path = _path(args, create=create)
    if write and not create and not _on_server(args) and stored_schema_version(path, args.busy_timeout) is None:
        raise UsageError(f"database {path} has no adk_lite tables: refusing to create them here"
                         + (f" ({args.command} --create does)" if args.command in ("import", "import-adk") else ""))
    if write and not create and _on_server(args):  # a read-only open refuses a database without adk_lite's tables
        DatabaseSessionService(args.db or path, busy_timeout=args.busy_timeout, read_only=True).close()
    # the DB argument as given: a URL's options (?busy_timeout=, ?synchronous=) still apply
    return DatabaseSessionService(args.db or path, busy_timeout=args.busy_timeout, read_only=not write)


def _one_line(text: str, width: int = 100) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 1] + "…"


def _cut(lineage: dict[str, Any]) -> str:
    """How a fork was cut, in words: ``before invocation X (4 events copied)``."""
    where = ("with all its events" if lineage["before_invocation_id"] is None
             else f"before invocation {lineage['before_invocation_id']}")
    return f"{where} ({plural(lineage['events'], 'event')} copied)"


def _confirm(question: str, yes: bool, verb: str = "erase", *, refuse_unattended: bool = True) -> None:
    """Go on when ``yes``, or when a person at a terminal answers y to ``question``
    (asked on stderr). Without a terminal on stdin: refused when ``refuse_unattended``
    (``erase``), else go on without asking (``prune``, ``trim``, as documented).

    Raises:
        UsageError: stdin is not a terminal, no ``--yes`` and ``refuse_unattended``.
        NotConfirmed: the answer is not y (exit 1: nothing was changed).
    """
    if yes:
        return
    if not sys.stdin.isatty():
        if not refuse_unattended:
            return
        raise UsageError(f"refusing to {verb} without --yes when standard input is not a terminal")
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise NotConfirmed(f"not confirmed: nothing {'erased' if verb == 'erase' else 'deleted'}")


class Command(NamedTuple):
    """One ``adk-lite`` sub-command: its function, help line, example, and
    ``add_arguments(parser)`` declaring its arguments (``missing``: the message
    for missing positionals, or None for argparse's)."""
    name: str
    fn: Callable[[argparse.Namespace], int]
    help: str
    example: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    missing: Optional[str] = None


_DB_HELP = f"the database: a file or a postgresql:// URL (default: ${ENV_VAR}, else .adk/sessions.sqlite3)"
_FILE_HELP = f"the database file (default: ${ENV_VAR}, else .adk/sessions.sqlite3)"


def add_db(parser: argparse.ArgumentParser, help_text: str = _DB_HELP) -> None:
    """The optional DB positional (a file or URL; default ``$ADK_LITE_DB``)."""
    parser.add_argument("db", nargs="?", help=help_text)


def add_filters(parser: argparse.ArgumentParser) -> None:
    """``--app`` and ``--user`` filters."""
    parser.add_argument("--app", help="only this app_name")
    parser.add_argument("--user", help="only this user_id")


