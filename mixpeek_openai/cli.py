"""The ``mixpeek-openai`` command.

::

    mixpeek-openai demo                      # offline: no keys, no network
    mixpeek-openai retrievers                # the namespace's retriever ids, names, inputs
    mixpeek-openai tools RETRIEVER_ID...     # print the generated tool schemas (JSON)
    mixpeek-openai chat --retriever ID "question"   # a real conversation, streamed
    mixpeek-openai codegen RETRIEVER_ID      # a typed Pydantic module for a retriever
    mixpeek-openai mcp --retriever ID        # serve the tools over MCP (stdio or HTTP)

Credentials come from the environment (``OPENAI_API_KEY``, ``MIXPEEK_API_KEY``,
``MIXPEEK_NAMESPACE``, optionally ``MIXPEEK_BASE_URL`` and ``OPENAI_BASE_URL``) or from
flags. Failures print one line on stderr saying what to do and exit non-zero (1; 2 for bad
flags or missing settings); ``--debug`` prints the traceback too. Keys are never printed.

The module imports nothing heavy until a command needs it: ``--help`` and flag mistakes
answer at once, and the seconds the ``mixpeek`` package takes to import are announced on
the terminal instead of passing in silence.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import keyword
import logging
import os
import shutil
import sys
import traceback
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

from mixpeek_openai._cli_render import Output, importing, is_terminal, status
from mixpeek_openai.errors import (
    LoopError,
    MixpeekOpenAIError,
    MixpeekRequestError,
    RetrieverNotFoundError,
    UnknownActionError,
)

if TYPE_CHECKING:
    from openai import OpenAI

    from mixpeek_openai._cli_render import EventPrinter
    from mixpeek_openai.dispatch import ToolCallResult
    from mixpeek_openai.tools import MixpeekTools

__all__ = ["main"]

PROG = "mixpeek-openai"
DEFAULT_MODEL = "gpt-4o-mini"
DEMO_QUESTION = "Which demos show the CRM integration?"
DEMO_RETRIEVERS = ("ret_product_demos", "ret_catalog")
DEFAULT_MCP_HOST = "127.0.0.1"
DEFAULT_MCP_PORT = 8000
_APIS = ("chat", "responses", "assistants")
_API_LABELS = {
    "chat": "Chat Completions",
    "responses": "Responses",
    "assistants": "Assistants runner",
}
_RUNNERS = {
    "chat": "run_chat, streamed",
    "responses": "run_responses, streamed",
    "assistants": "create_assistant + run_assistant, polling",
}
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
"""What a shell reports for a program ended by SIGPIPE (``mixpeek-openai demo | head``)."""

_LOADING_MIXPEEK = "loading the mixpeek package (takes a few seconds on a cold start)"
_LOADING_KIT = "starting the sample Mixpeek server and the stand-in model (loading mixpeek, openai)"


class CliError(Exception):
    """A failure with a one-line, actionable message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class _OutputClosed(Exception):
    """Standard output went away (the reader closed the pipe): stop quietly."""


class _GuardedOutput:
    """Standard output that turns a broken pipe into :class:`_OutputClosed`.

    ``BrokenPipeError`` is a ``ConnectionError``, exactly like a socket to Mixpeek that the
    server closed; marking the failures of *our* output keeps the two apart.
    """

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str, /) -> int:
        if self._stream is None:  # started with standard output closed (``>&-``)
            raise _OutputClosed
        try:
            return int(self._stream.write(text))
        except BrokenPipeError as exc:
            raise _OutputClosed from exc

    def flush(self) -> None:
        if self._stream is None:
            raise _OutputClosed
        try:
            self._stream.flush()
        except BrokenPipeError as exc:
            raise _OutputClosed from exc

    def isatty(self) -> bool:
        return is_terminal(self._stream)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line (exit 2) instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


# -- settings ------------------------------------------------------------------------------


def _env_or(value: str | None, name: str) -> str | None:
    return value if value else (os.environ.get(name) or None)


