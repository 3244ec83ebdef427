"""The stub's "model": scripted turns, the turn builders, and the default rule-based model.

The same turn vocabulary drives Chat Completions, the Responses API and Assistants runs,
so a test can script one conversation and replay it against any of the three APIs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from mixpeek_openai.layout import as_objects

__all__ = [
    "FinishReason",
    "RunOutcome",
    "StubAPIError",
    "StubToolCall",
    "StubTurn",
    "StubUsage",
    "call",
    "content_filtered",
    "error",
    "run_cancelled",
    "run_expired",
    "run_failed",
    "run_incomplete",
    "text",
    "tool_call",
    "tool_calls",
    "truncated",
]

FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]
"""Why a scripted turn stops, in Chat Completions terms."""

RunOutcome = Literal["failed", "expired", "incomplete", "cancelled"]
"""A terminal Assistants run status that a turn can force."""

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class StubAPIError(Exception):
    """An error the stub answers with, in OpenAI's error shape (internal control flow)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})
        self.body: Any = (
            body
            if body is not None
            else {"error": {"message": message, "type": type, "param": param, "code": code}}
        )


@dataclass(frozen=True)
class StubUsage:
    """Token counts a scripted turn reports instead of the stub's own estimate."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class StubToolCall:
    """One function call the model makes.

    ``arguments`` is the raw JSON text the API would send; it may be malformed on purpose.
    ``call_id`` is generated when not given.
    """

    name: str
    arguments: str = "{}"
    call_id: str | None = None


@dataclass(frozen=True)
class StubTurn:
    """What the model answers next: text, tool calls, an HTTP error or a run outcome.

    Build turns with :func:`text`, :func:`tool_calls`, :func:`error`, :func:`run_failed`
    and friends rather than by hand.
    """

    text: str | None = None
    tool_calls: tuple[StubToolCall, ...] = ()
    finish_reason: FinishReason | None = None
    usage: StubUsage | None = None
    http_status: int | None = None
    http_body: Any = None
    http_headers: Mapping[str, str] = field(default_factory=dict)
    run_outcome: RunOutcome | None = None
    last_error: Mapping[str, Any] | None = None
    incomplete_details: Mapping[str, Any] | None = None
    polls: int | None = None

    @property
    def effective_finish_reason(self) -> FinishReason:
        """The finish reason, derived from the content when not set explicitly."""
        if self.finish_reason is not None:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


def _usage(usage: StubUsage | tuple[int, int] | None) -> StubUsage | None:
    if usage is None or isinstance(usage, StubUsage):
        return usage
    return StubUsage(int(usage[0]), int(usage[1]))


def text(
    content: str,
    *,
    finish_reason: FinishReason = "stop",
    usage: StubUsage | tuple[int, int] | None = None,
    polls: int | None = None,
) -> StubTurn:
    """A plain text answer.

    ``usage`` is ``(prompt_tokens, completion_tokens)`` to override the estimate; ``polls``
    is how many extra run polls an Assistants run stays ``in_progress`` before this turn.
    """
    return StubTurn(text=content, finish_reason=finish_reason, usage=_usage(usage), polls=polls)


def truncated(content: str = "", *, usage: StubUsage | tuple[int, int] | None = None) -> StubTurn:
    """A text answer cut off by the token limit (``finish_reason="length"``).

    Responses answer ``status="incomplete"`` (``max_output_tokens``); Assistants runs end
    ``incomplete`` (``max_completion_tokens``).
    """
    return text(content, finish_reason="length", usage=usage)


def content_filtered(
    content: str = "", *, usage: StubUsage | tuple[int, int] | None = None
) -> StubTurn:
    """An answer stopped by the content filter (``finish_reason="content_filter"``).

    Responses answer ``status="incomplete"`` (``content_filter``); Assistants runs end
    ``failed`` with ``last_error.code == "invalid_prompt"``.
    """
    return text(content, finish_reason="content_filter", usage=usage)


def call(
    name: str,
    arguments: Mapping[str, Any] | str | None = None,
    *,
    call_id: str | None = None,
) -> StubToolCall:
    """One tool call. A ``str`` is sent verbatim (use it for malformed JSON)."""
    if arguments is None:
        raw = "{}"
    elif isinstance(arguments, str):
        raw = arguments
    else:
        raw = json.dumps(dict(arguments), separators=(",", ":"))
    return StubToolCall(name=name, arguments=raw, call_id=call_id)


def tool_calls(
    calls: StubToolCall | Sequence[StubToolCall],
    *,
    text: str | None = None,
    usage: StubUsage | tuple[int, int] | None = None,
    polls: int | None = None,
) -> StubTurn:
    """A turn making one or several (parallel) tool calls, optionally with some text."""
    seq = (calls,) if isinstance(calls, StubToolCall) else tuple(calls)
    if not seq:
        raise ValueError("tool_calls() needs at least one call")
    return StubTurn(text=text, tool_calls=seq, usage=_usage(usage), polls=polls)


def tool_call(
    name: str,
    arguments: Mapping[str, Any] | str | None = None,
    *,
    call_id: str | None = None,
    usage: StubUsage | tuple[int, int] | None = None,
    polls: int | None = None,
) -> StubTurn:
    """A turn making exactly one tool call (shortcut for ``tool_calls([call(...)])``)."""
    return tool_calls(call(name, arguments, call_id=call_id), usage=usage, polls=polls)


def error(
    status: int,
    body: Any = None,
    *,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
    retry_after_ms: int | None = 1,
) -> StubTurn:
    """An HTTP error answered instead of the next model response.

    The request that would have consumed a model turn (a chat or responses create) gets
    ``status`` with ``body`` (default: OpenAI's error shape). ``retry_after_ms`` sets the
    ``retry-after-ms`` header so the openai client's own retries do not sleep; pass ``None``
    to leave it out. In an Assistants run the turn ends the run ``failed`` instead
    (``rate_limit_exceeded`` for 429, ``server_error`` otherwise), as the real API does.
    """
    if not 400 <= status <= 599:
        raise ValueError(f"error() needs an HTTP error status (400-599), not {status}")
    hdrs = dict(headers or {})
    if retry_after_ms is not None:
        hdrs.setdefault("retry-after-ms", str(retry_after_ms))
    if body is None:
        kind = "rate_limit_exceeded" if status == 429 else "server_error"
        msg = message or ("Rate limit reached." if status == 429 else "The server had an error.")
        body = {"error": {"message": msg, "type": kind, "param": None, "code": kind}}
    return StubTurn(http_status=status, http_body=body, http_headers=hdrs)


def run_failed(
    message: str = "Something went wrong.", *, code: str = "server_error", polls: int | None = None
) -> StubTurn:
    """End an Assistants run ``failed`` with ``last_error={"code", "message"}``.

    In Chat Completions and Responses this is a 500 with the same message.
    """
    return StubTurn(
        run_outcome="failed", last_error={"code": code, "message": message}, polls=polls
    )


def run_expired(*, polls: int | None = None) -> StubTurn:
    """End an Assistants run ``expired`` (as if ``expires_at`` passed mid-run)."""
    return StubTurn(run_outcome="expired", polls=polls)


def run_incomplete(
    reason: str = "max_completion_tokens", *, text: str | None = None, polls: int | None = None
) -> StubTurn:
    """End an Assistants run ``incomplete`` with ``incomplete_details={"reason": reason}``."""
    return StubTurn(
        run_outcome="incomplete",
        incomplete_details={"reason": reason},
        text=text,
        finish_reason="length",
        polls=polls,
    )


def run_cancelled(*, polls: int | None = None) -> StubTurn:
    """Move an Assistants run to ``cancelling``; the next poll sees ``cancelled``."""
    return StubTurn(run_outcome="cancelled", polls=polls)


# ---------------------------------------------------------------------------
# Token estimate
# ---------------------------------------------------------------------------


def estimate_tokens(value: Any) -> int:
    """A cheap, deterministic token estimate (about four characters per token)."""
    if value is None:
        return 0
    s = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return max(1, (len(s) + 3) // 4)


# ---------------------------------------------------------------------------
# Conversation view the model reasons over (API-independent)
# ---------------------------------------------------------------------------

ItemKind = Literal["system", "user", "assistant", "tool_calls", "tool_result"]


@dataclass(frozen=True)
class ConvItem:
    """One entry of the conversation as the stub model sees it."""

    kind: ItemKind
    text: str = ""
    calls: tuple[StubToolCall, ...] = ()
    call_id: str = ""


@dataclass(frozen=True)
class OfferedTool:
    """A function tool offered to the model."""

    name: str
    parameters: Mapping[str, Any]
    strict: bool = False


def content_text(content: Any) -> str:
    """Text of a message ``content`` given as a string or a list of typed parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping):
                value = part.get("text")
                if isinstance(value, Mapping):  # Assistants: {"text": {"value": ...}}
                    value = value.get("value")
                if isinstance(value, str):
                    parts.append(value)
    return "\n".join(parts)


