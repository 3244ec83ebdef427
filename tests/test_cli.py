"""The ``mixpeek-openai`` command, run in-process (``main([...])``) against the offline kit."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from mixpeek_openai import cli
from mixpeek_openai.testing import FakeMixpeek, StubOpenAI

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
    assert "retriever 'ret_nope' was not found" in line
    assert "MIXPEEK_NAMESPACE" in line
    assert not real_env.requests  # the model was never called


def test_unknown_retriever_offline(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "codegen", "--offline", "ret_nope")
    assert code == 1
    assert "retriever 'ret_nope' was not found" in one_error_line(err)


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