def _safe_url(url: str | None) -> str:
    """``url`` without any user:password part, query or fragment."""
    if not url:
        return "the default URL"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    # The port as written (an invalid one is what the message is about), never user:password.
    _, colon, port = parts.netloc.rpartition("@")[2].rpartition(":")
    if colon and port and "]" not in port:
        host = f"{host}:{port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _api_root(flag_value: str | None, *, flag: str, env: str, example: str) -> str | None:
    """The API root from ``flag`` or ``env``, checked; a bare ``scheme://host[:port]`` gets /v1.

    Both APIs live under ``/v1``: a URL with no path would send requests to
    ``/retrievers/...`` and get 404s that read like "no such retriever". Anything that is
    not an http(s) URL is refused here, before a client warns or guesses about it.
    """
    url = flag_value or os.environ.get(env) or None
    if url is None:
        return None
    source = flag if flag_value else env
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise CliError(
            f"{source} {_safe_url(url)!r} has an invalid port: give a number from 1 to 65535, "
            f"e.g. {example}",
            EXIT_USAGE,
        ) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CliError(
            f"{source} {_safe_url(url)!r} is not an http(s) URL: give the API root, e.g. {example}",
            EXIT_USAGE,
        )
    if parts.path in ("", "/"):
        return urlunsplit((parts.scheme, parts.netloc, "/v1", parts.query, ""))
    return url