def check_tools(tools: Sequence[OfferedTool], param_prefix: str, name_path: str) -> None:
    """Reject invalid or duplicate tool names and strict schemas the API refuses (400)."""
    seen: set[str] = set()
    for i, tool in enumerate(tools):
        if not isinstance(tool.name, str) or not _TOOL_NAME.match(tool.name):
            raise StubAPIError(
                400,
                f"Invalid '{param_prefix}[{i}]{name_path}': string does not match pattern. "
                "Expected a string that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
                param=f"{param_prefix}[{i}]{name_path}",
                code="invalid_value",
            )
        if tool.name in seen:
            raise StubAPIError(
                400,
                f"Duplicate tool name {tool.name!r} in '{param_prefix}': "
                "tool names must be unique.",
                param=f"{param_prefix}[{i}]{name_path}",
                code="invalid_value",
            )
        seen.add(tool.name)
        if tool.strict:
            problem = _strict_schema_problem(tool.parameters, tool.parameters, ())
            if problem is not None:
                raise StubAPIError(
                    400,
                    f"Invalid schema for function '{tool.name}': {problem}",
                    param=f"{param_prefix}[{i}]",
                    code="invalid_function_parameters",
                )


def _strict_schema_problem(
    schema: Any, root: Mapping[str, Any], ctx: tuple[str, ...]
) -> str | None:
    """The first rule of OpenAI's strict mode that ``schema`` breaks, or ``None``."""
    if not isinstance(schema, Mapping):
        return None
    where = f"In context={ctx!r}, "
    if "oneOf" in schema:
        return where + "'oneOf' is not permitted."
    if "default" in schema and schema["default"] is not None:
        return where + "'default' is not permitted."
    types = schema.get("type")
    is_object = types == "object" or (isinstance(types, list) and "object" in types)
    if is_object or "properties" in schema:
        props = schema.get("properties") or {}
        if schema.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        required = schema.get("required") or []
        missing = [k for k in props if k not in required]
        if missing:
            return (
                where + "'required' is required to be supplied and to be an array including "
                f"every key in properties. Missing '{missing[0]}'."
            )
        for key, sub in props.items():
            problem = _strict_schema_problem(sub, root, (*ctx, "properties", key))
            if problem:
                return problem
    for key in ("items",):
        if key in schema:
            problem = _strict_schema_problem(schema[key], root, (*ctx, key))
            if problem:
                return problem
    for key in ("anyOf", "allOf"):
        for j, sub in enumerate(schema.get(key) or []):
            problem = _strict_schema_problem(sub, root, (*ctx, key, str(j)))
            if problem:
                return problem
    for defs_key in ("$defs", "definitions"):
        for name, sub in (schema.get(defs_key) or {}).items():
            problem = _strict_schema_problem(sub, root, (*ctx, defs_key, name))
            if problem:
                return problem
    return None


