"""The approaches the benchmarks compare against.

* :mod:`.handwritten` - what Mixpeek's docs show: a hand-written ``query``/``limit`` schema,
  a sequential loop over ``tool_calls`` and ``json.dumps`` of the raw response.
* :mod:`.agents_tool` - openai-agents' ``function_tool`` wrapping the hand-written body.
* :mod:`.langchain_tool` - langchain-mixpeek's ``MixpeekTool``.
* :mod:`.pydantic_ai_tool` - pydantic-ai's ``Tool`` run through its ``ToolManager``.
"""
