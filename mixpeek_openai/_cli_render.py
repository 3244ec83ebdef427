"""What the ``mixpeek-openai`` command prints: loop narration, size tables, retriever tables.

Kept free of heavy imports at module level (pydantic, openai, mixpeek): the command imports
this module before it knows whether it will need any of them, and a command that fails on
a bad flag should answer at once.
"""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mixpeek_openai.dispatch import ToolCallResult
    from mixpeek_openai.events import Event
    from mixpeek_openai.tools import MixpeekTools

__all__ = [
    "EventPrinter",
    "Output",
    "SizeReport",
    "importing",
    "is_terminal",
    "preview",
    "print_size_table",
    "retriever_rows",
    "status",
    "typed_arguments",
    "write_retriever_table",
]

_PREVIEW_CHARS = 220
_LABEL = 11  # width of the left-hand column ("tool call", "result", ...)
_ERASE_LINE = "\r\x1b[K"


class Output(Protocol):
    """Where the command writes: a text stream (only ``write`` and ``flush`` are used)."""

    def write(self, text: str, /) -> int:
        """Write ``text``."""
        ...

    def flush(self) -> None:
        """Flush buffered text."""
        ...


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is an open terminal (no ``isatty`` or a closed stream: no)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


@contextmanager
def status(stream: Any, text: str) -> Iterator[None]:
    """Show ``text`` as a transient status line on ``stream`` while the block runs.

    Only on a terminal: the line is erased when the block ends (however it ends), so the
    output that follows starts on a clean line. Piped or captured streams get nothing,
    which keeps logs and ``2>file`` free of progress noise.
    """
    shown = is_terminal(stream)
    if shown:
        stream.write(f"{text}…")
        stream.flush()
    try:
        yield
    finally:
        if shown:
            stream.write(_ERASE_LINE)
            stream.flush()


def importing(stream: Any, module: str, text: str) -> None:
    """Import ``module`` under a status line (``text``) when it is not imported yet.

    The ``mixpeek`` package loads about 1,750 modules (seconds on a cold start); saying so
    on the terminal beats a silent pause.
    """
    if module in sys.modules:
        return
    import importlib

    with status(stream, text):
        importlib.import_module(module)


def _line(stream: Output, label: str, text: str) -> None:
    stream.write(f"  {label:<{_LABEL}}{text}\n")
    stream.flush()


def typed_arguments(tools: MixpeekTools, name: str, arguments: dict[str, Any] | None) -> str:
    """The call's arguments as the tool's Pydantic model sees them, e.g. ``Args(query='x')``.

    Fields left ``null`` (the retriever's default applies) are not shown. Arguments that do
    not validate are shown as the model sent them.
    """
    from mixpeek_openai.schema import parse_arguments

    definition = tools.get(name)
    if definition is None or arguments is None:
        return json.dumps(arguments)
    model = definition.arguments_model
    try:
        instance = parse_arguments(model, arguments)
    except ValueError:  # pydantic.ValidationError is a ValueError too
        return json.dumps(arguments)
    given = instance.model_dump(exclude_none=True)
    return f"{model.__name__}({', '.join(f'{k}={v!r}' for k, v in given.items())})"


def _documents_in(output: str) -> int | None:
    try:
        value = json.loads(output)
    except ValueError:
        return None
    docs = value.get("documents") if isinstance(value, dict) else None
    return len(docs) if isinstance(docs, list) else None


def preview(text: str, limit: int = _PREVIEW_CHARS) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class EventPrinter:
    """An ``on_event`` callback that narrates a loop: tool calls, results, the answer.

    Progress goes to ``progress``; the answer text (streamed fragments or whole replies)
    goes to ``answer``. With the same stream for both, the narration reads top to bottom.
    """

    def __init__(
        self, tools: MixpeekTools, *, progress: Output, answer: Output, verbose: bool = True
    ) -> None:
        self._tools = tools
        self._progress = progress
        self._answer = answer
        self._verbose = verbose
        self._streaming = False
        self._streamed_turns: set[int] = set()

    def _end_stream(self) -> None:
        if self._streaming:
            self._answer.write("\n")
            self._answer.flush()
            self._streaming = False

    def __call__(self, event: Event) -> None:
        """Print one event."""
        if event.type == "thinking":
            self._end_stream()
            if self._verbose:
                _line(self._progress, "model", f"turn {event.turn}: asking {event.model}…")
        elif event.type == "tool_call":
            self._end_stream()
            args = typed_arguments(self._tools, event.name, event.arguments)
            _line(self._progress, "tool call", f"{event.name}  {args}")
        elif event.type == "tool_result":
            status = "ok" if event.ok else f"failed ({event.error_kind})"
            count = _documents_in(event.output)
            parts = [status, f"{event.duration_s * 1000:.0f} ms"]
            if count is not None:
                parts.append(f"{count} documents")
            parts.append(f"{len(event.output.encode()):,} bytes to the model")
            _line(self._progress, "result", " · ".join(parts))
            if self._verbose:
                _line(self._progress, "", preview(event.output))
        elif event.type == "message":
            if event.delta:
                if not self._streaming:
                    if self._answer is self._progress:
                        self._answer.write(f"  {'answer':<{_LABEL}}")
                    self._streaming = True
                self._streamed_turns.add(event.turn)
                self._answer.write(event.text)
                self._answer.flush()
            elif event.turn not in self._streamed_turns and event.text:
                if self._answer is self._progress:
                    _line(self._answer, "answer", event.text)
                else:
                    self._answer.write(event.text + "\n")
                    self._answer.flush()
        elif event.type == "done":
            self._end_stream()


