"""A Pydantic model you declare, bound to a retriever with ``add_retriever``.

Your model decides what the LLM sees: field names, descriptions, enums, bounds. It is
checked against the retriever's ``input_schema`` (``SchemaMismatchError`` if a field is
not an input or a required input is missing). ``fields=`` picks the document fields the
model gets back (projection). With real keys, edit the model to match the inputs of your
first ``MIXPEEK_RETRIEVERS`` retriever (``mixpeek-openai codegen ID`` writes one for you).

Run it: ``python examples/custom_model.py``
"""

from __future__ import annotations

import json
from typing import Literal

from _common import setup
from pydantic import BaseModel, ConfigDict, Field

from mixpeek_openai import MixpeekTools, run_chat


class FindDemo(BaseModel):
    """Find product-demo videos."""

    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="What the viewer wants to see, in plain words.")
    category: Literal["crm", "analytics", "integrations", "mobile", "security"] | None = Field(
        default=None, description="Product area, if the user named one."
    )


with setup() as env:
    tools = MixpeekTools(env.mixpeek).add_retriever(
        env.retrievers[0],
        model=FindDemo,
        name="find_demo",
        description="Find product-demo videos by topic.",
        fields=["title", "url", "duration_s"],
    )
    print(json.dumps(tools.chat_tools()[0]["function"]["parameters"], indent=2))
    result = run_chat(
        env.openai,
        tools,
        model=env.model,
        messages=[{"role": "user", "content": "security demo about SSO"}],
    )
    print("Model saw:", result.calls[0].output[:200], "...")
    print("Answer:", result.content)
