"""README.md as a reader meets it: every Python block runs, and every output it shows is real.

The Python blocks run in order in one namespace (as a reader pastes them into one session)
with ``Mixpeek()`` and ``OpenAI()`` bound to the offline kit: the real clients talking to
:class:`~mixpeek_openai.testing.FakeMixpeek` and :class:`~mixpeek_openai.testing.StubOpenAI`.
A block that defines ``test_*`` functions is a pytest example: they are called with the
kit's fixtures.

The outputs README shows (the JSON the model gets, ``# comment`` values after an
expression, the ``retrievers --offline`` table, numbers quoted in the prose) are produced
here by the code and compared. When the code's output changes, this test says which block
is stale and prints what the code produces now.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import mixpeek
import openai
import pytest

from mixpeek_openai import cli
from mixpeek_openai.assistants import create_assistant
from mixpeek_openai.dispatch import DispatchConfig, ToolCallResult
from mixpeek_openai.retries import RetryPolicy
from mixpeek_openai.testing import FakeMixpeek, Fault, StubOpenAI
from mixpeek_openai.tools import MixpeekTools

README = Path(__file__).resolve().parent.parent / "README.md"
_STUB_KEY = "sk-readme-stub"
_FENCE = re.compile(r"^```(?P<lang>[\w-]*)\n(?P<body>.*?)^```$", re.M | re.S)


def blocks(lang: str) -> list[tuple[int, str]]:
    """The fenced blocks of ``lang`` in README.md, with the line each starts on."""
    text = README.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start()) + 1, m.group("body"))
        for m in _FENCE.finditer(text)
        if m.group("lang") == lang
    ]


def prose() -> str:
    """README.md without its fenced blocks."""
    return _FENCE.sub("", README.read_text(encoding="utf-8"))


# -- the kit behind Mixpeek() and OpenAI() ----------------------------------------------------


@pytest.fixture
def kit(
    monkeypatch: pytest.MonkeyPatch, fake_mixpeek: FakeMixpeek
) -> Iterator[tuple[FakeMixpeek, StubOpenAI]]:
    """``mixpeek.Mixpeek()`` and ``openai.OpenAI()`` as README calls them, on the kit."""
    fake, stub = fake_mixpeek, StubOpenAI(api_key=_STUB_KEY)
    real_openai, real_async, real_mixpeek = openai.OpenAI, openai.AsyncOpenAI, mixpeek.Mixpeek
    made: list[Any] = []

    class KitOpenAI(real_openai):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if "http_client" in kwargs:  # a client some other stub is building for itself
                super().__init__(*args, **kwargs)
                return
            http = httpx2.Client(transport=stub.transport)
            made.append(http)
            super().__init__(
                api_key=_STUB_KEY, base_url=stub.base_url, max_retries=0, http_client=http
            )

    class KitAsyncOpenAI(real_async):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            if "http_client" in kwargs:
                super().__init__(*args, **kwargs)
                return
            super().__init__(
                api_key=_STUB_KEY,
                base_url=stub.base_url,
                max_retries=0,
                http_client=httpx2.AsyncClient(transport=stub.transport),
            )

    class KitMixpeek(real_mixpeek):  # type: ignore[misc, valid-type]
        def __init__(self, api_key: str | None = None, **kwargs: Any) -> None:
            kwargs.setdefault("namespace", fake.namespace)
            kwargs.setdefault("base_url", fake.base_url)
            super().__init__(api_key or fake.api_key, **kwargs)

    # The Agents SDK exports traces to OpenAI unless told not to: offline, it is told.
    agents = pytest.importorskip("agents")
    agents.set_tracing_disabled(True)
    monkeypatch.setattr(openai, "OpenAI", KitOpenAI)
    monkeypatch.setattr(openai, "AsyncOpenAI", KitAsyncOpenAI)
    monkeypatch.setattr(mixpeek, "Mixpeek", KitMixpeek)
    yield fake, stub
    for http in made:
        http.close()


def _placeholders(fake: FakeMixpeek, stub: StubOpenAI) -> dict[str, str]:
    """README's placeholder ids, mapped to objects created on the kit for them."""
    tools = MixpeekTools.from_retrievers(fake.client(), ["ret_catalog"])
    assistant = create_assistant(stub.client(), tools, model="gpt-4o")
    return {'"asst_..."': repr(assistant.id)}


def run_blocks(fake: FakeMixpeek, stub: StubOpenAI) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Run README's Python blocks in order in one namespace; yield each after it ran.

    Placeholder ids become objects made on the kit; ``test_*`` functions a block defines
    are run with fresh fixtures (``fake_mixpeek``, ``stub_openai``).
    """
    placeholders = _placeholders(fake, stub)
    namespace: dict[str, Any] = {"__name__": "readme"}
    for line, source in blocks("python"):
        for placeholder, value in placeholders.items():
            source = source.replace(placeholder, value)
        exec(compile(source, f"README.md:{line}", "exec"), namespace)
        for name, value in list(namespace.items()):
            if name.startswith("test_") and inspect.isfunction(value):
                with FakeMixpeek() as own_fake:
                    value(fake_mixpeek=own_fake, stub_openai=StubOpenAI())
                del namespace[name]
        yield line, source, namespace


def test_every_python_block_runs(
    kit: tuple[FakeMixpeek, StubOpenAI], capsys: pytest.CaptureFixture[str]
) -> None:
    fake, stub = kit
    ran = [line for line, _, _ in run_blocks(fake, stub)]

    assert len(ran) >= 5
    # Python shown under another fence name would escape this test.
    assert not blocks("py") and not blocks("python3") and not blocks("pycon")
    fake_requests = fake.requests_for("execute")
    assert fake_requests  # the blocks really searched
    assert stub.requests  # and really called the (stand-in) model
    capsys.readouterr()


def test_values_shown_in_comments_are_what_the_code_gives(
    kit: tuple[FakeMixpeek, StubOpenAI], capsys: pytest.CaptureFixture[str]
) -> None:
    """``expr  # value`` lines whose comment is a plain literal: the value is checked."""
    checked = 0
    for line, source, namespace in run_blocks(*kit):
        for offset, text in enumerate(source.splitlines(), start=1):
            expr, sep, comment = text.partition("  # ")
            if not sep or "..." in comment:
                continue
            try:
                expected = ast.literal_eval(comment.strip())
                tree = ast.parse(expr.strip(), mode="eval")
            except (ValueError, SyntaxError):
                continue
            actual = eval(compile(tree, "README.md", "eval"), namespace)
            assert actual == expected, f"README.md:{line + offset}: {actual!r}"
            checked += 1
    assert checked >= 1
    capsys.readouterr()


