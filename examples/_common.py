"""Shared setup for the examples: real services when keys are set, the offline kit otherwise.

With ``OPENAI_API_KEY`` and ``MIXPEEK_API_KEY`` set (plus ``MIXPEEK_NAMESPACE`` and
``MIXPEEK_RETRIEVERS=ret_a,ret_b``), the examples talk to OpenAI and Mixpeek. Without
them they start :class:`~mixpeek_openai.testing.FakeMixpeek` (a local Mixpeek server with
a sample namespace) and :class:`~mixpeek_openai.testing.StubOpenAI` (a local stand-in
model: it calls the first tool with the user's words, then summarises the results).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from openai import AsyncOpenAI, OpenAI

from mixpeek_openai.testing import FakeMixpeek, StubOpenAI


@dataclass
class Setup:
    """The clients and names an example needs."""

    openai: OpenAI
    async_openai: AsyncOpenAI
    mixpeek: Any  # mixpeek.Mixpeek
    model: str
    retrievers: list[str]
    fake: FakeMixpeek | None = None  # set when offline
    stub: StubOpenAI | None = None  # set when offline

    @property
    def offline(self) -> bool:
        """Whether the example runs against the local kit."""
        return self.fake is not None


@contextmanager
def setup(default_retrievers: Sequence[str] = ("ret_product_demos",)) -> Iterator[Setup]:
    """Real clients when both API keys are set; otherwise the offline kit (printed)."""
    with ExitStack() as stack:
        if os.environ.get("OPENAI_API_KEY") and os.environ.get("MIXPEEK_API_KEY"):
            from mixpeek import Mixpeek

            ids = [r for r in os.environ.get("MIXPEEK_RETRIEVERS", "").split(",") if r]
            if not ids:
                sys.exit("Set MIXPEEK_RETRIEVERS to your retriever ids, e.g. ret_a,ret_b")
            env = Setup(
                openai=OpenAI(),
                async_openai=AsyncOpenAI(),
                mixpeek=Mixpeek(),
                model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
                retrievers=ids,
            )
        else:
            print("(offline: sample Mixpeek namespace + a local stand-in model; no keys needed)")
            fake = stack.enter_context(FakeMixpeek())
            stub = StubOpenAI()
            env = Setup(
                openai=stub.client(),
                async_openai=stub.async_client(),
                mixpeek=fake.client(),
                model="gpt-4o-mini",
                retrievers=list(default_retrievers),
                fake=fake,
                stub=stub,
            )
        stack.callback(env.openai.close)
        yield env
