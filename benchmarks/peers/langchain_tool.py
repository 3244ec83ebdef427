"""Peer (c): langchain-mixpeek's ``MixpeekTool``.

What limits it here (read from its source, version 0.4.x):

* it builds ``Mixpeek(api_key=..., namespace=...)`` inside every call, with no base URL
  option, so it can only reach the public API; the benchmark swaps the class it imports
  for one bound to the local server (:func:`pointed_at`) - a patch a user could not
  make without touching its module;
* it takes one string (``query``): no other retriever inputs, no filters, no page size;
* it reads ``response["results"]``, the deprecated alias the API only sends on request
  (``include_legacy_results``), so against the current API it returns ``[]``;
* each result keeps ``document_id``, ``score``, ``source``, ``timestamp`` and one
  ``content_field``, pretty-printed with ``indent=2``.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["available", "make_tool", "output_for", "pointed_at"]


def available() -> bool:
    """Whether langchain-mixpeek is installed (it is in the ``bench`` extra only)."""
    return importlib.util.find_spec("langchain_mixpeek") is not None


def make_tool(
    *, api_key: str, namespace: str, retriever_id: str, top_k: int, content_field: str
) -> Any:
    """A ``MixpeekTool`` for ``retriever_id``."""
    from langchain_mixpeek import MixpeekTool

    return MixpeekTool(
        api_key=api_key,
        retriever_id=retriever_id,
        namespace=namespace,
        top_k=top_k,
        content_field=content_field,
    )


@contextlib.contextmanager
def pointed_at(base_url: str) -> Iterator[None]:
    """Make ``MixpeekTool`` build its clients for ``base_url`` (it has no option for it)."""
    from mixpeek import Mixpeek

    module: Any = importlib.import_module("langchain_mixpeek.tool")
    original = module.Mixpeek
    module.Mixpeek = functools.partial(Mixpeek, base_url=base_url)
    try:
        yield
    finally:
        module.Mixpeek = original


class _Canned:
    """Stands in for ``mixpeek.Mixpeek``: ``retrievers.execute`` returns a fixed response."""

    response: Mapping[str, Any] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.retrievers = self

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        return dict(self.response)


def output_for(response: Mapping[str, Any], *, top_k: int, content_field: str) -> str:
    """What ``MixpeekTool`` returns to the model for ``response`` (its own shaping code)."""
    module: Any = importlib.import_module("langchain_mixpeek.tool")
    canned = type("Canned", (_Canned,), {"response": response})
    original = module.Mixpeek
    module.Mixpeek = canned
    try:
        tool = make_tool(
            api_key="mxp-bench-key",
            namespace="ns_demo",
            retriever_id="ret_x",
            top_k=top_k,
            content_field=content_field,
        )
        return str(tool.invoke("query"))
    finally:
        module.Mixpeek = original
