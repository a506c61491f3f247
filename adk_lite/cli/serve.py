"""``adk-lite serve``: a local read-only web browser on the database (:mod:`adk_lite.web`)."""

from __future__ import annotations

import argparse
import os
import sys

from .common import EXIT_OK, Command, UsageError, _open, add_db


def cmd_serve(args: argparse.Namespace) -> int:
    """``adk-lite serve``: a local read-only web browser on the database
    (:mod:`adk_lite.web`, the ``web`` extra) until Ctrl-C."""
    try:
        from .. import web
    except ImportError as e:
        raise UsageError(f'adk-lite serve needs the web extra: pip install -e ".[web]" ({e})') from e
    web.check_bind(args.host, args.token)
    with _open(args) as svc:
        def listening(url: str) -> None:
            print(f"serving {svc.path} read-only on {url} (Ctrl-C stops)", file=sys.stderr, flush=True)

        web.serve(svc, args.host, args.port, token=args.token, open_browser=args.open, on_listen=listening)
    return EXIT_OK


def _port(text: str) -> int:
    """A TCP port, 0 to 65535 (0: any free port)."""
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (0 to 65535)")
    return int(text)


def _serve_arguments(p: argparse.ArgumentParser) -> None:
    add_db(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; beyond loopback only with --token)")
    p.add_argument("--port", type=_port, default=8765, help="TCP port (default 8765)")
    p.add_argument("--token", default=os.environ.get("ADK_LITE_TOKEN") or None,
                   help="every request must carry it (Authorization: Bearer T, or ?token=T); "
                        "default $ADK_LITE_TOKEN, which no other user can see (ps shows arguments)")
    p.add_argument("--open", action="store_true", help="open the default browser on it")


COMMANDS = [
    Command("serve", cmd_serve, "a local read-only web browser: sessions, search, one session's events, usage, stats",
            "adk-lite serve .adk/sessions.sqlite3 --port 8765 --open", _serve_arguments),
]
