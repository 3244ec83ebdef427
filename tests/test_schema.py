"""input_schema -> Pydantic model -> strict function schema, checked against an oracle."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from datetime import timezone
from typing import Any, Literal

import pydantic
import pytest
from agents.strict_schema import ensure_strict_json_schema
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from mixpeek_openai.errors import ConfigurationError, MixpeekSchemaWarning
from mixpeek_openai.schema import (
    SUPPORTED_TYPES,
    DocumentReference,
    build_arguments_model,
    parse_arguments,
    strict_json_schema,
    to_inputs,
)
from mixpeek_openai.testing import FakeMixpeek

ALL_TYPES = sorted(SUPPORTED_TYPES)

# A value the model could send for each type, and what the retriever should receive.
SAMPLE_VALUES: dict[str, tuple[Any, Any]] = {
    "string": ("red shoes", "red shoes"),
    "text": ("how to set up sso", "how to set up sso"),
    "number": (0.5, 0.5),
    "float": (2, 2.0),
    "integer": (7, 7),
    "boolean": (True, True),
    "date": ("2024-05-31", "2024-05-31"),
    "datetime": ("2024-05-31T13:45:00Z", "2024-05-31T13:45:00Z"),
    "image": ("https://cdn.example.com/a.png", "https://cdn.example.com/a.png"),
    "audio": ("s3://bucket/a.mp3", "s3://bucket/a.mp3"),
    "video": ("https://cdn.example.com/a.mp4", "https://cdn.example.com/a.mp4"),
    "pdf": ("data:application/pdf;base64,JVBERi0=", "data:application/pdf;base64,JVBERi0="),
    "excel": ("https://x.example.com/sheet.xlsx", "https://x.example.com/sheet.xlsx"),
    "document_reference": (
        {"collection_id": "col_1", "document_id": "doc_1"},
        {"collection_id": "col_1", "document_id": "doc_1"},
    ),
    "object": ({"a": "x", "b": 2}, {"a": "x", "b": 2}),
    "array": (["x", "y"], ["x", "y"]),
}


def spec_for(kind: str, **extra: Any) -> dict[str, Any]:
    """A field spec of ``kind`` (objects and arrays get a simple shape)."""
    spec: dict[str, Any] = {"type": kind, "description": f"A {kind} input"}
    if kind == "object":
        spec["properties"] = {
            "a": {"type": "string", "required": True},
            "b": {"type": "integer"},
        }
    if kind == "array":
        spec["items"] = {"type": "string"}
    spec.update(extra)
    return spec


def walk(schema: Any) -> Any:
    """Every sub-schema (dicts) of a JSON schema."""
    if isinstance(schema, dict):
        yield schema
        for value in schema.values():
            yield from walk(value)
    elif isinstance(schema, list):
        for item in schema:
            yield from walk(item)


def assert_strict_ok(schema: dict[str, Any]) -> None:
    """The oracle is a no-op on it, and the API rules the oracle does not check hold."""
    assert ensure_strict_json_schema(copy.deepcopy(schema)) == schema
    assert schema["type"] == "object"
    assert "anyOf" not in schema
    for node in walk(schema):
        if "properties" in node and isinstance(node["properties"], dict):
            if not all(isinstance(v, dict) for v in node["properties"].values()):
                continue  # a "properties" key inside a property map
            assert node.get("additionalProperties") is False, node
            assert node.get("required") == list(node["properties"]), node
        if node.get("type") == "object":
            assert node.get("additionalProperties") is False, node
        for banned in ("default", "title", "examples", "oneOf", "allOf", "const", "minLength"):
            assert banned not in node or (
                # a property may be *named* like a keyword
                isinstance(node.get(banned), dict) and "type" in node.get(banned, {})
            ), (banned, node)
        if "$ref" in node:
            assert list(node) == ["$ref"], node


def strict_schema_of(input_schema: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return strict_json_schema(build_arguments_model(input_schema, model_name="Args"), **kw)


# --- every type, alone ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ALL_TYPES)
@pytest.mark.parametrize("required", [True, False])
def test_each_type_alone_is_strict_valid(kind: str, required: bool) -> None:
    schema = strict_schema_of({"f": spec_for(kind, required=required)})
    assert_strict_ok(schema)
    prop = schema["properties"]["f"]
    nullable = "anyOf" in prop and {"type": "null"} in prop["anyOf"]
    assert nullable is (not required)
    assert prop["description"].startswith(f"A {kind} input.")


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_each_type_validates_and_becomes_plain_inputs(kind: str) -> None:
    model = build_arguments_model({"f": spec_for(kind, required=True)}, model_name="Args")
    sent, expected = SAMPLE_VALUES[kind]
    instance = parse_arguments(model, json.dumps({"f": sent}))
    assert to_inputs(instance) == {"f": expected}
    assert json.loads(json.dumps(to_inputs(instance))) == {"f": expected}


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_each_type_with_default_is_nullable_without_a_schema_default(kind: str) -> None:
    sent, _ = SAMPLE_VALUES[kind]
    spec = spec_for(kind, default=sent, required=True)
    model = build_arguments_model({"f": spec}, model_name="Args")
    schema = strict_json_schema(model)
    assert_strict_ok(schema)
    assert "null" in json.dumps(schema["properties"]["f"]["anyOf"])
    assert "retriever's default" in schema["properties"]["f"]["description"]
    # null means "use the retriever's default": the input is left out
    assert to_inputs(parse_arguments(model, {"f": None})) == {}


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_each_type_non_strict_schema_is_plain(kind: str) -> None:
    schema = strict_schema_of(
        {"f": spec_for(kind), "g": spec_for(kind, required=True)}, strict=False
    )
    assert schema.get("required") == ["g"]
    assert {"type": "null"} not in list(walk(schema["properties"]["f"]))
    assert "title" not in json.dumps(schema)


# --- nesting --------------------------------------------------------------------------

NESTED_SCHEMA: dict[str, Any] = {
    "query": {"type": "text", "required": True, "examples": ["red shoes", "blue hat"]},
    "outer": {
        "type": "object",
        "description": "Outer object",
        "properties": {
            "rows": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "kind": {"type": "string", "enum": ["a", "b"], "required": True},
                        "ref": {"type": "document_reference"},
                        "when": {"type": "date", "default": "2024-01-01"},
                        "deep": {
                            "type": "object",
                            "properties": {
                                "media": {"type": "image"},
                                "at": {"type": "datetime", "required": True},
                                "scores": {"type": "array", "items": {"type": "number"}},
                            },
                        },
                    },
                },
            },
            "level": {"type": "integer", "enum": [1, 2, 3], "default": 2},
        },
        "required": ["rows"],
    },
    "maybe_ref": {"type": "document_reference"},
    "flags": {"type": "array", "items": {"type": "boolean"}},
    "choice": {"type": "string", "enum": ["x", "y"], "required": True},
}


def test_nested_objects_arrays_enums_and_optional_refs_are_strict_valid() -> None:
    model = build_arguments_model(NESTED_SCHEMA, model_name="Nested")
    schema = strict_json_schema(model)
    assert_strict_ok(schema)
    assert "$defs" not in schema  # non-recursive models are fully inlined
    rows = schema["properties"]["outer"]["anyOf"][0]["properties"]["rows"]
    assert rows["items"]["properties"]["kind"]["enum"] == ["a", "b"]
    assert schema["properties"]["choice"] == {
        "description": "Choice.",
        "enum": ["x", "y"],
        "type": "string",
    }
    assert 'Examples: "red shoes", "blue hat".' in schema["properties"]["query"]["description"]
    assert "(2)" in schema["properties"]["outer"]["anyOf"][0]["properties"]["level"]["description"]
    plain = strict_json_schema(model, strict=False)
    assert plain["required"] == ["query", "choice"]
    assert plain["properties"]["outer"]["required"] == ["rows"]
    assert {"type": "null"} not in list(walk(plain))


def test_nested_arguments_round_trip_to_plain_inputs() -> None:
    model = build_arguments_model(NESTED_SCHEMA, model_name="Nested")
    sent = {
        "query": "shoes",
        "outer": {
            "rows": [
                {
                    "kind": "a",
                    "ref": {"collection_id": "c", "document_id": "d"},
                    "when": None,
                    "deep": {"media": None, "at": "2024-01-01T00:00:00+02:00", "scores": [1, 2.5]},
                }
            ],
            "level": None,
        },
        "maybe_ref": None,
        "flags": [True, False],
        "choice": "y",
    }
    instance = parse_arguments(model, sent)
    assert to_inputs(instance) == {
        "query": "shoes",
        "outer": {
            "rows": [
                {
                    "kind": "a",
                    "ref": {"collection_id": "c", "document_id": "d"},
                    "deep": {"at": "2024-01-01T00:00:00+02:00", "scores": [1.0, 2.5]},
                }
            ]
        },
        "flags": [True, False],
        "choice": "y",
    }


# --- values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        ("date", "2024-02-30"),
        ("date", "31/05/2024"),
        ("date", "2024-05-31T10:00:00"),
        ("datetime", "2024-05-31"),
        ("datetime", "2024-05-31T25:00:00Z"),
        ("datetime", "yesterday"),
        ("image", "cat.png"),
        ("video", ""),
        ("pdf", "ftp://x/y.pdf"),
        ("document_reference", {"collection_id": "c"}),
        ("document_reference", {"collection_id": "", "document_id": "d"}),
        ("integer", "many"),
        ("boolean", "perhaps"),
        ("object", {"a": "x", "zzz": 1}),
    ],
)
def test_invalid_values_are_refused_with_a_validation_error(kind: str, bad: Any) -> None:
    model = build_arguments_model({"f": spec_for(kind, required=True)}, model_name="Args")
    with pytest.raises(pydantic.ValidationError):
        parse_arguments(model, {"f": bad})


@pytest.mark.parametrize(
    "good",
    ["2024-05-31T13:45:00Z", "2024-05-31T13:45", "2024-05-31 13:45:00.123456789+05:30"],
)
def test_datetimes_in_iso_forms_are_kept_unchanged(good: str) -> None:
    model = build_arguments_model({"f": {"type": "datetime", "required": True}}, model_name="A")
    assert to_inputs(parse_arguments(model, {"f": good})) == {"f": good}


def test_date_and_datetime_formats_are_stated() -> None:
    schema = strict_schema_of(
        {"d": {"type": "date", "required": True}, "t": {"type": "datetime", "required": True}}
    )
    assert schema["properties"]["d"]["format"] == "date"
    assert "YYYY-MM-DD" in schema["properties"]["d"]["description"]
    assert schema["properties"]["t"]["format"] == "date-time"
    assert "ISO 8601" in schema["properties"]["t"]["description"]


@pytest.mark.parametrize(
    ("kind", "noun"),
    [("image", "an image"), ("audio", "an audio file"), ("video", "a video"), ("pdf", "a PDF")],
)
def test_media_fields_say_url_or_data_uri(kind: str, noun: str) -> None:
    schema = strict_schema_of({"m": {"type": kind, "required": True}})
    assert f"URL (https://...) or data URI of {noun}" in schema["properties"]["m"]["description"]


def test_extra_arguments_are_refused() -> None:
    model = build_arguments_model({"q": {"type": "string"}}, model_name="A")
    with pytest.raises(pydantic.ValidationError, match="Extra inputs"):
        parse_arguments(model, {"q": "x", "retriever_id": "ret_other"})


def test_arguments_must_be_a_json_object() -> None:
    model = build_arguments_model({"q": {"type": "string"}}, model_name="A")
    with pytest.raises(ValueError, match="JSON object"):
        parse_arguments(model, "[1, 2]")
    with pytest.raises(ValueError):
        parse_arguments(model, "{not json")
    assert to_inputs(parse_arguments(model, "")) == {}


# --- fallbacks ------------------------------------------------------------------------


def test_unknown_type_warns_and_falls_back_to_json_text() -> None:
    with pytest.warns(MixpeekSchemaWarning, match=r"hologram"):
        model = build_arguments_model(
            {"h": {"type": "hologram", "required": True}, "q": {"type": "string"}},
            model_name="A",
        )
    schema = strict_json_schema(model)
    assert_strict_ok(schema)
    assert schema["properties"]["h"]["type"] == "string"
    assert "JSON" in schema["properties"]["h"]["description"]
    assert to_inputs(parse_arguments(model, {"h": '{"x": [1]}', "q": None})) == {"h": {"x": [1]}}
    with pytest.raises(pydantic.ValidationError):
        parse_arguments(model, {"h": "not json"})


def test_open_object_and_itemless_array_are_json_text() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these are valid schemas: no warning
        model = build_arguments_model(
            {"o": {"type": "object"}, "a": {"type": "array"}}, model_name="A"
        )
    assert_strict_ok(strict_json_schema(model))
    inputs = to_inputs(parse_arguments(model, {"o": '{"k": null}', "a": '[1, "x"]'}))
    assert inputs == {"o": {"k": None}, "a": [1, "x"]}
    with pytest.raises(pydantic.ValidationError):
        parse_arguments(model, {"o": "[1]"})


def test_awkward_names_get_aliases_and_keep_their_wire_names() -> None:
    names = ["class", "model_config", "2fast", "with space", "schema", "json", "_private", "from"]
    input_schema = {n: {"type": "string", "required": True} for n in names}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = build_arguments_model(input_schema, model_name="A")
    schema = strict_json_schema(model)
    assert_strict_ok(schema)
    assert list(schema["properties"]) == names
    values = {n: f"v{i}" for i, n in enumerate(names)}
    assert to_inputs(parse_arguments(model, values)) == values


def test_model_name_is_made_an_identifier() -> None:
    model = build_arguments_model({}, model_name="my retriever-1")
    assert model.__name__.isidentifier()
    assert strict_json_schema(model) == {
        "type": "object",
        "properties": {},
        "required": [],
        "additionalProperties": False,
    }


def test_non_mapping_input_schema_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="mapping"):
        build_arguments_model(["query"], model_name="A")  # type: ignore[arg-type]


# --- hand-written models ----------------------------------------------------------------


class Filters(BaseModel):
    """Nested, with a docstring that should not be repeated at every use."""

    color: Literal["red", "blue"] | None = None


class HandWritten(BaseModel):
    query: str = Field(description="What to look for")
    top_k: int = Field(10, ge=1, le=50, description="How many")
    kind: Literal["video"] = "video"
    filters: Filters | None = Field(None, description="Filters")
    ref: DocumentReference | None = None


def test_hand_written_model_with_non_null_defaults_is_strict_valid() -> None:
    schema = strict_json_schema(HandWritten)
    assert_strict_ok(schema)
    assert schema["properties"]["top_k"]["anyOf"][0] == {
        "maximum": 50,
        "minimum": 1,
        "type": "integer",
    }
    assert schema["properties"]["kind"]["anyOf"][0]["enum"] == ["video"]
    assert "Nested, with a docstring" not in json.dumps(schema)
    # strict mode makes the model send null for top_k: that means "use the default"
    parsed = parse_arguments(
        HandWritten, {"query": "q", "top_k": None, "kind": None, "filters": None, "ref": None}
    )
    assert to_inputs(parsed) == {"query": "q", "top_k": 10, "kind": "video"}


class Node(BaseModel):
    label: str
    children: list[Node] = Field(default_factory=list, description="Sub-nodes")


class Tree(BaseModel):
    root: Node = Field(description="The root")


def test_recursive_models_keep_a_bare_ref_into_root_defs() -> None:
    schema = strict_json_schema(Tree)
    assert_strict_ok(schema)
    assert set(schema["$defs"]) == {"Node"}
    assert schema["properties"]["root"]["description"] == "The root"


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Pet(BaseModel):
    pet: Cat | Dog = Field(discriminator="kind")
    names: dict[str, int] | None = None


def test_one_of_becomes_any_of_and_open_mappings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="names"):
        strict_json_schema(Pet)
    schema = strict_json_schema(Pet, strict=False)
    assert "oneOf" not in json.dumps(schema)
    assert len(schema["properties"]["pet"]["anyOf"]) == 2

    class OnlyPet(BaseModel):
        pet: Cat | Dog = Field(discriminator="kind")

    assert_strict_ok(strict_json_schema(OnlyPet))


def test_schemas_are_accepted_by_the_openai_sdk_helpers() -> None:
    """The chat tool shape our schemas go into is the SDK's own TypedDict shape."""
    from openai.types.chat import ChatCompletionFunctionToolParam

    model = build_arguments_model(NESTED_SCHEMA, model_name="Nested")
    tool: ChatCompletionFunctionToolParam = {
        "type": "function",
        "function": {"name": "x", "parameters": strict_json_schema(model), "strict": True},
    }
    assert json.loads(json.dumps(tool)) == tool


