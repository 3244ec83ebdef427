"""Retriever ``input_schema`` -> Pydantic model -> strict OpenAI function schema.

A Mixpeek retriever declares its inputs as a flat map ``field -> {type, description,
required, default, enum, items, properties, examples}``. This module turns that map into
a Pydantic model (what the model's arguments are validated against) and turns any
arguments model into a JSON schema that OpenAI accepts with ``strict: true``.

Mapping of Mixpeek field types:

================================  =====================================================
``string``, ``text``              ``str``
``number``, ``float``             ``float``
``integer``                       ``int``
``boolean``                       ``bool``
``date``                          :data:`IsoDate` (``YYYY-MM-DD``, validated)
``datetime``                      :data:`IsoDateTime` (ISO 8601 date-time, validated)
``image``/``audio``/``video``/    :data:`MediaUrl`: an ``https://`` (or ``http``,
``pdf``/``excel``                 ``s3``, ``gs``) URL or a ``data:`` URI
``document_reference``            :class:`DocumentReference`
``object`` with ``properties``    a nested model
``object`` without properties     ``Json[dict[str, Any]]``: a JSON object written as text
``array`` with ``items``          ``list[item]``
``array`` without items           ``Json[list[Any]]``: a JSON array written as text
any ``enum``                      ``Literal[...]`` of the listed values
unknown / missing type            ``Json[Any]`` (any JSON value written as text) and a
                                  :class:`~mixpeek_openai.errors.MixpeekSchemaWarning`
================================  =====================================================

Optional inputs (not ``required``, or with a ``default``) become ``T | None = None``: in
strict mode the model must send every property, so it sends ``null`` for "not given", and
:func:`to_inputs` drops those nulls so the retriever applies its own default. The default
value is stated in the field's description, never as a JSON-schema ``default`` (strict mode
rejects it).
"""

from __future__ import annotations

import json
import keyword
import re
import warnings
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Json,
    WithJsonSchema,
    create_model,
)

from mixpeek_openai._decode import decode_arguments
from mixpeek_openai.errors import ConfigurationError, MixpeekSchemaWarning

__all__ = [
    "MEDIA_TYPES",
    "SUPPORTED_TYPES",
    "DocumentReference",
    "IsoDate",
    "IsoDateTime",
    "MediaUrl",
    "build_arguments_model",
    "parse_arguments",
    "strict_json_schema",
    "to_inputs",
]

MEDIA_TYPES: frozenset[str] = frozenset({"image", "audio", "video", "pdf", "excel"})
"""Field types whose value is a file, passed as a URL or a data URI."""

SUPPORTED_TYPES: frozenset[str] = frozenset(
    {
        "string",
        "text",
        "number",
        "float",
        "integer",
        "boolean",
        "date",
        "datetime",
        "object",
        "array",
        "document_reference",
        *MEDIA_TYPES,
    }
)
"""The 16 ``input_schema`` field types this module maps to a precise Pydantic type."""

_MAX_FIELD_DESCRIPTION = 600
_MAX_EXAMPLES = 3
_MAX_EXAMPLE_CHARS = 80

# ---------------------------------------------------------------------------------------
# Value types shared by built models and generated code
# ---------------------------------------------------------------------------------------

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?$"
)
_URL_RE = re.compile(r"^(?:https?|s3|gs)://[^\s/$.?#][^\s]*$", re.IGNORECASE)
_DATA_URI_RE = re.compile(
    r"^data:(?:[\w.+-]+/[\w.+-]+)?(?:;[\w.+-]+=[\w.+-]+)*(?:;base64)?,", re.IGNORECASE
)


def _check_date(value: str) -> str:
    if not _DATE_RE.match(value):
        raise ValueError("expected an ISO 8601 date like 2024-05-31 (YYYY-MM-DD)")
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a real calendar date (YYYY-MM-DD)") from None
    return value


