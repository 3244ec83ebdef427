"""The approaches the benchmarks compare against.

* :mod:`.handwritten` - what Mixpeek's docs show: a hand-written ``query``/``limit`` schema,
  a sequential loop over ``tool_calls`` and ``json.dumps`` of the raw response.
* :mod:`.agents_tool` - openai-agents' ``function_tool`` wrapping ``retrievers.execute``.
* :mod:`.langchain_tool` - langchain-mixpeek's ``MixpeekTool``.
"""
