"""The ``mixpeek-openai`` command, run in-process (``main([...])``) against the offline kit."""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import io
import json
import logging
import os
import socket
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from mixpeek_openai import cli
from mixpeek_openai.testing import FakeMixpeek, Fault, StubOpenAI

SECRET = "mxp-very-secret-key-1234"
OPENAI_SECRET = "sk-very-secret-openai-5678"
ENV_KEYS = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "MIXPEEK_API_KEY",
    "MIXPEEK_NAMESPACE",
    "MIXPEEK_BASE_URL",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_KEYS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    with FakeMixpeek() as server:
        yield server


@pytest.fixture
def real_env(monkeypatch: pytest.MonkeyPatch, fake: FakeMixpeek) -> StubOpenAI:
    """Environment for ``chat``: the fake Mixpeek as the API, the stub as the OpenAI client."""
    monkeypatch.setenv("MIXPEEK_API_KEY", fake.api_key)
    monkeypatch.setenv("MIXPEEK_NAMESPACE", fake.namespace)
    monkeypatch.setenv("MIXPEEK_BASE_URL", fake.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_SECRET)
    stub = StubOpenAI()
    monkeypatch.setattr(cli, "_make_openai_client", lambda key, url: stub.client())
    return stub


@pytest.fixture
def closed_port() -> int:
    """A local port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mixpeek-openai: error: ")
    assert "Traceback" not in err
    return lines[0]


# -- demo ----------------------------------------------------------------------------------


def test_demo_shows_all_three_apis_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "demo")

    assert code == 0, err
    assert "LOCAL STAND-IN" in out
    for label in ("Chat Completions", "Responses", "Assistants runner"):
        assert f"== {label} (" in out
        assert f"  {label}  " in out  # its row in the size table
    assert out.count("tool call  search_product_demo") == 3
    assert out.count("query='Which demos show the CRM integration?'") == 3
    assert out.count("result     ok") == 3
    assert out.count("answer     Found 5 results") == 3
    assert "sent to the model" in out and "raw responses" in out
    # The sample retriever ids are on screen, with where to find the others.
    assert "search_product_demo (ret_product_demos), search_catalog (ret_catalog)" in out
    assert "mixpeek-openai retrievers --offline" in out
    assert err == ""  # no status line: stderr is not a terminal here


def test_demo_one_api_and_own_question(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "demo", "--api", "responses", "--question", "sso setup")

    assert code == 0
    assert "== Responses (" in out
    assert "Chat Completions (" not in out and "Assistants runner (" not in out
    assert "query='sso setup'" in out


def test_demo_runs_as_a_module_in_a_fresh_interpreter() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    proc = subprocess.run(
        [sys.executable, "-m", "mixpeek_openai.cli", "demo", "--api", "chat"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=Path(__file__).parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert "tool call  search_product_demo" in proc.stdout
    assert "answer     Found" in proc.stdout


# -- tools / codegen ----------------------------------------------------------------------


def test_tools_offline_prints_strict_chat_schemas(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tools", "--offline", "ret_product_demos", "ret_catalog")

    assert code == 0
    tools = json.loads(out)
    assert [t["function"]["name"] for t in tools] == ["search_product_demo", "search_catalog"]
    assert all(t["function"]["strict"] is True for t in tools)


def test_tools_responses_format_and_no_strict(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "tools", "--offline", "ret_catalog", "--format", "responses")
    assert code == 0
    (tool,) = json.loads(out)
    assert tool["type"] == "function" and tool["name"] == "search_catalog"
    assert tool["strict"] is True

    code, out, _ = run(capsys, "tools", "--offline", "ret_catalog", "--no-strict")
    assert code == 0
    assert json.loads(out)[0]["function"].get("strict") is not True


def test_tools_without_ids_lists_the_namespace_with_actions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "tools", "--offline", "--action", "list_collections")
    assert code == 0
    names = [t["function"]["name"] for t in json.loads(out)]
    assert "list_collections" in names
    assert len([n for n in names if n.startswith("search_")]) == 5


def test_tools_against_a_server_with_flags(
    capsys: pytest.CaptureFixture[str], fake: FakeMixpeek
) -> None:
    code, out, _ = run(
        capsys,
        "tools",
        "ret_catalog",
        "--api-key",
        fake.api_key,
        "--namespace",
        fake.namespace,
        "--base-url",
        fake.base_url,
    )
    assert code == 0
    assert json.loads(out)[0]["function"]["name"] == "search_catalog"


def test_codegen_prints_a_typed_module(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "codegen", "--offline", "ret_catalog", "--class-name", "Catalog")

    assert code == 0
    assert "class Catalog(BaseModel):" in out
    assert 'RETRIEVER_ID = "ret_catalog"' in out
    compile(out, "catalog.py", "exec")


# -- chat ----------------------------------------------------------------------------------


@pytest.mark.parametrize("api", ["chat", "responses", "assistants"])
def test_chat_streams_the_answer_to_stdout(
    capsys: pytest.CaptureFixture[str], real_env: StubOpenAI, api: str
) -> None:
    code, out, err = run(
        capsys, "chat", "--retriever", "ret_product_demos", "--api", api, "CRM integration"
    )

    assert code == 0, err
    assert out.startswith("Found 5 results:")
    assert "tool call  search_product_demo  " in err
    assert "query='CRM integration'" in err
    assert "sent to the model" in err
    if api == "assistants":
        # The temporary assistant (and its thread) are deleted afterwards.
        assert real_env.requests_to("/v1/assistants/*", "DELETE")
        assert real_env.requests_to("/v1/threads/*", "DELETE")
        created = real_env.requests_to("/v1/assistants", "POST")[0].body
        assert created["model"] == cli.DEFAULT_MODEL


def test_an_openai_answer_that_is_not_json_says_what_to_check(
    capsys: pytest.CaptureFixture[str], real_env: StubOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Something at OPENAI_BASE_URL that answers 200 with a body that is not JSON.
    def not_json(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, content=b"{garbage", headers={"content-type": "application/json"}
        )

    client = openai.OpenAI(
        api_key="k", base_url="http://openai.test/v1", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(not_json)),
    )  # fmt: skip
    monkeypatch.setattr(cli, "_make_openai_client", lambda key, url: client)

    code, out, err = run(capsys, "chat", "--retriever", "ret_catalog", "--api", "assistants", "hi")

    assert (code, out) == (1, "")
    line = one_error_line(err)
    assert "the OpenAI API answered with something that is not JSON" in line
    assert "OPENAI_BASE_URL" in line and "unexpected error" not in line


def test_chat_quiet_and_model_flag(
    capsys: pytest.CaptureFixture[str], real_env: StubOpenAI
) -> None:
    code, out, err = run(
        capsys, "chat", "-q", "--model", "gpt-x", "--retriever", "ret_catalog", "dashboards"
    )
    assert code == 0
    assert out.startswith("Found")
    assert "sent to the model" not in err and "tool call" in err
    assert real_env.requests_to("/v1/chat/completions")[0].body["model"] == "gpt-x"


# -- error paths: one line, non-zero exit, no traceback, no secret ------------------------------


def test_missing_keys_for_chat(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "chat", "--retriever", "ret_catalog", "hi")

    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert "OPENAI_API_KEY, MIXPEEK_API_KEY, MIXPEEK_NAMESPACE are not set" in line
    assert "mixpeek-openai demo" in line


def test_missing_namespace_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MIXPEEK_API_KEY", SECRET)
    code, _, err = run(capsys, "tools", "ret_catalog")

    assert code == 2
    line = one_error_line(err)
    assert "MIXPEEK_NAMESPACE is not set: export it or pass --namespace" in line
    assert SECRET not in err


def test_unknown_retriever(capsys: pytest.CaptureFixture[str], real_env: StubOpenAI) -> None:
    code, out, err = run(capsys, "chat", "--retriever", "ret_nope", "hi")

    assert code == 1
    assert out == ""
    line = one_error_line(err)
    assert "retriever 'ret_nope' was not found in namespace 'ns_demo'" in line
    assert "MIXPEEK_NAMESPACE" in line
    assert "'mixpeek-openai retrievers' lists the namespace's retrievers" in line
    assert "/v1" not in line  # the base URL is fine: no hint about it
    assert not real_env.requests  # the model was never called


def test_unknown_retriever_offline(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "codegen", "--offline", "ret_nope")
    assert code == 1
    assert one_error_line(err) == (
        "mixpeek-openai: error: retriever 'ret_nope' is not in the sample namespace: "
        "'mixpeek-openai retrievers --offline' lists its retrievers"
    )


def test_mixpeek_unreachable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, closed_port: int
) -> None:
    monkeypatch.setenv("MIXPEEK_API_KEY", SECRET)
    base = f"http://127.0.0.1:{closed_port}/v1"
    code, out, err = run(capsys, "tools", "ret_catalog", "--namespace", "ns", "--base-url", base)

    assert code == 1
    assert out == ""
    line = one_error_line(err)
    assert f"could not reach Mixpeek at {base} (connection refused)" in line
    assert "--base-url" in line
    assert SECRET not in err


def test_debug_shows_the_traceback_without_secrets(
    capsys: pytest.CaptureFixture[str], closed_port: int
) -> None:
    base = f"http://127.0.0.1:{closed_port}/v1"
    code, _, err = run(
        capsys, "tools", "ret_catalog", "--api-key", SECRET, "--namespace", "ns", "--base-url",
        base, "--debug",
    )  # fmt: skip

    assert code == 1
    assert "Traceback" in err
    assert err.strip().splitlines()[-1].startswith("mixpeek-openai: error: could not reach")
    assert SECRET not in err


def test_openai_unreachable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    real_env: StubOpenAI,
    closed_port: int,
) -> None:
    base = f"http://127.0.0.1:{closed_port}/v1"
    monkeypatch.setattr(
        cli,
        "_make_openai_client",
        lambda key, url: openai.OpenAI(api_key=key, base_url=url, max_retries=0),
    )
    code, _, err = run(
        capsys, "chat", "--retriever", "ret_catalog", "--openai-base-url", base, "hi"
    )

    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line == (
        f"mixpeek-openai: error: could not reach the OpenAI API ({base}): "
        "check your network and OPENAI_BASE_URL / --openai-base-url"
    )
    assert "Traceback" not in err
    assert OPENAI_SECRET not in err


def test_openai_rejects_the_key(capsys: pytest.CaptureFixture[str], real_env: StubOpenAI) -> None:
    real_env.inject_error(401, message="Incorrect API key provided", path="/v1/chat/completions")
    code, _, err = run(capsys, "chat", "--retriever", "ret_catalog", "hi")

    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line == "mixpeek-openai: error: OpenAI rejected the API key (401): check OPENAI_API_KEY"
    assert OPENAI_SECRET not in err


def test_mixpeek_rejects_the_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, fake: FakeMixpeek
) -> None:
    monkeypatch.setenv("MIXPEEK_API_KEY", SECRET)
    code, _, err = run(
        capsys, "codegen", "ret_catalog", "--namespace", fake.namespace, "--base-url",
        fake.base_url,
    )  # fmt: skip

    assert code == 1
    assert "Mixpeek rejected the API key (401)" in one_error_line(err)
    assert SECRET not in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "choose a command"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["demo", "--api", "foo"], "argument --api: invalid choice: 'foo'"),
        (["chat", "hi"], "the following arguments are required: --retriever"),
        (["tools", "--format", "xml"], "argument --format: invalid choice"),
        (["demo", "--nope"], "unrecognized arguments: --nope"),
        (["tools", "--offline", "--action", "nope"], "Unknown action(s) 'nope'"),
    ],
)
def test_bad_flags(capsys: pytest.CaptureFixture[str], argv: list[str], expected: str) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert expected in one_error_line(err)


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "demo" in out and "codegen" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.strip().startswith("mixpeek-openai ")


def test_help_lists_every_command_and_the_actions(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("demo", "retrievers", "tools", "chat", "codegen", "mcp"):
        assert command in out
    code, out, _ = run(capsys, "tools", "--help")
    assert code == 0
    assert "list_collections" in out and "describe" in out  # the valid action names


# -- retrievers ------------------------------------------------------------------------------


def test_retrievers_offline_is_a_table_of_ids_names_and_inputs(
    capsys: pytest.CaptureFixture[str], fake: FakeMixpeek
) -> None:
    code, out, err = run(capsys, "retrievers", "--offline")

    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["RETRIEVER", "ID", "NAME", "INPUTS", "(*", "required)"]
    rows = {line.split()[0]: line for line in lines[1:] if not line.startswith(" ")}
    assert list(rows) == list(fake.retriever_ids)
    assert "product_demo_search" in rows["ret_product_demos"]
    assert "query*, category, max_duration" in rows["ret_product_demos"]
    assert rows["ret_catalog"].split()[1:] == ["catalog_search", "query*,", "top_k"]
    assert all(len(line) <= 100 for line in lines)  # inputs wrap under their column


def test_retrievers_json_has_types_and_tool_names(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "retrievers", "--offline", "--json")

    assert code == 0
    rows = json.loads(out)
    catalog = next(r for r in rows if r["retriever_id"] == "ret_catalog")
    assert catalog["retriever_name"] == "catalog_search"
    assert catalog["tool"] == "search_catalog"
    assert [(i["name"], i["type"], i["required"]) for i in catalog["inputs"]] == [
        ("query", "string", True),
        ("top_k", "integer", False),
    ]


def test_retrievers_of_a_server_and_of_an_empty_namespace(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with FakeMixpeek() as server:
        flags = ["--api-key", server.api_key, "--namespace", server.namespace]
        flags += ["--base-url", server.base_url]
        code, out, _ = run(capsys, "retrievers", *flags)
        assert code == 0
        assert "ret_document_qa" in out
        for rid in server.retriever_ids:
            server.remove_retriever(rid)
        code, out, _ = run(capsys, "retrievers", *flags)
    assert code == 0
    assert out == "This namespace has no retrievers.\n"


# -- settings that were silently wrong ----------------------------------------------------------


def test_a_base_url_without_a_path_gets_v1(
    capsys: pytest.CaptureFixture[str], fake: FakeMixpeek
) -> None:
    bare = f"http://127.0.0.1:{fake.port}"
    code, out, err = run(
        capsys, "tools", "ret_product_demos", "--api-key", fake.api_key, "--namespace",
        fake.namespace, "--base-url", bare,
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)[0]["function"]["name"] == "search_product_demo"


def test_a_base_url_with_another_path_is_named_in_the_not_found_hint(
    capsys: pytest.CaptureFixture[str], fake: FakeMixpeek
) -> None:
    wrong = f"http://127.0.0.1:{fake.port}/api"
    code, _, err = run(
        capsys, "tools", "ret_product_demos", "--api-key", fake.api_key, "--namespace",
        fake.namespace, "--base-url", wrong,
    )  # fmt: skip
    assert code == 1
    line = one_error_line(err)
    assert "retriever 'ret_product_demos' was not found" in line
    assert f"also check the base URL {wrong}: Mixpeek's API is under /v1" in line


@pytest.mark.parametrize(
    ("flag", "env", "value"),
    [
        ("--base-url", None, "notaurl"),
        (None, "MIXPEEK_BASE_URL", "notaurl"),
        ("--base-url", None, "ftp://example.com/v1"),
    ],
)
def test_a_base_url_that_is_not_a_url_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    flag: str | None,
    env: str | None,
    value: str,
) -> None:
    monkeypatch.setenv("MIXPEEK_API_KEY", SECRET)
    argv = ["tools", "ret_catalog", "--namespace", "ns"]
    if flag:
        argv += [flag, value]
    if env:
        monkeypatch.setenv(env, value)
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    line = one_error_line(err)  # and no urllib3 FutureWarning before it
    assert line.startswith(f"mixpeek-openai: error: {flag or env} ")
    assert "is not an http(s) URL: give the API root, e.g. https://api.mixpeek.com/v1" in line


@pytest.mark.parametrize("value", ["http://127.0.0.1:port/v1", "http://127.0.0.1:99999/v1"])
def test_a_base_url_with_an_invalid_port_says_so(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("MIXPEEK_API_KEY", SECRET)
    code, out, err = run(capsys, "tools", "ret_catalog", "--namespace", "ns", "--base-url", value)

    assert (code, out) == (2, "")
    line = one_error_line(err)
    assert f"--base-url {value!r} has an invalid port: give a number from 1 to 65535" in line


def test_an_openai_base_url_without_a_path_gets_v1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, real_env: StubOpenAI
) -> None:
    seen: list[str | None] = []

    def make(key: str, url: str | None) -> openai.OpenAI:
        seen.append(url)
        return real_env.client()

    monkeypatch.setattr(cli, "_make_openai_client", make)
    code, _, err = run(
        capsys, "chat", "-q", "--retriever", "ret_catalog", "--openai-base-url",
        "http://127.0.0.1:9", "hi",
    )  # fmt: skip
    assert code == 0, err
    assert seen == ["http://127.0.0.1:9/v1"]

    code, _, err = run(
        capsys, "chat", "--retriever", "ret_catalog", "--openai-base-url", "localhost", "hi"
    )
    assert code == 2
    assert "--openai-base-url 'localhost' is not an http(s) URL" in one_error_line(err)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--base-url", "http://127.0.0.1:1/v1"], "--base-url"),
        (["--namespace", "ns"], "--namespace"),
        (["--api-key", SECRET, "--namespace", "ns"], "--api-key, --namespace"),
    ],
)
def test_offline_refuses_connection_flags(
    capsys: pytest.CaptureFixture[str], extra: list[str], named: str
) -> None:
    code, out, err = run(capsys, "tools", "--offline", "ret_catalog", *extra)

    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert f"--offline uses the built-in sample namespace, so {named} would be ignored" in line
    assert SECRET not in err


@pytest.mark.parametrize("name", ["bad name", "1st", "class", ""])
def test_codegen_bad_class_name_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    code, out, err = run(capsys, "codegen", "--offline", "ret_catalog", "--class-name", name)

    assert code == 2
    assert out == ""
    line = one_error_line(err)
    assert f"argument --class-name: {name!r} is not a valid Python class name" in line


def test_actions_comma_separated_and_checked_before_connecting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "tools", "--offline", "ret_catalog", "--actions", "describe,explain")
    assert code == 0
    names = [t["function"]["name"] for t in json.loads(out)]
    assert names[0] == "search_catalog" and len(names) == 3

    # No keys are set: the unknown action is reported first, as a usage error.
    code, _, err = run(capsys, "chat", "--retriever", "ret_catalog", "--action", "nope", "hi")
    assert code == 2
    assert "Unknown action(s) 'nope'. Valid actions are: " in one_error_line(err)


# -- logging ----------------------------------------------------------------------------------


def test_debug_prints_the_package_log_of_a_failed_call(
    capsys: pytest.CaptureFixture[str], real_env: StubOpenAI, fake: FakeMixpeek
) -> None:
    fake.inject("execute", Fault.status(400, message="bad filter"))
    code, _, err = run(capsys, "chat", "--debug", "--retriever", "ret_catalog", "hi")

    assert code == 0, err
    assert "result     failed (" in err  # the narration
    assert "mixpeek_openai.dispatch: WARNING: tool call " in err  # the log, with --debug
    assert not logging.getLogger("mixpeek_openai").handlers or all(
        isinstance(h, logging.NullHandler) for h in logging.getLogger("mixpeek_openai").handlers
    )  # the command's handler is gone once main() returns


def test_a_failed_tool_call_prints_no_log_line_without_debug(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    real_env: StubOpenAI,
    fake: FakeMixpeek,
) -> None:
    # As in a program that configured no logging: no handler anywhere, so Python's
    # last-resort handler would print the dispatcher's warning to stderr.
    last_resort = io.StringIO()
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(last_resort))
    fake.inject("execute", Fault.status(400, message="bad filter"))

    code, _, err = run(capsys, "chat", "-q", "--retriever", "ret_catalog", "hi")

    assert code == 0, err
    assert "result     failed (" in err
    assert err.count("\n") == 2, err  # the tool call and its result, nothing else
    assert last_resort.getvalue() == ""


# -- output closed early -------------------------------------------------------------------------


def _env_without_keys() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(300)  # a fresh interpreter imports mixpeek: slow on a busy machine
def test_demo_on_a_terminal_piped_into_head_shows_status_and_exits_quietly() -> None:
    # `mixpeek-openai demo | head -2` in a terminal: stderr is the terminal, stdout a pipe
    # whose reader leaves after two lines.
    import pty

    leader, follower = pty.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "mixpeek_openai.cli", "demo"],
            stdout=subprocess.PIPE,
            stderr=follower,
            env=_env_without_keys(),
            cwd=ROOT,
        ) as proc:
            os.close(follower)
            assert proc.stdout is not None
            first = [proc.stdout.readline() for _ in range(2)]
            proc.stdout.close()  # what `head -2` does
            code = proc.wait(timeout=300)
        terminal = b""
        with contextlib.suppress(OSError):  # EIO once the child's side is closed
            while chunk := os.read(leader, 4096):
                terminal += chunk
    finally:
        os.close(leader)

    assert first[0].startswith(b"mixpeek-openai demo: offline")
    assert code == cli.EXIT_BROKEN_PIPE
    # While the kit loads, a status line says so; it is erased, and nothing else is printed.
    assert terminal.startswith(b"starting the sample Mixpeek server"), terminal
    assert terminal.endswith(b"\r\x1b[K"), terminal
    assert terminal.count(b"\n") == 0, terminal


class _ClosedAfter(io.StringIO):
    """A stdout whose reader goes away after ``limit`` characters."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def write(self, text: str) -> int:
        if self.tell() + len(text) > self.limit:
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