@dataclass(frozen=True)
class SizeReport:
    """What went to the model versus the raw Mixpeek responses, for a list of calls."""

    calls: int
    output_bytes: int
    output_tokens: int
    raw_bytes: int
    raw_tokens: int

    @classmethod
    def of(cls, calls: Sequence[ToolCallResult]) -> SizeReport:
        """Measure ``calls`` (bytes of UTF-8 JSON, tokens as the dispatcher counts them)."""
        from mixpeek_openai.results import default_token_counter

        count = default_token_counter()
        outputs = [c.output for c in calls]
        raws = [json.dumps(c.raw, default=str) for c in calls if c.raw is not None]
        return cls(
            calls=len(calls),
            output_bytes=sum(len(o.encode()) for o in outputs),
            output_tokens=sum(count(o) for o in outputs),
            raw_bytes=sum(len(r.encode()) for r in raws),
            raw_tokens=sum(count(r) for r in raws),
        )


def print_size_table(stream: Output, rows: Sequence[tuple[str, SizeReport]]) -> None:
    """A small table: per API, the bytes/tokens sent to the model vs the raw responses."""
    stream.write("What the model was sent vs the raw Mixpeek responses (tokens estimated):\n")
    header = f"  {'API':<20}{'calls':>6}  {'sent to the model':>24}  {'raw responses':>24}\n"
    stream.write(header)
    for label, r in rows:
        sent = f"{r.output_bytes:,} B (~{r.output_tokens:,} tok)"
        raw = f"{r.raw_bytes:,} B (~{r.raw_tokens:,} tok)"
        stream.write(f"  {label:<20}{r.calls:>6}  {sent:>24}  {raw:>24}\n")
    total_out = sum(r.output_bytes for _, r in rows)
    total_raw = sum(r.raw_bytes for _, r in rows)
    if total_raw:
        share = 100.0 * total_out / total_raw
        stream.write(
            f"  The model read {share:.0f}% of the raw bytes: shaped results keep ids, scores\n"
            "  and useful fields, and drop stage statistics, budgets and bulky payloads.\n"
            "  The raw responses stay available on each ToolCallResult (.raw).\n"
        )
    stream.flush()


# -- the namespace's retrievers ---------------------------------------------------------


def retriever_rows(tools: MixpeekTools) -> list[dict[str, Any]]:
    """One entry per retriever of ``tools``: id, name, description, its tool, its inputs.

    This is what ``mixpeek-openai retrievers --json`` prints; inputs keep the
    ``input_schema`` order, with their type, whether they are required, and their
    description.
    """
    tool_of = {
        d.retriever_id: d.name for d in tools.definitions if d.kind == "search" and d.retriever_id
    }
    rows: list[dict[str, Any]] = []
    for definition in tools.retrievers:
        rid = str(definition.get("retriever_id") or definition.get("retriever_name") or "")
        schema = definition.get("input_schema")
        inputs = []
        if isinstance(schema, Mapping):
            for name, spec in schema.items():
                spec = spec if isinstance(spec, Mapping) else {}
                inputs.append(
                    {
                        "name": str(name),
                        "type": str(spec.get("type") or "string"),
                        "required": bool(spec.get("required")),
                        "description": str(spec.get("description") or ""),
                    }
                )
        rows.append(
            {
                "retriever_id": rid,
                "retriever_name": str(definition.get("retriever_name") or ""),
                "description": str(definition.get("description") or ""),
                "tool": tool_of.get(rid),
                "inputs": inputs,
            }
        )
    return rows


def write_retriever_table(
    stream: Output, rows: Sequence[Mapping[str, Any]], *, width: int = 100
) -> None:
    """``rows`` (from :func:`retriever_rows`) as an aligned table, inputs wrapped to ``width``.

    Required inputs carry a ``*``. The ids are what ``--retriever`` and ``tools`` take.
    """
    headers = ("RETRIEVER ID", "NAME", "INPUTS (* required)")
    ids = [str(r["retriever_id"]) for r in rows]
    names = [str(r["retriever_name"]) for r in rows]
    id_w = max([len(headers[0]), *map(len, ids)])
    name_w = max([len(headers[1]), *map(len, names)])
    indent = id_w + name_w + 4
    inputs_w = max(30, width - indent)
    lines = [f"{headers[0]:<{id_w}}  {headers[1]:<{name_w}}  {headers[2]}".rstrip()]
    for rid, name, row in zip(ids, names, rows, strict=True):
        text = ", ".join(
            f"{i['name']}*" if i["required"] else str(i["name"]) for i in row["inputs"]
        )
        wrapped = textwrap.wrap(text, inputs_w, break_on_hyphens=False) or ["-"]
        lines.append(f"{rid:<{id_w}}  {name:<{name_w}}  {wrapped[0]}")
        lines.extend(" " * indent + more for more in wrapped[1:])
    stream.write("\n".join(lines) + "\n")
    stream.flush()