def _check_datetime(value: str) -> str:
    match = _DATETIME_RE.match(value)
    if not match:
        raise ValueError(
            "expected an ISO 8601 date-time like 2024-05-31T13:45:00Z (YYYY-MM-DDTHH:MM[:SS][Z])"
        )
    # Python 3.10's fromisoformat knows neither "Z" nor nine fractional digits: check the
    # calendar and clock parts on their own.
    day, hour, minute, second = match.group(1), match.group(2), match.group(3), match.group(4)
    try:
        datetime.fromisoformat(f"{day}T{hour}:{minute}:{second or '00'}")
    except ValueError:
        raise ValueError(f"{value!r} is not a real date and time") from None
    return value


def _check_media(value: str) -> str:
    if _URL_RE.match(value) or _DATA_URI_RE.match(value):
        return value
    raise ValueError(
        "expected a URL (https://...) or a data URI (data:<mime>;base64,...) of the file"
    )


IsoDate = Annotated[
    str,
    AfterValidator(_check_date),
    WithJsonSchema({"type": "string", "format": "date"}),
]
"""An ISO 8601 calendar date string, ``YYYY-MM-DD`` (validated, sent unchanged)."""

IsoDateTime = Annotated[
    str,
    AfterValidator(_check_datetime),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An ISO 8601 date-time string such as ``2024-05-31T13:45:00Z`` (validated, sent unchanged)."""

MediaUrl = Annotated[str, AfterValidator(_check_media), WithJsonSchema({"type": "string"})]
"""A file given by URL (``https://``, ``http://``, ``s3://``, ``gs://``) or as a ``data:`` URI."""


class DocumentReference(BaseModel):
    """A reference to one stored document: the value of a ``document_reference`` input."""

    model_config = ConfigDict(extra="forbid")

    collection_id: str = Field(
        min_length=1, description="Id of the collection holding the document."
    )
    document_id: str = Field(min_length=1, description="Id of the document within that collection.")


# ---------------------------------------------------------------------------------------
# Plan: input_schema -> a typed description shared by build_arguments_model and codegen
# ---------------------------------------------------------------------------------------

_TypeKind = Literal[
    "str",
    "float",
    "int",
    "bool",
    "date",
    "datetime",
    "media",
    "docref",
    "object",
    "list",
    "json_any",
    "json_object",
    "json_array",
    "literal",
]


@dataclass(frozen=True)
class _TypePlan:
    """The Python type one input maps to, independent of how it is materialised."""

    kind: _TypeKind
    literal_values: tuple[Any, ...] = ()
    item: _TypePlan | None = None
    fields: tuple[_FieldPlan, ...] = ()
    class_name: str = ""


@dataclass(frozen=True)
class _FieldPlan:
    """One field of an arguments model: its Python name, wire name, type and description."""

    name: str
    alias: str
    type: _TypePlan
    required: bool
    description: str


@dataclass
class _PlanContext:
    """Where we are while planning (for class names and warning messages)."""

    model_name: str
    unknown: list[str] = field(default_factory=list)


_RESERVED_NAMES = frozenset(dir(BaseModel)) | {"model_config", "model_fields"}


def _python_name(wire_name: str, taken: set[str]) -> str:
    """A valid, non-clashing Python identifier for an input called ``wire_name``."""
    name = re.sub(r"\W", "_", wire_name)
    if not name or name[0].isdigit() or name.startswith("_"):
        name = "f_" + name.lstrip("_")
    if keyword.iskeyword(name) or name in _RESERVED_NAMES or name.startswith("model_"):
        name += "_"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def pascal_case(text: str) -> str:
    words = re.split(r"[^0-9a-zA-Z]+", text)
    joined = "".join(w[:1].upper() + w[1:] for w in words if w)
    if not joined or joined[0].isdigit():
        joined = "F" + joined
    return joined


_pascal = pascal_case  # the name codegen uses


def _humanize(name: str) -> str:
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).replace("_", " ").replace("-", " ")
    text = " ".join(words.split())
    return text[:1].upper() + text[1:] if text else "Value"


def _sentence(text: str) -> str:
    text = " ".join(str(text).split())
    if text and text[-1] not in ".!?":
        text += "."
    return text


def _short_json(value: Any) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > _MAX_EXAMPLE_CHARS:
        text = text[: _MAX_EXAMPLE_CHARS - 1] + "…"
    return text


_TYPE_HINTS: dict[str, str] = {
    "date": "ISO 8601 date, format YYYY-MM-DD (e.g. 2024-05-31).",
    "datetime": "ISO 8601 date-time, format YYYY-MM-DDTHH:MM:SSZ (e.g. 2024-05-31T13:45:00Z).",
    "json_any": 'Any JSON value, written as JSON text (e.g. "\\"red\\"", "42", "{\\"a\\": 1}").',
    "json_object": 'A JSON object written as JSON text, e.g. "{\\"key\\": \\"value\\"}".',
    "json_array": 'A JSON array written as JSON text, e.g. "[1, 2]".',
}

_MEDIA_NOUNS = {
    "image": "an image",
    "audio": "an audio file",
    "video": "a video",
    "pdf": "a PDF document",
    "excel": "an Excel spreadsheet",
}


def _media_hint(media: str) -> str:
    return f"URL (https://...) or data URI of {_MEDIA_NOUNS.get(media, 'a file')}."


def _spec_type(spec: Mapping[str, Any]) -> str:
    raw = spec.get("type")
    return raw.strip().lower() if isinstance(raw, str) else ""


def _plan_type(spec: Mapping[str, Any], path: str, ctx: _PlanContext) -> tuple[_TypePlan, str]:
    """Plan the type of one input; also return a type hint for its description."""
    kind = _spec_type(spec)
    enum = spec.get("enum")
    if isinstance(enum, (list, tuple)) and enum and kind not in ("object", "array"):
        values = tuple(dict.fromkeys(v for v in enum if _literal_ok(v)))
        if values:
            hint = _media_hint(kind) if kind in MEDIA_TYPES else _TYPE_HINTS.get(kind, "")
            return _TypePlan("literal", literal_values=values), hint
    if kind in ("string", "text"):
        return _TypePlan("str"), ""
    if kind in ("number", "float"):
        return _TypePlan("float"), ""
    if kind == "integer":
        return _TypePlan("int"), ""
    if kind == "boolean":
        return _TypePlan("bool"), ""
    if kind == "date":
        return _TypePlan("date"), _TYPE_HINTS["date"]
    if kind == "datetime":
        return _TypePlan("datetime"), _TYPE_HINTS["datetime"]
    if kind in MEDIA_TYPES:
        return _TypePlan("media"), _media_hint(kind)
    if kind == "document_reference":
        return _TypePlan("docref"), "A stored document, given by its collection_id and document_id."
    if kind == "object":
        properties = spec.get("properties")
        if isinstance(properties, Mapping) and properties:
            required_list = spec.get("required")
            names = set(required_list) if isinstance(required_list, list) else set()
            class_name = ctx.model_name + pascal_case(path)
            fields = _plan_fields(properties, ctx, prefix=path, required_names=names)
            return _TypePlan("object", fields=fields, class_name=class_name), ""
        return _TypePlan("json_object"), _TYPE_HINTS["json_object"]
    if kind == "array":
        items = spec.get("items")
        if isinstance(items, Mapping) and items:
            item, item_hint = _plan_type(items, path + "_item", ctx)
            hints = []
            item_desc = items.get("description")
            if isinstance(item_desc, str) and item_desc.strip():
                hints.append("Each item: " + _sentence(item_desc))
            if item_hint:
                hints.append(("Each item: " if not hints else "") + item_hint)
            return _TypePlan("list", item=item), " ".join(hints)
        return _TypePlan("json_array"), _TYPE_HINTS["json_array"]
    ctx.unknown.append(f"{path} (type {spec.get('type')!r})")
    return _TypePlan("json_any"), _TYPE_HINTS["json_any"]


def _literal_ok(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _describe(name: str, spec: Mapping[str, Any], hint: str, *, required: bool) -> str:
    parts: list[str] = []
    desc = spec.get("description")
    if isinstance(desc, str) and desc.strip():
        parts.append(_sentence(desc))
    else:
        parts.append(_sentence(_humanize(name)))
    if hint:
        parts.append(hint)
    examples = spec.get("examples")
    if isinstance(examples, (list, tuple)) and examples:
        shown = ", ".join(_short_json(e) for e in list(examples)[:_MAX_EXAMPLES])
        parts.append(f"Examples: {shown}.")
    elif "example" in spec:
        parts.append(f"Example: {_short_json(spec['example'])}.")
    if spec.get("default") is not None:
        parts.append(
            f"Optional: send null to use the retriever's default ({_short_json(spec['default'])})."
        )
    elif not required:
        parts.append("Optional: send null to leave it out.")
    text = " ".join(parts)
    if len(text) > _MAX_FIELD_DESCRIPTION:
        text = text[: _MAX_FIELD_DESCRIPTION - 1].rstrip() + "…"
    return text


def _plan_fields(
    input_schema: Mapping[str, Any],
    ctx: _PlanContext,
    *,
    prefix: str = "",
    required_names: set[str] | None = None,
) -> tuple[_FieldPlan, ...]:
    taken: set[str] = set()
    plans: list[_FieldPlan] = []
    for wire_name, raw_spec in input_schema.items():
        wire = str(wire_name)
        spec: Mapping[str, Any] = raw_spec if isinstance(raw_spec, Mapping) else {"type": raw_spec}
        path = f"{prefix}.{wire}" if prefix else wire
        type_plan, hint = _plan_type(spec, path, ctx)
        flag = spec.get("required")
        # A null default is no default (the API treats it so): the input stays required.
        has_default = spec.get("default") is not None
        required = (flag is True or wire in (required_names or ())) and not has_default
        plans.append(
            _FieldPlan(
                name=_python_name(wire, taken),
                alias=wire,
                type=type_plan,
                required=required,
                description=_describe(wire, spec, hint, required=required),
            )
        )
    return tuple(plans)


def _plan(input_schema: Mapping[str, Any], model_name: str) -> tuple[_FieldPlan, ...]:
    if not isinstance(input_schema, Mapping):
        raise ConfigurationError(
            f"input_schema for {model_name} must be a mapping of field name -> spec, "
            f"got {type(input_schema).__name__}."
        )
    ctx = _PlanContext(model_name=model_name)
    plans = _plan_fields(input_schema, ctx)
    if ctx.unknown:
        warnings.warn(
            f"{model_name}: input(s) {', '.join(ctx.unknown)} have a type this version does not "
            "know; they are offered to the model as JSON text (any JSON value) instead.",
            MixpeekSchemaWarning,
            stacklevel=3,
        )
    return plans


# ---------------------------------------------------------------------------------------
# Plan -> Pydantic model
# ---------------------------------------------------------------------------------------

_MODEL_CONFIG = ConfigDict(
    extra="forbid",
    populate_by_name=True,
    protected_namespaces=(),
)


# Json[...] is a runtime type factory that mypy does not model; these are plain values here.
_JSON_ANY: Any = Json[Any]  # type: ignore[misc]
_JSON_OBJECT: Any = Json[dict[str, Any]]
_JSON_ARRAY: Any = Json[list[Any]]


def _materialise(plan: _TypePlan) -> Any:
    simple: dict[str, Any] = {
        "str": str,
        "float": float,
        "int": int,
        "bool": bool,
        "date": IsoDate,
        "datetime": IsoDateTime,
        "media": MediaUrl,
        "docref": DocumentReference,
        "json_any": _JSON_ANY,
        "json_object": _JSON_OBJECT,
        "json_array": _JSON_ARRAY,
    }
    if plan.kind in simple:
        return simple[plan.kind]
    if plan.kind == "literal":
        return Literal[plan.literal_values]
    if plan.kind == "list":
        assert plan.item is not None
        return list[_materialise(plan.item)]  # type: ignore[misc]
    return _model_from_plans(plan.class_name, plan.fields, doc=None)


def _model_from_plans(
    model_name: str, plans: tuple[_FieldPlan, ...], *, doc: str | None
) -> type[BaseModel]:
    definitions: dict[str, Any] = {}
    for p in plans:
        annotation = _materialise(p.type)
        alias = p.alias if p.alias != p.name else None
        if p.required:
            definitions[p.name] = (annotation, Field(description=p.description, alias=alias))
        else:
            definitions[p.name] = (
                annotation | None,
                Field(default=None, description=p.description, alias=alias),
            )
    model: type[BaseModel] = create_model(
        model_name, __config__=_MODEL_CONFIG, __doc__=doc, **definitions
    )
    return model


def build_arguments_model(
    input_schema: Mapping[str, Any],
    *,
    model_name: str,
    description: str | None = None,
) -> type[BaseModel]:
    """Build the Pydantic model for a retriever's ``input_schema``.

    Args:
        input_schema: the retriever's ``input_schema`` (``field -> {type, description,
            required, default, enum, items, properties, examples}``).
        model_name: the class name of the model (nested models are named after it).
        description: optional docstring of the model.

    Returns:
        A model with one field per input (see the module docstring for the type mapping).
        Unknown keys are refused; names that are not Python identifiers (or clash with
        ``BaseModel`` attributes) get a Python name and keep the input's name as alias.

    Warns:
        MixpeekSchemaWarning: an input has a type this version does not know; it falls
        back to JSON text.
    """
    if not model_name.isidentifier():
        model_name = pascal_case(model_name)
    plans = _plan(input_schema, model_name)
    return _model_from_plans(model_name, plans, doc=description)


# ---------------------------------------------------------------------------------------
# Pydantic model -> strict JSON schema
# ---------------------------------------------------------------------------------------

# Keywords OpenAI's strict mode understands; everything else (title, default, examples,
# minLength, contentMediaType, ...) is dropped rather than risk a 400.
_KEPT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "anyOf",
        "description",
        "format",
        "pattern",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)
_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_NULL = {"type": "null"}


class _SchemaWalker:
    """One conversion of a Pydantic JSON schema; keeps the root for ``$ref`` lookups."""

    def __init__(self, root: dict[str, Any], *, strict: bool, model_name: str) -> None:
        self.root = root
        self.strict = strict
        self.model_name = model_name
        self.kept_defs: dict[str, dict[str, Any]] = {}
        self.pending_defs: list[str] = []

    def fail(self, path: str, problem: str) -> ConfigurationError:
        return ConfigurationError(
            f"{self.model_name}: {path or '<root>'} {problem} Strict function schemas need "
            "closed objects with declared properties; change the field's type (e.g. to a nested "
            "model, or `Json[...]` text), or use strict=False."
        )

    def resolve(self, ref: str) -> tuple[str, dict[str, Any]]:
        prefix = "#/$defs/"
        if not ref.startswith(prefix):
            raise self.fail(ref, "uses a $ref outside #/$defs.")
        name = ref[len(prefix) :]
        target = self.root.get("$defs", {}).get(name)
        if not isinstance(target, dict):
            raise self.fail(ref, "points to a missing definition.")
        return name, target

    def node(self, schema: Any, path: str, stack: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(schema, dict):
            raise self.fail(path, "has a non-object schema.")
        schema = dict(schema)
        if "$ref" in schema:
            name, target = self.resolve(schema.pop("$ref"))
            siblings = {k: v for k, v in schema.items() if k in ("description",)}
            if name in stack:
                # A recursive model cannot be inlined: keep a bare $ref into root $defs
                # (siblings next to a $ref are not accepted, so a description goes around it).
                if name not in self.kept_defs and name not in self.pending_defs:
                    self.pending_defs.append(name)
                bare = {"$ref": f"#/$defs/{name}"}
                return {"anyOf": [bare], **siblings} if siblings else bare
            # The referring property describes the value; the class docstring would only
            # repeat it (and cost tokens on every request).
            merged = {**{k: v for k, v in target.items() if k != "description"}, **siblings}
            return self.node(merged, path, (*stack, name))
        all_of = schema.pop("allOf", None)
        if isinstance(all_of, list):
            for part in all_of:
                part_schema = self.node(part, path, stack)
                for key, value in part_schema.items():
                    if key == "properties":
                        schema.setdefault("properties", {}).update(value)
                    elif key == "required":
                        schema["required"] = [*schema.get("required", []), *value]
                    else:
                        schema.setdefault(key, value)
        one_of = schema.pop("oneOf", None)
        if isinstance(one_of, list):
            schema["anyOf"] = [*schema.get("anyOf", []), *one_of]
        if "const" in schema and "enum" not in schema:
            schema["enum"] = [schema["const"]]
        if "prefixItems" in schema and self.strict:
            raise self.fail(path, "is a fixed-length tuple.")

        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "default" and not self.strict and value is not None:
                out["default"] = value
            if key not in _KEPT_KEYWORDS:
                continue
            if key == "format" and value not in _STRICT_FORMATS:
                continue
            out[key] = value

        if "anyOf" in out:
            variants = [self.node(v, f"{path}|", stack) for v in out["anyOf"]]
            out["anyOf"] = _dedupe(variants)
        if "items" in out:
            if not isinstance(out["items"], dict):
                raise self.fail(path, "has a non-object `items`.")
            out["items"] = self.node(out["items"], f"{path}[]", stack)

        is_object = out.get("type") == "object" or "properties" in out
        if is_object:
            self.object_node(schema, out, path, stack)
        elif self.strict and not out.get("type") and not out.get("anyOf") and "enum" not in out:
            raise self.fail(path, "accepts any value.")
        return out

    def object_node(
        self,
        source: dict[str, Any],
        out: dict[str, Any],
        path: str,
        stack: tuple[str, ...],
    ) -> None:
        out["type"] = "object"
        properties = source.get("properties") or {}
        extra = source.get("additionalProperties")
        if self.strict and extra not in (None, False) and not properties:
            raise self.fail(path, "is an open mapping (additionalProperties).")
        # A model that allows extra keys (extra="allow") is closed here: the model only
        # ever needs its declared fields.
        declared_required = [k for k in source.get("required", []) if k in properties]
        new_props: dict[str, Any] = {}
        for key, prop in properties.items():
            sub = self.node(prop, f"{path}.{key}" if path else key, stack)
            if key in declared_required:
                new_props[key] = sub
            elif self.strict:
                new_props[key] = _nullable(sub)
            else:
                new_props[key] = _without_null(sub)
        out["properties"] = new_props
        if self.strict:
            out["required"] = list(new_props)
            out["additionalProperties"] = False
        else:
            if declared_required:
                out["required"] = declared_required
            else:
                out.pop("required", None)
            if extra is False:
                out["additionalProperties"] = False

    def convert(self) -> dict[str, Any]:
        out = self.node(self.root, "", ())
        if out.get("type") != "object":
            raise self.fail("", "is not an object; function parameters must be an object.")
        while self.pending_defs:
            name = self.pending_defs.pop(0)
            _, target = self.resolve(f"#/$defs/{name}")
            self.kept_defs[name] = {}  # reserve, so self-references do not queue it again
            self.kept_defs[name] = self.node(target, f"$defs.{name}", (name,))
        out.pop("description", None)
        if self.kept_defs:
            out["$defs"] = self.kept_defs
        return out


def _dedupe(variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for v in variants:
        if v not in seen:
            seen.append(v)
    return seen


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Let ``schema`` also accept ``null`` (an optional field in strict mode)."""
    if "anyOf" in schema:
        if _NULL not in schema["anyOf"]:
            return {**schema, "anyOf": [*schema["anyOf"], dict(_NULL)]}
        return schema
    if schema.get("type") == "null":
        return schema
    description = schema.get("description")
    inner = {k: v for k, v in schema.items() if k != "description"}
    wrapped: dict[str, Any] = {"anyOf": [inner, dict(_NULL)]}
    if description is not None:
        wrapped["description"] = description
    return wrapped


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """Drop the ``null`` branch of an optional field: without strict mode it can be omitted."""
    variants = schema.get("anyOf")
    if not isinstance(variants, list) or _NULL not in variants:
        return schema
    rest = [v for v in variants if v != _NULL]
    if len(rest) != 1:
        return {**schema, "anyOf": rest}
    merged = {**rest[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
    if "$ref" in merged and len(merged) > 1:
        return {**schema, "anyOf": rest}
    return merged


def strict_json_schema(model: type[BaseModel], *, strict: bool = True) -> dict[str, Any]:
    """The JSON schema of ``model`` as OpenAI function ``parameters``.

    With ``strict=True`` (the default) the result is valid for ``strict: true`` function
    tools: every object is closed (``additionalProperties: false``) and lists all its
    properties in ``required``; optional fields accept ``null``; ``default``, ``title``,
    ``examples`` and other keywords strict mode rejects are removed; ``oneOf`` becomes
    ``anyOf``; ``$ref``s are inlined (only a recursive model keeps a bare ``$ref`` into the
    root ``$defs``).

    With ``strict=False`` the schema is plain JSON schema: optional fields are simply not
    required (no forced ``null``), and non-null defaults are kept.

    Raises:
        ConfigurationError: the model has a field strict mode cannot express (an open
            ``dict[str, X]``, ``Any``, a tuple); the message names the field.
    """
    root = model.model_json_schema(by_alias=True, mode="validation")
    return _SchemaWalker(root, strict=strict, model_name=model.__name__).convert()


# ---------------------------------------------------------------------------------------
# Arguments back: validate and turn into retriever inputs
# ---------------------------------------------------------------------------------------


def _accepts_none(annotation: Any) -> bool:
    if annotation is None or annotation is type(None) or annotation is Any:
        return True
    origin = get_origin(annotation)
    if origin is Annotated:
        return _accepts_none(get_args(annotation)[0])
    if origin is Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        return any(_accepts_none(a) for a in get_args(annotation))
    if origin is Literal:
        return None in get_args(annotation)
    return False


_DEFAULTED_KEYS: weakref.WeakKeyDictionary[type[BaseModel], frozenset[str]] = (
    weakref.WeakKeyDictionary()
)


def _defaulted_keys(model: type[BaseModel]) -> frozenset[str]:
    """Names and aliases of ``model``'s fields that have a default but refuse ``None``
    (worked out once per model: reading annotations costs more than validating)."""
    keys = _DEFAULTED_KEYS.get(model)
    if keys is None:
        keys = frozenset(
            key
            for name, info in model.model_fields.items()
            if not (info.is_required() or _accepts_none(info.annotation))
            for key in (name, info.alias or name)
        )
        _DEFAULTED_KEYS[model] = keys
    return keys


def _drop_defaulted_nulls(model: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """Strict mode lets the model send ``null`` for any optional field; for a field that
    has a default but does not accept ``None`` (common in hand-written models), ``null``
    means "use the default"."""
    keys = _defaulted_keys(model)
    if not keys:
        return data
    return {k: v for k, v in data.items() if v is not None or k not in keys}


_MAX_ARGUMENT_BYTES = 1 << 20


def parse_arguments(model: type[BaseModel], data: Any) -> BaseModel:
    """Validate the model's arguments (a JSON string, bytes, or a mapping) into ``model``.

    ``null`` for a field that has a default is read as "not given".

    Raises:
        pydantic.ValidationError: the arguments do not fit; its message tells what to fix.
        ValueError: the arguments are not JSON, or not a JSON object.
    """
    if isinstance(data, (bytes, bytearray)):
        data = bytes(data).decode("utf-8", errors="replace")
    if isinstance(data, str):
        data = decode_arguments(data, max_bytes=_MAX_ARGUMENT_BYTES)
    if not isinstance(data, Mapping):
        raise ValueError(
            f"tool arguments must be a JSON object, got {type(data).__name__}",
        )
    return model.model_validate(_drop_defaulted_nulls(model, dict(data)))


def to_inputs(instance: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    """Plain-JSON retriever ``inputs`` from a validated arguments model.

    Fields left ``None`` are dropped (so the retriever applies its defaults), keys use the
    inputs' own names (aliases), and nested models / document references become plain
    objects. ``exclude`` names (Python field names) are left out.
    """
    dumped: dict[str, Any] = instance.model_dump(
        mode="json", by_alias=True, exclude_none=True, exclude=exclude
    )
    return dumped
