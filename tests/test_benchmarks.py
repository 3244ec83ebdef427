"""The benchmark harness keeps working: the loopback server answers like the API (and
holds hundreds of keep-alive connections), the samplers count what they say, figures 1,
2, 3 and 6 run with tiny counts, and the command writes its report where it is told
(never over the committed results in smoke mode). No timing is asserted."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest
import urllib3

from benchmarks import __main__ as bench_main
from benchmarks import fig1_dispatch, fig2_fanout, fig3_tokens, fig6_throughput
from benchmarks._backend import (
    VIDEO_RETRIEVER,
    InProcessBackend,
    Samples,
    load_cl100k,
    load_samples,
    realistic_loopback,
)
from benchmarks._loopback import LoopbackMixpeek
from benchmarks._report import (
    Figure,
    PeakThreads,
    Settings,
    Stat,
    os_thread_count,
    profile_hot_spots,
    render_markdown,
)

SMOKE = Settings(smoke=True, profile=False)
EXECUTE = f"/v1/retrievers/{VIDEO_RETRIEVER}/execute"


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


def test_loopback_server_serves_the_real_client_from_another_process(samples: Samples) -> None:
    server = realistic_loopback(samples, validate=True)
    with server:
        client = server.client()
        response = client.retrievers.execute(VIDEO_RETRIEVER, inputs={"query": "crm"}, limit=10)
        definition = client.retrievers.get(VIDEO_RETRIEVER)
        stats = server.stats()
        assert server.running
    assert not server.running  # the child ended with the context
    assert len(response["documents"]) == 10
    assert "thumbnail_url" in response["documents"][0]
    assert definition["retriever_id"] == VIDEO_RETRIEVER
    assert definition["input_schema"]["query"]["required"] is True
    assert (stats.executes, stats.gets, stats.rejected, stats.requests) == (1, 1, 0, 2)


def test_loopback_checks_refuse_what_the_api_refuses(samples: Samples) -> None:
    with realistic_loopback(samples, validate=True) as server:
        url = server.base_url.removesuffix("/v1") + EXECUTE
        good = json.dumps({"inputs": {"query": "crm"}, "limit": 3}).encode()

        def post(body: bytes, **headers: str) -> int:
            sent = {**server.headers(), **headers}
            return urllib3.request("POST", url, body=body, headers=sent).status

        assert post(good) == 200
        assert post(good, Authorization="Bearer wrong") == 401
        assert post(good, **{"X-Namespace": "ns_other"}) == 403
        assert post(json.dumps({"inputs": {}, "settings": {}}).encode()) == 422
        assert post(b"[1, 2]") == 422
        assert post(b'{"limit": 3}') == 422
        assert server.stats().rejected == 5
        server.configure(validate=False)
        assert post(b'{"limit": 3}', Authorization="Bearer wrong") == 200
        missing = urllib3.request("GET", server.base_url + "/retrievers/ret_nope")
        assert missing.status == 404 and "ret_nope" in missing.json()["error"]["message"]


def test_loopback_holds_hundreds_of_keep_alive_connections(samples: Samples) -> None:
    connections, rounds = 300, 2
    with realistic_loopback(samples, latency_s=0.05) as server:
        request = (
            f"POST {EXECUTE} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 13\r\n\r\n" + '{"inputs":{}}'
        ).encode()

        opened = 0

        async def one(ready: asyncio.Event) -> list[int]:
            nonlocal opened
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            opened += 1
            if opened == connections:
                ready.set()
            await ready.wait()  # every connection is open before the first request
            statuses = []
            for _ in range(rounds):  # the same connection, kept alive
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                assert len(json.loads(body)["documents"]) == 10
                statuses.append(int(head.split()[1]))
            writer.close()
            await writer.wait_closed()
            return statuses

        async def many() -> list[list[int]]:
            ready = asyncio.Event()
            return list(await asyncio.gather(*(one(ready) for _ in range(connections))))

        results = asyncio.run(many())
        stats = server.stats()
    assert all(statuses == [200] * rounds for statuses in results)
    assert stats.executes == connections * rounds
    assert stats.connections_opened == connections
    assert stats.max_connections >= connections
    assert stats.max_in_flight > 1  # held at once, not one after another


def test_loopback_answers_pipelined_and_chunked_requests_in_order(samples: Samples) -> None:
    import socket

    with realistic_loopback(samples) as server:
        chunked = (
            f"POST {EXECUTE} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            "d\r\n" + '{"inputs":{}}' + "\r\n0\r\n\r\n"
        )
        get = f"GET /v1/retrievers/{VIDEO_RETRIEVER} HTTP/1.1\r\nHost: x\r\n\r\n"
        closing = "GET /v1/nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall((chunked + get + closing).encode())
            data = b""
            while chunk := sock.recv(65536):  # the server closes after the third answer
                data += chunk
        stats = server.stats()
    statuses = [int(part.split(b" ", 2)[1]) for part in data.split(b"HTTP/1.1")[1:]]
    assert statuses == [200, 200, 404]
    assert data.index(b'"documents"') < data.index(b'"input_schema"')
    assert (stats.executes, stats.gets) == (1, 1)


def test_loopback_reports_a_server_that_cannot_start() -> None:
    server = LoopbackMixpeek({"x": {"id": object()}}, b"{}")  # not JSON: cannot be sent
    with pytest.raises(TypeError):
        server.start()
    assert not server.running


def test_peak_threads_counts_a_thread_alive_during_the_work() -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    with PeakThreads() as peaks:
        worker.start()
    release.set()
    worker.join()
    assert peaks.peak >= peaks.baseline + 1
    assert peaks.peak_python >= 2
    assert peaks.peak_rss >= peaks.baseline_rss > 0
    assert os_thread_count() >= 1


def test_profile_charges_c_calls_to_the_calling_module() -> None:
    pytest.importorskip("pyinstrument")
    payload = {"documents": [{"text": "x" * 200, "score": i / 7} for i in range(2000)]}
    hot = profile_hot_spots(lambda: [json.dumps(payload) for _ in range(20)])
    modules = dict(hot.by_module)
    assert "json" in modules
    assert modules["json"] == max(modules.values())
    assert "json" in hot.modules_text


def test_figure_1_runs_and_compares_with_every_peer(samples: Samples) -> None:
    figure = fig1_dispatch.run(SMOKE, samples)
    assert figure.key == "1"
    assert figure.met is None  # no verdicts in smoke mode
    per_call = figure.data["per_call_us"]
    for label in (
        fig1_dispatch.SYNC,
        fig1_dispatch.ASYNC,
        fig1_dispatch.HAND,
        fig1_dispatch.AGENTS,
        fig1_dispatch.PYDANTIC_AI,
        fig1_dispatch.FLOOR,
    ):
        assert per_call[label]["median"] > 0
    assert set(figure.data["goals"]) == {
        "sync <= (a)",
        "sync <= 1.5x floor",
        "sync < (b)",
        "sync < (d)",
        "async <= 1.2x sync",
    }
    kept = figure.data["documents_kept"]
    assert kept[fig1_dispatch.HAND] == kept[fig1_dispatch.FLOOR] == 10
    assert 0 < kept[fig1_dispatch.SYNC] == kept[fig1_dispatch.ASYNC] <= 10


def test_figure_2_runs_every_batch_against_the_server(samples: Samples) -> None:
    figure = fig2_fanout.run(SMOKE, samples)
    data = figure.data
    assert set(data["worst_ratio"]) == {fig2_fanout.SYNC, fig2_fanout.ASYNC}
    assert data["batch_ms"][fig2_fanout.SYNC]["n"] == data["batches"]
    assert data["batch_ms"][fig2_fanout.HAND]["n"] == data["peer_batches"]
    # The hand-written loop is sequential: the server never holds two of its calls.
    assert data["server_max_in_flight"][fig2_fanout.HAND] == 1
    assert all(n >= 1 for n in data["server_max_in_flight"].values())
    assert fig2_fanout.PYDANTIC_AI in data["ratio"]


def test_figure_6_counts_threads_and_rates_at_both_sizes(samples: Samples) -> None:
    figure = fig6_throughput.run(SMOKE, samples)
    small, large = figure.data["sizes"]
    for label, series in figure.data["series"].items():
        assert set(series["conversations_per_s"]) == {small, large}, label
        assert series["peak_threads"][large] >= 1
        # Every conversation made its tool calls against the loopback server.
        calls = fig6_throughput.TOOL_TURNS * fig6_throughput.CALLS_PER_TURN
        assert series["executes"] == {small: small * calls, large: large * calls}
        assert series["failed_calls"] == {small: 0, large: 0}
    assert set(figure.data["goals"]) == {
        "<= 32 threads",
        f"rate {large}/{small} >= 0.9",
        "every tool call succeeded",
    }


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


def test_update_replaces_only_the_figures_run(tmp_path: Path) -> None:
    old = Figure("5", "old five", "x", "", "", "", None)
    stale = Figure("3", "stale three", "x", "", "", "", None)
    from benchmarks._report import write_outputs

    write_outputs([stale, old], tmp_path, smoke=True, seconds=1)
    code = bench_main.main(["--smoke", "--only", "3", "--update", "--output", str(tmp_path)])
    assert code == 0
    figures = json.loads((tmp_path / "results.json").read_text())["figures"]
    assert [f["key"] for f in figures] == ["3", "5"]
    assert figures[0]["title"] != "stale three" and figures[1]["title"] == "old five"
    assert "old five" in (tmp_path / "RESULTS.md").read_text()


def test_readme_table_is_the_committed_run() -> None:
    """README's benchmark table is written from ``benchmarks/results.json`` by a full run."""
    from benchmarks._report import README_END, README_START, figures_from_json, readme_table

    root = Path(__file__).resolve().parent.parent
    payload = json.loads((root / "benchmarks" / "results.json").read_text(encoding="utf-8"))
    assert not payload["smoke"]
    expected = readme_table(figures_from_json(payload), payload["machine"], payload["seconds"])
    readme = (root / "README.md").read_text(encoding="utf-8")
    shown = readme.split(README_START, 1)[1].split(README_END, 1)[0].strip()
    assert shown == expected.strip(), "README's table is stale: run python -m benchmarks"
