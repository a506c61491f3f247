"""``python -m bench.trim``: loading a long compacted session before and after
``trim_compacted``.

One session of ``--events`` events (default 5,000) of which ``--compacted`` (default
4,800) lie inside the range of one ADK-shaped compaction event, each with a ~300-byte
message; ``get_session`` is timed ``--repeat`` times on the untrimmed session, then
after ``trim_compacted``, on the sync API and on the ADK adapter (which also builds
pydantic Events). Prints the medians in milliseconds; ``--json PATH`` writes them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time

from adk_lite import DatabaseSessionService, Event, EventActions

from .harness import finish, median_ms

APP, USER, SID = "bench", "u", "long"


def build(path: str, events: int, compacted: int) -> None:
    """Write the session: raw events at t = 1..events, and one compaction event
    covering t = 1..compacted, appended after the last compacted event."""
    with DatabaseSessionService(path) as svc:
        session = svc.create_session(APP, USER, session_id=SID)
        batch = []
        for t in range(1, events + 1):
            batch.append(Event(invocation_id=f"i{t // 4}", author="user" if t % 2 else "agent", timestamp=float(t),
                               content={"role": "user", "parts": [{"text": f"message {t} " + "x" * 300}]}))
            if t == compacted:
                batch.append(Event(invocation_id="c", timestamp=t + 0.5, actions=EventActions(extra={"compaction": {
                    "start_timestamp": 1.0, "end_timestamp": float(t),
                    "compacted_content": {"role": "model", "parts": [{"text": "summary " + "y" * 2000}]}}})))
            if len(batch) >= 500:
                svc.append_events(session, batch)
                batch = []
        if batch:
            svc.append_events(session, batch)


def measure(path: str, repeat: int) -> dict[str, float]:
    """Median ``get_session`` time (ms) on the sync API and the ADK adapter."""
    out = {}
    with DatabaseSessionService(path) as svc:
        out["sync_ms"] = median_ms(lambda: svc.get_session(APP, USER, SID), repeat)
    try:
        from adk_lite.adk import DatabaseSessionService as AdkService
    except ImportError:
        return out

    async def adk() -> float:
        svc = AdkService(path)
        loop_times = []
        for _ in range(repeat):
            start = time.perf_counter()
            await svc.get_session(app_name=APP, user_id=USER, session_id=SID)
            loop_times.append(time.perf_counter() - start)
        await svc.close()
        return statistics.median(loop_times) * 1000
    out["adk_ms"] = asyncio.run(adk())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--compacted", type=int, default=4800)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trim.db")
        build(path, args.events, args.compacted)
        before = measure(path, args.repeat)
        with DatabaseSessionService(path) as svc:
            trimmed = svc.trim_compacted(APP, USER, SID)
            left = svc.get_event_count(APP, USER, SID)
        after = measure(path, args.repeat)
    result = {"events": args.events + 1, "compacted": args.compacted, "trimmed": trimmed, "events_left": left,
              "before": before, "after": after}
    for api in before:
        print(f"get_session ({api[:-3]}): {before[api]:.1f} ms with {args.events + 1} events -> "
              f"{after[api]:.1f} ms with {left} after trimming {trimmed['events']} ({trimmed['bytes']} bytes)")
    finish(args.json, result, [])


if __name__ == "__main__":
    main()