@pytest.mark.parametrize(
    "argv", [["retrievers", "--offline"], ["tools", "--offline", "ret_catalog"]]
)
def test_a_closed_stdout_ends_any_command_quietly(
    monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    stdout, stderr = _ClosedAfter(40), io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "stderr", stderr)

    assert cli.main(argv) == cli.EXIT_BROKEN_PIPE
    assert stderr.getvalue() == ""


def test_a_broken_connection_to_mixpeek_is_still_a_network_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # BrokenPipeError is a ConnectionError: one from the network is not a closed stdout.
    with FakeMixpeek() as server:
        server.inject("get_retriever", Fault.reset(), times=None)
        code, _, err = run(
            capsys, "tools", "ret_catalog", "--api-key", server.api_key, "--namespace",
            server.namespace, "--base-url", server.base_url,
        )  # fmt: skip
    assert code == 1
    assert "could not reach Mixpeek at " in one_error_line(err)


# -- mcp ---------------------------------------------------------------------------------------


class _StubMcp(types.ModuleType):
    """Stands in for ``mixpeek_openai.mcp``: records what ``serve`` was given."""

    def __init__(self) -> None:
        super().__init__("mixpeek_openai.mcp")
        self.calls: list[tuple[list[str], dict[str, object]]] = []

    def serve(self, tools: object, **options: object) -> None:
        self.calls.append((list(getattr(tools, "names", ())), options))


