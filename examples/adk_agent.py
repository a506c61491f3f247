"""A real google.adk Runner whose sessions live in adk_lite: the run is resumed by a
second process from the file.

    python examples/adk_agent.py                 # turns 1-2 here, then a new process resumes with turns 3-4
    python examples/adk_agent.py --db my.db      # the same, on my.db (default: the zero-config file)
    python examples/adk_agent.py --resume        # only the second half: continue the stored session
    python examples/adk_agent.py --in-memory     # all four turns on ADK's InMemorySessionService

The agent is an ``LlmAgent`` with a scripted model (a ``BaseLlm`` subclass: no
network, no API key). The model answers from the request it is given: a user's
"remember <key> <value>" becomes a call of the ``remember`` tool, "what do you know?"
a call of ``recall``, and a tool's result becomes a text reply. ``remember`` writes
``user:``, ``app:``, session and ``temp:`` state through ``tool_context.state``;
``recall`` reads it back, so the resumed process answers with what the first one
stored. Needs the ``adk`` extra (``pip install -e ".[adk]"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from typing import Any, AsyncGenerator, NoReturn

from google.adk.agents import LlmAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.llm_request import LlmRequest
from google.adk.models.llm_response import LlmResponse
from google.adk.runners import Runner
from google.adk.sessions import BaseSessionService, InMemorySessionService
from google.adk.tools import FunctionTool, ToolContext
from google.genai import types

from adk_lite import AdkLiteError
from adk_lite.adk import DatabaseSessionService
from adk_lite.target import MEMORY, resolve

APP, USER, SESSION = "adk_lite_demo", "alice", "demo"
FIRST_TURNS = ["remember colour blue", "remember city Lisbon"]
SECOND_TURNS = ["remember food pizza", "what do you know?"]


class ScriptedLlm(BaseLlm):
    """A model that answers from the last message of the request, without network."""

    model: str = "scripted"

    async def generate_content_async(self, llm_request: LlmRequest,
                                     stream: bool = False) -> AsyncGenerator[LlmResponse, None]:
        last = llm_request.contents[-1].parts[-1]
        if last.function_response is not None:  # a tool answered: say so in text
            result = last.function_response.response
            if last.function_response.name == "recall":
                facts = ", ".join(f"{k} = {v}" for k, v in sorted(result["facts"].items()))
                text = (f"You told me: {facts}. I have seen {result['user_messages']} of your messages; "
                        f"this app stored {result['app_total']} facts in all.")
            else:
                text = f"Noted: {result['stored']}."
            yield reply(types.Part(text=text), llm_request)
            return
        words = (last.text or "").split()
        if words[:1] == ["remember"] and len(words) == 3:
            call = types.FunctionCall(name="remember", args={"key": words[1], "value": words[2]})
        else:
            call = types.FunctionCall(name="recall", args={})
        yield reply(types.Part(function_call=call), llm_request)


def reply(part: types.Part, llm_request: LlmRequest) -> LlmResponse:
    """One model message; token counts are made up (one per message in the request)."""
    usage = types.GenerateContentResponseUsageMetadata(
        prompt_token_count=len(llm_request.contents), candidates_token_count=1,
        total_token_count=len(llm_request.contents) + 1)
    return LlmResponse(content=types.Content(role="model", parts=[part]), usage_metadata=usage)


def remember(key: str, value: str, tool_context: ToolContext) -> dict:
    """Store a fact: in user state (every session of the user), an app-wide counter,
    the session's last key, and a temp: note that is never stored."""
    tool_context.state[f"user:{key}"] = value
    tool_context.state["app:facts_stored"] = tool_context.state.get("app:facts_stored", 0) + 1
    tool_context.state["last_key"] = key
    tool_context.state["temp:last_write"] = f"{key}={value}"
    return {"stored": f"{key} = {value}"}


def recall(tool_context: ToolContext) -> dict:
    """Read back every user: fact, the app counter and how many user messages the
    session holds (events from earlier turns, also from another process)."""
    state = tool_context.state.to_dict()
    facts = {k[len("user:"):]: v for k, v in state.items() if k.startswith("user:")}
    messages = sum(1 for e in tool_context.session.events if e.author == "user")
    return {"facts": facts, "app_total": state.get("app:facts_stored", 0), "user_messages": messages}


def describe(part: types.Part) -> str:
    if part.function_call:
        return f"call {part.function_call.name}({json.dumps(part.function_call.args)})"
    if part.function_response:
        return f"{part.function_response.name} -> {json.dumps(part.function_response.response)}"
    return part.text or ""


