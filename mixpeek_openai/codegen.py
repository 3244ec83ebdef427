"""Generate a typed Pydantic module for a retriever, to commit and edit.

:func:`generate_module` writes the same model :func:`~mixpeek_openai.schema.build_arguments_model`
builds at runtime, as source code: one class per object (nested objects first), ``Literal``
enums, ``Field`` descriptions, optional inputs as ``T | None = None`` with their default
named in the description. The module depends only on ``pydantic`` (dates, date-times and
file URLs are checked with ``pattern`` constraints), so it stays valid wherever it lives.
Pass the class to ``MixpeekTools.add_retriever(retriever_id, model=...)``; its fields are
checked against the live ``input_schema`` when the tools are built.
"""

from __future__ import annotations

import keyword
from collections.abc import Mapping
from typing import Any

from mixpeek_openai.errors import ConfigurationError
from mixpeek_openai.schema import _FieldPlan, _pascal, _plan, _TypePlan

__all__ = ["codegen_for", "generate_module", "model_class_name"]

_LINE = 88
_INDENT = "    "

_ALIASES: dict[str, tuple[str, str]] = {
    "date": (
        "IsoDate",
        "IsoDate = Annotated[\n"
        '    str, Field(pattern=r"^\\d{4}-\\d\\d-\\d\\d$", json_schema_extra={"format": "date"})\n'
        "]\n"
        '"""An ISO 8601 date, YYYY-MM-DD."""',
    ),
    "datetime": (
        "IsoDateTime",
        "IsoDateTime = Annotated[\n"
        "    str,\n"
        "    Field(\n"
        '        pattern=r"^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d'
        '(:\\d\\d(\\.\\d+)?)?(Z|[+-]\\d\\d:?\\d\\d)?$",\n'
        '        json_schema_extra={"format": "date-time"},\n'
        "    ),\n"
        "]\n"
        '"""An ISO 8601 date-time, e.g. 2024-05-31T13:45:00Z."""',
    ),
    "media": (
        "MediaUrl",
        'MediaUrl = Annotated[str, Field(pattern=r"^((https?|s3|gs)://\\S+|data:[^,]*,)")]\n'
        '"""A file given by URL (https://, http://, s3://, gs://) or as a data: URI."""',
    ),
}

_DOCREF_CLASS = '''class DocumentReference(BaseModel):
    """A reference to one stored document."""

    model_config = ConfigDict(extra="forbid")

    collection_id: str = Field(
        min_length=1, description="Id of the collection holding the document."
    )
    document_id: str = Field(
        min_length=1, description="Id of the document within that collection."
    )'''


def model_class_name(retriever: Mapping[str, Any]) -> str:
    """The class name :func:`generate_module` uses: ``<RetrieverName>Inputs``."""
    label = retriever.get("retriever_name") or retriever.get("retriever_id") or "Retriever"
    return _pascal(str(label)) + "Inputs"


def _py_str(text: str) -> str:
    """A Python string literal in the quote style ``ruff format`` prefers."""
    # ruff format keeps double quotes unless that needs more escapes than single quotes.
    quote = "'" if text.count('"') > text.count("'") else '"'
    out: list[str] = []
    for char in text:
        if char in ("\\", quote):
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])
    return quote + "".join(out) + quote


def _chunks(text: str, width: int) -> list[str]:
    words = text.split(" ")
    lines: list[str] = []
    current = ""
    for word in words:
        candidate = f"{current} {word}" if current else word
        if current and len(_py_str(candidate + " ")) > width:
            lines.append(current + " ")
            current = word
        else:
            current = candidate
    lines.append(current)
    return lines


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return _py_str(value)
    return repr(value)