@pytest.fixture
def stub_mcp(monkeypatch: pytest.MonkeyPatch) -> _StubMcp:
    module = _StubMcp()
    monkeypatch.setitem(sys.modules, "mixpeek_openai.mcp", module)
    return module


def test_mcp_stdio_serves_the_tools_and_keeps_stdout_for_the_protocol(
    capsys: pytest.CaptureFixture[str], stub_mcp: _StubMcp
) -> None:
    code, out, err = run(
        capsys, "mcp", "--offline", "--retriever", "ret_product_demos", "--retriever",
        "ret_catalog", "--actions", "list_collections",
    )  # fmt: skip

    assert code == 0, err
    assert out == "" and err == ""
    ((names, options),) = stub_mcp.calls
    assert names == ["search_product_demo", "search_catalog", "list_collections"]
    assert options == {"transport": "stdio", "host": "127.0.0.1", "port": 8000}


def test_mcp_http_with_host_and_port(
    capsys: pytest.CaptureFixture[str], stub_mcp: _StubMcp, fake: FakeMixpeek
) -> None:
    code, out, err = run(
        capsys, "mcp", "--retriever", "ret_catalog", "--transport", "http", "--host",
        "0.0.0.0", "--port", "9123", "--api-key", fake.api_key, "--namespace", fake.namespace,
        "--base-url", fake.base_url,
    )  # fmt: skip

    assert code == 0, err
    assert out == ""
    assert err == "mixpeek-openai: serving 1 tools over MCP at http://0.0.0.0:9123\n"
    ((_, options),) = stub_mcp.calls
    assert options == {"transport": "http", "host": "0.0.0.0", "port": 9123}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["mcp", "--offline"], "the following arguments are required: --retriever"),
        (["mcp", "--offline", "--retriever", "r", "--transport", "sse"], "invalid choice: 'sse'"),
        (
            ["mcp", "--offline", "--retriever", "r", "--port", "80"],
            "--port only applies to --transport http",
        ),
        (["mcp", "--offline", "--retriever", "r", "--host", "::"], "--host only applies to"),
        (
            ["mcp", "--offline", "--retriever", "r", "--transport", "http", "--port", "0"],
            "argument --port: '0' is not a port number (1-65535)",
        ),
        (
            ["mcp", "--offline", "--retriever", "r", "--transport", "http", "--port", "x"],
            "argument --port: 'x' is not a port number (1-65535)",
        ),
        (["mcp", "--offline", "--retriever", "r", "--action", "nope"], "Unknown action(s)"),
    ],
)
def test_mcp_bad_flags(
    capsys: pytest.CaptureFixture[str], stub_mcp: _StubMcp, argv: list[str], expected: str
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert expected in one_error_line(err)
    assert not stub_mcp.calls


class _ImportsMissingMcp(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mixpeek_openai.mcp`` as a module whose ``import mcp`` fails (extra not installed)."""

    def find_spec(self, name: str, path: object, target: object = None) -> Any:
        if name == "mixpeek_openai.mcp":
            return importlib.util.spec_from_loader(name, self)
        return None

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        exec("import mcp", module.__dict__)


def test_mcp_without_the_extra_says_what_to_install(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "mixpeek_openai.mcp", raising=False)
    monkeypatch.setitem(sys.modules, "mcp", None)  # `import mcp` -> ModuleNotFoundError
    monkeypatch.setattr(sys, "meta_path", [_ImportsMissingMcp(), *sys.meta_path])

    # No Mixpeek keys are set: the missing extra is reported before anything connects.
    code, out, err = run(capsys, "mcp", "--retriever", "ret_catalog")

    assert code == 1
    assert out == ""
    assert one_error_line(err) == (
        "mixpeek-openai: error: the MCP server needs the 'mcp' package: "
        "pip install 'mixpeek-openai[mcp]'"
    )
    assert "mixpeek_openai.mcp" not in sys.modules  # the failed import left nothing behind


def test_mcp_module_absent(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mixpeek_openai.mcp", None)
    code, _, err = run(capsys, "mcp", "--offline", "--retriever", "ret_catalog")
    assert code == 1
    assert "has no MCP server module (mixpeek_openai.mcp)" in one_error_line(err)


# -- start-up: nothing heavy before it is needed; a status line while it loads -----------------

_IMPORTS_SCRIPT = """
import sys
import mixpeek_openai
before = set(sys.modules)
from mixpeek_openai import cli
for argv in (["demo", "--nope"], ["chat", "hi"], ["codegen", "x", "--class-name", "a b"],
             ["tools", "--offline", "--base-url", "x"]):
    assert cli.main(argv) == 2, argv
new = sorted(set(sys.modules) - before)
heavy = [m for m in new if m.split(".")[0] in ("mixpeek", "openai", "pydantic", "urllib3",
                                              "httpx", "httpx2", "tenacity")]
print("HEAVY", heavy)
print("MIXPEEK", "mixpeek" in sys.modules)
cli.main(["--help"])
print("MIXPEEK-AFTER-HELP", "mixpeek" in sys.modules, "openai" in set(sys.modules) - before)
"""


def test_the_command_imports_nothing_heavy_for_flag_mistakes_or_help() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS_SCRIPT],
        capture_output=True, text=True, timeout=120, env=_env_without_keys(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout
    assert "MIXPEEK False" in proc.stdout
    assert "MIXPEEK-AFTER-HELP False False" in proc.stdout


def test_status_is_silent_off_a_terminal() -> None:
    from mixpeek_openai._cli_render import status

    stream = io.StringIO()
    with status(stream, "loading"):
        pass
    assert stream.getvalue() == ""

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    with pytest.raises(RuntimeError), status(tty, "loading"):
        raise RuntimeError("boom")
    assert tty.getvalue() == "loading…\r\x1b[K"  # erased even when the block fails


@pytest.mark.parametrize("argv", [["demo"], ["--version"], ["tools", "--offline"]])
def test_with_standard_output_closed_it_exits_quietly(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Started with ">&-", Python's sys.stdout is None.
    monkeypatch.setattr(sys, "stdout", None)

    code = cli.main(argv)

    assert code == cli.EXIT_BROKEN_PIPE
    assert "Traceback" not in capsys.readouterr().err
