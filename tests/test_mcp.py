"""The MCP server, through the official ``mcp`` SDK's own client: in process, over stdio
(a subprocess) and over streamable HTTP on loopback (a subprocess)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from mixpeek_openai.dispatch import DispatchConfig, ToolCallResult
from mixpeek_openai.layout import as_objects
from mixpeek_openai.mcp import build_server, build_tools, main
from mixpeek_openai.retries import ManualClock, RetryPolicy
from mixpeek_openai.testing import FakeMixpeek, Fault
from mixpeek_openai.tools import MixpeekTools

SECRET = "mxp-MCP-SECRET-8c2e51"
SEARCH = "search_product_demo"
RETRIEVERS = ["ret_product_demos", "ret_catalog"]
ROOT = Path(__file__).resolve().parents[1]
STARTUP_S = 180.0  # a cold subprocess imports mixpeek (about 1,750 modules)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek(api_key=SECRET) as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def make_tools(fake: FakeMixpeek, clock: ManualClock) -> Callable[..., MixpeekTools]:
    fake.clear_requests()
    fake.clear_faults()

    def make(actions: tuple[str, ...] = (), **config: Any) -> MixpeekTools:
        config.setdefault("retry", RetryPolicy(sleep=clock.sleep, clock=clock.now, jitter=0))
        return build_tools(
            fake.client(), RETRIEVERS, actions=actions, config=DispatchConfig(**config)
        )

    return make


def text_of(result: CallToolResult) -> str:
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


def in_process(tools: MixpeekTools, scenario: Callable[[Client], Any]) -> Any:
    async def go() -> Any:
        async with Client(build_server(tools)) as client:
            return await scenario(client)

    return asyncio.run(go())


# -- listing -------------------------------------------------------------------------------


def test_each_retriever_has_search_describe_and_explain(
    make_tools: Callable[..., MixpeekTools],
) -> None:
    tools = make_tools()

    async def scenario(client: Client) -> Any:
        return await client.list_tools(), client.instructions

    listing, instructions = in_process(tools, scenario)

    listed = {t.name: t for t in listing.tools}
    assert list(listed) == list(tools.names)
    kinds = sorted((tools[n].kind, tools[n].retriever_id) for n in listed)
    assert kinds == sorted(
        (kind, rid) for rid in RETRIEVERS for kind in ("search", "describe", "explain")
    )
    for name, tool in listed.items():
        definition = tools[name]
        assert tool.input_schema == definition.parameters(strict=False)
        assert tool.description == definition.description
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (True if definition.kind != "search" else None)
    assert listed[SEARCH].title == "Search product_demo_search"
    assert "query" in listed[SEARCH].input_schema["required"]
    # No exploration tools unless asked for.
    assert not any(tools[n].kind == "action" for n in listed)
    assert instructions is not None and SEARCH in instructions


def test_exploration_actions_are_opt_in(
    make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    tools = make_tools(actions=("list_collections",))

    async def scenario(client: Client) -> Any:
        names = [t.name for t in (await client.list_tools()).tools]
        return names, await client.call_tool("list_collections", {})

    names, result = in_process(tools, scenario)

    assert "list_collections" in names
    assert not result.is_error
    assert set(fake.collection_ids) <= set(text_of(result).replace('"', " ").split())


# -- calling -------------------------------------------------------------------------------


def test_a_search_returns_shaped_text_and_structured_content(
    make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    tools = make_tools()

    async def scenario(client: Client) -> Any:
        return await client.call_tool(SEARCH, {"query": "sso setup", "limit": 2})

    result = in_process(tools, scenario)

    assert result.is_error is False
    assert result.structured_content == json.loads(text_of(result))
    assert len(as_objects(result.structured_content)) == 2
    assert "stage_statistics" not in text_of(result)
    [execute] = fake.requests_for("execute")
    assert execute.body["inputs"] == {"query": "sso setup"}
    assert execute.body["limit"] == 2


def test_describe_and_explain(make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek) -> None:
    tools = make_tools()
    describe = next(d.name for d in tools.definitions if d.kind == "describe")
    explain = next(d.name for d in tools.definitions if d.kind == "explain")

    async def scenario(client: Client) -> Any:
        return (
            await client.call_tool(describe, {}),
            await client.call_tool(explain, {"query": "sso"}),
        )

    described, explained = in_process(tools, scenario)

    assert not described.is_error and not explained.is_error
    assert described.structured_content["retriever_id"] == "ret_product_demos"
    assert described.structured_content["search_tool"] == SEARCH
    [plan] = fake.requests_for("explain")
    assert plan.body["inputs"] == {"query": "sso"}
    assert fake.requests_for("execute") == []


def test_failures_are_tool_errors_and_the_server_keeps_serving(
    make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    tools = make_tools()

    async def scenario(client: Client) -> Any:
        results = [
            await client.call_tool(SEARCH, {"query": 3}),
            await client.call_tool(SEARCH, {}),
            await client.call_tool("search_nothing", {"query": "x"}),
            # Past Python's integer digit limit: decoded, yet not writable as JSON again.
            await client.call_tool(SEARCH, {"query": "x", "limit": 10**5000}),
        ]
        fake.inject("execute", Fault.status(503), times=None)
        results.append(await client.call_tool(SEARCH, {"query": "sso"}))
        fake.clear_faults()
        results.append(await client.call_tool(SEARCH, {"query": "sso"}))
        return results

    wrong_type, missing, unknown, huge, down, fine = in_process(tools, scenario)

    for result in (wrong_type, missing, unknown, huge, down):
        assert result.is_error is True
        assert result.structured_content == json.loads(text_of(result))
    assert wrong_type.structured_content["error"]["type"] == "invalid_arguments"
    assert "query" in wrong_type.structured_content["error"]["message"]
    assert missing.structured_content["error"]["type"] == "invalid_arguments"
    assert unknown.structured_content["error"]["type"] == "unknown_tool"
    assert SEARCH in unknown.structured_content["error"]["hint"]
    assert huge.structured_content["error"]["type"] == "invalid_arguments"
    assert down.structured_content["error"]["type"] == "temporarily_unavailable"
    assert fine.is_error is False


def test_a_hanging_search_is_answered_within_the_deadline(
    make_tools: Callable[..., MixpeekTools], fake: FakeMixpeek
) -> None:
    # A real clock and a short deadline: the per-attempt timeout is the time left.
    tools = make_tools(deadline_s=0.4, retry=RetryPolicy())
    fake.inject("execute", Fault.hang(30))

    async def scenario(client: Client) -> Any:
        return await client.call_tool(SEARCH, {"query": "sso"})

    result = in_process(tools, scenario)

    assert result.is_error is True
    assert result.structured_content["error"]["type"] == "temporarily_unavailable"


class _Broken(MixpeekTools):
    """A tool set whose dispatcher fails outright (a defect, not a model mistake)."""

    async def adispatch(self, tool_calls: Any, *, style: Any = None) -> list[ToolCallResult]:
        raise RuntimeError("dispatcher defect")


def test_a_defect_is_a_tool_error_and_logged(
    fake: FakeMixpeek, caplog: pytest.LogCaptureFixture
) -> None:
    tools = _Broken.from_retrievers(fake.client(), RETRIEVERS[:1])

    async def scenario(client: Client) -> Any:
        return await client.call_tool(SEARCH, {"query": "sso"})

    with caplog.at_level(logging.ERROR, logger="mixpeek_openai.mcp"):
        result = in_process(tools, scenario)

    assert result.is_error is True
    assert result.structured_content["error"]["type"] == "internal_error"
    assert "dispatcher defect" not in text_of(result)
    assert any("dispatcher defect" in (r.exc_text or "") for r in caplog.records)


# -- python -m mixpeek_openai.mcp ------------------------------------------------------------


def test_usage_errors_exit_2_and_unknown_retrievers_exit_1(
    fake: FakeMixpeek, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MIXPEEK_API_KEY", raising=False)
    monkeypatch.delenv("MIXPEEK_NAMESPACE", raising=False)
    monkeypatch.delenv("MIXPEEK_RETRIEVERS", raising=False)
    connection = ["--base-url", fake.base_url, "--namespace", fake.namespace]
    root = logging.getLogger()
    handlers_before, level_before = root.handlers[:], root.level

    assert main(["--retriever", "ret_catalog", *connection]) == 2
    assert "MIXPEEK_API_KEY" in capsys.readouterr().err
    assert main(["--api-key", SECRET, *connection]) == 2
    assert "--retriever" in capsys.readouterr().err
    assert main(["--api-key", SECRET, *connection, "--retriever", "x", "--actions", "rm"]) == 2
    assert "rm" in capsys.readouterr().err
    assert main(["--transport", "carrier-pigeon"]) == 2
    capsys.readouterr()

    assert main(["--api-key", SECRET, *connection, "--retriever", "ret_nope"]) == 1
    err = capsys.readouterr().err
    assert "ret_nope" in err and SECRET not in err
    assert len(err.strip().splitlines()) == 1
    # Run in-process, the server leaves no handler behind on a stream that will close.
    assert root.handlers == handlers_before and root.level == level_before


def _server_env(**extra: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": pythonpath, **extra}


def test_over_stdio_with_the_sdk_client(fake: FakeMixpeek, tmp_path: Path) -> None:
    fake.clear_requests()
    fake.clear_faults()
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "mixpeek_openai.mcp",
            "--base-url",
            fake.base_url,
            "--api-key",
            fake.api_key,
            "--namespace",
            fake.namespace,
            "--retriever",
            "ret_product_demos",
            "--retriever",
            "ret_catalog",
            "--actions",
            "list_collections",
        ],
        env=_server_env(),
        cwd=str(tmp_path),
    )
    errlog_path = tmp_path / "server.log"

    async def go() -> Any:
        with errlog_path.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                listing = await client.list_tools()
                ok = await client.call_tool(SEARCH, {"query": "sso setup", "limit": 3})
                bad = await client.call_tool(SEARCH, {"query": "sso", "max_duration": "long"})
                fake.inject("execute", Fault.status(404, message="retriever gone"))
                gone = await client.call_tool(SEARCH, {"query": "sso"})
                after = await client.call_tool("search_catalog", {"query": "dashboards"})
                return listing, ok, bad, gone, after

    listing, ok, bad, gone, after = asyncio.run(go())

    names = [t.name for t in listing.tools]
    assert SEARCH in names and "describe_catalog" in names and "list_collections" in names
    assert ok.is_error is False and len(as_objects(ok.structured_content)) == 3
    assert bad.is_error is True
    assert bad.structured_content["error"]["type"] == "invalid_arguments"
    assert gone.is_error is True and "error" in gone.structured_content
    assert after.is_error is False
    assert fake.requests_for("execute")[0].body["inputs"] == {"query": "sso setup"}
    # Logs went to stderr (stdout carried only the protocol), and it stopped at EOF.
    log = errlog_path.read_text()
    assert "serving 7 tools on stdio" in log
    assert "stopped (end of input)" in log
    assert "Traceback" not in log and fake.api_key not in log


def test_over_streamable_http_on_loopback(fake: FakeMixpeek, tmp_path: Path) -> None:
    fake.clear_requests()
    fake.clear_faults()
    command = [
        sys.executable,
        "-m",
        "mixpeek_openai.mcp",
        "--transport",
        "http",
        "--port",
        "0",
        "--base-url",
        fake.base_url,
        "--retriever",
        "ret_product_demos",
        "--deadline",
        "5",
    ]
    env = {
        **os.environ,
        **_server_env(MIXPEEK_API_KEY=fake.api_key, MIXPEEK_NAMESPACE=fake.namespace),
    }
    process = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, reader = _watch(process, "listening on")
    try:
        assert reader.ready.wait(STARTUP_S), "the server did not start"
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+/mcp)", "".join(lines))
        assert match, "".join(lines)
        url = match.group(1)

        async def go() -> Any:
            async with Client(url) as client:
                listing = await client.list_tools()
                ok = await client.call_tool(SEARCH, {"query": "sso setup"})
                fake.inject("execute", Fault.status(503), times=None)
                down = await client.call_tool(SEARCH, {"query": "sso"})
                fake.clear_faults()
                return listing, ok, down

        listing, ok, down = asyncio.run(go())

        assert [t.name for t in listing.tools] == [
            SEARCH,
            "describe_product_demo",
            "explain_product_demo",
        ]
        assert ok.is_error is False and as_objects(ok.structured_content)
        assert down.is_error is True
        assert down.structured_content["error"]["type"] == "temporarily_unavailable"

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        stdout = _stop(process, reader)
    assert stdout == ""  # logs never go to stdout
    log = "".join(lines)
    assert "stopped" in log
    assert "Traceback" not in log and fake.api_key not in log


def test_stdio_stops_cleanly_on_sigint(fake: FakeMixpeek, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "mixpeek_openai.mcp", "--retriever", "ret_catalog"]
    env = {
        **os.environ,
        **_server_env(
            MIXPEEK_API_KEY=fake.api_key,
            MIXPEEK_NAMESPACE=fake.namespace,
            MIXPEEK_BASE_URL=fake.base_url,
        ),
    }
    # stdin stays open: only the signal can stop the server.
    process = subprocess.Popen(
        command,
        env=env,
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines, reader = _watch(process, "serving")
    try:
        assert reader.ready.wait(STARTUP_S), "the server did not start"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        stdout = _stop(process, reader)
    assert stdout == ""
    log = "".join(lines)
    assert "stopped (interrupted)" in log
    assert "Traceback" not in log and fake.api_key not in log


class _Reader(threading.Thread):
    """Collects a subprocess's stderr lines; ``ready`` is set once one contains ``marker``."""

    def __init__(self, process: subprocess.Popen[str], marker: str, lines: list[str]) -> None:
        super().__init__(daemon=True)
        self.process, self.marker, self.lines = process, marker, lines
        self.ready = threading.Event()

    def run(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if self.marker in line:
                self.ready.set()
        self.ready.set()


def _watch(process: subprocess.Popen[str], marker: str) -> tuple[list[str], _Reader]:
    lines: list[str] = []
    reader = _Reader(process, marker, lines)
    reader.start()
    return lines, reader


def _stop(process: subprocess.Popen[str], reader: _Reader) -> str:
    """Make sure the process is gone and its pipes closed; returns what it wrote to stdout."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    reader.join(timeout=10)
    assert process.stdout is not None and process.stderr is not None
    stdout = process.stdout.read()
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()
    return stdout
