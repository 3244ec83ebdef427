"""Retriever definitions, fetched once and remembered: :class:`RetrieverCache`.

Building a tool set needs each retriever's definition (``GET /retrievers/{id}``: its name,
description and ``input_schema``). The cache keeps them per API root and namespace, so
building the same tools twice costs no request, and fetches several at once.

Fetches go through the same deadline-bounded transport as tool calls (see
:mod:`mixpeek_openai._transport`), so building tools against a slow or failing service
fails in bounded time with a typed error: :class:`~mixpeek_openai.errors.RetrieverNotFoundError`
for a 404, :class:`~mixpeek_openai.errors.MixpeekRequestError` otherwise. Their messages
carry the server's words with the API key removed, and they chain no cause that could
hold it.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import quote

from mixpeek_openai import _outputs
from mixpeek_openai._deadline import Deadline
from mixpeek_openai._decode import BadJSON, decode_body
from mixpeek_openai._request import MixpeekRequest
from mixpeek_openai._secrets import Scrubber
from mixpeek_openai._transport import Endpoint, SyncTransport
from mixpeek_openai.definitions import path_segment, to_plain
from mixpeek_openai.errors import ConfigurationError, MixpeekRequestError, RetrieverNotFoundError
from mixpeek_openai.retries import RetryPolicy, StatusFailure

__all__ = ["DEFAULT_RETRIEVER_CACHE", "RetrieverCache"]

_CacheKey = tuple[str, str, str]
_LIST_KEY = "\x00list"  # cannot collide with a retriever id
_FETCH_THREAD_PREFIX = "mixpeek-fetch"
_MAX_LISTING_PAGES = 1000
_MAX_DEFINITION_BYTES = 8 * 1024 * 1024
_FETCH_POLICY = RetryPolicy(max_attempts=3, max_wait_s=5.0)


def _client_scope(client: Any) -> tuple[str, str]:
    base_url = str(getattr(client, "base_url", "") or "")
    namespace = str(getattr(client, "namespace", "") or "")
    return base_url, namespace


class _Fetcher:
    """Sends the definition requests of one build: one transport, retries, a deadline."""

    def __init__(self, client: Any, max_connections: int) -> None:
        if client is None:
            raise ConfigurationError(
                "Fetching retriever definitions needs a Mixpeek client; pass one, or pass "
                "the definitions themselves (MixpeekTools(client, retrievers=[...]))."
            )
        self.endpoint = Endpoint.from_client(client)
        self.scrub = Scrubber(self.endpoint.api_key)
        self.transport = SyncTransport(
            self.endpoint, max_connections=max_connections, max_response_bytes=_MAX_DEFINITION_BYTES
        )

    def close(self) -> None:
        self.transport.close()

    def json(self, request: MixpeekRequest) -> Any:
        """The decoded body of ``request``'s response, or a typed, scrubbed exception."""

        def attempt() -> Any:
            response = self.transport.send(request, deadline)
            body = self.scrub.data(response.body)
            if not 200 <= response.status < 300:
                raise StatusFailure(response.__class__(response.status, response.headers, body))
            value = decode_body(body)
            if b"\\" not in body:
                return value
            # Definitions become tool descriptions sent to OpenAI, and an escaped key is
            # only a key once decoded: scrub the decoded strings too.
            try:
                return self.scrub.value(value)
            except RecursionError:
                raise BadJSON("it is nested too deeply") from None

        # A definition fetch waits as long as the client's own timeout allows, plus retries.
        deadline = Deadline(self.endpoint.read_timeout)
        outcome = _FETCH_POLICY.call(attempt, deadline=deadline)
        failure = outcome.failure
        if failure is None:
            return outcome.value
        if failure.kind == "internal_error" and outcome.exception is not None:
            raise outcome.exception
        if failure.status == 404 and request.retriever_id is not None:
            said = self.scrub.text(_outputs.server_message(failure.detail))
            raise RetrieverNotFoundError(request.retriever_id, said or None) from None
        said = self.scrub.text(_outputs.server_message(failure.detail))
        target = f"{request.method} {self.endpoint.base_path}{request.path.split('?')[0]}"
        hint = _hint(failure.status)
        message = f"{target} failed: {self.scrub.text(failure.message)}"
        if said:
            message += f" (the service said: {said})"
        raise MixpeekRequestError(
            f"{message}. {hint}".strip(),
            status=failure.status,
            kind=failure.kind,
            detail=said or None,
        ) from None


def _hint(status: int | None) -> str:
    if status in (401, 403):
        return "Check the client's API key and namespace."
    if status is None or status == 429 or status >= 500:
        return "The service may be unavailable; try again later."
    return ""