def _mixpeek_settings(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    base_url = _api_root(
        args.base_url,
        flag="--base-url",
        env="MIXPEEK_BASE_URL",
        example="https://api.mixpeek.com/v1",
    )
    return (
        _env_or(args.api_key, "MIXPEEK_API_KEY"),
        _env_or(args.namespace, "MIXPEEK_NAMESPACE"),
        base_url,
    )


def _missing(pairs: Sequence[tuple[str | None, str, str]]) -> None:
    """Raise one usage error naming every missing setting (env var and flag)."""
    gaps = [(env, flag) for value, env, flag in pairs if not value]
    if not gaps:
        return
    envs = ", ".join(env for env, _ in gaps)
    flags = ", ".join(flag for _, flag in gaps)
    verb = "is" if len(gaps) == 1 else "are"
    raise CliError(
        f"{envs} {verb} not set: export {'it' if len(gaps) == 1 else 'them'} or pass {flags} "
        f"(or try '{PROG} demo', which needs no keys)",
        EXIT_USAGE,
    )


def _check_offline(args: argparse.Namespace) -> None:
    """``--offline`` with connection flags is a contradiction: say so instead of ignoring them."""
    if not getattr(args, "offline", False):
        return
    given = [
        flag
        for flag, value in (
            ("--api-key", args.api_key),
            ("--namespace", args.namespace),
            ("--base-url", args.base_url),
        )
        if value
    ]
    if given:
        raise CliError(
            f"--offline uses the built-in sample namespace, so {', '.join(given)} would be "
            f"ignored: drop {'it' if len(given) == 1 else 'them'}, or drop --offline to use "
            "that server",
            EXIT_USAGE,
        )


def _check_actions(actions: Sequence[str]) -> None:
    """Refuse unknown exploration actions before anything connects anywhere."""
    if not actions:
        return
    from mixpeek_openai.tools import ACTIONS

    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise UnknownActionError(unknown, list(ACTIONS))


# -- clients -------------------------------------------------------------------------------


def _make_openai_client(api_key: str, base_url: str | None) -> OpenAI:
    """The OpenAI client ``chat`` uses (tests replace this function to inject a stub)."""
    from openai import OpenAI

    return OpenAI(api_key=api_key, base_url=base_url)


@contextmanager
def _mixpeek_client(args: argparse.Namespace, err: Any) -> Iterator[Any]:
    """The Mixpeek client for a command (the sample namespace's with ``--offline``)."""
    if getattr(args, "offline", False):
        with status(err, _LOADING_KIT):
            from mixpeek_openai.testing import FakeMixpeek

            fake = FakeMixpeek().start()
        with fake:
            yield fake.client()
        return
    api_key, namespace, base_url = _mixpeek_settings(args)
    _missing(
        [
            (api_key, "MIXPEEK_API_KEY", "--api-key"),
            (namespace, "MIXPEEK_NAMESPACE", "--namespace"),
        ]
    )
    importing(err, "mixpeek", _LOADING_MIXPEEK)
    from mixpeek import Mixpeek

    yield Mixpeek(api_key=api_key, namespace=namespace, base_url=base_url)


def _load_tools(client: Any, retriever_ids: Sequence[str], actions: Sequence[str]) -> MixpeekTools:
    """The tool set, from definitions fetched now (a command shows what the server has)."""
    from mixpeek_openai.tools import MixpeekTools, RetrieverCache

    cache = RetrieverCache()
    if retriever_ids:
        return MixpeekTools.from_retrievers(client, retriever_ids, actions=actions, cache=cache)
    return MixpeekTools.from_namespace(client, actions=actions, cache=cache)


# -- commands ------------------------------------------------------------------------------


def _cmd_retrievers(args: argparse.Namespace, out: Output, err: Any) -> int:
    from mixpeek_openai._cli_render import retriever_rows, write_retriever_table

    with _mixpeek_client(args, err) as client:
        rows = retriever_rows(_load_tools(client, (), ()))
    if args.json:
        out.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        out.write("This namespace has no retrievers.\n")
        return 0
    width = shutil.get_terminal_size((100, 24)).columns if is_terminal(out) else 100
    write_retriever_table(out, rows, width=width)
    return 0


def _cmd_tools(args: argparse.Namespace, out: Output, err: Any) -> int:
    with _mixpeek_client(args, err) as client:
        tools = _load_tools(client, args.retriever_ids, args.action)
    strict = not args.no_strict
    schemas = (
        tools.responses_tools(strict=strict)
        if args.format == "responses"
        else tools.chat_tools(strict=strict)
    )
    out.write(json.dumps(schemas, indent=2) + "\n")
    return 0


def _cmd_codegen(args: argparse.Namespace, out: Output, err: Any) -> int:
    from mixpeek_openai.codegen import codegen_for

    with _mixpeek_client(args, err) as client:
        source = codegen_for(client, args.retriever_id, class_name=args.class_name)
    out.write(source)
    return 0


def _load_mcp() -> Any:
    """``mixpeek_openai.mcp``, or a one-line error saying how to install what it needs."""
    import importlib

    try:
        mcp_module = importlib.import_module("mixpeek_openai.mcp")
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing == "mcp" or missing.startswith("mcp."):
            raise CliError(
                "the MCP server needs the 'mcp' package: pip install 'mixpeek-openai[mcp]'"
            ) from exc
        if missing == "mixpeek_openai.mcp":
            raise CliError(
                "this installation of mixpeek-openai has no MCP server module "
                "(mixpeek_openai.mcp): upgrade it with pip install -U 'mixpeek-openai[mcp]'"
            ) from exc
        raise
    return mcp_module


def _cmd_mcp(args: argparse.Namespace, out: Output, err: Any) -> int:
    # Standard output belongs to the protocol (stdio transport): nothing else goes there.
    if args.transport == "stdio" and (args.host is not None or args.port is not None):
        given = [f for f, v in (("--host", args.host), ("--port", args.port)) if v is not None]
        verb = "applies" if len(given) == 1 else "apply"
        raise CliError(
            f"{' and '.join(given)} only {verb} to --transport http (stdio talks over "
            "stdin/stdout)",
            EXIT_USAGE,
        )
    mcp_module = _load_mcp()  # before connecting anywhere: a missing extra fails fast
    with _mixpeek_client(args, err) as client:
        tools = _load_tools(client, args.retriever, args.action)
        if args.transport == "http":
            host = args.host or DEFAULT_MCP_HOST
            port = args.port or DEFAULT_MCP_PORT
            err.write(
                f"{PROG}: serving {len(tools.names)} tools over MCP at http://{host}:{port}\n"
            )
            err.flush()
        else:
            host, port = DEFAULT_MCP_HOST, DEFAULT_MCP_PORT
        mcp_module.serve(tools, transport=args.transport, host=host, port=port)
    return 0


def _delete_quietly(method: Any, *ids: str) -> None:
    """Call a deprecated Assistants method without its DeprecationWarning; ignore failures.

    The command is the application here and runs this on its main thread after the run
    ended (no other thread is warning), so a local ``catch_warnings`` is safe.
    """
    with warnings.catch_warnings(), contextlib.suppress(Exception):
        warnings.simplefilter("ignore", DeprecationWarning)
        method(*ids)  # best effort: the answer was already printed


def _converse(
    api: str,
    client: OpenAI,
    tools: MixpeekTools,
    *,
    model: str,
    question: str,
    printer: EventPrinter,
    assistant_stream: bool = True,
    cleanup: bool = True,
) -> list[ToolCallResult]:
    """One conversation through ``api``, narrated by ``printer``; returns the tool calls."""
    from mixpeek_openai.assistants import create_assistant, run_assistant
    from mixpeek_openai.chat import run_chat
    from mixpeek_openai.responses import run_responses

    if api == "chat":
        chat = run_chat(
            client,
            tools,
            model=model,
            messages=[{"role": "user", "content": question}],
            stream=True,
            on_event=printer,
        )
        return chat.calls
    if api == "responses":
        responses = run_responses(
            client, tools, model=model, input=question, stream=True, on_event=printer
        )
        return responses.calls
    assistant = create_assistant(
        client,
        tools,
        model=model,
        name=f"{PROG} (temporary)",
        instructions="Answer using the search tools.",
    )
    thread_id: str | None = None
    try:
        result = run_assistant(
            client,
            tools,
            assistant_id=assistant.id,
            message=question,
            stream=assistant_stream,
            poll_interval_s=None if assistant_stream else 0.05,
            on_event=printer,
        )
        thread_id = result.thread_id
        return result.calls
    finally:
        if cleanup:
            if thread_id is not None:
                _delete_quietly(client.beta.threads.delete, thread_id)
            _delete_quietly(client.beta.assistants.delete, assistant.id)


def _cmd_chat(args: argparse.Namespace, out: Output, err: Any) -> int:
    from mixpeek_openai._cli_render import EventPrinter, SizeReport, print_size_table

    openai_key = _env_or(args.openai_api_key, "OPENAI_API_KEY")
    api_key, namespace, _ = _mixpeek_settings(args)
    _missing(
        [
            (openai_key, "OPENAI_API_KEY", "--openai-api-key"),
            (api_key, "MIXPEEK_API_KEY", "--api-key"),
            (namespace, "MIXPEEK_NAMESPACE", "--namespace"),
        ]
    )
    assert openai_key is not None  # checked just above
    openai_url = _api_root(
        args.openai_base_url,
        flag="--openai-base-url",
        env="OPENAI_BASE_URL",
        example="https://api.openai.com/v1",
    )
    with _mixpeek_client(args, err) as mixpeek:
        tools = _load_tools(mixpeek, args.retriever, args.action)
        importing(err, "openai", "loading the openai package")
        client = _make_openai_client(openai_key, openai_url)
        printer = EventPrinter(tools, progress=err, answer=out, verbose=args.verbose)
        calls = _converse(
            args.api, client, tools, model=args.model, question=args.question, printer=printer
        )
    if args.verbose:
        print_size_table(err, [(_API_LABELS[args.api], SizeReport.of(calls))])
    return 0


def _cmd_demo(args: argparse.Namespace, out: Output, err: Any) -> int:
    apis = [args.api] if args.api else list(_APIS)
    out.write(
        "mixpeek-openai demo: offline, no keys, no network.\n"
        "  Mixpeek is a local fake server with a sample namespace (FakeMixpeek), and the model\n"
        "  is a LOCAL STAND-IN, not a real OpenAI model: StubOpenAI's rule-based model calls\n"
        "  the first tool with your words, then summarises what it found. The openai and\n"
        "  mixpeek clients and this package run for real.\n"
        f'  With real keys: {PROG} chat --retriever RETRIEVER_ID "your question"\n\n'
    )
    out.flush()
    with status(err, _LOADING_KIT):
        from mixpeek_openai._cli_render import EventPrinter, SizeReport, print_size_table
        from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
        from mixpeek_openai.tools import MixpeekTools

        fake = FakeMixpeek().start()
    rows: list[tuple[str, SizeReport]] = []
    with fake:
        tools = MixpeekTools.from_retrievers(fake.client(), DEMO_RETRIEVERS)
        stub = StubOpenAI()
        client = stub.client()
        offered = ", ".join(
            f"{d.name} ({d.retriever_id})" for d in tools.definitions if d.retriever_id
        )
        out.write(
            f"Tools offered to the model: {offered}\n"
            f"  (every sample retriever: {PROG} retrievers --offline)\n"
        )
        for api in apis:
            out.write(f"\n== {_API_LABELS[api]} ({_RUNNERS[api]}) ==\n")
            out.write(f"  {'user':<11}{args.question}\n")
            printer = EventPrinter(tools, progress=out, answer=out)
            calls = _converse(
                api,
                client,
                tools,
                model="stub-model",
                question=args.question,
                printer=printer,
                assistant_stream=False,
                cleanup=False,
            )
            rows.append((_API_LABELS[api], SizeReport.of(calls)))
    out.write("\n")
    print_size_table(out, rows)
    out.write(
        "\nThe answers above came from a local stand-in model. Point the same code at\n"
        "OpenAI and Mixpeek with OPENAI_API_KEY, MIXPEEK_API_KEY and MIXPEEK_NAMESPACE.\n"
    )
    return 0


_COMMANDS = {
    "demo": _cmd_demo,
    "retrievers": _cmd_retrievers,
    "tools": _cmd_tools,
    "codegen": _cmd_codegen,
    "chat": _cmd_chat,
    "mcp": _cmd_mcp,
}


# -- parser --------------------------------------------------------------------------------


def _class_name(value: str) -> str:
    if not value.isidentifier() or keyword.iskeyword(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a valid Python class name (letters, digits and _, "
            "not starting with a digit), e.g. ProductDemoInputs"
        )
    return value


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (1-65535)")
    return port


def _names(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _add_mixpeek_flags(parser: argparse.ArgumentParser, *, offline: bool) -> None:
    group = parser.add_argument_group("Mixpeek connection")
    group.add_argument("--api-key", help="Mixpeek API key (default: $MIXPEEK_API_KEY)")
    group.add_argument("--namespace", help="Mixpeek namespace (default: $MIXPEEK_NAMESPACE)")
    group.add_argument(
        "--base-url",
        help="Mixpeek API root (default: $MIXPEEK_BASE_URL or https://api.mixpeek.com/v1); "
        "a URL without a path gets /v1",
    )
    if offline:
        group.add_argument(
            "--offline",
            action="store_true",
            help="use the built-in sample namespace (a local fake server; no keys needed)",
        )


def _add_actions_flag(parser: argparse.ArgumentParser, *, describe: bool) -> None:
    # The list of names costs an import of the tools module: only --help shows it.
    names = ""
    if describe:
        from mixpeek_openai.tools import ACTIONS

        names = f": {', '.join(ACTIONS)}"
    parser.add_argument(
        "--action",
        "--actions",
        dest="action",
        action="extend",
        type=_names,
        default=[],
        metavar="NAME",
        help=f"add exploration tools (repeatable, or comma-separated){names}",
    )


def _parser(*, describe: bool = False) -> _Parser:
    from mixpeek_openai import __version__

    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback and the package's log when something fails",
    )
    parser = _Parser(
        prog=PROG,
        description="Mixpeek retrievers as typed tools for OpenAI models.",
        epilog=f"Run '{PROG} demo' to see it work offline, without any key. Exit codes: 0 ok, "
        "1 failed, 2 bad flags or missing settings, 130 interrupted, 141 output closed.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo",
        parents=[common],
        help="offline demo: no keys, no network",
        description="One conversation through Chat Completions, Responses and the Assistants "
        "runner, against a local fake Mixpeek and a local stand-in model.",
    )
    demo.add_argument("--api", choices=_APIS, help="run only this API (default: all three)")
    demo.add_argument("--question", default=DEMO_QUESTION, help="what the user asks")

    retrievers = sub.add_parser(
        "retrievers",
        parents=[common],
        help="list the namespace's retrievers: ids, names, inputs",
        description="List the retrievers of the namespace (ids to pass to --retriever, "
        "tools and codegen), with their names and inputs.",
    )
    retrievers.add_argument(
        "--json", action="store_true", help="print JSON (with input types and descriptions)"
    )
    _add_mixpeek_flags(retrievers, offline=True)

    tools = sub.add_parser(
        "tools",
        parents=[common],
        help="print the generated tool schemas as JSON",
        description="Print the OpenAI function tools generated for the given retrievers "
        "(every retriever of the namespace when none is given).",
    )
    tools.add_argument("retriever_ids", nargs="*", metavar="RETRIEVER_ID")
    tools.add_argument(
        "--format",
        choices=("chat", "responses"),
        default="chat",
        help="chat: Chat Completions / Assistants format (default); responses: Responses API",
    )
    tools.add_argument(
        "--no-strict", action="store_true", help="non-strict schemas (strict is the default)"
    )
    _add_actions_flag(tools, describe=describe)
    _add_mixpeek_flags(tools, offline=True)

    chat = sub.add_parser(
        "chat",
        parents=[common],
        help="ask a real model a question, with retrievers as tools (streams the answer)",
        description="A conversation with an OpenAI model that may search the given retrievers. "
        "Needs OPENAI_API_KEY, MIXPEEK_API_KEY and MIXPEEK_NAMESPACE (or the flags). "
        "Progress goes to stderr, the answer to stdout.",
    )
    chat.add_argument("question", help="what to ask")
    chat.add_argument(
        "--retriever",
        action="append",
        required=True,
        metavar="ID",
        help="a retriever the model may search (repeatable)",
    )
    chat.add_argument("--model", default=DEFAULT_MODEL, help=f"default: {DEFAULT_MODEL}")
    chat.add_argument(
        "--api",
        choices=_APIS,
        default="chat",
        help="chat (default), responses, or assistants (a temporary assistant, deleted after)",
    )
    chat.add_argument("--openai-api-key", help="OpenAI API key (default: $OPENAI_API_KEY)")
    chat.add_argument(
        "--openai-base-url", help="OpenAI-compatible API root (default: $OPENAI_BASE_URL)"
    )
    chat.add_argument(
        "-q",
        "--quiet",
        dest="verbose",
        action="store_false",
        help="only tool calls and the answer (no turns, previews or size table)",
    )
    _add_actions_flag(chat, describe=describe)
    _add_mixpeek_flags(chat, offline=False)

    codegen = sub.add_parser(
        "codegen",
        parents=[common],
        help="print a typed Pydantic module for a retriever",
        description="Generate a Python module with a Pydantic model of the retriever's inputs.",
    )
    codegen.add_argument("retriever_id", metavar="RETRIEVER_ID")
    codegen.add_argument("--class-name", type=_class_name, help="name of the generated model class")
    _add_mixpeek_flags(codegen, offline=True)

    mcp = sub.add_parser(
        "mcp",
        parents=[common],
        help="serve retrievers as tools over MCP (stdio or HTTP)",
        description="Run an MCP server whose tools search the given retrievers (needs the "
        "'mcp' extra). With --transport stdio (the default) standard output carries only "
        "the protocol; messages go to stderr.",
    )
    mcp.add_argument(
        "--retriever",
        action="append",
        required=True,
        metavar="ID",
        help="a retriever to offer as a tool (repeatable)",
    )
    mcp.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio (default: for a client that starts the server) or http",
    )
    mcp.add_argument("--host", help=f"HTTP address to listen on (default: {DEFAULT_MCP_HOST})")
    mcp.add_argument(
        "--port", type=_port, help=f"HTTP port to listen on (default: {DEFAULT_MCP_PORT})"
    )
    _add_actions_flag(mcp, describe=describe)
    _add_mixpeek_flags(mcp, offline=True)
    return parser


# -- errors --------------------------------------------------------------------------------


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _network_reason(exc: BaseException) -> str | None:
    """Why a connection failed, when ``exc`` is (or wraps) a network failure."""
    import socket

    network: tuple[type[BaseException], ...] = (ConnectionError, socket.timeout)
    urllib3 = sys.modules.get("urllib3")  # only imported once something used the network
    if urllib3 is not None:
        network = (*network, urllib3.exceptions.HTTPError)
    for link in _chain(exc):
        if isinstance(link, network):
            text = str(link).lower()
            if "refused" in text:
                return "connection refused"
            if "timed out" in text or "timeout" in text:
                return "timed out"
            if "name or service" in text or "resolve" in text or "getaddrinfo" in text:
                return "host not found"
            return "connection failed"
    return None


def _request_reason(exc: MixpeekRequestError) -> str:
    """Why a request of the package's own got no answer, in a few words."""
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if exc.kind in ("timeout", "deadline_exceeded") or "timed out" in text:
        return "timed out"
    if "name or service" in text or "not known" in text or "resolution" in text:
        return "host not found"
    return "connection failed"


def _detail_message(detail: Any) -> str:
    if isinstance(detail, dict):
        error = detail.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if detail.get("detail"):
            return str(detail["detail"])
        if detail.get("message"):
            return str(detail["message"])
    return str(detail)


def _not_found(exc: RetrieverNotFoundError, args: argparse.Namespace) -> str:
    if getattr(args, "offline", False):
        return (
            f"retriever {exc.retriever_id!r} is not in the sample namespace: "
            f"'{PROG} retrievers --offline' lists its retrievers"
        )
    base_url = _env_or(getattr(args, "base_url", None), "MIXPEEK_BASE_URL")
    namespace = _env_or(getattr(args, "namespace", None), "MIXPEEK_NAMESPACE")
    where = f" {namespace!r}" if namespace else ""
    message = (
        f"retriever {exc.retriever_id!r} was not found in namespace{where}: check the id and "
        f"the namespace (MIXPEEK_NAMESPACE or --namespace); '{PROG} retrievers' lists the "
        "namespace's retrievers"
    )
    path = urlsplit(base_url).path.rstrip("/") if base_url else ""
    if path and not path.endswith("/v1"):
        message += (
            f"; also check the base URL {_safe_url(base_url)}: Mixpeek's API is under /v1 "
            "(e.g. https://api.mixpeek.com/v1)"
        )
    return message


def _raised_in(exc: BaseException, package: str) -> bool:
    """Whether ``exc`` was raised from inside ``package`` (its traceback passes through it)."""
    tb = exc.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module == package or module.startswith(package + "."):
            return True
        tb = tb.tb_next
    return False


def _explain(exc: BaseException, args: argparse.Namespace) -> tuple[str, int]:
    """One line saying what went wrong and what to do, and the exit code."""
    base_url = _env_or(getattr(args, "base_url", None), "MIXPEEK_BASE_URL")
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, RetrieverNotFoundError):
        return _not_found(exc, args), EXIT_ERROR
    if isinstance(exc, UnknownActionError):
        return str(exc), EXIT_USAGE
    openai = sys.modules.get("openai")  # an OpenAI error implies the package is loaded
    if openai is not None:
        if isinstance(exc, openai.APIConnectionError):
            target = _safe_url(
                _env_or(getattr(args, "openai_base_url", None), "OPENAI_BASE_URL")
                or "https://api.openai.com/v1"
            )
            return (
                f"could not reach the OpenAI API ({target}): check your network and "
                "OPENAI_BASE_URL / --openai-base-url",
                EXIT_ERROR,
            )
        if isinstance(exc, openai.AuthenticationError):
            return "OpenAI rejected the API key (401): check OPENAI_API_KEY", EXIT_ERROR
        if isinstance(exc, openai.APIStatusError):
            hint = "check --model" if exc.status_code in (400, 404) else "try again later"
            message = _detail_message(exc.body) if exc.body else exc.message
            return f"OpenAI API error {exc.status_code}: {message} ({hint})", EXIT_ERROR
        if isinstance(exc, ValueError) and _raised_in(exc, "openai"):
            # The openai client reading a success body that is not JSON.
            return (
                "the OpenAI API answered with something that is not JSON: check that "
                "OPENAI_BASE_URL / --openai-base-url points at an OpenAI-compatible API",
                EXIT_ERROR,
            )
    if isinstance(exc, LoopError):
        return f"the conversation stopped: {exc}", EXIT_ERROR
    if isinstance(exc, MixpeekRequestError) and exc.status is None:
        return (
            f"could not reach Mixpeek at {_safe_url(base_url)} ({_request_reason(exc)}): check "
            "MIXPEEK_BASE_URL / --base-url and your network",
            EXIT_ERROR,
        )
    if isinstance(exc, MixpeekRequestError) and exc.status is not None:
        status_code = exc.status
        message = exc.detail or str(exc)
        if status_code == 401:
            return (
                "Mixpeek rejected the API key (401): check MIXPEEK_API_KEY or --api-key",
                EXIT_ERROR,
            )
        if status_code == 403:
            return (
                f"Mixpeek refused access (403): {message}; check MIXPEEK_NAMESPACE or --namespace",
                EXIT_ERROR,
            )
        return f"Mixpeek API error {status_code}: {message}", EXIT_ERROR
    if isinstance(exc, MixpeekOpenAIError):
        return str(exc), EXIT_ERROR
    reason = _network_reason(exc)
    if reason is not None:
        return (
            f"could not reach Mixpeek at {_safe_url(base_url)} ({reason}): check "
            "MIXPEEK_BASE_URL / --base-url and your network",
            EXIT_ERROR,
        )
    return (
        f"unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
        EXIT_ERROR,
    )