# ---------------------------------------------------------------------------
# Default rule-based model
# ---------------------------------------------------------------------------

_QUERY_NAMES = (
    "query",
    "text",
    "q",
    "search",
    "search_query",
    "query_text",
    "prompt",
    "question",
    "input",
    "keywords",
    "terms",
)


def select_tools(tools: list[OfferedTool], tool_choice: Any) -> list[OfferedTool]:
    """The tools the rule-based model may call under ``tool_choice`` (any API's shape)."""
    if tool_choice == "none":
        return []
    name = None
    if isinstance(tool_choice, Mapping):
        fn = tool_choice.get("function")
        name = fn.get("name") if isinstance(fn, Mapping) else tool_choice.get("name")
    if name is None:
        return tools
    return [t for t in tools if t.name == name] or tools


def requested_schema(output_format: Any) -> Mapping[str, Any] | None:
    """The JSON schema a structured-output request asks for: ``{}`` in JSON mode, ``None``
    for text. Takes Chat's ``response_format`` (schema under ``json_schema``) or
    Responses' ``text.format`` (schema at the top)."""
    if not isinstance(output_format, Mapping):
        return None
    if output_format.get("type") == "json_object":
        return {}
    if output_format.get("type") != "json_schema":
        return None
    spec = output_format.get("json_schema")
    schema = (spec if isinstance(spec, Mapping) else output_format).get("schema")
    return schema if isinstance(schema, Mapping) else {}


