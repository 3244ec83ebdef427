"""``POST /v1/chat/completions`` for :class:`StubOpenAI` (plain and streamed)."""

from __future__ import annotations

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

_REASONING_MODEL = re.compile(r"^o\d")


_HOSTED_ASSISTANTS = frozenset({"code_interpreter", "file_search"})


def chat_tools(raw: Any, param: str = "tools", *, hosted: bool = True) -> list[OfferedTool]:
    """Function tools in the Chat / Assistants shape ``{"type": "function", "function": {...}}``.

    ``hosted`` allows the Assistants API's hosted tools (``code_interpreter``,
    ``file_search``), which the stub model never calls; Chat Completions takes functions
    (and custom tools) only, so without it any other type is refused, as the API does.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise StubAPIError(400, f"Invalid type for '{param}': expected an array.", param=param)
    tools: list[OfferedTool] = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, Mapping):
            raise StubAPIError(400, f"Invalid type for '{param}[{i}]'.", param=f"{param}[{i}]")
        kind = tool.get("type")
        if kind != "function":
            if (hosted and kind in _HOSTED_ASSISTANTS) or (not hosted and kind == "custom"):
                continue  # hosted tools run on the API's side; the stub model never calls them
            allowed = (
                "'function', 'code_interpreter' and 'file_search'"
                if hosted
                else ("'function' and 'custom'")
            )
            raise StubAPIError(
                400,
                f"Invalid value: '{kind}'. Supported values are: {allowed}.",
                param=f"{param}[{i}].type",
                code="invalid_value",
            )
        fn = tool.get("function")
        if not isinstance(fn, Mapping) or "name" not in fn:
            raise StubAPIError(
                400,
                f"Missing required parameter: '{param}[{i}].function.name'.",
                param=f"{param}[{i}].function.name",
                code="missing_required_parameter",
            )
        tools.append(
            OfferedTool(
                name=fn["name"],
                parameters=fn.get("parameters") or {"type": "object", "properties": {}},
                strict=bool(fn.get("strict")),
            )
        )
    check_tools(tools, param, ".function.name")
    return tools


def _bad_tool_message(j: int) -> StubAPIError:
    return StubAPIError(
        400,
        "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
        "message with 'tool_calls'.",
        param=f"messages.[{j}].role",
    )


def chat_items(messages: Sequence[Any]) -> list[ConvItem]:
    """Validate a ``messages`` list (tool call / tool message pairing) into model items."""
    items: list[ConvItem] = []
    answered: set[int] = set()
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping):
            raise StubAPIError(400, f"Invalid type for 'messages[{i}]'.", param=f"messages[{i}]")
        role = msg.get("role")
        text = content_text(msg.get("content"))
        if role in ("system", "developer"):
            items.append(ConvItem("system", text))
        elif role == "user":
            items.append(ConvItem("user", text))
        elif role == "assistant":
            if text:
                items.append(ConvItem("assistant", text))
            calls = msg.get("tool_calls") or []
            if calls:
                items.append(ConvItem("tool_calls", calls=_parse_calls(calls, i)))
                answered |= _check_answers(messages, i, [c.call_id for c in items[-1].calls])
        elif role == "tool":
            if i not in answered:
                raise _bad_tool_message(i)
            _check_text_only(msg.get("content"), i)
            items.append(ConvItem("tool_result", text, call_id=str(msg.get("tool_call_id"))))
        else:
            raise StubAPIError(
                400,
                f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                "'user', 'tool', 'function' and 'developer'.",
                param=f"messages[{i}].role",
                code="invalid_value",
            )
    return items


def _check_text_only(content: Any, i: int) -> None:
    """Tool messages take text only (an image part is a Responses API feature)."""
    if not isinstance(content, list):
        return
    for k, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind != "text":
            raise StubAPIError(
                400,
                f"Invalid value: '{kind}'. Supported values are: 'text'. Tool messages "
                "only support text content.",
                param=f"messages[{i}].content[{k}].type",
                code="invalid_value",
            )


def _parse_calls(calls: Any, i: int) -> tuple[StubToolCall, ...]:
    out: list[StubToolCall] = []
    for k, c in enumerate(calls if isinstance(calls, list) else []):
        fn = c.get("function") if isinstance(c, Mapping) else None
        if not isinstance(c, Mapping) or not c.get("id") or not isinstance(fn, Mapping):
            raise StubAPIError(
                400,
                f"Missing required parameter: 'messages[{i}].tool_calls[{k}].id'.",
                param=f"messages[{i}].tool_calls[{k}].id",
                code="missing_required_parameter",
            )
        out.append(
            StubToolCall(
                name=str(fn.get("name")),
                arguments=str(fn.get("arguments", "")),
                call_id=str(c["id"]),
            )
        )
    return tuple(out)


def _check_answers(messages: Sequence[Any], i: int, expected: list[str | None]) -> set[int]:
    """The tool messages right after message ``i`` must answer each call id exactly once."""
    seen: list[str] = []
    indexes: set[int] = set()
    j = i + 1
    while j < len(messages):
        nxt = messages[j]
        if not isinstance(nxt, Mapping) or nxt.get("role") != "tool":
            break
        call_id = str(nxt.get("tool_call_id"))
        if call_id not in expected or call_id in seen:
            raise _bad_tool_message(j)
        seen.append(call_id)
        indexes.add(j)
        j += 1
    missing = [c for c in expected if c not in seen]
    if missing:
        raise StubAPIError(
            400,
            "An assistant message with 'tool_calls' must be followed by tool messages responding "
            "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
            + ", ".join(str(m) for m in missing),
            param=f"messages.[{i}].role",
        )
    return indexes


def _usage_obj(prompt: int, completion: int, details: tuple[int, int] = (0, 0)) -> dict[str, Any]:
    cached, reasoning = details
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": min(cached, prompt), "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": min(reasoning, completion),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _split(value: str, parts: int) -> list[str]:
    """``value`` in ``parts`` consecutive fragments (fewer when it is short)."""
    if not value:
        return []
    size = max(1, -(-len(value) // parts))
    return [value[k : k + size] for k in range(0, len(value), size)]


def chat_completions(core: StubCore, req: Incoming) -> Reply:
    """Answer a chat completion, scripted or from the rule-based model."""
    body = req.obj()
    model = body.get("model")
    if not model:
        raise StubAPIError(400, "you must provide a model parameter", param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise StubAPIError(
            400, "[] is too short - 'messages'", param="messages", code="empty_array"
        )
    stream = bool(body.get("stream"))
    if body.get("stream_options") is not None and not stream:
        raise StubAPIError(
            400,
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            param="stream_options",
        )
    if "parallel_tool_calls" in body and _REASONING_MODEL.match(str(model)):
        raise StubAPIError(
            400,
            "Unsupported parameter: 'parallel_tool_calls' is not supported with this model.",
            param="parallel_tool_calls",
            code="unsupported_parameter",
        )
    tools = chat_tools(body.get("tools"), hosted=False)
    items = chat_items(messages)
    wanted = requested_schema(body.get("response_format"))
    turn = core.next_turn(items, select_tools(tools, body.get("tool_choice")), wanted)
    raise_for_turn(turn, "chat")
    calls = [(c.call_id or core.new_id("call"), c) for c in turn.tool_calls]
    prompt, completion = usage_numbers(
        turn,
        [messages, body.get("tools")],
        [turn.text or "", [c.name + c.arguments for _, c in calls]],
    )
    cid = core.new_id("chatcmpl")
    created = core.now_int()
    if stream:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return Reply(
            sse=_stream(
                cid,
                created,
                str(model),
                turn,
                calls,
                (prompt, completion, core.usage_details),
                include_usage,
            )
        )
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.text if turn.text is not None or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = [
            {
                "id": call_id,
                "type": "function",
                "function": {"name": c.name, "arguments": c.arguments},
            }
            for call_id, c in calls
        ]
    return Reply(
        {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_stub",
            "service_tier": "default",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": turn.effective_finish_reason,
                }
            ],
            "usage": _usage_obj(prompt, completion, core.usage_details),
        }
    )


def _stream(
    cid: str,
    created: int,
    model: str,
    turn: StubTurn,
    calls: list[tuple[str, StubToolCall]],
    usage: tuple[int, int, tuple[int, int]],
    include_usage: bool,
) -> bytes:
    base: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "system_fingerprint": "fp_stub",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {
            **base,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        return sse(data)

    out = [chunk({"role": "assistant", "content": "", "refusal": None})]
    for piece in re.findall(r"\S+\s*|\s+", turn.text or ""):
        out.append(chunk({"content": piece}))
    for index, (call_id, c) in enumerate(calls):
        first = {
            "index": index,
            "id": call_id,
            "type": "function",
            "function": {"name": c.name, "arguments": ""},
        }
        out.append(chunk({"tool_calls": [first]}))
        for frag in _split(c.arguments, 3):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": frag}}]}))
    out.append(chunk({}, turn.effective_finish_reason))
    if include_usage:
        out.append(sse({**base, "choices": [], "usage": _usage_obj(*usage)}))
    out.append(sse("[DONE]"))
    return b"".join(out)
