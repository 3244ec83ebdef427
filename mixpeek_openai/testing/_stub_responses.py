"""``/v1/responses`` and ``/v1/conversations`` for :class:`StubOpenAI`.

Besides plain and streamed responses chained by ``previous_response_id`` or a
Conversation, the stub models what the loops rely on:

* ``background=True``: the response is created ``queued`` and moves to ``in_progress``
  and then its final status over the next ``GET``s (a turn's ``polls``, else the stub's
  ``background_polls``); ``POST /responses/{id}/cancel`` cancels it while it runs.
* reasoning models (o-series, gpt-5): the output starts with a ``reasoning`` item, with
  ``encrypted_content`` when ``include`` asks for ``reasoning.encrypted_content``. With
  ``store=False`` nothing is kept, so a reasoning item sent back without its encrypted
  content is refused (as the API does: it cannot be found), and one with content the stub
  did not issue is refused too.
* ``function_call_output.output`` may be a list of ``input_text`` / ``input_image`` /
  ``input_file`` parts; they are kept as sent.
* Conversations take at most 20 items per request.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ._stub_core import Incoming, Reply, StubCore, raise_for_turn, sse, usage_numbers
from ._stub_model import (
    ConvItem,
    OfferedTool,
    StubAPIError,
    StubToolCall,
    StubTurn,
    check_tools,
    content_text,
    requested_schema,
    select_tools,
)


def _responses_tools(raw: Any) -> list[OfferedTool]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise StubAPIError(400, "Invalid type for 'tools': expected an array.", param="tools")
    tools: list[OfferedTool] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, Mapping):
            raise StubAPIError(400, f"Invalid type for 'tools[{i}]'.", param=f"tools[{i}]")
        if tool.get("type") != "function":
            continue
        if "name" not in tool:
            raise StubAPIError(
                400,
                f"Missing required parameter: 'tools[{i}].name'.",
                param=f"tools[{i}].name",
                code="missing_required_parameter",
            )
        tools.append(
            OfferedTool(
                name=tool["name"],
                parameters=tool.get("parameters") or {"type": "object", "properties": {}},
                # The Responses API defaults `strict` to true for function tools.
                strict=tool.get("strict", True) is not False,
            )
        )
    check_tools(tools, "tools", ".name")
    return tools


def normalize_items(core: StubCore, raw: Any) -> list[dict[str, Any]]:
    """Input (a string or a list of items) as typed items with ids, as the API stores them."""
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    if not isinstance(raw, list):
        raise StubAPIError(400, "Invalid type for 'input'.", param="input")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise StubAPIError(400, f"Invalid type for 'input[{i}]'.", param=f"input[{i}]")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if role == "assistant" else "input_text"
                content = [{"type": part, "text": content}]
            out.append(
                {
                    "type": "message",
                    "id": item.get("id") or core.new_id("msg"),
                    "role": role,
                    "status": "completed",
                    "content": content or [],
                }
            )
        elif kind == "function_call":
            out.append(
                {
                    "type": "function_call",
                    "id": item.get("id") or core.new_id("fc"),
                    "call_id": item.get("call_id"),
                    "name": item.get("name"),
                    "arguments": item.get("arguments", ""),
                    "status": "completed",
                }
            )
        elif kind == "function_call_output":
            _check_output_parts(item.get("output"), i)
            out.append(
                {
                    "type": "function_call_output",
                    "id": item.get("id") or core.new_id("fco"),
                    "call_id": item.get("call_id"),
                    "output": item.get("output", ""),
                    "status": "completed",
                }
            )
        elif kind == "reasoning":
            out.append({k: v for k, v in item.items() if k != "status"})
        elif kind is None:
            raise StubAPIError(400, f"Missing required parameter: 'input[{i}].type'.")
        else:
            out.append(dict(item))  # reasoning, item_reference...: kept, not interpreted
    return out


_OUTPUT_PARTS = frozenset({"input_text", "input_image", "input_file"})
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:ft:)?(?:o\d|gpt-5|codex)", re.IGNORECASE)
_ENCRYPTED = "reasoning.encrypted_content"
_ITEMS_PER_REQUEST = 20


def _check_output_parts(output: Any, i: int) -> None:
    """A function output is a string or a list of input text / image / file parts."""
    if output is None or isinstance(output, str):
        return
    if not isinstance(output, list):
        raise StubAPIError(400, f"Invalid type for 'input[{i}].output'.", param=f"input[{i}]")
    for k, part in enumerate(output):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind not in _OUTPUT_PARTS:
            raise StubAPIError(
                400,
                f"Invalid value: '{kind}'. Supported values are: 'input_text', "
                "'input_image' and 'input_file'.",
                param=f"input[{i}].output[{k}].type",
                code="invalid_value",
            )
        if kind == "input_image" and not (part.get("image_url") or part.get("file_id")):
            raise StubAPIError(
                400,
                "An input_image part needs an image_url or a file_id.",
                param=f"input[{i}].output[{k}]",
            )


def _encrypted(item_id: str) -> str:
    return "enc_" + base64.b64encode(item_id.encode()).decode()


def _check_reasoning_inputs(
    core: StubCore, items: Sequence[Mapping[str, Any]], store: bool
) -> None:
    """Reasoning items sent back must be findable: stored, or carried encrypted."""
    for item in items:
        if item.get("type") != "reasoning":
            continue
        item_id = str(item.get("id"))
        content = item.get("encrypted_content")
        if content is not None:
            if content != _encrypted(item_id):
                raise StubAPIError(
                    400,
                    f"The encrypted content for item {item_id} could not be verified.",
                    param="input",
                    code="invalid_encrypted_content",
                )
            continue
        with core.lock:
            known = item_id in core.reasoning_items
        if not store or not known:
            raise StubAPIError(
                404 if store else 400,
                f"Item with id '{item_id}' not found. Items are not persisted when `store` is "
                "set to false. Try again with `store` set to true, or remove this item from "
                "your input.",
                param="input",
            )


def _to_conv(items: Sequence[Mapping[str, Any]]) -> list[ConvItem]:
    """Typed items as model items; also checks every call has exactly its output."""
    conv: list[ConvItem] = []
    calls: dict[str, bool] = {}
    for item in items:
        kind = item.get("type")
        if kind == "message":
            role = item.get("role")
            text = content_text(item.get("content"))
            if role in ("system", "developer"):
                conv.append(ConvItem("system", text))
            elif role == "user":
                conv.append(ConvItem("user", text))
            elif role == "assistant":
                conv.append(ConvItem("assistant", text))
        elif kind == "function_call":
            call = StubToolCall(
                str(item.get("name")), str(item.get("arguments", "")), str(item.get("call_id"))
            )
            if conv and conv[-1].kind == "tool_calls":
                conv[-1] = ConvItem("tool_calls", calls=(*conv[-1].calls, call))
            else:
                conv.append(ConvItem("tool_calls", calls=(call,)))
            calls[str(item.get("call_id"))] = False
        elif kind == "function_call_output":
            call_id = str(item.get("call_id"))
            if call_id not in calls:
                raise StubAPIError(
                    400,
                    f"No tool call found for function call output with call_id {call_id}.",
                    param="input",
                )
            calls[call_id] = True
            output = item.get("output")
            conv.append(
                ConvItem(
                    "tool_result",
                    output if isinstance(output, str) else content_text(output),
                    call_id=call_id,
                )
            )
    missing = [c for c, done in calls.items() if not done]
    if missing:
        raise StubAPIError(
            400, f"No tool output found for function call {missing[0]}.", param="input"
        )
    return conv


def _conversation_id(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, Mapping):
        raw = raw.get("id")
    return str(raw)


def create_response(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/responses``: chain by ``previous_response_id`` or a conversation."""
    body = req.obj()
    model = body.get("model")
    if not model:
        raise StubAPIError(400, "Missing required parameter: 'model'.", param="model")
    prev_id = body.get("previous_response_id")
    conv_id = _conversation_id(body.get("conversation"))
    store = body.get("store", True) is not False
    background = bool(body.get("background"))
    if prev_id and conv_id:
        raise StubAPIError(
            400,
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'.",
            param="previous_response_id",
            code="mutually_exclusive_parameters",
        )
    if background and not store:
        raise StubAPIError(400, "Background mode requires `store` to be true.", param="background")
    if background and body.get("stream"):
        raise StubAPIError(400, "The stub does not stream background responses.", param="stream")
    tools = _responses_tools(body.get("tools"))
    new_items = normalize_items(core, body.get("input"))
    _check_reasoning_inputs(core, new_items, store)
    with core.lock:
        if prev_id:
            previous = core.responses.get(prev_id)
            if previous is None:
                raise StubAPIError(
                    400,
                    f"Previous response with id '{prev_id}' not found.",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            if previous["status"] in ("queued", "in_progress"):
                raise StubAPIError(
                    400,
                    f"Previous response {prev_id} is still {previous['status']}.",
                    param="previous_response_id",
                )
            history = core.response_context[prev_id] + list(previous["output"])
        elif conv_id:
            if conv_id not in core.conversations:
                raise StubAPIError(
                    404, f"Conversation with id '{conv_id}' not found.", param="conversation"
                )
            history = list(core.conversation_items[conv_id])
        else:
            history = []
    context = history + new_items
    conv = _to_conv(context)
    if body.get("instructions"):
        conv.insert(0, ConvItem("system", str(body["instructions"])))
    text_options = body.get("text")
    wanted = requested_schema(
        text_options.get("format") if isinstance(text_options, Mapping) else None
    )
    turn = core.next_turn(conv, select_tools(tools, body.get("tool_choice")), wanted)
    raise_for_turn(turn, "responses-background" if background else "responses")
    response = _build_response(core, body, turn, context, prev_id, conv_id)
    if store:
        with core.lock:
            core.responses[response["id"]] = response
            core.response_context[response["id"]] = context
            core.reasoning_items.update(
                i["id"] for i in response["output"] if i["type"] == "reasoning"
            )
    if conv_id:
        with core.lock:
            core.conversation_items[conv_id].extend(new_items + list(response["output"]))
    if background:
        polls = turn.polls if turn.polls is not None else core.background_polls
        with core.lock:
            core.background[response["id"]] = _Pending(dict(response), max(0, polls))
            return Reply(_pending_view(core, response["id"], advance=False))
    if body.get("stream"):
        return Reply(sse=_stream(response))
    return Reply(response)


class _Pending:
    """A background response on its way: its final form, and polls left before it lands."""

    def __init__(self, final: dict[str, Any], polls: int) -> None:
        self.final = final
        self.polls = polls
        self.seen = 0
        self.cancelled = False


def _pending_view(core: StubCore, response_id: str, *, advance: bool) -> dict[str, Any]:
    """The response as a ``GET`` sees it now: queued, in progress, or final."""
    pending: _Pending = core.background[response_id]
    if advance:
        pending.seen += 1
    final = pending.final
    if pending.cancelled:
        return core.responses[response_id]
    if pending.seen > pending.polls:
        core.responses[response_id] = final
        return final
    status = "queued" if pending.seen == 0 else "in_progress"
    view = {**final, "status": status, "output": [], "usage": None, "completed_at": None}
    view["error"] = None
    view["incomplete_details"] = None
    core.responses[response_id] = view
    return view


def _build_response(
    core: StubCore,
    body: Mapping[str, Any],
    turn: StubTurn,
    context: list[dict[str, Any]],
    prev_id: str | None,
    conv_id: str | None,
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    model = str(body.get("model"))
    reasoning_model = _REASONING_MODEL.match(model) is not None
    if reasoning_model:
        item: dict[str, Any] = {"type": "reasoning", "id": core.new_id("rs"), "summary": []}
        if _ENCRYPTED in (body.get("include") or []):
            item["encrypted_content"] = _encrypted(item["id"])
        output.append(item)
    if turn.text:
        output.append(
            {
                "type": "message",
                "id": core.new_id("msg"),
                "status": "completed" if turn.finish_reason in (None, "stop") else "incomplete",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": turn.text, "annotations": [], "logprobs": []}
                ],
            }
        )
    for c in turn.tool_calls:
        output.append(
            {
                "type": "function_call",
                "id": core.new_id("fc"),
                "call_id": c.call_id or core.new_id("call"),
                "name": c.name,
                "arguments": c.arguments,
                "status": "completed",
            }
        )
    status = "completed"
    incomplete: dict[str, Any] | None = None
    err: dict[str, Any] | None = None
    if turn.run_outcome == "failed":
        status = "failed"
        err = {
            "code": str((turn.last_error or {}).get("code", "server_error")),
            "message": str((turn.last_error or {}).get("message", "")),
        }
    elif turn.run_outcome == "cancelled":
        status, output = "cancelled", []
    elif turn.finish_reason == "length":
        status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    elif turn.finish_reason == "content_filter":
        status, incomplete = "incomplete", {"reason": "content_filter"}
    prompt, completion = usage_numbers(
        turn, [context, body.get("instructions"), body.get("tools")], output
    )
    cached, reasoning = core.usage_details
    now = core.now_int()
    return {
        "id": core.new_id("resp"),
        "object": "response",
        "created_at": now,
        "completed_at": now if status == "completed" else None,
        "status": status,
        "background": bool(body.get("background")),
        "error": err,
        "incomplete_details": incomplete,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": prev_id,
        "conversation": {"id": conv_id} if conv_id else None,
        "reasoning": {"effort": "medium" if reasoning_model else None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": min(cached, prompt)},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": min(reasoning, completion)},
            "total_tokens": prompt + completion,
        },
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def _stream(response: dict[str, Any]) -> bytes:
    """The Responses streaming events for an already built response."""
    seq = 0
    out: list[bytes] = []

    def emit(kind: str, **fields: Any) -> None:
        nonlocal seq
        out.append(sse({"type": kind, "sequence_number": seq, **fields}, event=kind))
        seq += 1

    start = {**response, "status": "in_progress", "output": [], "usage": None}
    emit("response.created", response=start)
    emit("response.in_progress", response=start)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            text = item["content"][0]["text"]
            emit("response.output_item.added", output_index=index, item={**item, "content": []})
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            emit(
                "response.content_part.added",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part=part,
            )
            for piece in re.findall(r"\S+\s*|\s+", text):
                emit(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    delta=piece,
                    logprobs=[],
                )
            emit(
                "response.output_text.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                text=text,
                logprobs=[],
            )
            emit(
                "response.content_part.done",
                item_id=item["id"],
                output_index=index,
                content_index=0,
                part={**part, "text": text},
            )
        elif item["type"] == "function_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            args = item["arguments"]
            size = max(1, -(-len(args) // 3))
            for k in range(0, len(args), size):
                emit(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=args[k : k + size],
                )
            emit(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                name=item["name"],
                arguments=args,
            )
        else:
            # A reasoning item (no summary requested): announced, then done.
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    final = {
        "completed": "response.completed",
        "incomplete": "response.incomplete",
        "failed": "response.failed",
    }[response["status"]]
    emit(final, response=response)
    return b"".join(out)


def get_response(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/responses/{id}`` (a background response advances one step per ``GET``)."""
    response_id = req.args["response_id"]
    with core.lock:
        if response_id in core.background:
            return Reply(_pending_view(core, response_id, advance=True))
        response = core.responses.get(response_id)
    if response is None:
        raise StubAPIError(404, f"Response with id '{response_id}' not found.")
    return Reply(response)


def cancel_response(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/responses/{id}/cancel``: only background responses can be cancelled."""
    response_id = req.args["response_id"]
    with core.lock:
        pending = core.background.get(response_id)
        if pending is None:
            if response_id in core.responses:
                raise StubAPIError(
                    400, "Only responses created with background=true can be cancelled."
                )
            raise StubAPIError(404, f"Response with id '{response_id}' not found.")
        current = _pending_view(core, response_id, advance=False)
        if current["status"] in ("queued", "in_progress"):
            pending.cancelled = True
            current = {
                **current,
                "status": "cancelled",
                "output": [],
                "usage": None,
                "completed_at": None,
            }
            core.responses[response_id] = current
        return Reply(current)


def create_conversation(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/conversations`` (optionally with initial items)."""
    body = req.obj()
    _check_item_count(body.get("items"))
    items = normalize_items(core, body.get("items"))
    conv_id = core.new_id("conv")
    conv: dict[str, Any] = {
        "id": conv_id,
        "object": "conversation",
        "created_at": core.now_int(),
        "metadata": body.get("metadata") or {},
    }
    with core.lock:
        core.conversations[conv_id] = conv
        core.conversation_items[conv_id] = items
    return Reply(conv)


def _check_item_count(items: Any) -> None:
    if isinstance(items, list) and len(items) > _ITEMS_PER_REQUEST:
        raise StubAPIError(
            400,
            f"Invalid 'items': array too long. Expected an array with maximum length "
            f"{_ITEMS_PER_REQUEST}, but got an array with length {len(items)} instead.",
            param="items",
            code="array_above_max_length",
        )


def _conversation(core: StubCore, req: Incoming) -> str:
    conv_id = req.args["conversation_id"]
    with core.lock:
        if conv_id not in core.conversations:
            raise StubAPIError(404, f"Conversation with id '{conv_id}' not found.")
    return conv_id


def get_conversation(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/conversations/{id}``."""
    conv_id = _conversation(core, req)
    with core.lock:
        return Reply(core.conversations[conv_id])


def delete_conversation(core: StubCore, req: Incoming) -> Reply:
    """``DELETE /v1/conversations/{id}``."""
    conv_id = _conversation(core, req)
    with core.lock:
        del core.conversations[conv_id]
        del core.conversation_items[conv_id]
    return Reply({"id": conv_id, "object": "conversation.deleted", "deleted": True})


def _item_list(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": False,
    }


def list_conversation_items(core: StubCore, req: Incoming) -> Reply:
    """``GET /v1/conversations/{id}/items`` (``order`` asc or desc, default desc)."""
    conv_id = _conversation(core, req)
    with core.lock:
        items = list(core.conversation_items[conv_id])
    if req.params.get("order", "desc") == "desc":
        items.reverse()
    return Reply(_item_list(items))


def add_conversation_items(core: StubCore, req: Incoming) -> Reply:
    """``POST /v1/conversations/{id}/items``."""
    conv_id = _conversation(core, req)
    _check_item_count(req.obj().get("items"))
    items = normalize_items(core, req.obj().get("items"))
    with core.lock:
        core.conversation_items[conv_id].extend(items)
    return Reply(_item_list(items))
