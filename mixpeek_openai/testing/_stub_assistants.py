"""Assistants, threads, messages and the run state machine of :class:`StubOpenAI`.

A run advances one step per ``GET`` (``queued -> in_progress -> requires_action | completed
| ...``); a streamed create or submit drives it to its next stop at once and answers the
Assistants stream events the openai client's ``AssistantEventHandler`` parses.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._stub_chat import chat_tools
from ._stub_core import Incoming, Reply, StubCore, sse
from ._stub_model import (
    ConvItem,
    OfferedTool,
    StubAPIError,
    StubToolCall,
    StubTurn,
    content_text,
    estimate_tokens,
    select_tools,
)

ACTIVE = frozenset({"queued", "in_progress", "requires_action", "cancelling"})
"""Run statuses that lock the thread."""

TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
"""Run statuses after which nothing changes."""

_Event = tuple[str, dict[str, Any]]


@dataclass
class RunState:
    """A run's public JSON plus what the stub needs to drive it."""

    data: dict[str, Any]
    tools: list[OfferedTool]
    turn: StubTurn | None = None
    polls_left: int = 0
    pending: list[str] = field(default_factory=list)
    items: list[ConvItem] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    gets: int = 0

    @property
    def status(self) -> str:
        """The run's current status."""
        return str(self.data["status"])


# ---------------------------------------------------------------------------
# Assistants
# ---------------------------------------------------------------------------