# -- the outputs shown in "What the model gets back" ----------------------------------------------


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "call_readme",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


class _Clock:
    """A clock that only moves when the retry policy sleeps (no real waiting)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _shown_outputs(fake: FakeMixpeek) -> tuple[list[str], ToolCallResult, ToolCallResult, _Clock]:
    """What the code gives for each case README shows, in README's order."""
    client = fake.client()
    sso = {"query": "sso setup", "limit": 2}
    tools = MixpeekTools.from_retrievers(client, ["ret_product_demos"])
    (plain,) = tools.dispatch([_call("search_product_demo", sso)])

    projected = MixpeekTools.from_retrievers(client, ["ret_product_demos"])
    projected.add_retriever("ret_product_demos", fields=["title", "url", "duration_s"])
    (narrow,) = projected.dispatch([_call("search_product_demo", sso)])

    mistaken = {"query": "sso", "max_duration": "long"}
    (mistake,) = tools.dispatch([_call("search_product_demo", mistaken)])

    clock = _Clock()
    policy = RetryPolicy(sleep=clock.sleep, clock=clock.time)
    down = MixpeekTools.from_retrievers(
        client, ["ret_product_demos"], config=DispatchConfig(retry=policy)
    )
    fake.inject("execute", Fault.status(503), times=None)
    try:
        (unavailable,) = down.dispatch([_call("search_product_demo", {"query": "sso"})])
    finally:
        fake.clear_faults("execute")
    outputs = [plain.output, narrow.output, mistake.output, unavailable.output]
    return outputs, plain, unavailable, clock


def test_the_json_outputs_shown_are_produced_by_the_code(fake_mixpeek: FakeMixpeek) -> None:
    # The JSON blocks themselves are regenerated and compared by test_output_readme.py
    # (each follows an "output:" marker); here, the numbers the prose quotes.
    _, _plain, unavailable, clock = _shown_outputs(fake_mixpeek)

    text = prose()
    # "the raw response was N bytes" is checked with the exact call the prose describes in
    # test_output_readme.py.
    # "(`kind="http_error"`, `status=503`, `attempts=N`)"
    error = unavailable.error
    assert error is not None
    match = re.search(r'`kind="(\w+)"`, `status=(\d+)`,\s+`attempts=(\d+)`', text)
    assert match is not None
    assert (error.kind, error.status, unavailable.attempts) == (
        match.group(1),
        int(match.group(2)),
        int(match.group(3)),
    )
    # "the default 4 is the first try and up to 3 retries (about 0.5 s, 1 s and 2 s apart)"
    assert unavailable.attempts == RetryPolicy().max_attempts == 4
    assert "the default 4 is\n  the first try and up to 3 retries" in text
    assert len(clock.sleeps) == 3
    for slept, base in zip(clock.sleeps, (0.5, 1.0, 2.0), strict=True):
        assert base <= slept <= base * 1.25  # the backoff plus at most 25% jitter


def test_the_configuration_block_shows_the_defaults() -> None:
    ((line, source),) = [(n, b) for n, b in blocks("python") if "config = DispatchConfig(" in b]
    call = source[source.index("DispatchConfig(") : source.index("\ntools = ")]
    namespace: dict[str, Any] = {"DispatchConfig": DispatchConfig, "RetryPolicy": RetryPolicy}
    config = eval(call, namespace)  # on_call_event is not compared: it is the example's own
    assert config == DispatchConfig(), f"README.md:{line}: the values are not the defaults"


# -- the command's outputs ------------------------------------------------------------------------


def test_the_retrievers_table_shown_is_the_commands_output(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["retrievers", "--offline"]) == 0
    produced = capsys.readouterr().out
    tables = [(line, body) for line, body in blocks("text") if body.startswith("RETRIEVER ID")]

    assert tables, "README shows no 'mixpeek-openai retrievers --offline' output"
    for line, body in tables:
        assert body == produced, f"README.md:{line} is stale; the command prints:\n{produced}"


def test_the_commands_readme_names_exist(capsys: pytest.CaptureFixture[str]) -> None:
    """Every ``mixpeek-openai SUBCOMMAND`` README mentions is one the command has."""
    text = README.read_text(encoding="utf-8")
    named = set(re.findall(r"mixpeek-openai ([a-z]+)", text))
    assert cli.main(["--help"]) == 0
    help_text = capsys.readouterr().out
    listed = set(re.findall(r"^    ([a-z]+)\s", help_text, re.M))
    assert named - {"contributors"} <= listed, named - listed