async def run_turns(service: BaseSessionService, turns: list[str]) -> None:
    agent = LlmAgent(name="memory_agent", model=ScriptedLlm(), instruction="Remember what the user says.",
                     tools=[FunctionTool(remember), FunctionTool(recall)])
    runner = Runner(app_name=APP, agent=agent, session_service=service)
    for text in turns:
        print(f"  user: {text}")
        message = types.Content(role="user", parts=[types.Part(text=text)])
        async for event in runner.run_async(user_id=USER, session_id=SESSION, new_message=message):
            for part in event.content.parts if event.content else []:
                print(f"  {event.author}: {describe(part)}")
            if event.actions.state_delta:
                print(f"      state_delta {json.dumps(event.actions.state_delta)}")
    await runner.close()


def summary(session: Any) -> dict:
    """Authors, contents (function-call ids left out: ADK makes them per run) and state."""
    def content(event):
        data = event.content.model_dump(mode="json", exclude_none=True) if event.content else None
        for part in (data or {}).get("parts", []):
            for key in ("function_call", "function_response"):
                part.get(key, {}).pop("id", None)
        return data
    return {"events": [{"author": e.author, "content": content(e)} for e in session.events], "state": session.state}


def open_service(args: argparse.Namespace) -> BaseSessionService:
    """The session service to run on: ADK's in-memory one, or adk_lite's on ``--db``.

    With ``--resume``, a missing or empty database file is refused before anything
    opens it (opening would create it). Exits with status 2 and one line on stderr
    for a database that cannot be used.
    """
    if args.in_memory:
        return InMemorySessionService()
    try:
        path = resolve(args.db)
        if args.resume and path != MEMORY and (not os.path.isfile(path) or os.path.getsize(path) == 0):
            fail(f"database {path} does not exist or is empty: run without --resume first")
        if args.json and any(same_file(args.json, path + suffix) for suffix in ("", "-wal", "-shm", "-journal")):
            fail(f"--json {args.json} is the database {path} or one of its files")
        return DatabaseSessionService(args.db)
    except (AdkLiteError, ValueError, TypeError) as e:
        fail(str(e))


def same_file(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` name one file: the same real path (``b`` may not exist
    yet, as a ``-wal``), or the same device and inode (links)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def write_json(path: str, data: Any) -> None:
    """Write ``data`` as JSON to ``path``: a temporary file (mode 0600) in the same
    folder, renamed over ``path`` at the end, so no half-written file is ever left."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), prefix=".adk_agent-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def fail(message: str) -> NoReturn:
    """Print ``error: message`` on stderr and exit with status 2 (an unusable argument)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


async def main(args: argparse.Namespace) -> None:
    service = open_service(args)
    where = "ADK's InMemorySessionService" if args.in_memory else service.path
    if args.resume:
        session = await service.get_session(app_name=APP, user_id=USER, session_id=SESSION)
        if session is None:
            sys.exit(f"no session {SESSION!r} in {where}: run without --resume first")
        print(f"[process {os.getpid()}] resumed {SESSION!r} from {where}: {len(session.events)} events, "
              f"state {json.dumps(session.state, sort_keys=True)}")
        turns = SECOND_TURNS
    else:
        await service.delete_session(app_name=APP, user_id=USER, session_id=SESSION)  # start the demo over
        await service.create_session(app_name=APP, user_id=USER, session_id=SESSION)
        print(f"[process {os.getpid()}] new session {SESSION!r} in {where}")
        turns = FIRST_TURNS + SECOND_TURNS if args.in_memory else FIRST_TURNS
    await run_turns(service, turns)
    session = await service.get_session(app_name=APP, user_id=USER, session_id=SESSION)
    print(f"[process {os.getpid()}] {len(session.events)} events stored, state "
          f"{json.dumps(session.state, sort_keys=True)}")
    if args.json and (args.resume or args.in_memory):
        write_json(args.json, summary(session))
    if isinstance(service, DatabaseSessionService):
        await service.close()
    if not (args.resume or args.in_memory):
        print("\nA new process resumes the session from the file:\n", flush=True)
        command = [sys.executable, os.path.abspath(__file__), "--resume", "--db", service.path]
        if args.json:
            command += ["--json", args.json]
        sys.exit(subprocess.run(command).returncode)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", help="the database file (default: $ADK_LITE_DB, else .adk/sessions.sqlite3)")
    parser.add_argument("--resume", action="store_true", help="continue the stored session (turns 3-4) and stop")
    parser.add_argument("--in-memory", action="store_true", help="run all turns on ADK's InMemorySessionService")
    parser.add_argument("--json", metavar="PATH", help="write the final events and state as JSON (for tests)")
    asyncio.run(main(parser.parse_args()))