def default_turn(
    items: Sequence[ConvItem],
    tools: Sequence[OfferedTool],
    output_schema: Mapping[str, Any] | None = None,
) -> StubTurn:
    """What the rule-based model answers when nothing is scripted (deterministic).

    A user message last with tools offered: call the first tool with the user's words.
    Tool results last: summarise them. Otherwise: a short text answer. With structured
    outputs asked for (``output_schema``; ``{}`` for plain JSON mode) the text answer is a
    JSON object: one that fits the schema, with the answer in its first string field.
    """
    turn = _default_turn(items, tools)
    if output_schema is None or turn.tool_calls:
        return turn
    answer = turn.text or ""
    if not output_schema:
        return text(json.dumps({"answer": answer}))
    return text(json.dumps(build_arguments(output_schema, answer, strict=True)))


def _default_turn(items: Sequence[ConvItem], tools: Sequence[OfferedTool]) -> StubTurn:
    last = items[-1] if items else None
    if last is not None and last.kind == "user" and tools:
        follow_up = _follow_up(items, tools)
        if follow_up is not None:
            return tool_calls(follow_up)
        tool = tools[0]
        args = build_arguments(tool.parameters, last.text, strict=tool.strict)
        return tool_calls(call(tool.name, args))
    if last is not None and last.kind == "tool_result":
        return text(_summarise(items))
    if last is not None and last.kind == "user":
        return text(f"You said: {last.text}" if last.text else "Hello.")
    return text("How can I help?")


_REFERS_BACK = re.compile(
    r"\b(ones?|those|these|them|more|others?|next|shorter|longer|newer|older|again)\b", re.I
)
_ASKS_NEXT = re.compile(r"\b(more|next|others?)\b", re.I)
_NEXT_PAGE = re.compile(r"call again with ([A-Za-z_][A-Za-z0-9_]*)=(\d+)")


def _follow_up(items: Sequence[ConvItem], tools: Sequence[OfferedTool]) -> StubToolCall | None:
    """A follow-up question about earlier results ("any shorter ones?", "show me more"),
    answered as a model would: the next page when the last output says how to get it,
    else the earlier search with the new words added (a standalone query)."""
    text = items[-1].text
    if not _REFERS_BACK.search(text):
        return None
    previous: StubToolCall | None = None
    output = ""
    for item in items[:-1]:
        if item.kind == "tool_calls" and item.calls:
            previous, output = item.calls[0], ""
        elif item.kind == "tool_result" and previous is not None and not output:
            output = item.text
    tool = next((t for t in tools if previous is not None and t.name == previous.name), None)
    if previous is None or tool is None:
        return None
    try:
        args = json.loads(previous.arguments)
    except ValueError:
        return None
    if not isinstance(args, dict):
        return None
    properties = tool.parameters.get("properties") or {}
    page = _NEXT_PAGE.search(output)
    if _ASKS_NEXT.search(text) and page is not None and page.group(1) in properties:
        return call(tool.name, {**args, page.group(1): int(page.group(2))})
    query_path = _find_query_path(tool.parameters, tool.parameters, tool.strict)
    if query_path is None or len(query_path) != 1 or not isinstance(args.get(query_path[0]), str):
        return None
    return call(tool.name, {**args, query_path[0]: f"{args[query_path[0]]} {text}"})


