"""An MCP server for Mixpeek retrievers, on the official ``mcp`` SDK (the ``mcp`` extra).

Each retriever gets the tools the other integrations get: a search tool typed from its
``input_schema``, ``describe_<name>`` (what it searches and its inputs, answered without a
request) and ``explain_<name>`` (its plan, without running it); namespace exploration
actions (``list_collections``, ...) only when asked for. Every call runs through the tool
set's dispatcher, so MCP clients get validated arguments, one retry layer inside a per-call
deadline, and outputs shaped and bounded as for OpenAI: the compact JSON as text, and the
same value as ``structuredContent``. Anything that goes wrong (bad arguments, an unknown
tool, a server that stays down, a deadline) is a tool result with ``isError: true`` whose
text says what happened and what to do; the server keeps serving.

Run it with ``mixpeek-openai mcp --retriever ID ...`` or::

    python -m mixpeek_openai.mcp --retriever ret_abc123 [--retriever ...]
        [--actions list_collections,get_collection] [--transport stdio|http] [--port N]

Logs go to stderr only (stdout is the stdio transport's channel). The server stops
cleanly at the end of its input (stdio), on SIGINT or on SIGTERM.

From Python::

    server = build_server(tools)   # an mcp.server.Server: run it on any transport
    serve(tools)                   # or serve it on stdio / streamable HTTP (blocking)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any, Literal

try:
    import mcp.types as mcp_types
    from mcp.server import Server, ServerRequestContext
except ImportError as exc:  # pragma: no cover - the test environment has the extra
    raise ImportError(
        "mixpeek_openai.mcp needs the mcp SDK: pip install 'mixpeek-openai[mcp]'"
    ) from exc

from mixpeek_openai.errors import ConfigurationError, MixpeekOpenAIError, UnknownActionError
from mixpeek_openai.results import error_output
from mixpeek_openai.tools import NAMESPACE_ACTIONS, RETRIEVER_ACTIONS, MixpeekTools

if TYPE_CHECKING:
    from mixpeek_openai.dispatch import DispatchConfig, ToolCallResult
    from mixpeek_openai.tools import ToolDefinition

__all__ = ["build_server", "build_tools", "main", "serve"]

Transport = Literal["stdio", "http"]

DEFAULT_NAME = "mixpeek"
HTTP_PATH = "/mcp"

_log = logging.getLogger("mixpeek_openai.mcp")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_INTERNAL_ERROR = error_output(
    "internal_error",
    "The tool failed inside the server; the details are in its log.",
    "Try again, or continue without this tool.",
)
_UNWRITABLE_ARGUMENTS = error_output(
    "invalid_arguments",
    "The arguments hold a value JSON cannot carry (a number too long, or nesting too deep).",
    "Send the arguments as a single, shallow JSON object of ordinary values.",
)


def build_tools(
    client: Any,
    retriever_ids: Sequence[str],
    *,
    actions: Iterable[str] = (),
    config: DispatchConfig | None = None,
) -> MixpeekTools:
    """The tool set the server offers: per retriever search, describe and explain tools,
    plus the namespace exploration ``actions`` asked for (none by default).

    Raises:
        UnknownActionError: an action is not one of :data:`~mixpeek_openai.tools.ACTIONS`.
        RetrieverNotFoundError: a retriever does not exist in the client's namespace.
    """
    chosen = [*RETRIEVER_ACTIONS, *(a for a in actions if a not in RETRIEVER_ACTIONS)]
    return MixpeekTools.from_retrievers(client, list(retriever_ids), actions=chosen, config=config)


def build_server(tools: MixpeekTools, *, name: str = DEFAULT_NAME) -> Server[Any]:
    """An MCP server (``mcp.server.Server``) whose tools are ``tools``' definitions.

    ``tools/list`` reads the definitions on every request (a refreshed tool set is seen at
    once); ``tools/call`` runs the call through ``tools.adispatch``. Run the server on any
    transport the SDK offers, or use :func:`serve`.
    """
    from mixpeek_openai import __version__

    async def list_tools(
        ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        labels = _labels(tools)
        listed = [_listed_tool(d, labels) for d in tools.definitions]
        return mcp_types.ListToolsResult(tools=listed)

    async def call_tool(
        ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        try:
            arguments = json.dumps(params.arguments or {}, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            # Decoded by the client's transport, yet not writable as JSON (an integer past
            # Python's digit limit, nesting too deep): the caller's mistake to fix.
            return _error_result(_UNWRITABLE_ARGUMENTS)
        call = {
            "type": "function_call",
            "call_id": f"mcp_{uuid.uuid4().hex[:24]}",
            "name": params.name,
            "arguments": arguments,
        }
        try:
            [result] = await tools.adispatch([call])
        except Exception:
            # The dispatcher answers every model mistake and service failure itself; this
            # is a defect. The client still gets an answer and the server keeps serving.
            _log.exception(
                "tool call %s (%s) failed inside the server", call["call_id"], call["name"]
            )
            return _error_result(_INTERNAL_ERROR)
        return _call_result(result)

    def input_schema(tool_name: str) -> Mapping[str, Any] | None:
        definition = tools.get(tool_name)
        return definition.parameters(strict=False) if definition is not None else None

    return Server(
        name,
        version=__version__,
        title="Mixpeek retrievers",
        instructions=_instructions(tools),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        get_tool_input_schema=input_schema,
    )


def serve(
    tools: MixpeekTools,
    *,
    transport: Transport = "stdio",
    host: str = "127.0.0.1",
    port: int = 8000,
    name: str = DEFAULT_NAME,
) -> None:
    """Serve ``tools`` over MCP until the input ends (stdio), or SIGINT / SIGTERM; blocking.

    ``transport="http"`` serves streamable HTTP at ``http://HOST:PORT/mcp`` (``port=0``
    picks a free port; the address is logged). The server has no authentication of its
    own: keep it on loopback (the default) unless something in front of it checks callers.

    Raises:
        ConfigurationError: ``transport`` is neither ``"stdio"`` nor ``"http"``.
        OSError: the HTTP port cannot be bound.
    """
    if transport not in ("stdio", "http"):
        raise ConfigurationError(f"transport must be 'stdio' or 'http', not {transport!r}.")
    server = build_server(tools, name=name)
    with _sigterm_as_interrupt():
        try:
            if transport == "stdio":
                _serve_stdio(server, tools)
            else:
                _serve_http(server, host, port)
        except KeyboardInterrupt:
            _log.info("MCP server stopped (interrupted)")


# -- results --------------------------------------------------------------------------------


def _listed_tool(definition: ToolDefinition, labels: Mapping[str, str]) -> mcp_types.Tool:
    read_only = definition.kind in ("describe", "explain", "action")
    title = _title(definition, labels)
    return mcp_types.Tool(
        name=definition.name,
        title=title,
        description=definition.description,
        # MCP clients send what they have: optional inputs may be left out (strict mode's
        # "every field required, null for unset" is an OpenAI API rule).
        input_schema=definition.parameters(strict=False),
        annotations=mcp_types.ToolAnnotations(
            title=title,
            read_only_hint=True if read_only else None,
            open_world_hint=False,
        ),
    )


def _title(definition: ToolDefinition, labels: Mapping[str, str]) -> str:
    rid = definition.retriever_id
    target = f" {labels.get(rid, rid)}" if rid else ""
    labels = {"search": "Search", "describe": "Describe", "explain": "Explain"}
    verb = labels.get(definition.kind)
    if verb is None:
        return definition.name.replace("_", " ").capitalize()
    return f"{verb}{target}"


def _labels(tools: MixpeekTools) -> dict[str, str]:
    """Retriever id -> its name, for titles."""
    labels = {}
    for definition in tools.retrievers:
        rid, name = definition.get("retriever_id"), definition.get("retriever_name")
        if isinstance(rid, str):
            labels[rid] = name if isinstance(name, str) and name.strip() else rid
    return labels


def _error_result(output: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(text=output)],
        structured_content=json.loads(output),
        is_error=True,
    )


def _call_result(result: ToolCallResult) -> mcp_types.CallToolResult:
    content: list[Any] = [mcp_types.TextContent(text=result.output)]
    content.extend(
        mcp_types.ResourceLink(name=f"image {i}", uri=url, mime_type=None)
        for i, url in enumerate(result.images, start=1)
    )
    try:
        structured = json.loads(result.output)
    except ValueError:
        structured = None
    return mcp_types.CallToolResult(
        content=content,
        structured_content=structured if isinstance(structured, dict) else None,
        is_error=result.error is not None,
    )


def _instructions(tools: MixpeekTools) -> str:
    lines = [
        "Tools over Mixpeek retrievers (search pipelines over video, images, audio, documents)."
    ]
    for definition in tools.definitions:
        if definition.kind == "search":
            lines.append(f"- {definition.name}: {definition.description}")
    if any(d.kind == "describe" for d in tools.definitions):
        lines.append("describe_* tools say what a retriever searches and which inputs it takes.")
    if any(d.kind == "explain" for d in tools.definitions):
        lines.append("explain_* tools show how a search would run, without running it.")
    lines.append("Results are compact JSON: ranked documents with ids, scores and fields.")
    return "\n".join(lines)


# -- transports -----------------------------------------------------------------------------


class _Handles:
    """The stdio loop's event loop and cancel scope, to stop it from the waiting thread."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.scope: Any = None

    def cancel(self) -> None:
        if self.loop is not None and self.scope is not None:
            self.loop.call_soon_threadsafe(self.scope.cancel)