def _scrub(text: str, args: argparse.Namespace | None) -> str:
    """Remove every key we know of from ``text`` (a safety net: messages should hold none)."""
    secrets = {
        os.environ.get("OPENAI_API_KEY"),
        os.environ.get("MIXPEEK_API_KEY"),
        getattr(args, "api_key", None),
        getattr(args, "openai_api_key", None),
    }
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


# -- entry point ---------------------------------------------------------------------------


@contextmanager
def _package_logging(debug: bool, err: Any) -> Iterator[None]:
    """What the package's loggers print while the command runs.

    The command shows failed tool calls itself; without ``--debug`` the log stays silent
    (no last-resort handler printing warnings into the output). With ``--debug`` it goes
    to stderr. The handler is removed afterwards, so ``main()`` can run in-process.
    """
    logger = logging.getLogger("mixpeek_openai")
    handler: logging.Handler
    if debug:
        handler = logging.StreamHandler(err)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    previous = logger.level
    logger.addHandler(handler)
    if debug:
        logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def _silence_stdout() -> None:
    """Point the process's stdout at /dev/null so the interpreter's final flush stays quiet."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        fd = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mixpeek-openai`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit code: 0 on success, 1 when something failed, 2 for bad flags or
    missing settings, 130 when interrupted, 141 when standard output was closed early
    (``| head``; nothing is printed then).
    """
    out, err = _GuardedOutput(sys.stdout), sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    debug = "--debug" in argv
    try:
        with _package_logging(debug, err):
            describe = "-h" in argv or "--help" in argv
            args = _parser(describe=describe).parse_args(argv)
            if args.command is None:
                raise CliError(f"choose a command, e.g. '{PROG} demo' (see '{PROG} --help')", 2)
            _check_offline(args)
            _check_actions(getattr(args, "action", ()))
            code = _COMMANDS[args.command](args, out, err)
            out.flush()
            return code
    except SystemExit as exc:  # --help and --version exit through argparse
        try:
            out.flush()
        except _OutputClosed:
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        err.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if any(isinstance(link, _OutputClosed) for link in _chain(exc)):
            _silence_stdout()
            return EXIT_BROKEN_PIPE
        message, code = _explain(exc, args or argparse.Namespace())
        with contextlib.suppress(_OutputClosed):
            out.flush()
        if debug:
            err.write(_scrub("".join(traceback.format_exception(exc)), args))
        err.write(f"{PROG}: error: {_scrub(message, args)}\n")
        err.flush()
        return code


if __name__ == "__main__":
    sys.exit(main())
