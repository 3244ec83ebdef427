"""Generated Pydantic modules: valid, ruff-clean, and accepted by add_retriever."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from agents.strict_schema import ensure_strict_json_schema
from pydantic import BaseModel

from mixpeek_openai.codegen import codegen_for, generate_module, model_class_name
from mixpeek_openai.errors import ConfigurationError, MixpeekSchemaWarning, SchemaMismatchError
from mixpeek_openai.schema import build_arguments_model, parse_arguments, to_inputs
from mixpeek_openai.testing import FakeMixpeek
from mixpeek_openai.tools import MixpeekTools, RetrieverCache


def load(source: str, path: Path) -> ModuleType:
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # pydantic resolves annotations through the module
    spec.loader.exec_module(module)
    return module


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--isolated"],
        capture_output=True,
        text=True,
        check=False,
    )


AWKWARD: dict[str, Any] = {
    "retriever_id": "ret_awkward",
    "retriever_name": "awkward one",
    "input_schema": {
        "class": {"type": "string", "required": True, "description": 'Says "hi" and it\'s ok'},
        "when": {"type": "date", "default": "2024-01-01"},
        "at": {"type": "datetime"},
        "blob": {"type": "object"},
        "items": {"type": "array"},
        "mystery": {"type": "hologram"},
        "long": {"type": "text", "description": "word " * 80},
        "nested": {
            "type": "object",
            "properties": {
                "rows": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "ref": {"type": "document_reference"},
                            "level": {"type": "integer", "enum": [1, 2]},
                        },
                    },
                }
            },
        },
    },
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek() as fake:
        yield fake


def sample_definitions(fake: FakeMixpeek) -> list[dict[str, Any]]:
    return [fake.retriever(rid) for rid in fake.retriever_ids]


def test_generated_modules_compile_import_and_fit_their_retriever(
    fake: FakeMixpeek, tmp_path: Path
) -> None:
    client = fake.client()
    tools = MixpeekTools.from_retrievers(client, fake.retriever_ids, cache=RetrieverCache())
    for definition in sample_definitions(fake):
        rid = definition["retriever_id"]
        source = generate_module(definition)
        compile(source, f"{rid}.py", "exec")
        module = load(source, tmp_path / f"gen_{rid}.py")
        model = getattr(module, model_class_name(definition))
        assert issubclass(model, BaseModel)
        assert rid == module.RETRIEVER_ID
        tools.add_retriever(rid, model=model)  # the field check passes
        tool = next(t for t in tools if t.retriever_id == rid)
        assert issubclass(tool.arguments_model, model)
        params = tool.parameters()
        assert ensure_strict_json_schema(copy.deepcopy(params)) == params
        # same wire shape as the model built at runtime
        built = build_arguments_model(definition["input_schema"], model_name="Built")
        assert list(model.model_json_schema()["properties"]) == list(
            built.model_json_schema()["properties"]
        )


def test_generated_modules_are_ruff_clean(fake: FakeMixpeek, tmp_path: Path) -> None:
    sources = [generate_module(d) for d in sample_definitions(fake)]
    with pytest.warns(MixpeekSchemaWarning, match="hologram"):
        sources.append(generate_module(AWKWARD))
    paths = []
    for i, source in enumerate(sources):
        path = tmp_path / f"gen_{i}.py"
        path.write_text(source)
        paths.append(str(path))
    checked = ruff("check", "--select", "E,F,W,I,UP,B,SIM,RUF", *paths)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = ruff("format", "--check", "--diff", *paths)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_awkward_names_and_types_round_trip(tmp_path: Path) -> None:
    with pytest.warns(MixpeekSchemaWarning, match="hologram"):
        source = generate_module(AWKWARD)
    module = load(source, tmp_path / "gen_awkward.py")
    model = module.AwkwardOneInputs
    args = {
        "class": "x",
        "when": None,
        "at": "2024-05-31T13:45:00Z",
        "blob": '{"a": 1}',
        "items": "[1]",
        "mystery": '"m"',
        "long": "w",
        "nested": {"rows": [{"ref": {"collection_id": "c", "document_id": "d"}, "level": 2}]},
    }
    with pytest.warns(MixpeekSchemaWarning, match="hologram"):
        built = build_arguments_model(AWKWARD["input_schema"], model_name="Built")
    assert to_inputs(parse_arguments(model, args)) == to_inputs(parse_arguments(built, args))
    with pytest.warns(MixpeekSchemaWarning, match="hologram"):
        tools = MixpeekTools(None, [AWKWARD])
    tools.add_retriever("ret_awkward", model=model)
    assert 'Says "hi"' in model.model_fields["class_"].description


def test_a_stale_generated_model_is_caught(fake: FakeMixpeek, tmp_path: Path) -> None:
    definition = fake.retriever("ret_catalog")
    module = load(generate_module(definition), tmp_path / "gen_stale.py")
    changed = copy.deepcopy(definition)
    changed["input_schema"]["brand"] = {"type": "string", "required": True}
    tools = MixpeekTools(None, [changed])
    with pytest.raises(SchemaMismatchError, match="brand"):
        tools.add_retriever("ret_catalog", model=module.CatalogSearchInputs)


def test_codegen_for_fetches_the_live_definition(fake: FakeMixpeek) -> None:
    fake.clear_requests()
    source = codegen_for(fake.client(), "ret_document_qa")
    assert "class DocumentQaInputs(BaseModel):" in source
    assert 'RETRIEVER_ID = "ret_document_qa"' in source
    assert len(fake.requests_for("get_retriever")) == 1
    assert fake.api_key not in source


def test_invalid_input_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        generate_module(["not", "a", "retriever"])  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="'not valid' is not a valid Python class name"):
        generate_module({"retriever_name": "x"}, class_name="not valid")
    assert json.loads(json.dumps(generate_module({"retriever_name": "empty"})))
