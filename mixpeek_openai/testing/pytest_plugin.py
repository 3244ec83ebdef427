"""pytest fixtures of the offline test kit (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mixpeek_openai.testing._fake_mixpeek import FakeMixpeek
from mixpeek_openai.testing._stub_openai import StubOpenAI


@pytest.fixture
def fake_mixpeek() -> Iterator[FakeMixpeek]:
    """A running :class:`~mixpeek_openai.testing.FakeMixpeek`, closed after the test."""
    with FakeMixpeek() as fake:
        yield fake


@pytest.fixture
def stub_openai() -> StubOpenAI:
    """A fresh :class:`~mixpeek_openai.testing.StubOpenAI` (real openai clients, no network)."""
    return StubOpenAI()
