"""The ``mixpeek-openai`` command.

::

    mixpeek-openai demo                      # offline: no keys, no network
    mixpeek-openai tools RETRIEVER_ID...     # print the generated tool schemas (JSON)
    mixpeek-openai chat --retriever ID "question"   # a real conversation, streamed
    mixpeek-openai codegen RETRIEVER_ID      # a typed Pydantic module for a retriever

Credentials come from the environment (``OPENAI_API_KEY``, ``MIXPEEK_API_KEY``,
``MIXPEEK_NAMESPACE``, optionally ``MIXPEEK_BASE_URL`` and ``OPENAI_BASE_URL``) or from
flags. Failures print one line on stderr saying what to do and exit non-zero; ``--debug``
prints the traceback too. Keys are never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TextIO
from urllib.parse import urlsplit, urlunsplit

from mixpeek_openai import __version__
from mixpeek_openai._cli_render import EventPrinter, SizeReport, print_size_table
from mixpeek_openai.errors import (
    LoopError,
    MixpeekOpenAIError,
    RetrieverNotFoundError,
    UnknownActionError,
)
from mixpeek_openai.tools import ACTIONS

if TYPE_CHECKING:
    from openai import OpenAI

    from mixpeek_openai.dispatch import ToolCallResult
    from mixpeek_openai.tools import MixpeekTools

__all__ = ["main"]

PROG = "mixpeek-openai"
DEFAULT_MODEL = "gpt-4o-mini"
DEMO_QUESTION = "Which demos show the CRM integration?"
DEMO_RETRIEVERS = ("ret_product_demos", "ret_catalog")
_APIS = ("chat", "responses", "assistants")
_API_LABELS = {
    "chat": "Chat Completions",
    "responses": "Responses",
    "assistants": "Assistants runner",
}
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure with a one-line, actionable message and an exit code."""

    def __init__(self, message: str, code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors become one line instead of usage + exit."""

    def error(self, message: str) -> NoReturn:
        raise CliError(f"{message} (see '{self.prog} --help')", EXIT_USAGE)


# -- clients -------------------------------------------------------------------------------


def _make_openai_client(api_key: str, base_url: str | None) -> OpenAI:
    """The OpenAI client ``chat`` uses (tests replace this function to inject a stub)."""
    from openai import OpenAI

    # base_url=None lets the client read OPENAI_BASE_URL itself.
    return OpenAI(api_key=api_key, base_url=base_url)


def _env_or(value: str | None, name: str) -> str | None:
    return value if value else (os.environ.get(name) or None)


def _mixpeek_settings(args: argparse.Namespace) -> tuple[str | None, str | None, str | None]:
    return (
        _env_or(args.api_key, "MIXPEEK_API_KEY"),
        _env_or(args.namespace, "MIXPEEK_NAMESPACE"),
        _env_or(args.base_url, "MIXPEEK_BASE_URL"),
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


@contextmanager
def _mixpeek_client(args: argparse.Namespace) -> Iterator[Any]:
    """The Mixpeek client for ``tools`` / ``codegen`` / ``chat`` (the sample one with --offline)."""
    if getattr(args, "offline", False):
        from mixpeek_openai.testing import FakeMixpeek

        with FakeMixpeek() as fake:
            yield fake.client()
        return
    api_key, namespace, base_url = _mixpeek_settings(args)
    _missing(
        [
            (api_key, "MIXPEEK_API_KEY", "--api-key"),
            (namespace, "MIXPEEK_NAMESPACE", "--namespace"),
        ]
    )
    from mixpeek import Mixpeek

    yield Mixpeek(api_key=api_key, namespace=namespace, base_url=base_url)


def _load_tools(client: Any, retriever_ids: Sequence[str], actions: Sequence[str]) -> MixpeekTools:
    from mixpeek_openai.tools import MixpeekTools

    if retriever_ids:
        return MixpeekTools.from_retrievers(client, retriever_ids, actions=actions)
    return MixpeekTools.from_namespace(client, actions=actions)


# -- commands ------------------------------------------------------------------------------


def _cmd_tools(args: argparse.Namespace, out: TextIO) -> int:
    with _mixpeek_client(args) as client:
        tools = _load_tools(client, args.retriever_ids, args.action)
    strict = not args.no_strict
    schemas = (
        tools.responses_tools(strict=strict)
        if args.format == "responses"
        else tools.chat_tools(strict=strict)
    )
    out.write(json.dumps(schemas, indent=2) + "\n")
    return 0


def _cmd_codegen(args: argparse.Namespace, out: TextIO) -> int:
    from mixpeek_openai.codegen import codegen_for

    with _mixpeek_client(args) as client:
        source = codegen_for(client, args.retriever_id, class_name=args.class_name)
    out.write(source)
    return 0


def _delete_quietly(method: Any, *ids: str) -> None:
    """Call a deprecated Assistants method without its DeprecationWarning; ignore failures."""
    from mixpeek_openai._loop import _undeprecated

    # Best effort: the answer was already printed.
    with contextlib.suppress(Exception):
        _undeprecated(method)(*ids)


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
    from mixpeek_openai import create_assistant, run_assistant, run_chat, run_responses

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


def _cmd_chat(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
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
    with _mixpeek_client(args) as mixpeek:
        tools = _load_tools(mixpeek, args.retriever, args.action)
        client = _make_openai_client(openai_key, args.openai_base_url)
        printer = EventPrinter(tools, progress=err, answer=out, verbose=args.verbose)
        calls = _converse(
            args.api, client, tools, model=args.model, question=args.question, printer=printer
        )
    if args.verbose:
        print_size_table(err, [(_API_LABELS[args.api], SizeReport.of(calls))])
    return 0


def _cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
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
    # Imported only now: loading the mixpeek package takes a few seconds.
    from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
    from mixpeek_openai.tools import MixpeekTools

    rows: list[tuple[str, SizeReport]] = []
    with FakeMixpeek() as fake:
        tools = MixpeekTools.from_retrievers(fake.client(), DEMO_RETRIEVERS)
        stub = StubOpenAI()
        client = stub.client()
        out.write(f"Tools offered to the model: {', '.join(tools.names)}\n")
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


_RUNNERS = {
    "chat": "run_chat, streamed",
    "responses": "run_responses, streamed",
    "assistants": "create_assistant + run_assistant, polling",
}


# -- parser --------------------------------------------------------------------------------


def _add_mixpeek_flags(parser: argparse.ArgumentParser, *, offline: bool) -> None:
    group = parser.add_argument_group("Mixpeek connection")
    group.add_argument("--api-key", help="Mixpeek API key (default: $MIXPEEK_API_KEY)")
    group.add_argument("--namespace", help="Mixpeek namespace (default: $MIXPEEK_NAMESPACE)")
    group.add_argument(
        "--base-url",
        help="Mixpeek API base URL (default: $MIXPEEK_BASE_URL or https://api.mixpeek.com/v1)",
    )
    if offline:
        group.add_argument(
            "--offline",
            action="store_true",
            help="use the built-in sample namespace (a local fake server; no keys needed)",
        )


def _add_actions_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--action",
        action="append",
        default=[],
        metavar="NAME",
        help=f"add an exploration tool (repeatable): {', '.join(ACTIONS)}",
    )


def _parser() -> _Parser:
    common = _Parser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback when something fails",
    )
    parser = _Parser(
        prog=PROG,
        description="Mixpeek retrievers as typed tools for OpenAI models.",
        epilog=f"Run '{PROG} demo' to see it work offline, without any key.",
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
    _add_actions_flag(tools)
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
        "--openai-base-url", help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL)"
    )
    chat.add_argument(
        "-q",
        "--quiet",
        dest="verbose",
        action="store_false",
        help="only tool calls and the answer (no turns, previews or size table)",
    )
    _add_actions_flag(chat)
    _add_mixpeek_flags(chat, offline=False)

    codegen = sub.add_parser(
        "codegen",
        parents=[common],
        help="print a typed Pydantic module for a retriever",
        description="Generate a Python module with a Pydantic model of the retriever's inputs.",
    )
    codegen.add_argument("retriever_id", metavar="RETRIEVER_ID")
    codegen.add_argument("--class-name", help="name of the generated model class")
    _add_mixpeek_flags(codegen, offline=True)
    return parser


# -- errors --------------------------------------------------------------------------------


def _safe_url(url: str | None) -> str:
    """``url`` without any user:password part."""
    if not url:
        return "the default URL"
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


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

    import urllib3

    for link in _chain(exc):
        if isinstance(link, (urllib3.exceptions.HTTPError, ConnectionError, socket.timeout)):
            text = str(link).lower()
            if "refused" in text:
                return "connection refused"
            if "timed out" in text or "timeout" in text:
                return "timed out"
            if "name or service" in text or "resolve" in text or "getaddrinfo" in text:
                return "host not found"
            return "connection failed"
    return None


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


def _explain(exc: BaseException, args: argparse.Namespace) -> tuple[str, int]:
    """One line saying what went wrong and what to do, and the exit code."""
    import openai

    base_url = _env_or(getattr(args, "base_url", None), "MIXPEEK_BASE_URL")
    if isinstance(exc, CliError):
        return str(exc), exc.code
    if isinstance(exc, RetrieverNotFoundError):
        return (
            f"retriever {exc.retriever_id!r} was not found in this namespace: check the id "
            f"and the namespace (MIXPEEK_NAMESPACE or --namespace); '{PROG} tools' with no id "
            "lists every retriever's tool",
            EXIT_ERROR,
        )
    if isinstance(exc, UnknownActionError):
        return str(exc), EXIT_USAGE
    if isinstance(exc, openai.APIConnectionError):
        target = _safe_url(str(getattr(args, "openai_base_url", None) or "") or None)
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
    if isinstance(exc, LoopError):
        return f"the conversation stopped: {exc}", EXIT_ERROR
    if isinstance(exc, MixpeekOpenAIError):
        return str(exc), EXIT_ERROR
    status = getattr(exc, "status", None)
    if type(exc).__name__ == "MixpeekAPIError" and isinstance(status, int):
        message = _detail_message(getattr(exc, "detail", ""))
        if status == 401:
            return (
                "Mixpeek rejected the API key (401): check MIXPEEK_API_KEY or --api-key",
                EXIT_ERROR,
            )
        if status == 403:
            return (
                f"Mixpeek refused access (403): {message}; check MIXPEEK_NAMESPACE or --namespace",
                EXIT_ERROR,
            )
        return f"Mixpeek API error {status}: {message}", EXIT_ERROR
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mixpeek-openai`` command with ``argv`` (default ``sys.argv[1:]``).

    Returns the exit code: 0 on success, 1 when something failed, 2 for bad flags or
    missing settings, 130 when interrupted.
    """
    out, err = sys.stdout, sys.stderr
    argv = list(sys.argv[1:] if argv is None else argv)
    args: argparse.Namespace | None = None
    debug = "--debug" in argv
    try:
        args = _parser().parse_args(argv)
        debug = bool(getattr(args, "debug", False)) or debug
        if args.command is None:
            raise CliError(f"choose a command, e.g. '{PROG} demo' (see '{PROG} --help')", 2)
        if args.command == "demo":
            return _cmd_demo(args, out)
        if args.command == "tools":
            return _cmd_tools(args, out)
        if args.command == "codegen":
            return _cmd_codegen(args, out)
        return _cmd_chat(args, out, err)
    except SystemExit as exc:  # --help and --version exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        err.write(f"\n{PROG}: interrupted\n")
        return EXIT_INTERRUPTED
    except Exception as exc:
        message, code = _explain(exc, args or argparse.Namespace())
        out.flush()
        if debug:
            err.write(_scrub("".join(traceback.format_exception(exc)), args))
        err.write(f"{PROG}: error: {_scrub(message, args)}\n")
        err.flush()
        return code


if __name__ == "__main__":
    sys.exit(main())