def _serve_stdio(server: Server[Any], tools: MixpeekTools) -> None:
    import anyio
    from mcp.server.stdio import stdio_server

    handles = _Handles()

    async def run() -> None:
        with anyio.CancelScope() as scope:
            handles.loop, handles.scope = asyncio.get_running_loop(), scope
            # While it serves, the SDK points fd 1 at stderr: a stray print cannot
            # corrupt the protocol stream.
            async with stdio_server() as (read_stream, write_stream):
                _log.info("MCP server %r serving %d tools on stdio", server.name, len(tools))
                init = server.create_initialization_options()
                await server.run(read_stream, write_stream, init)

    # The SDK reads stdin in a worker thread that only a new line or the end of input
    # wakes, so a loop run in this thread could not stop on Ctrl-C. Run it in a daemon
    # thread (its workers are daemons too) and wait here, where signals arrive: at the end
    # of input it returns; on SIGINT / SIGTERM the loop is cancelled and left behind.
    failure: list[BaseException] = []
    done = threading.Event()

    def serve_loop() -> None:
        try:
            anyio.run(run)
        except BaseException as exc:  # re-raised in the waiting thread below
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=serve_loop, name="mixpeek-mcp-stdio", daemon=True)
    try:
        # Started inside the try: a signal landing as start() returns still cancels the loop.
        thread.start()
        done.wait()
    except KeyboardInterrupt:
        handles.cancel()  # the calls in flight stop; the blocked reader is left to exit
        raise
    if failure:
        raise failure[0]
    _log.info("MCP server stopped (end of input)")