def _summarise(items: Sequence[ConvItem]) -> str:
    names: dict[str, str] = {}
    for item in items:
        for c in item.calls:
            if c.call_id:
                names[c.call_id] = c.name
    results: list[ConvItem] = []
    for item in reversed(items):
        if item.kind != "tool_result":
            break
        results.append(item)
    results.reverse()
    parts = [_summarise_one(r.text) for r in results]
    if len(parts) == 1:
        return parts[0]
    return " ".join(
        f"{names.get(r.call_id, 'tool')}: {p}" for r, p in zip(results, parts, strict=True)
    )


_LIST_KEYS = ("documents", "results", "data", "items", "hits", "retrievers", "collections")
_LABEL_KEYS = ("title", "name", "document_id", "id", "retriever_id", "collection_id")


def _label(doc: Any) -> str | None:
    if not isinstance(doc, Mapping):
        return str(doc) if doc is not None else None
    # A title anywhere beats an id: the summary is meant for people reading the test.
    for key in _LABEL_KEYS:
        for source in (doc, doc.get("metadata")):
            value = source.get(key) if isinstance(source, Mapping) else None
            if isinstance(value, (str, int)) and value != "":
                return str(value)
    return None


def _summarise_one(output: str) -> str:
    try:
        data = json.loads(output)
    except (ValueError, TypeError):
        snippet = output.strip().replace("\n", " ")
        return f"The tool returned: {snippet[:200]}" if snippet else "The tool returned nothing."
    docs: Any = None
    more = ""
    if isinstance(data, list):
        docs = data
    elif isinstance(data, Mapping):
        err = data.get("error")
        if err:
            msg = err.get("message") if isinstance(err, Mapping) else err
            return f"The tool reported an error: {msg}"
        if isinstance(data.get("rows"), list):
            docs = as_objects(data)  # the columns layout of search outputs
        for key in _LIST_KEYS:
            if docs is None and isinstance(data.get(key), list):
                docs = data[key]
        if isinstance(data.get("more"), str):
            more = f" ({data['more']}.)"
    if docs is None:
        snippet = json.dumps(data, separators=(",", ":"), default=str)
        return f"The tool returned: {snippet[:200]}"
    labels = [lbl for lbl in (_label(d) for d in docs[:5]) if lbl]
    noun = "result" if len(docs) == 1 else "results"
    if not docs:
        return "Found 0 results."
    found = (
        f"Found {len(docs)} {noun}: {', '.join(labels)}" if labels else f"Found {len(docs)} {noun}."
    )
    return found + more


def _resolve(schema: Any, root: Mapping[str, Any]) -> Mapping[str, Any]:
    """Follow a local ``$ref`` (``#/$defs/X``) once or more."""
    seen = 0
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str) and seen < 16:
        ref: str = schema["$ref"]
        target: Any = root
        for part in ref.lstrip("#/").split("/"):
            target = target.get(part) if isinstance(target, Mapping) else None
        if target is None:
            return {}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        seen += 1
    return schema if isinstance(schema, Mapping) else {}


def _branches(schema: Mapping[str, Any], root: Mapping[str, Any]) -> tuple[bool, Mapping[str, Any]]:
    """Split a schema into (nullable, the non-null schema to fill)."""
    schema = _resolve(schema, root)
    types = schema.get("type")
    nullable = bool(schema.get("nullable"))
    if isinstance(types, list):
        nullable = nullable or "null" in types
        rest = [t for t in types if t != "null"]
        schema = {**schema, "type": rest[0] if rest else "null"}
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list) and options:
            resolved = [_resolve(o, root) for o in options]
            non_null = [o for o in resolved if o.get("type") != "null"]
            nullable = nullable or len(non_null) < len(resolved)
            base = {k: v for k, v in schema.items() if k != key}
            inner_nullable, inner = _branches(non_null[0], root) if non_null else (True, {})
            return nullable or inner_nullable, {**base, **inner}
    if "enum" in schema and None in (schema.get("enum") or []):
        nullable = True
    return nullable, schema


