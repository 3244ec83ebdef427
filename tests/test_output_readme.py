"""README's "What the model gets back" shows real outputs: regenerated here and compared.

Each JSON block in that section follows a ``<!-- output: NAME -->`` marker; the outputs
are produced through the public API against the sample namespace. When shaping changes on
purpose, paste the "actual" text from the failure into README.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mixpeek_openai.dispatch import DispatchConfig, ToolCallResult
from mixpeek_openai.retries import RetryPolicy
from mixpeek_openai.testing import FakeMixpeek, Fault
from mixpeek_openai.tools import MixpeekTools

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## What the model gets back"
TOOL = "search_product_demo"


def section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    return text[start:end]


def blocks() -> dict[str, str]:
    found = re.findall(r"<!-- output: (\w+) -->\n```json\n(.*?)\n```", section(), re.S)
    return dict(found)


def call(args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "c1",
        "type": "function",
        "function": {"name": TOOL, "arguments": json.dumps(args)},
    }


@pytest.fixture
def dispatch(fake: FakeMixpeek) -> Callable[..., ToolCallResult]:
    config = DispatchConfig(retry=RetryPolicy(max_attempts=3, sleep=lambda _s: None))
    tools = MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos"], config=config)

    def run(args: dict[str, Any], fields: list[str] | None = None) -> ToolCallResult:
        if fields is not None:
            tools.add_retriever("ret_product_demos", fields=fields)
        [result] = tools.dispatch([call(args)])
        return result

    return run


def test_the_section_has_every_example() -> None:
    assert set(blocks()) == {"default", "projection", "invalid_arguments", "unavailable"}


def test_default_and_projected_outputs_match(dispatch: Callable[..., ToolCallResult]) -> None:
    shown = blocks()
    result = dispatch({"query": "sso setup", "limit": 3})
    assert result.output == shown["default"]
    size = len(json.dumps(result.raw).encode())
    assert f"the raw response was {size:,} bytes" in " ".join(section().split())
    projected = dispatch({"query": "sso setup", "limit": 3}, ["title", "url", "duration_s"])
    assert projected.output == shown["projection"]


def test_error_outputs_match(dispatch: Callable[..., ToolCallResult], fake: FakeMixpeek) -> None:
    shown = blocks()
    assert dispatch({"query": "sso", "max_duration": "long"}).output == shown["invalid_arguments"]
    fake.inject("execute", Fault.status(503), times=None)
    try:
        down = dispatch({"query": "sso"})
    finally:
        fake.clear_faults()
    assert down.output == shown["unavailable"]
    assert down.error is not None
    assert (down.error.kind, down.error.status, down.attempts) == ("http_error", 503, 3)