def create_assistant(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/assistants``."""
    body = req.obj()
    if not body.get("model"):
        raise StubAPIError(400, "Missing required parameter: 'model'.", param="model")
    chat_tools(body.get("tools"))
    assistant = {
        "id": core.new_id("asst"),
        "object": "assistant",
        "created_at": core.now_int(),
        "name": body.get("name"),
        "description": body.get("description"),
        "model": body["model"],
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "tool_resources": body.get("tool_resources") or {},
        "metadata": body.get("metadata") or {},
        "temperature": body.get("temperature", 1.0),
        "top_p": body.get("top_p", 1.0),
        "response_format": body.get("response_format", "auto"),
    }
    with core.lock:
        core.assistants[assistant["id"]] = assistant
    return Reply(assistant)


def _assistant(core: StubCore, assistant_id: str) -> dict[str, Any]:
    with core.lock:
        assistant = core.assistants.get(assistant_id)
    if assistant is None:
        raise StubAPIError(404, f"No assistant found with id '{assistant_id}'.")
    return assistant


def get_assistant(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/assistants/{id}``."""
    return Reply(_assistant(core, req.args["assistant_id"]))


def update_assistant(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/assistants/{id}``."""
    body = req.obj()
    if "tools" in body:
        chat_tools(body.get("tools"))
    with core.lock:
        assistant = _assistant(core, req.args["assistant_id"])
        assistant.update({k: v for k, v in body.items() if k != "id"})
        return Reply(dict(assistant))


def delete_assistant(core: StubCore, req: Incoming) -> Reply:
    """``DELETE /v1/assistants/{id}``."""
    assistant_id = req.args["assistant_id"]
    _assistant(core, assistant_id)
    with core.lock:
        del core.assistants[assistant_id]
    return Reply({"id": assistant_id, "object": "assistant.deleted", "deleted": True})


def list_assistants(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/assistants``."""
    with core.lock:
        data = list(core.assistants.values())
    return Reply(_page(data, req.params))


def _page(data: list[dict[str, Any]], params: Mapping[str, str]) -> dict[str, Any]:
    """A cursor page (``order``, ``limit``, ``after``, ``before``) over ``data`` (ascending)."""
    if params.get("order", "desc") == "desc":
        data = list(reversed(data))
    ids = [d["id"] for d in data]
    if params.get("after") in ids:
        data = data[ids.index(params["after"]) + 1 :]
    elif params.get("before") in ids:
        data = data[: ids.index(params["before"])]
    limit = int(params.get("limit", 20))
    page = data[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(data) > limit,
    }


# ---------------------------------------------------------------------------
# Threads and messages
# ---------------------------------------------------------------------------


def _thread(core: StubCore, thread_id: str) -> dict[str, Any]:
    with core.lock:
        thread = core.threads.get(thread_id)
    if thread is None:
        raise StubAPIError(404, f"No thread found with id '{thread_id}'.")
    return thread


def _new_thread(core: StubCore, body: Mapping[str, Any]) -> dict[str, Any]:
    thread_id = core.new_id("thread")
    thread: dict[str, Any] = {
        "id": thread_id,
        "object": "thread",
        "created_at": core.now_int(),
        "metadata": body.get("metadata") or {},
        "tool_resources": body.get("tool_resources") or {},
    }
    with core.lock:
        core.threads[thread_id] = thread
        core.messages[thread_id] = []
    for i, msg in enumerate(body.get("messages") or []):
        _add_message(core, thread_id, msg, f"messages[{i}]")
    return thread


def create_thread(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/threads`` (optionally with initial messages)."""
    return Reply(_new_thread(core, req.obj()))


def get_thread(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/threads/{id}``."""
    return Reply(_thread(core, req.args["thread_id"]))


def delete_thread(core: StubCore, req: Incoming) -> Reply:
    """``DELETE /v1/threads/{id}``."""
    thread_id = req.args["thread_id"]
    _thread(core, thread_id)
    with core.lock:
        del core.threads[thread_id]
    return Reply({"id": thread_id, "object": "thread.deleted", "deleted": True})


def _message_content(content: Any) -> list[dict[str, Any]]:
    """Message content as the API stores it: text parts, and image parts as given."""
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    out: list[dict[str, Any]] = []
    for part in content or []:
        if not isinstance(part, Mapping):
            continue
        if part.get("type") == "text":
            out.append({"type": "text", "text": {"value": content_text([part]), "annotations": []}})
        elif part.get("type") in ("image_file", "image_url"):
            out.append(dict(part))
    return out


def _add_message(
    core: StubCore, thread_id: str, body: Any, param: str = "content"
) -> dict[str, Any]:
    if not isinstance(body, Mapping):
        raise StubAPIError(400, f"Invalid type for '{param}'.", param=param)
    role = body.get("role")
    if role not in ("user", "assistant"):
        raise StubAPIError(
            400,
            f"Invalid value: '{role}'. Supported values are: 'user' and 'assistant'.",
            param="role",
            code="invalid_value",
        )
    if body.get("content") is None:
        raise StubAPIError(400, "Missing required parameter: 'content'.", param="content")
    msg = _message(core, thread_id, role, _message_content(body.get("content")))
    msg["metadata"] = body.get("metadata") or {}
    msg["attachments"] = body.get("attachments") or []
    with core.lock:
        core.messages[thread_id].append(msg)
    return msg


def _message(
    core: StubCore,
    thread_id: str,
    role: str,
    content: list[dict[str, Any]],
    run: RunState | None = None,
    status: str = "completed",
) -> dict[str, Any]:
    now = core.now_int()
    return {
        "id": core.new_id("msg"),
        "object": "thread.message",
        "created_at": now,
        "thread_id": thread_id,
        "role": role,
        "content": content,
        "assistant_id": run.data["assistant_id"] if run else None,
        "run_id": run.data["id"] if run else None,
        "attachments": [],
        "metadata": {},
        "status": status,
        "completed_at": now if status == "completed" else None,
        "incomplete_at": now if status == "incomplete" else None,
        "incomplete_details": {"reason": "max_tokens"} if status == "incomplete" else None,
    }


def _active_run(core: StubCore, thread_id: str) -> RunState | None:
    with core.lock:
        for run in core.runs.values():
            if isinstance(run, RunState) and run.data["thread_id"] == thread_id:
                refresh(core, run)
                if run.status in ACTIVE:
                    return run
    return None


def create_message(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/threads/{t}/messages``: refused while a run is active on the thread."""
    thread_id = req.args["thread_id"]
    _thread(core, thread_id)
    with core.lock:
        active = _active_run(core, thread_id)
        if active is not None:
            raise StubAPIError(
                400,
                f"Can't add messages to {thread_id} while a run {active.data['id']} is active.",
            )
        return Reply(_add_message(core, thread_id, req.obj()))


def list_messages(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/threads/{t}/messages`` (``order``, ``limit``, ``after``, ``run_id``)."""
    thread_id = req.args["thread_id"]
    _thread(core, thread_id)
    with core.lock:
        data = list(core.messages[thread_id])
    if req.params.get("run_id"):
        data = [m for m in data if m["run_id"] == req.params["run_id"]]
    return Reply(_page(data, req.params))


def get_message(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/threads/{t}/messages/{m}``."""
    thread_id = req.args["thread_id"]
    _thread(core, thread_id)
    with core.lock:
        for msg in core.messages[thread_id]:
            if msg["id"] == req.args["message_id"]:
                return Reply(msg)
    raise StubAPIError(404, f"No message found with id '{req.args['message_id']}'.")


# ---------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------


def _run(core: StubCore, req: Incoming) -> RunState:
    thread_id, run_id = req.args["thread_id"], req.args["run_id"]
    with core.lock:
        run = core.runs.get(run_id)
    if not isinstance(run, RunState) or run.data["thread_id"] != thread_id:
        raise StubAPIError(404, f"No run found with id '{run_id}'.")
    return run


def _poll_headers(core: StubCore) -> dict[str, str]:
    if core.poll_after_ms is None:
        return {}
    return {"openai-poll-after-ms": str(core.poll_after_ms)}


def _run_reply(core: StubCore, run: RunState) -> Reply:
    return Reply(dict(run.data), headers=_poll_headers(core))


def create_run(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/threads/{t}/runs``: a ``queued`` run, or its events when ``stream``."""
    thread_id = req.args["thread_id"]
    _thread(core, thread_id)
    return _start_run(core, thread_id, req.obj())


def create_thread_and_run(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/threads/runs``: a new thread (from ``thread``) and a run on it."""
    body = req.obj()
    _assistant(core, str(body.get("assistant_id")))
    thread = _new_thread(core, body.get("thread") or {})
    return _start_run(core, thread["id"], body)


def _start_run(core: StubCore, thread_id: str, body: Mapping[str, Any]) -> Reply:
    assistant = _assistant(core, str(body.get("assistant_id")))
    raw_tools = body.get("tools") if body.get("tools") is not None else assistant["tools"]
    tools = chat_tools(raw_tools)
    with core.lock:
        active = _active_run(core, thread_id)
        if active is not None:
            raise StubAPIError(
                400, f"Thread {thread_id} already has an active run {active.data['id']}."
            )
        for i, msg in enumerate(body.get("additional_messages") or []):
            _add_message(core, thread_id, msg, f"additional_messages[{i}]")
        now = core.now_int()
        instructions = body.get("instructions") or assistant.get("instructions") or ""
        if body.get("additional_instructions"):
            instructions = f"{instructions}\n{body['additional_instructions']}".strip()
        run = RunState(
            data={
                "id": core.new_id("run"),
                "object": "thread.run",
                "created_at": now,
                "thread_id": thread_id,
                "assistant_id": assistant["id"],
                "status": "queued",
                "required_action": None,
                "last_error": None,
                "expires_at": int(now + core.run_ttl_s),
                "started_at": None,
                "cancelled_at": None,
                "failed_at": None,
                "completed_at": None,
                "incomplete_details": None,
                "model": body.get("model") or assistant["model"],
                "instructions": instructions,
                "tools": raw_tools or [],
                "metadata": body.get("metadata") or {},
                "usage": None,
                "temperature": body.get("temperature", 1.0),
                "top_p": body.get("top_p", 1.0),
                "max_prompt_tokens": body.get("max_prompt_tokens"),
                "max_completion_tokens": body.get("max_completion_tokens"),
                "truncation_strategy": {"type": "auto", "last_messages": None},
                "incomplete_at": None,
                "response_format": body.get("response_format", "auto"),
                "tool_choice": body.get("tool_choice", "auto"),
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
            },
            tools=select_tools(tools, body.get("tool_choice")),
        )
        core.runs[run.data["id"]] = run
        if not body.get("stream"):
            return _run_reply(core, run)
        events: list[_Event] = [
            ("thread.run.created", dict(run.data)),
            ("thread.run.queued", dict(run.data)),
        ]
        _drive(core, run, events)
        return Reply(sse=_encode(events))


def _encode(events: list[_Event]) -> bytes:
    return b"".join(sse(data, event=name) for name, data in events) + sse("[DONE]", "done")


def _drive(core: StubCore, run: RunState, events: list[_Event]) -> None:
    """Advance a streamed run until it needs the caller or ends (no polls in between)."""
    guard = 0
    while run.status not in TERMINAL and run.status != "requires_action" and guard < 1000:
        run.polls_left = 0
        step(core, run, events)
        guard += 1


def refresh(core: StubCore, run: RunState) -> None:
    """Expire an active run whose ``expires_at`` has passed."""
    data = run.data
    if run.status in ACTIVE and core.now() >= data["expires_at"]:
        _finish(core, run, "expired")


def _finish(core: StubCore, run: RunState, status: str, events: list[_Event] | None = None) -> None:
    data = run.data
    now = core.now_int()
    data["status"] = status
    data["required_action"] = None
    if status == "completed":
        data["completed_at"] = now
    elif status == "failed":
        data["failed_at"] = now
    elif status == "cancelled":
        data["cancelled_at"] = now
    elif status == "incomplete":
        data["incomplete_at"] = now
    if status in TERMINAL:
        data["usage"] = {
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "total_tokens": run.prompt_tokens + run.completion_tokens,
        }
        for st in run.steps:
            if st["status"] == "in_progress":
                st["status"] = {"completed": "completed", "failed": "failed"}.get(status, status)
    if events is not None:
        events.append((f"thread.run.{status}", dict(data)))


def _context(core: StubCore, run: RunState) -> list[ConvItem]:
    thread_id = run.data["thread_id"]
    items = []
    if run.data.get("instructions"):
        items.append(ConvItem("system", str(run.data["instructions"])))
    with core.lock:
        for msg in core.messages.get(thread_id, []):
            if msg["run_id"] != run.data["id"] or msg["role"] == "user":
                items.append(ConvItem(msg["role"], content_text(msg["content"])))
    return items + run.items


def step(core: StubCore, run: RunState, events: list[_Event] | None = None) -> None:
    """One transition of the run state machine (one ``GET``, or one streamed step)."""
    refresh(core, run)
    status = run.status
    if status == "queued":
        run.data["status"] = "in_progress"
        run.data["started_at"] = run.data["started_at"] or core.now_int()
        context = _context(core, run)
        run.turn = core.next_turn(context, run.tools)
        run.polls_left = run.turn.polls if run.turn.polls is not None else core.run_polls
        prompt = [[(i.kind, i.text, [c.arguments for c in i.calls]) for i in context]]
        run.prompt_tokens += (
            run.turn.usage.prompt_tokens
            if run.turn.usage
            else estimate_tokens([prompt, run.data["tools"]])
        )
        if events is not None:
            events.append(("thread.run.in_progress", dict(run.data)))
    elif status == "in_progress":
        if run.polls_left > 0:
            run.polls_left -= 1
            return
        turn, run.turn = run.turn, None
        if turn is None:  # pragma: no cover - in_progress always carries a turn
            _finish(core, run, "completed", events)
            return
        _apply(core, run, turn, events)
    elif status == "cancelling":
        _finish(core, run, "cancelled", events)


def _apply(core: StubCore, run: RunState, turn: StubTurn, events: list[_Event] | None) -> None:
    """Make a model turn take effect on an ``in_progress`` run."""
    run.completion_tokens += (
        turn.usage.completion_tokens
        if turn.usage
        else estimate_tokens([turn.text or "", [c.arguments for c in turn.tool_calls]])
    )
    data = run.data
    if turn.http_status is not None:
        code = "rate_limit_exceeded" if turn.http_status == 429 else "server_error"
        body = turn.http_body
        message = (
            body.get("error", {}).get("message") if isinstance(body, Mapping) else None
        ) or "The server had an error while processing your request."
        data["last_error"] = {"code": code, "message": str(message)}
        _finish(core, run, "failed", events)
        return
    if turn.finish_reason == "content_filter":
        data["last_error"] = {
            "code": "invalid_prompt",
            "message": "The response was filtered by the content filter.",
        }
        _finish(core, run, "failed", events)
        return
    if turn.run_outcome == "failed":
        data["last_error"] = dict(turn.last_error or {"code": "server_error", "message": ""})
        _finish(core, run, "failed", events)
        return
    if turn.run_outcome == "expired":
        _finish(core, run, "expired", events)
        return
    if turn.run_outcome == "cancelled":
        data["status"] = "cancelling"
        if events is not None:
            events.append(("thread.run.cancelling", dict(data)))
        return
    incomplete = turn.run_outcome == "incomplete" or turn.finish_reason == "length"
    if turn.text:
        _emit_message(core, run, turn.text, "incomplete" if incomplete else "completed", events)
    if incomplete:
        data["incomplete_details"] = dict(
            turn.incomplete_details or {"reason": "max_completion_tokens"}
        )
        _finish(core, run, "incomplete", events)
        return
    if turn.tool_calls:
        calls = tuple(
            StubToolCall(c.name, c.arguments, c.call_id or core.new_id("call"))
            for c in turn.tool_calls
        )
        run.items.append(ConvItem("tool_calls", calls=calls))
        run.pending = [str(c.call_id) for c in calls]
        step_obj = _new_step(
            core,
            run,
            {
                "type": "tool_calls",
                "tool_calls": [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments, "output": None},
                    }
                    for c in calls
                ],
            },
        )
        if events is not None:
            events.append(("thread.run.step.created", dict(step_obj)))
            events.append(("thread.run.step.in_progress", dict(step_obj)))
        data["status"] = "requires_action"
        data["required_action"] = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c.call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ]
            },
        }
        if events is not None:
            events.append(("thread.run.requires_action", dict(data)))
        return
    if not turn.text:
        _emit_message(core, run, "", "completed", events)
    _finish(core, run, "completed", events)


def _new_step(core: StubCore, run: RunState, details: dict[str, Any]) -> dict[str, Any]:
    step_obj = {
        "id": core.new_id("step"),
        "object": "thread.run.step",
        "created_at": core.now_int(),
        "run_id": run.data["id"],
        "assistant_id": run.data["assistant_id"],
        "thread_id": run.data["thread_id"],
        "type": details["type"],
        "status": "in_progress",
        "step_details": details,
        "cancelled_at": None,
        "completed_at": None,
        "expired_at": None,
        "failed_at": None,
        "last_error": None,
        "usage": None,
        "metadata": {},
    }
    run.steps.append(step_obj)
    return step_obj


def _emit_message(
    core: StubCore, run: RunState, text: str, status: str, events: list[_Event] | None
) -> None:
    thread_id = run.data["thread_id"]
    content = [{"type": "text", "text": {"value": text, "annotations": []}}]
    msg = _message(core, thread_id, "assistant", content, run, status)
    with core.lock:
        core.messages[thread_id].append(msg)
    step_obj = _new_step(
        core, run, {"type": "message_creation", "message_creation": {"message_id": msg["id"]}}
    )
    step_obj["status"] = "completed"
    step_obj["completed_at"] = core.now_int()
    if events is None:
        return
    started = {**msg, "status": "in_progress", "content": [], "completed_at": None}
    events.append(("thread.run.step.created", {**step_obj, "status": "in_progress"}))
    events.append(("thread.run.step.in_progress", {**step_obj, "status": "in_progress"}))
    events.append(("thread.message.created", started))
    events.append(("thread.message.in_progress", started))
    for piece in re.findall(r"\S+\s*|\s+", text):
        events.append(
            (
                "thread.message.delta",
                {
                    "id": msg["id"],
                    "object": "thread.message.delta",
                    "delta": {
                        "content": [
                            {
                                "index": 0,
                                "type": "text",
                                "text": {"value": piece, "annotations": []},
                            }
                        ]
                    },
                },
            )
        )
    events.append((f"thread.message.{status}", dict(msg)))
    events.append(("thread.run.step.completed", dict(step_obj)))


def get_run(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/threads/{t}/runs/{r}``: advances the run one step, then answers it."""
    run = _run(core, req)
    with core.lock:
        run.gets += 1
        step(core, run)
        return _run_reply(core, run)


def list_runs(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/threads/{t}/runs`` (does not advance runs)."""
    thread_id = req.args["thread_id"]
    _thread(core, thread_id)
    with core.lock:
        runs = [r for r in core.runs.values() if r.data["thread_id"] == thread_id]
        for r in runs:
            refresh(core, r)
        data = [dict(r.data) for r in runs]
    return Reply(_page(data, req.params))


def list_steps(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/threads/{t}/runs/{r}/steps``."""
    run = _run(core, req)
    with core.lock:
        data = [dict(s) for s in run.steps]
    return Reply(_page(data, req.params))


def submit_tool_outputs(core: StubCore, req: Incoming) -> Reply:
    """``POST .../runs/{r}/submit_tool_outputs``: exactly the pending call ids, once each."""
    run = _run(core, req)
    body = req.obj()
    outputs = body.get("tool_outputs")
    with core.lock:
        refresh(core, run)
        if run.status != "requires_action":
            raise StubAPIError(
                400,
                f'Runs in status "{run.status}" do not accept tool outputs.',
                param="tool_outputs",
            )
        if not isinstance(outputs, list) or not all(isinstance(o, Mapping) for o in outputs):
            raise StubAPIError(
                400, "Missing required parameter: 'tool_outputs'.", param="tool_outputs"
            )
        ids = [str(o.get("tool_call_id")) for o in outputs]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise StubAPIError(
                400,
                f"Duplicate tool_call_id in tool_outputs: {', '.join(dupes)}.",
                param="tool_outputs",
            )
        if set(ids) != set(run.pending):
            raise StubAPIError(
                400,
                f"Expected tool outputs for call_ids {run.pending!r}, got {ids!r}.",
                param="tool_outputs",
            )
        by_id = {str(o.get("tool_call_id")): o.get("output") for o in outputs}
        for call_id in run.pending:
            output = by_id[call_id]
            run.items.append(
                ConvItem(
                    "tool_result",
                    output if isinstance(output, str) else str(output or ""),
                    call_id=call_id,
                )
            )
        events: list[_Event] = []
        for st in run.steps:
            if st["type"] == "tool_calls" and st["status"] == "in_progress":
                for tc in st["step_details"]["tool_calls"]:
                    tc["function"]["output"] = by_id.get(tc["id"])
                st["status"] = "completed"
                st["completed_at"] = core.now_int()
                events.append(("thread.run.step.completed", dict(st)))
        run.pending = []
        run.data["required_action"] = None
        run.data["status"] = "queued"
        if not body.get("stream"):
            return _run_reply(core, run)
        events.append(("thread.run.queued", dict(run.data)))
        _drive(core, run, events)
        return Reply(sse=_encode(events))


def cancel_run(core: StubCore, req: Incoming) -> Reply:
    """``POST .../runs/{r}/cancel``: ``cancelling`` now, ``cancelled`` on the next ``GET``."""
    run = _run(core, req)
    with core.lock:
        refresh(core, run)
        if run.status not in ("queued", "in_progress", "requires_action"):
            raise StubAPIError(400, f"Cannot cancel run with status '{run.status}'.")
        run.data["status"] = "cancelling"
        run.data["required_action"] = None
        run.turn = None
        return _run_reply(core, run)