class RetrieverCache:
    """Thread-safe cache of retriever definitions, keyed by base URL, namespace and id.

    :class:`~mixpeek_openai.tools.MixpeekTools` uses :data:`DEFAULT_RETRIEVER_CACHE` unless
    given another one, so building the same tools twice costs no requests. Call
    :meth:`clear` (or ``MixpeekTools.refresh``, or pass ``refresh=True``) to fetch again.
    """

    def __init__(self) -> None:
        """An empty cache."""
        self._lock = threading.Lock()
        self._entries: dict[_CacheKey, Any] = {}

    def __len__(self) -> int:
        """How many retriever definitions are cached."""
        with self._lock:
            return sum(1 for key in self._entries if key[2] != _LIST_KEY)

    def __repr__(self) -> str:
        """The number of cached definitions."""
        return f"RetrieverCache(entries={len(self)})"

    def get(self, client: Any, retriever_id: str) -> dict[str, Any] | None:
        """The cached definition of ``retriever_id`` for ``client``'s API and namespace."""
        with self._lock:
            base_url, namespace = _client_scope(client)
            found = self._entries.get((base_url, namespace, retriever_id))
        return copy.deepcopy(found) if found is not None else None

    def put(self, client: Any, retriever_id: str, definition: Mapping[str, Any]) -> None:
        """Store a definition (also under its own ``retriever_id`` when that differs)."""
        plain = to_plain(definition)
        scope = _client_scope(client)
        with self._lock:
            self._entries[(scope[0], scope[1], retriever_id)] = plain
            own_id = plain.get("retriever_id") if isinstance(plain, dict) else None
            if isinstance(own_id, str) and own_id != retriever_id:
                self._entries[(scope[0], scope[1], own_id)] = plain

    def clear(self, client: Any | None = None) -> None:
        """Forget every definition, or only those of ``client``'s API and namespace."""
        with self._lock:
            if client is None:
                self._entries.clear()
                return
            scope = _client_scope(client)
            for key in [k for k in self._entries if k[:2] == scope]:
                del self._entries[key]

    def fetch(self, client: Any, retriever_id: str, *, refresh: bool = False) -> dict[str, Any]:
        """The definition of ``retriever_id``, from the cache or ``GET /retrievers/{id}``.

        Raises:
            RetrieverNotFoundError: the API answered 404.
            MixpeekRequestError: the API could not be reached or refused the request.
        """
        return self.fetch_many(client, [retriever_id], refresh=refresh)[0]

    def fetch_many(
        self,
        client: Any,
        retriever_ids: Sequence[str],
        *,
        refresh: bool = False,
        max_workers: int = 16,
    ) -> list[dict[str, Any]]:
        """Definitions of several retrievers, fetching the missing ones concurrently
        (at most ``max_workers`` at a time); the results keep the order of ``retriever_ids``.
        """
        found: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for rid in dict.fromkeys(retriever_ids):
            cached = None if refresh else self.get(client, rid)
            if cached is None:
                missing.append(rid)
            else:
                found[rid] = cached
        if missing:
            workers = max(1, min(max_workers, len(missing)))
            fetcher = _Fetcher(client, workers)
            try:
                if workers == 1:
                    fetched = [self._fetch_one(fetcher, client, rid) for rid in missing]
                else:
                    with ThreadPoolExecutor(workers, thread_name_prefix=_FETCH_THREAD_PREFIX) as ex:
                        fetched = list(
                            ex.map(lambda rid: self._fetch_one(fetcher, client, rid), missing)
                        )
            finally:
                fetcher.close()
            found.update(zip(missing, fetched, strict=True))
        return [found[rid] for rid in retriever_ids]

    def _fetch_one(self, fetcher: _Fetcher, client: Any, retriever_id: str) -> dict[str, Any]:
        request = MixpeekRequest(
            "GET", f"/retrievers/{path_segment(retriever_id)}", retriever_id=retriever_id
        )
        definition = fetcher.json(request)
        if not isinstance(definition, dict):
            raise MixpeekRequestError(
                f"GET /retrievers/{retriever_id} returned {_outputs.json_type(definition)}, "
                "not a retriever definition.",
                kind="invalid_response",
            )
        self.put(client, retriever_id, definition)
        return to_plain(definition)  # type: ignore[no-any-return]

    def list_namespace(self, client: Any, *, refresh: bool = False) -> list[dict[str, Any]]:
        """Every retriever of ``client``'s namespace (``POST /retrievers/list``), cached.

        Follows ``pagination.next_cursor`` when the API pages the listing.
        """
        if not refresh:
            known = self._get_listing(client)
            if known is not None:
                found = [self.get(client, rid) for rid in known]
                if all(d is not None for d in found):
                    return [d for d in found if d is not None]
        fetcher = _Fetcher(client, 1)
        definitions: list[dict[str, Any]] = []
        try:
            path = "/retrievers/list"
            seen_cursors: set[str] = set()
            for _ in range(_MAX_LISTING_PAGES):
                items, cursor = _listing_page(fetcher.json(MixpeekRequest("POST", path, body={})))
                definitions.extend(items)
                if not cursor or cursor in seen_cursors:
                    break
                seen_cursors.add(cursor)
                path = f"/retrievers/list?cursor={quote(cursor, safe='')}&limit=100"
        finally:
            fetcher.close()
        ids: list[str] = []
        for definition in definitions:
            rid = definition.get("retriever_id") or definition.get("retriever_name")
            if isinstance(rid, str):
                self.put(client, rid, definition)
                ids.append(rid)
        self._put_listing(client, ids)
        return [to_plain(d) for d in definitions]

    def _get_listing(self, client: Any) -> list[str] | None:
        with self._lock:
            base_url, namespace = _client_scope(client)
            ids = self._entries.get((base_url, namespace, _LIST_KEY))
        return list(ids) if ids is not None else None

    def _put_listing(self, client: Any, ids: list[str]) -> None:
        with self._lock:
            base_url, namespace = _client_scope(client)
            self._entries[(base_url, namespace, _LIST_KEY)] = list(ids)


def _listing_page(page: Any) -> tuple[list[dict[str, Any]], str | None]:
    if isinstance(page, list):  # older APIs documented a bare list
        return [dict(p) for p in page if isinstance(p, Mapping)], None
    if not isinstance(page, Mapping):
        return [], None
    results = page.get("results") or []
    if not isinstance(results, list):
        return [], None
    pagination = page.get("pagination") or {}
    cursor = pagination.get("next_cursor") if isinstance(pagination, Mapping) else None
    items = [dict(r) for r in results if isinstance(r, Mapping)]
    return items, cursor if isinstance(cursor, str) and items else None


DEFAULT_RETRIEVER_CACHE = RetrieverCache()
"""The process-wide cache :class:`~mixpeek_openai.tools.MixpeekTools` uses when none is given."""
