"""``python -m bench.erase PATH``: what ``delete_user`` costs on a real file, and which
part of it is the search index's ``optimize``.

PATH is a file made by ``python -m bench.make_big_db`` (users ``user-N`` of apps ``app-M``);
it is copied twice first (PATH is never changed). Prints the file's events and index
size, the time of an FTS5 ``optimize`` alone on one copy (the part of an erase that
grows with the whole index), and of one ``delete_user`` on another.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import tempfile
import time

from adk_lite import DatabaseSessionService


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--app", default="app-0")
    parser.add_argument("--user", default="user-3")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        first, second = os.path.join(folder, "a.sqlite3"), os.path.join(folder, "b.sqlite3")
        shutil.copyfile(args.path, first)
        shutil.copyfile(args.path, second)
        conn = sqlite3.connect(first, isolation_level=None)
        events = conn.execute("SELECT COUNT(*) FROM adk_events").fetchone()[0]
        index = conn.execute("SELECT SUM(length(block)) FROM adk_events_fts_data").fetchone()[0]
        start = time.perf_counter()
        conn.execute("INSERT INTO adk_events_fts (adk_events_fts) VALUES ('optimize')")
        optimize = time.perf_counter() - start
        conn.close()
        with DatabaseSessionService(second) as svc:
            start = time.perf_counter()
            result = svc.delete_user(args.app, args.user)
            erase = time.perf_counter() - start
    print(f"file: {os.path.getsize(args.path) / 2**20:.1f} MiB, {events} events, index {index / 2**20:.1f} MiB")
    print(f"FTS5 optimize alone: {optimize * 1000:.0f} ms")
    print(f"delete_user: {erase * 1000:.0f} ms ({result['sessions']} sessions, {result['events']} events)")


if __name__ == "__main__":
    main()
