"""Time an online backup of a big database while another process appends to it.

    python -m bench.make_big_db /tmp/big.sqlite3          # about 70 MB (10,000 sessions, 200,000 events)
    python -m bench.backup /tmp/big.sqlite3 [--runs 3]

Each run starts a writer process that appends events to the file in a loop, waits
until it has appended 200, then times, in this process, ``svc.backup()`` (SQLite's
backup API from one pinned read snapshot, the method adk_lite uses) and, for
comparison, ``VACUUM INTO`` (also one snapshot, but it rebuilds every table and
index). It prints seconds, MB/s and how many events the writer appended meanwhile.
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time

from adk_lite import DatabaseSessionService

WRITER = """
import itertools, sys, time
from adk_lite import DatabaseSessionService, Event
svc = DatabaseSessionService(sys.argv[1])
session = svc.create_session("bench", "writer")
for i in itertools.count():
    svc.append_event(session, Event(author="user", content={"parts": [{"text": "x" * 300}]}))
    print(time.time(), flush=True)
"""


def timed(path: str, method: str, folder: str) -> tuple[float, int, int]:
    """Return (seconds, bytes of the copy, events the writer appended meanwhile)."""
    dest = os.path.join(folder, f"{method}.sqlite3")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(200):
            writer.stdout.readline()
        began, started = time.time(), time.perf_counter()
        if method == "backup":
            with DatabaseSessionService(path) as svc:
                svc.backup(dest)
        else:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("VACUUM INTO ?", (dest,))
            conn.close()
        seconds, ended = time.perf_counter() - started, time.time()
        time.sleep(0.2)
    finally:
        writer.kill()
        rest = writer.communicate()[0]
    appended = sum(began <= float(line) <= ended for line in rest.split())
    size = os.path.getsize(dest)
    os.unlink(dest)
    return seconds, size, appended


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.path))) as folder:
        for method in ("backup", "vacuum_into"):
            for _ in range(args.runs):
                seconds, size, appended = timed(args.path, method, folder)
                print(f"{method:12} {size / 1e6:7.1f} MB in {seconds:6.2f} s = {size / 1e6 / seconds:6.0f} MB/s; "
                      f"the writer appended {appended} events meanwhile", flush=True)


if __name__ == "__main__":
    main()
