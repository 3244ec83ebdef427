"""The benchmark modules keep working: figures 1 and 3 run with tiny counts, and the
command writes its report where it is told (never over the committed results in smoke
mode). No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import __main__ as bench_main
from benchmarks import fig1_dispatch, fig3_tokens
from benchmarks._backend import InProcessBackend, Samples, load_cl100k, load_samples
from benchmarks._report import Figure, Settings, Stat, render_markdown

SMOKE = Settings(smoke=True, profile=False)


@pytest.fixture(scope="module")
def samples() -> Samples:
    return load_samples()


def test_samples_are_realistic_execute_responses(samples: Samples) -> None:
    assert len(samples.demo_10["documents"]) == 10
    assert len(samples.catalog_50["documents"]) == 50
    assert "stage_statistics" in samples.demo_10


def test_in_process_backend_serves_the_real_client(samples: Samples) -> None:
    body = json.dumps(samples.demo_10).encode()
    with InProcessBackend(samples.definitions, body) as backend:
        client = backend.client()
        response = client.retrievers.execute("ret_product_demos", inputs={"query": "x"})
        definition = client.retrievers.get("ret_product_demos")
    assert len(response["documents"]) == 10
    assert definition["retriever_id"] == "ret_product_demos"
    assert backend.requests == 2


def test_figure_1_runs_and_compares_with_every_peer(samples: Samples) -> None:
    figure = fig1_dispatch.run(SMOKE, samples)
    assert figure.key == "1"
    assert figure.met is None  # no verdicts in smoke mode
    per_call = figure.data["per_call_us"]
    for label in (
        "ours (sync handle)",
        "ours (async ahandle)",
        "(a) hand-written",
        "(b) openai-agents function_tool",
        "floor (json.loads + json.dumps)",
    ):
        assert per_call[label]["median"] > 0


def test_figure_3_counts_tokens_for_every_approach(samples: Samples) -> None:
    figure = fig3_tokens.run(SMOKE, samples)
    rows = figure.data["rows"]
    for n in (10, 50):
        tokens = rows[n]["tokens"]
        assert tokens["raw JSON ((a), (b))"] > tokens["ours (fields=title,url)"] > 0
        assert rows[n]["fields_ok"]["configured"]


def test_tokenizer_is_available_offline() -> None:
    tokenizer = load_cl100k()
    assert tokenizer.count("hello world") > 0
    if tokenizer.exact:
        assert tokenizer.count("hello world") == 2


def test_stat_summarises_median_and_spread() -> None:
    stat = Stat.of([5, 1, 3, 2, 4], "µs")
    assert (stat.median, stat.min, stat.max, stat.n) == (3, 1, 5, 5)
    assert stat.q1 == 2 and stat.q3 == 4


def test_report_has_the_table_and_machine() -> None:
    figure = Figure("1", "t", "ours", "peers", "1.0x", "goal", True, notes=["a | b"])
    text = render_markdown([figure], {"cpu": "X", "cores": 2}, smoke=False, seconds=1)
    assert "| 1 | t | ours | peers | 1.0x | goal | yes | a \\| b |" in text
    assert "CPU: X (2 cores)" in text


def test_smoke_command_writes_to_output_only(tmp_path: Path) -> None:
    committed = Path(bench_main.__file__).parent / "RESULTS.md"
    before = committed.read_bytes() if committed.exists() else None
    code = bench_main.main(["--smoke", "--only", "3", "--output", str(tmp_path)])
    assert code == 0
    assert (tmp_path / "RESULTS.md").exists()
    payload = json.loads((tmp_path / "results.json").read_text())
    assert payload["smoke"] is True and payload["figures"][0]["key"] == "3"
    after = committed.read_bytes() if committed.exists() else None
    assert before == after
