"""Fixtures shared by the loop tests: one fake Mixpeek per module, two search tools, a stub."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.tools import MixpeekTools


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    """A fake Mixpeek server shared by the tests of one module."""
    with FakeMixpeek() as server:
        yield server


@pytest.fixture
def tools(fake: FakeMixpeek) -> MixpeekTools:
    """Search tools for two sample retrievers, with the server's request log cleared."""
    fake.clear_requests()
    return MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos", "ret_catalog"])


@pytest.fixture
def stub() -> StubOpenAI:
    """A fresh stub OpenAI API."""
    return StubOpenAI()