# --- property: random input_schemas end to end ------------------------------------------

LEAF_TYPES = sorted(SUPPORTED_TYPES - {"object", "array"})
FIELD_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True) | st.sampled_from(
    ["class", "model_config", "with space", "2x", "json", "limit"]
)
MEDIA_VALUES = [
    "https://cdn.example.com/a.png",
    "data:image/png;base64,iVBORw0KGgo=",
    "s3://bucket/key.mp4",
]
ID_TEXT = st.text(alphabet="abcdefghij0123456789_", min_size=1, max_size=8)


def value_strategy(spec: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values the API accepts for ``spec`` (what a well-behaved model would send)."""
    if spec.get("enum"):
        return st.sampled_from(spec["enum"])
    kind = spec["type"]
    simple: dict[str, st.SearchStrategy[Any]] = {
        "string": st.text(max_size=12),
        "text": st.text(max_size=12),
        "number": st.floats(allow_nan=False, allow_infinity=False, width=32),
        "float": st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-9, 9),
        "integer": st.integers(-1000, 1000),
        "boolean": st.booleans(),
        "date": st.dates().map(lambda d: d.isoformat()),
        "datetime": st.datetimes(timezones=st.none() | st.just(timezone.utc)).map(
            lambda d: d.isoformat().replace("+00:00", "Z")
        ),
        "document_reference": st.fixed_dictionaries(
            {"collection_id": ID_TEXT, "document_id": ID_TEXT}
        ),
    }
    if kind in simple:
        return simple[kind]
    if kind in ("image", "audio", "video", "pdf", "excel"):
        return st.sampled_from(MEDIA_VALUES)
    if kind == "array":
        return st.lists(value_strategy(spec["items"]), max_size=3)
    assert kind == "object"
    return arguments_strategy(spec["properties"])


def arguments_strategy(input_schema: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Every key present (strict mode); optional ones may be null ("not given")."""
    parts = {}
    for name, spec in input_schema.items():
        value = value_strategy(spec)
        required = spec.get("required") and spec.get("default") is None
        parts[name] = value if required else st.none() | value
    return st.fixed_dictionaries(parts)


@st.composite
def leaf_spec(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(LEAF_TYPES))
    spec: dict[str, Any] = {"type": kind}
    if kind in ("string", "text") and draw(st.booleans()):
        spec["enum"] = draw(
            st.lists(st.text(min_size=1, max_size=6), min_size=1, max_size=4, unique=True)
        )
    elif kind == "integer" and draw(st.integers(0, 3)) == 0:
        spec["enum"] = draw(st.lists(st.integers(0, 99), min_size=1, max_size=4, unique=True))
    return spec


def field_spec(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    children = leaf_spec() if depth == 0 else field_spec(depth - 1)
    shapes = [leaf_spec(), leaf_spec()]
    if depth > 0:
        shapes.append(
            st.builds(
                lambda props: {"type": "object", "properties": props},
                st.dictionaries(FIELD_NAMES, children, min_size=1, max_size=3),
            )
        )
        shapes.append(st.builds(lambda item: {"type": "array", "items": item}, children))
    return st.one_of(shapes).flatmap(decorate)


def decorate(spec: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Add the optional keys: required, description, examples, default."""

    @st.composite
    def build(draw: st.DrawFn) -> dict[str, Any]:
        out = dict(spec)
        if draw(st.booleans()):
            out["required"] = True
        if draw(st.booleans()):
            out["description"] = draw(st.text(max_size=30))
        if draw(st.integers(0, 3)) == 0:
            out["examples"] = draw(st.lists(value_strategy(spec), min_size=1, max_size=2))
        if draw(st.integers(0, 3)) == 0:
            out["default"] = draw(value_strategy(spec))
        return out

    return build()


INPUT_SCHEMAS = st.dictionaries(FIELD_NAMES, field_spec(2), max_size=5)


@pytest.fixture(scope="module")
def property_fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek() as fake:
        yield fake


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(input_schema=INPUT_SCHEMAS, data=st.data())
def test_random_schemas_are_strict_and_random_arguments_reach_the_api(
    property_fake: FakeMixpeek, input_schema: dict[str, Any], data: st.DataObject
) -> None:
    model = build_arguments_model(input_schema, model_name="Random")
    assert_strict_ok(strict_json_schema(model))
    arguments = data.draw(arguments_strategy(input_schema), label="arguments")
    inputs = to_inputs(parse_arguments(model, json.dumps(arguments)))
    assert json.loads(json.dumps(inputs)) == inputs
    rid = property_fake.add_retriever(
        {"retriever_id": "ret_random", "retriever_name": "random", "input_schema": input_schema}
    )
    client = property_fake.client()
    response = client.retrievers.execute(rid, inputs=inputs, limit=1)
    assert response["status"] in ("completed", "degraded")
