"""Round 3, target 7: file bytes per event, search index included, beside the floor
with the index (:class:`bench.floor.Floor` with ``indexed=True``: the same rows and the
same FTS5 text, written by the stdlib ``sqlite3`` without adk_lite's triggers).

Both files get the same agent-shaped events (:mod:`bench.workload`), one
``append_event`` at a time, alternating between the two, so FTS5 writes its segments
the same way in both; each file is then VACUUMed and its size divided by the events.
The plain floor (no index) is measured too, for what the index itself costs.

    python -m bench.filebytes [--sessions 100] [--turns 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from typing import Any

from . import drivers, workload
from .suite import file_bytes_after_vacuum


def measure_bytes(workdir: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """Bytes per event after VACUUM of adk_lite's file and the two floors' (child-process
    entry point); ``sizes``: ``paired_sessions`` sessions of ``paired_turns`` turns.

    Returns:
        ``{"events", "adk_lite", "floor_indexed", "floor_no_index"}`` (bytes per event),
        ``"ratio"`` (adk_lite / floor_indexed) and ``"index_share"`` (floor_indexed /
        floor_no_index).
    """
    paths = {k: os.path.join(workdir, f"bytes-{k}.db") for k in ("adk_lite", "floor_indexed", "floor_no_index")}
    for p in paths.values():
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(p + suffix):
                os.remove(p + suffix)
    sides = {"adk_lite": drivers.make("adk_lite", paths["adk_lite"]),
             "floor_indexed": drivers.FloorDriver(paths["floor_indexed"], indexed=True),
             "floor_no_index": drivers.FloorDriver(paths["floor_no_index"])}
    import sqlite3  # the plain floor: the same schema with no search index at all
    conn = sqlite3.connect(paths["floor_no_index"], isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DROP TABLE IF EXISTS adk_events_fts")
    conn.close()
    n, turns, t0 = sizes["paired_sessions"], sizes["paired_turns"], time.time()
    dicts = [workload.events(("bytes", i), 4 * turns, t0) for i in range(n)]
    handles = {k: [d.create(f"user-{i % sizes['users']}", workload.session_id("bytes", i), {}) for i in range(n)]
               for k, d in sides.items()}
    events = 0
    for k in range(4 * turns):
        for i in range(n):
            for name, d in sides.items():
                d.append(handles[name][i], d.event(dicts[i][k]))
            events += 1
    for d in sides.values():
        d.close()
    out: dict[str, Any] = {"events": events}
    for name, path in paths.items():
        out[name] = round(file_bytes_after_vacuum(path) / events, 1)
    out["ratio"] = round(out["adk_lite"] / out["floor_indexed"], 3)
    out["index_share"] = round(out["floor_indexed"] / out["floor_no_index"], 3)
    return out


def target(fig: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """The target row (as :func:`bench.report.targets`)."""
    from .report import _goal

    x = fig.get("ratio")
    return _goal("file bytes per event after VACUUM, search index included <= 1.3x the floor with the index's "
                 "(same events, one append at a time)", x, x is not None and x <= 1.3,
                 f"{x}x ({fig['adk_lite']:.0f} vs {fig['floor_indexed']:.0f} B/event over {fig['events']:,} events; "
                 f"the floor without an index {fig['floor_no_index']:.0f} B)" if x is not None else "",
                 fig.get("error", "not measured"), quick)


def main() -> None:
    """``python -m bench.filebytes``: measure and print the JSON and the target row."""
    p = argparse.ArgumentParser(prog="python -m bench.filebytes", description=__doc__.splitlines()[0])
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--turns", type=int, default=20)
    args = p.parse_args()
    work = tempfile.mkdtemp(prefix="adk_lite_bytes_")
    try:
        fig = measure_bytes(work, {"paired_sessions": args.sessions, "paired_turns": args.turns, "users": 50})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(fig, indent=2))
    g = target(fig)
    print(f"| {g['target']} | {g['shown']} | {g['verdict']} |")


if __name__ == "__main__":
    main()
