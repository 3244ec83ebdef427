"""Benchmarks for mixpeek-openai, measured side by side with the alternatives.

Run everything in one process (``python -m benchmarks``; ``--smoke`` for a quick check with
tiny counts). Every figure runs against the offline kit in :mod:`mixpeek_openai.testing`
(``FakeMixpeek`` on loopback, ``StubOpenAI`` over a mock transport) or an in-process
backend, so nothing leaves the machine. Results go to ``benchmarks/RESULTS.md`` and
``benchmarks/results.json`` (or the ``--output`` directory).

Modules: one per figure (``fig1_dispatch`` ... ``fig6_throughput``), the peers in
:mod:`benchmarks.peers`, shared fixtures in :mod:`benchmarks._backend` and statistics and
the report in :mod:`benchmarks._report`.
"""