class _Writer:
    """Collects module-level blocks (dependencies first) and the imports they need."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.aliases: list[str] = []
        self.typing: set[str] = set()
        self.pydantic: set[str] = {"BaseModel", "ConfigDict", "Field"}
        self.docref = False

    def literal_alias(self, values: tuple[Any, ...], hint: str) -> str:
        """A named ``Literal`` (one value per line), so field lines stay short."""
        self.typing.add("Literal")
        rendered = [_literal(v) for v in values]
        if len(values) == 1:
            return f"Literal[{rendered[0]}]"
        lines = [f"{hint} = Literal["]
        lines.extend(f"{_INDENT}{v}," for v in rendered)
        lines.append("]")
        self.blocks.append("\n".join(lines))
        return hint

    def annotation(self, plan: _TypePlan, hint: str) -> str:
        kind = plan.kind
        simple = {"str": "str", "float": "float", "int": "int", "bool": "bool"}
        if kind in simple:
            return simple[kind]
        if kind in _ALIASES:
            name, source = _ALIASES[kind]
            if source not in self.aliases:
                self.aliases.append(source)
                self.typing.add("Annotated")
            return name
        if kind == "docref":
            self.docref = True
            return "DocumentReference"
        if kind == "literal":
            return self.literal_alias(plan.literal_values, hint)
        if kind == "list":
            assert plan.item is not None
            return f"list[{self.annotation(plan.item, hint + 'Item')}]"
        if kind in ("json_any", "json_object", "json_array"):
            self.pydantic.add("Json")
            self.typing.add("Any")
            inner = {"json_any": "Any", "json_object": "dict[str, Any]"}.get(kind, "list[Any]")
            return f"Json[{inner}]"
        self.model(plan.class_name, plan.fields, doc=None)
        return plan.class_name

    def field_lines(self, plan: _FieldPlan, owner: str) -> list[str]:
        hint = owner + _pascal(plan.alias)
        annotation = self.annotation(plan.type, hint)
        if not plan.required:
            annotation += " | None"
        if len(f"{_INDENT}{plan.name}: {annotation} = Field(") > _LINE:
            # ruff would wrap the annotation itself; name it instead.
            self.blocks.append(f"{hint}Type = {annotation}")
            annotation = f"{hint}Type"
        args: list[str] = []
        if not plan.required:
            args.append("default=None")
        if plan.alias != plan.name:
            args.append(f"alias={_py_str(plan.alias)}")
        head = f"{_INDENT}{plan.name}: {annotation} = Field("
        desc = _py_str(plan.description)
        one_line = head + ", ".join([*args, f"description={desc}"]) + ")"
        if len(one_line) <= _LINE:
            return [one_line]
        lines = [head]
        lines.extend(f"{_INDENT * 2}{a}," for a in args)
        inner = _INDENT * 2 + f"description={desc},"
        if len(inner) <= _LINE or " " not in plan.description:
            lines.append(inner)
        else:
            lines.append(f"{_INDENT * 2}description=(")
            for chunk in _chunks(plan.description, _LINE - len(_INDENT) * 3):
                lines.append(_INDENT * 3 + _py_str(chunk))
            lines.append(f"{_INDENT * 2}),")
        lines.append(f"{_INDENT})")
        return lines

    def model(self, name: str, fields: tuple[_FieldPlan, ...], *, doc: str | None) -> None:
        body: list[str] = []
        for plan in fields:
            body.extend(self.field_lines(plan, name))
        docstring = doc or f"The {name} object."
        config = 'model_config = ConfigDict(extra="forbid", populate_by_name=True)'
        lines = [
            f"class {name}(BaseModel):",
            f'{_INDENT}"""{_docstring_text(docstring)}"""',
            "",
            f"{_INDENT}{config}",
        ]
        if body:
            lines.append("")
            lines.extend(body)
        self.blocks.append("\n".join(lines))


def _docstring_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def generate_module(retriever: Mapping[str, Any], *, class_name: str | None = None) -> str:
    """Source of a Pydantic module with a typed arguments model for ``retriever``.

    Args:
        retriever: a retriever definition (``GET /retrievers/{id}`` payload) with its
            ``input_schema``.
        class_name: name of the model class (default :func:`model_class_name`).

    Returns:
        Python source: ``RETRIEVER_ID``, ``RETRIEVER_NAME`` and the model class (plus nested
        classes and ``DocumentReference`` when needed).
    """
    if not isinstance(retriever, Mapping):
        raise ConfigurationError("generate_module needs a retriever definition (a mapping).")
    name = class_name or model_class_name(retriever)
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ConfigurationError(
            f"class_name {name!r} is not a valid Python class name: use letters, digits and "
            "underscores, not starting with a digit and not a keyword (e.g. 'ProductDemoInputs')."
        )
    input_schema = retriever.get("input_schema") or {}
    retriever_id = str(retriever.get("retriever_id") or "")
    label = str(retriever.get("retriever_name") or retriever_id or name)
    plans = _plan(input_schema, name)
    writer = _Writer()
    writer.model(name, plans, doc=f"Inputs of the Mixpeek retriever {label!r}.")

    header = [
        f'"""Typed inputs of the Mixpeek retriever {_docstring_text(repr(label))}.',
        "",
        "Generated by mixpeek-openai codegen: commit it, edit descriptions freely, and use it",
        "with MixpeekTools.add_retriever(RETRIEVER_ID, model=" + name + ").",
        '"""',
        "",
    ]
    typing_names = sorted(writer.typing)
    imports = []
    if typing_names:
        imports.append(f"from typing import {', '.join(typing_names)}")
        imports.append("")
    imports.append(f"from pydantic import {', '.join(sorted(writer.pydantic))}")
    blocks: list[str] = []
    blocks.append(f"RETRIEVER_ID = {_py_str(retriever_id)}\nRETRIEVER_NAME = {_py_str(label)}")
    blocks.extend(writer.aliases)
    if writer.docref:
        blocks.append(_DOCREF_CLASS)
    blocks.extend(writer.blocks)
    exports = f'__all__ = ["RETRIEVER_ID", "RETRIEVER_NAME", {_py_str(name)}]'
    source = "\n".join(header + imports) + "\n\n" + exports + "\n\n"
    source += blocks[0] + "\n\n"
    for block in blocks[1:]:
        source += "\n" + block + "\n\n"
    return source.rstrip("\n") + "\n"


def codegen_for(client: Any, retriever_id: str, *, class_name: str | None = None) -> str:
    """Fetch ``retriever_id`` with ``client`` (``GET /retrievers/{id}``) and generate its module.

    Always fetches the live definition (no cache): generated code should match what the
    server has now.
    """
    from mixpeek_openai.tools import DEFAULT_RETRIEVER_CACHE

    definition = DEFAULT_RETRIEVER_CACHE.fetch(client, retriever_id, refresh=True)
    if not definition.get("retriever_id"):
        definition["retriever_id"] = retriever_id
    return generate_module(definition, class_name=class_name)
