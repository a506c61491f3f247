"""A real ``google.adk`` Runner turn on a long session: the adapter beside ADK's in-memory service.

Run it alone as ``python -m bench.turn [--events 1000] [--turns 40]``; ``python -m
bench`` runs it too (target 1 of round 3). One process, two ``Runner`` objects on
the same ``LlmAgent`` (named like the workload's agent, so the prefilled events are
its own): one on :class:`adk_lite.adk.DatabaseSessionService` (a file), one on
ADK's ``InMemorySessionService``. Each session is prefilled with the same
``--events`` workload events; then the turns run interleaved, turn k of one right
after turn k of the other, and the figure is the median of the per-turn ratios
(adapter / in-memory) beside the ratio of the medians.

A turn is what a user's message costs: ``Runner.run_async`` reads the session
(``get_session``), appends the user's message, calls the scripted model (a
``function_call`` of ``lookup_order``), appends it, runs the tool, appends its
response, calls the model again (text) and appends that: 4 events a turn, each
appended through the service. The model and the tool answer at once, so what is
left is ADK's own work plus the session service's.

Before the timed turns one untimed turn per service counts the service calls a
turn makes (``get_session``, ``append_event``) and the events the reads hand out.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from typing import Any, AsyncGenerator

from . import drivers, workload
from .suite import summary
from .workload import AGENT, APP


def _agent() -> Any:
    """The ``LlmAgent`` (named :data:`bench.workload.AGENT`) with a scripted model and one tool."""
    from google.adk.agents import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_request import LlmRequest
    from google.adk.models.llm_response import LlmResponse
    from google.genai import types

    class ScriptedLlm(BaseLlm):
        """First call: a function_call of ``lookup_order``; after the tool's answer: text."""

        model: str = "scripted"

        async def generate_content_async(self, llm_request: LlmRequest,
                                         stream: bool = False) -> AsyncGenerator[LlmResponse, None]:
            last = llm_request.contents[-1].parts[-1]
            if last.function_response is not None:
                part = types.Part(text=f"Order {last.function_response.response.get('order_id')} is on its way.")
            else:
                part = types.Part(function_call=types.FunctionCall(name="lookup_order", args={"order_id": "A-000042"}))
            usage = types.GenerateContentResponseUsageMetadata(prompt_token_count=len(llm_request.contents),
                                                               candidates_token_count=1,
                                                               total_token_count=len(llm_request.contents) + 1)
            yield LlmResponse(content=types.Content(role="model", parts=[part]), usage_metadata=usage)

    def lookup_order(order_id: str) -> dict:
        """Look an order up by its id."""
        return {"order_id": order_id, "status": "shipped", "eta_days": 2}

    return LlmAgent(name=AGENT, model=ScriptedLlm(), instruction="Answer about orders.", tools=[lookup_order])


class _Counter:
    """Counts calls of a service's ``get_session`` / ``append_event`` (set on the instance, removed after)."""

    def __init__(self, svc: Any) -> None:
        self.svc, self.calls = svc, {"get_session": 0, "append_event": 0, "events_read": 0}
        for name in ("get_session", "append_event"):
            setattr(svc, name, self._wrap(name, getattr(svc, name)))

    def _wrap(self, name: str, fn: Any) -> Any:
        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            out = await fn(*args, **kwargs)
            if name == "get_session" and out is not None:
                self.calls["events_read"] += len(out.events)
            return out
        return counted

    def remove(self) -> None:
        for name in ("get_session", "append_event"):
            delattr(self.svc, name)