def _serve_http(server: Server[Any], host: str, port: int) -> None:
    import uvicorn

    if host not in _LOOPBACK:
        _log.warning(
            "serving on %s: the MCP server has no authentication, anyone who can reach "
            "this address can run searches with your Mixpeek key",
            host,
        )
    app = server.streamable_http_app(streamable_http_path=HTTP_PATH, host=host)
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.create_server((host, port), family=family)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        app,
        log_config=None,  # no handlers of uvicorn's own (its access log writes to stdout)
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    _log.info("MCP server %r listening on http://%s:%d%s", server.name, shown, bound, HTTP_PATH)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
    _log.info("MCP server stopped")


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (what process managers and MCP clients send) stops as cleanly as Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- python -m mixpeek_openai.mcp -------------------------------------------------------------

_EXIT_ERROR = 1
_EXIT_USAGE = 2


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m mixpeek_openai.mcp",
        description="Serve Mixpeek retrievers as MCP tools (search, describe, explain).",
    )
    parser.add_argument(
        "--retriever",
        action="append",
        default=[],
        metavar="ID",
        help="a retriever to serve (repeat for more; default: $MIXPEEK_RETRIEVERS, a,b,...)",
    )
    parser.add_argument(
        "--actions",
        action="append",
        default=[],
        metavar="A,B",
        help=f"namespace exploration tools to add: {', '.join(NAMESPACE_ACTIONS)}",
    )
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port (0: any free port)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="server name shown to clients")
    parser.add_argument(
        "--deadline", type=float, default=None, metavar="S", help="seconds per tool call"
    )
    parser.add_argument("--api-key", help="Mixpeek API key (default: $MIXPEEK_API_KEY)")
    parser.add_argument("--namespace", help="Mixpeek namespace (default: $MIXPEEK_NAMESPACE)")
    parser.add_argument("--base-url", help="Mixpeek API root (default: $MIXPEEK_BASE_URL)")
    parser.add_argument(
        "--offline", action="store_true", help="serve the built-in sample namespace (no key)"
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server from command-line arguments; returns the exit status."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    api_key = args.api_key or os.environ.get("MIXPEEK_API_KEY")
    try:
        with _logging_to_stderr(args.log_level), _client(args, api_key) as client:
            retrievers = _retrievers(args)
            actions = [a.strip() for value in args.actions for a in value.split(",") if a.strip()]
            config = None
            if args.deadline is not None:
                from mixpeek_openai.dispatch import DispatchConfig

                config = DispatchConfig(deadline_s=args.deadline)
            tools = build_tools(client, retrievers, actions=actions, config=config)
            serve(tools, transport=args.transport, host=args.host, port=args.port, name=args.name)
    except (_UsageError, UnknownActionError) as exc:
        print(f"error: {_scrub(str(exc), api_key)}", file=sys.stderr)
        return _EXIT_USAGE
    except (MixpeekOpenAIError, OSError) as exc:
        print(f"error: {_scrub(str(exc), api_key)}", file=sys.stderr)
        return _EXIT_ERROR
    except KeyboardInterrupt:  # while loading the tools
        return 0
    except Exception as exc:
        # Anything else (the Mixpeek API refusing the key, say): one line, and the
        # traceback in the log at debug level.
        _log.debug("the MCP server failed", exc_info=True)
        print(f"error: {type(exc).__name__}: {_scrub(str(exc), api_key)}", file=sys.stderr)
        return _EXIT_ERROR
    return 0


@contextlib.contextmanager
def _client(args: argparse.Namespace, api_key: str | None) -> Iterator[Any]:
    if args.offline:
        from mixpeek_openai.testing import FakeMixpeek

        with FakeMixpeek() as fake:
            yield fake.client()
        return
    namespace = args.namespace or os.environ.get("MIXPEEK_NAMESPACE")
    missing = [
        f"{env} (or {flag})"
        for value, env, flag in (
            (api_key, "MIXPEEK_API_KEY", "--api-key"),
            (namespace, "MIXPEEK_NAMESPACE", "--namespace"),
        )
        if not value
    ]
    if missing:
        raise _UsageError(f"set {' and '.join(missing)}, or pass --offline for the sample data")
    from mixpeek import Mixpeek

    base_url = args.base_url or os.environ.get("MIXPEEK_BASE_URL") or None
    yield Mixpeek(api_key=api_key, namespace=namespace, base_url=base_url)


def _retrievers(args: argparse.Namespace) -> list[str]:
    chosen = [r for value in args.retriever for r in value.split(",") if r.strip()]
    if not chosen:
        chosen = [r for r in os.environ.get("MIXPEEK_RETRIEVERS", "").split(",") if r.strip()]
    if not chosen and args.offline:
        chosen = ["ret_product_demos", "ret_catalog"]
    if not chosen:
        raise _UsageError("name at least one retriever: --retriever ID (or $MIXPEEK_RETRIEVERS)")
    return [r.strip() for r in chosen]


@contextlib.contextmanager
def _logging_to_stderr(level: str) -> Iterator[None]:
    """Send every log record to stderr (stdout is the stdio channel) while serving.

    The root logger's handlers and both levels are put back afterwards, so ``main()``
    can run inside another program (or a test) without leaving a handler behind that
    writes to a stream which may since have been closed.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    ours = logging.getLogger("mixpeek_openai")
    saved_handlers, saved_root_level, saved_level = root.handlers[:], root.level, ours.level
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    ours.setLevel(level.upper())
    try:
        yield
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_root_level)
        ours.setLevel(saved_level)


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "[redacted]") if secret and len(secret) >= 4 else text


if __name__ == "__main__":
    sys.exit(main())
