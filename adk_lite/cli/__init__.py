"""The ``adk-lite`` command: stats, inspection and maintenance of a session file.

Run it as ``adk-lite COMMAND ...`` (console script) or ``python -m adk_lite``.
Every command prints a readable table by default and one JSON document with
``--json`` (``export`` always writes JSON Lines). ``--json`` and ``--busy-timeout``
may come before or after the command. Exit codes: 0 success, 1 a problem found
(``check``; ``import``, ``import-adk``, ``export-adk`` conflicts; a confirmation answered no),
2 bad usage or an unusable file (missing,
empty, corrupt, foreign, newer schema, locked). Errors are one line on stderr
(``{"error": "..."}`` with ``--json``); a closed pipe (``| head``) ends quietly
with 0.

Every command refuses a missing or empty (0-byte) database and never creates one,
except these, which say so: ``import --create`` and ``import-adk --create``, ``copy``
(its DST) and ``restore`` (from a backup). ``prune`` and ``trim`` ask before deleting
when stdin is a terminal (``erase`` always asks; ``--yes`` skips it); a "no" exits 1.
A password in a URL argument is masked in the process's command line once it starts
(``setproctitle``), and in every message; prefer ``PGPASSWORD`` or ``~/.pgpass``.
``stats``, ``sessions``, ``search``, ``memory``, ``usage``, ``show``, ``export``, ``check`` and ``--dry-run`` of
``prune``, ``erase`` and ``trim`` open the file read-only: they never change it. Files
are written through :mod:`adk_lite.outfile` (never over the database, 0600, replaced
atomically); the export format is :mod:`adk_lite.transfer`.
``backup`` reads the database read-only (an online copy); ``restore`` is
:func:`adk_lite.restore.restore`.
Progress bars (tqdm, the ``cli`` extra) appear on stderr only when stderr is a
terminal and tqdm is installed.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Optional, Sequence

import orjson

from .. import errors
from .._version import __version__
from ..target import mask_password
from . import artifacts, inspect, maintenance, serve, transfer, usage
from .common import (BATCH, EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, MAX_COUNT, MAX_DURATION, Command, NotConfirmed,
                     UsageError, _ParseError, _seconds, iso, parse_duration, plural)
from .inspect import summarize

_ORDER = ("stats", "usage", "sessions", "search", "memory", "show", "artifacts", "artifact", "export", "import",
          "import-adk", "export-adk", "copy", "prune", "fork", "erase", "serve", "trim", "vacuum", "backup",
          "restore", "check")
_ALL = {c.name: c for module in (inspect, usage, artifacts, transfer, maintenance, serve) for c in module.COMMANDS}
_TABLE: dict[str, Command] = {name: _ALL[name] for name in _ORDER}
COMMANDS = {name: (c.fn, c.help, c.example) for name, c in _TABLE.items()}
"""Every sub-command: name -> (function, help line, example), in ``--help`` order."""


class _Parser(argparse.ArgumentParser):
    """argparse whose usage errors raise :class:`_ParseError` (one line, exit 2,
    JSON with ``--json``); ``missing`` replaces argparse's "arguments are required"."""

    def __init__(self, *args: Any, missing: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.missing = missing

    def error(self, message: str) -> None:  # type: ignore[override]
        if self.missing and "arguments are required" in message:
            message = self.missing
        raise _ParseError(self.prog, message)


def _global_options(parser: argparse.ArgumentParser, after_command: bool) -> None:
    """``--json`` and ``--busy-timeout``, accepted before and after the command
    (after it with ``default=SUPPRESS``, so a value given before is kept)."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS if after_command else False,
                        help="print one JSON document (for scripts); errors as {\"error\": ...} on stderr")
    parser.add_argument("--busy-timeout", type=_seconds, metavar="SECONDS",
                        default=argparse.SUPPRESS if after_command else 5.0,
                        help="wait this long for another connection's lock (default 5)")


def build_parser() -> argparse.ArgumentParser:
    """Return the ``adk-lite`` argument parser (one sub-command per entry of :data:`COMMANDS`)."""
    parser = _Parser(
        prog="adk-lite", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stats, inspection and maintenance of an adk_lite database (a SQLite file, or a PostgreSQL URL).",
        epilog="examples:\n" + "\n".join(f"  {example}" for _f, _h, example in COMMANDS.values())
        + "\n\nexit codes: 0 success, 1 a problem found (check, import/import-adk/export-adk conflicts) or a confirmation "
        "answered no, 2 bad usage or "
        "unusable file\nevery command refuses a missing or empty database; only import/import-adk --create, copy (its "
        "DST) and restore (from a backup) make one\nkeep passwords out of URLs: PGPASSWORD or ~/.pgpass, as in "
        "PGPASSWORD=... adk-lite copy .adk/sessions.sqlite3 postgresql://user@host:5432/dbname")
    parser.add_argument("--version", action="version", version=f"adk-lite {__version__}")
    _global_options(parser, False)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for command in _TABLE.values():
        p = sub.add_parser(command.name, parents=[common], help=command.help, description=command.help + ".",
                           epilog=f"example:\n  {command.example}", formatter_class=argparse.RawDescriptionHelpFormatter,
                           missing=command.missing)
        p.set_defaults(func=command.fn)
        command.add_arguments(p)
    return parser


def _fail(message: str, prog: str, as_json: bool) -> int:
    """Print one error line on stderr (JSON with ``--json``); return exit code 2."""
    message = mask_password(" ".join(message.split()))
    line = orjson.dumps({"error": message}).decode() if as_json else f"{prog}: error: {message}"
    try:
        print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass
    return EXIT_USAGE


def _quiet_stdout() -> None:
    """The reader of stdout went away (``| head``): send the rest to /dev/null so
    the interpreter's final flush raises nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _hide_passwords() -> None:
    """Overwrite this process's command line (``/proc/PID/cmdline``, what ``ps`` shows to
    every user of the machine) with its passwords and ``serve --token`` masked
    (:func:`adk_lite.target.mask_password`), through ``setproctitle`` (the ``cli`` and
    ``postgres`` extras). Without it, or when nothing is masked, the command line stays as
    it is. The secret was visible from the start of the process to this call: prefer
    ``PGPASSWORD`` or ``~/.pgpass``, and ``$ADK_LITE_TOKEN``."""
    argv = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    masked = [mask_password(arg) for arg in argv]
    for i, arg in enumerate(masked):  # serve's --token (or an abbreviation argparse takes: --to)
        option, equals, _value = arg.partition("=")
        if len(option) > 2 and "--token".startswith(option):
            if equals:
                masked[i] = option + "=***"
            elif i + 1 < len(masked):
                masked[i + 1] = "***"
    if masked == argv:
        return
    try:
        import setproctitle
    except ImportError:
        return
    try:
        setproctitle.setproctitle(" ".join(masked))
    except Exception:  # noqa: BLE001 - hiding is best effort; the command still runs
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``adk-lite`` with ``argv`` (default ``sys.argv[1:]``) and return the exit code.

    Errors (bad arguments, a missing, empty, corrupt, foreign, newer or locked
    file, a refused output or import line) print one line on stderr and return 2
    (with ``--json``, ``{"error": "..."}``), passwords masked; a "no" at a confirmation
    returns 1; a closed stdout pipe returns 0 quietly; Ctrl-C returns 130. No traceback.
    Run as a process (``argv`` None), the command line's passwords are masked first
    (:func:`_hide_passwords`).
    """
    if argv is None:
        _hide_passwords()
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json, prog = "--json" in argv, "adk-lite"
    try:
        sys.stdout.reconfigure(errors="backslashreplace")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        pass
    try:
        args = build_parser().parse_args(argv)
        as_json, prog = args.json, f"adk-lite {args.command}"
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except KeyboardInterrupt:
        return 130
    except NotConfirmed as e:
        _fail(str(e), prog, as_json)
        return EXIT_PROBLEM
    except _ParseError as e:
        suffix = "" if as_json else f" (see {e.prog} --help)"
        return _fail(f"{e}{suffix}", e.prog, as_json)
    except (UsageError, errors.AdkLiteError, ValueError, TypeError, OverflowError, OSError) as e:
        return _fail(str(e), prog, as_json)
    except Exception as e:  # last resort: an unexpected failure is still one line, never a traceback
        return _fail(f"internal error: {type(e).__name__}: {e}", prog, as_json)


__all__ = ["main", "build_parser", "COMMANDS", "Command", "UsageError", "NotConfirmed", "parse_duration", "plural",
           "iso", "summarize", "BATCH", "EXIT_OK", "EXIT_PROBLEM", "EXIT_USAGE", "MAX_COUNT", "MAX_DURATION"]