async def _turns(workdir: str, prefill: int, turns: int) -> dict[str, Any]:
    from google.adk.runners import Runner
    from google.genai import types

    agent = _agent()
    sides = {"adapter": drivers.make("adk_lite_adk", os.path.join(workdir, "turn-adapter.db")),
             "inmemory": drivers.make("adk_inmemory", None)}
    t0 = time.time() - 3600
    dicts = workload.events(("turn", prefill), prefill, t0)
    runners, counts = {}, {}
    for name, d in sides.items():
        await d.seed(await d.create("user-0", "turn", {}), dicts)
        runners[name] = Runner(app_name=APP, agent=agent, session_service=d.svc)

    async def one(name: str, k: int) -> int:
        message = types.Content(role="user", parts=[types.Part(text=f"Where is my order? ({k})")])
        n = 0
        async for _ in runners[name].run_async(user_id="user-0", session_id="turn", new_message=message):
            n += 1
        return n

    for name, d in sides.items():  # one untimed turn: what a turn calls
        counter = _Counter(d.svc)
        await one(name, -1)
        counter.remove()
        counts[name] = counter.calls
    clock, cpu = time.perf_counter, time.process_time
    collections = {name: [0, 0, 0] for name in sides}
    current: list = [None]

    def count(phase: str, info: dict) -> None:
        if phase == "stop" and current[0] is not None:
            collections[current[0]][info["generation"]] += 1

    async def timed(collect_first: bool) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
        times: dict[str, list[float]] = {name: [] for name in sides}
        cpus: dict[str, list[float]] = {name: [] for name in sides}
        for k in range(turns):
            order = ("adapter", "inmemory") if k % 2 == 0 else ("inmemory", "adapter")  # neither always first
            for name in order:
                if collect_first:
                    gc.collect()  # untimed: each turn starts from the same collector state
                current[0] = None if collect_first else name
                start, start_cpu = clock(), cpu()
                yielded = await one(name, k)
                times[name].append(clock() - start)
                cpus[name].append(cpu() - start_cpu)
                current[0] = None
                assert yielded == 3, f"{name}: a turn yielded {yielded} events, not 3"  # call, response, text
        return times, cpus

    gc.callbacks.append(count)
    try:
        natural, _ = await timed(False)
        times, cpus = await timed(True)
    finally:
        gc.callbacks.remove(count)
    sizes = {}
    for name, d in sides.items():
        got = await d.get("user-0", "turn")
        sizes[name] = len(got.events)
        await d.close()
    assert sizes["adapter"] == sizes["inmemory"] == prefill + 4 * (2 * turns + 1), sizes
    per_turn = [a / m for a, m in zip(times["adapter"], times["inmemory"])]
    cpu_per_turn = [a / m for a, m in zip(cpus["adapter"], cpus["inmemory"]) if m > 0]
    a, m = summary(times["adapter"]), summary(times["inmemory"])
    return {"events_prefilled": prefill, "turns": turns, "adapter": a, "inmemory": m, "calls_per_turn": counts,
            "ratio_p50": round(statistics.median(per_turn), 3),
            "ratio_of_p50s": round(a["p50_us"] / m["p50_us"], 3),
            "cpu_ratio_p50": round(statistics.median(cpu_per_turn), 3) if cpu_per_turn else None,
            "natural_gc": {"ratio_of_means": round(sum(natural["adapter"]) / sum(natural["inmemory"]), 3),
                           "collections": collections}}


def measure_turns(workdir: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """Runner turns through the adapter and ADK's in-memory service, interleaved
    (child-process entry point, like :func:`bench.adapter.measure_reads`).

    Args:
        sizes: ``turn_prefill`` (events in the session before the first turn) and
            ``turn_reps`` (timed turns per service).

    Returns:
        ``{"events_prefilled", "turns", "adapter", "inmemory" (summaries of a turn's
        seconds), "calls_per_turn" ({service: {"get_session", "append_event",
        "events_read"}}), "ratio_p50" (median of per-turn ratios of wall time), "ratio_of_p50s",
        "cpu_ratio_p50" (median of per-turn ratios of the process's CPU time, all threads: what a
        loaded machine disturbs least), "natural_gc": {"ratio_of_means", "collections": {service:
        [gen0, gen1, gen2]}}}``: the turn ratios come from turns that each start after an untimed
        ``gc.collect()``; ``natural_gc`` from as many turns before them with the collector left
        alone (who pays a full collection then depends on when it falls, so only the ratio of
        the summed times and the collections each side's turns set off are kept).
    """
    return asyncio.run(_turns(workdir, sizes["turn_prefill"], sizes["turn_reps"]))


def main(argv: Any = None) -> None:
    """``python -m bench.turn``: measure and print the figures."""
    p = argparse.ArgumentParser(prog="python -m bench.turn", description=__doc__.split("\n\n")[0])
    p.add_argument("--events", type=int, default=1000, help="events in the session before the first turn")
    p.add_argument("--turns", type=int, default=40, help="timed turns per service (interleaved)")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        out = measure_turns(folder, {"turn_prefill": args.events, "turn_reps": args.turns})
    print(f"Runner turn on a {out['events_prefilled']:,}-event session, {out['turns']} turns each, interleaved: "
          f"adapter p50 {out['adapter']['p50_us'] / 1000:.2f} ms, InMemory p50 {out['inmemory']['p50_us'] / 1000:.2f} "
          f"ms; median per-turn ratio {out['ratio_p50']}x (ratio of p50s {out['ratio_of_p50s']}x; of CPU time "
          f"{out['cpu_ratio_p50']}x; target <= 1.05)")
    print(f"calls per turn: {out['calls_per_turn']}; collector left alone: {out['natural_gc']}; "
          f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
