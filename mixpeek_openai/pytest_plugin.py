"""pytest fixtures of the offline test kit ``mixpeek_openai.testing`` (a ``pytest11`` entry point).

pytest loads this module in every environment where the package is installed, so the kit
(and the ``mixpeek`` package, slow to import) is only imported when a fixture is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from mixpeek_openai.testing._fake_mixpeek import FakeMixpeek
    from mixpeek_openai.testing._stub_openai import StubOpenAI


@pytest.fixture
def fake_mixpeek() -> Iterator[FakeMixpeek]:
    """A running :class:`~mixpeek_openai.testing.FakeMixpeek`, closed after the test."""
    from mixpeek_openai.testing._fake_mixpeek import FakeMixpeek

    with FakeMixpeek() as fake:
        yield fake


@pytest.fixture
def stub_openai() -> StubOpenAI:
    """A fresh :class:`~mixpeek_openai.testing.StubOpenAI` (real openai clients, no network)."""
    from mixpeek_openai.testing._stub_openai import StubOpenAI

    return StubOpenAI()