def _is_string(schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    _, s = _branches(schema, root)
    return s.get("type") == "string" and "enum" not in s and "format" not in s


def _fill_keys(schema: Mapping[str, Any], strict: bool) -> list[str]:
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    return [k for k in props if strict or k in required]


def _find_query_path(
    schema: Mapping[str, Any], root: Mapping[str, Any], strict: bool
) -> tuple[str, ...] | None:
    """The property path (possibly nested) that should carry the user's words."""

    def walk(s: Mapping[str, Any], path: tuple[str, ...], pred: Any) -> tuple[str, ...] | None:
        _, s = _branches(s, root)
        props = s.get("properties") or {}
        for key, sub in props.items():
            if _is_string(sub, root) and pred(key, s):
                return (*path, key)
        for key, sub in props.items():
            _, inner = _branches(sub, root)
            if inner.get("type") == "object" or "properties" in inner:
                found = walk(inner, (*path, key), pred)
                if found:
                    return found
        return None

    by_name = walk(schema, (), lambda key, _s: key.lower() in _QUERY_NAMES)
    if by_name:
        return by_name
    by_required = walk(schema, (), lambda key, s: key in _fill_keys(s, strict))
    return by_required or walk(schema, (), lambda _key, _s: True)


def build_arguments(
    parameters: Mapping[str, Any], user_text: str, *, strict: bool = False
) -> dict[str, Any]:
    """Arguments for a tool built from the user's words and the tool's JSON schema.

    The query-like string property (``query``/``text``/``q``..., else the first required
    string) gets the user text; other required properties get ``null`` when nullable, else
    their default, first enum value or a type-appropriate placeholder. A strict schema
    (every property required) is filled completely.
    """
    root = parameters
    query_path = _find_query_path(parameters, root, strict)
    value = _build_value(parameters, root, (), query_path, user_text, strict)
    return value if isinstance(value, dict) else {}


def _build_value(
    schema: Any,
    root: Mapping[str, Any],
    path: tuple[str, ...],
    query_path: tuple[str, ...] | None,
    user_text: str,
    strict: bool,
) -> Any:
    nullable, s = _branches(schema, root)
    on_query = query_path is not None and query_path[: len(path)] == path
    if on_query and query_path == path:
        return user_text
    if "const" in s:
        return s["const"]
    if nullable and not on_query:
        return None
    if "default" in s and s["default"] is not None and not on_query:
        return s["default"]
    enum = [e for e in (s.get("enum") or []) if e is not None]
    if enum:
        return enum[0]
    kind = s.get("type")
    if kind == "object" or "properties" in s:
        keys = _fill_keys(s, strict)
        if query_path is not None and on_query and len(query_path) > len(path):
            head = query_path[len(path)]
            if head not in keys:
                keys.append(head)
        props = s.get("properties") or {}
        return {
            k: _build_value(props[k], root, (*path, k), query_path, user_text, strict) for k in keys
        }
    if kind == "array":
        if int(s.get("minItems") or 0) > 0:
            return [_build_value(s.get("items") or {}, root, (*path, "0"), None, user_text, strict)]
        return []
    if kind in ("integer", "number"):
        low = s.get("minimum", s.get("exclusiveMinimum"))
        high = s.get("maximum", s.get("exclusiveMaximum"))
        number = 5
        if isinstance(high, (int, float)):
            number = min(number, int(high))
        if isinstance(low, (int, float)):
            number = max(number, int(low) + (1 if "exclusiveMinimum" in s else 0))
        return number if kind == "integer" else float(number)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    if kind == "string":
        fmt = s.get("format")
        if fmt == "date":
            return "2024-01-01"
        if fmt == "date-time":
            return "2024-01-01T00:00:00Z"
        return user_text or "example"
    return None
