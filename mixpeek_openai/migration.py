"""Moving an Assistants API thread to the Responses API, history included.

OpenAI shut the Assistants API down on 2026-08-26. A thread's messages are the state an
application cares about; :func:`thread_to_conversation` copies them, in order and with
their roles, into a new Responses API Conversation, so the same exchange continues with
``run_responses(client, tools, ..., conversation=conversation_id)``::

    conversation_id = thread_to_conversation(client, "thread_abc")
    result = run_responses(client, tools, model="gpt-4o", input="And in 2025?",
                           conversation=conversation_id)

What is copied, per message (oldest first):

* text parts, joined, for both roles (annotations such as file citations are dropped:
  the cited text stays);
* a user message's images, as ``input_image`` parts (``image_file`` by its ``file_id``,
  ``image_url`` by its URL);
* an assistant message's image files (code interpreter output) as a text note naming the
  file, since the model's own earlier turns are text on input.

Not copied: runs and run steps (tool calls and their outputs were already summarised by
the assistant's replies), message attachments and the assistant's instructions and
tools (pass ``instructions=`` and the tools to ``run_responses``). The conversation's
metadata records the thread id (``assistants_thread_id``). The thread is left as it was.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._loop import ApiCall, Core, async_stream, sync_stream
from .errors import ConfigurationError

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

__all__ = ["athread_to_conversation", "thread_to_conversation"]

_PAGE_SIZE = 100
_ITEMS_PER_REQUEST = 20  # the Conversations API takes at most 20 items per request


def thread_to_conversation(
    client: OpenAI, thread_id: str, *, metadata: Mapping[str, str] | None = None
) -> str:
    """Copy the messages of Assistants thread ``thread_id`` into a new Conversation.

    Args:
        client: an ``openai.OpenAI`` client (the Assistants calls emit no
            ``DeprecationWarning``).
        thread_id: the thread to copy.
        metadata: extra metadata for the conversation (``assistants_thread_id`` is set).

    Returns:
        The new conversation's id, for ``run_responses(..., conversation=id)``.

    Raises:
        ConfigurationError: ``thread_id`` is empty.
        openai.APIError: the thread does not exist, or a request failed (a conversation
            created before the failure is deleted again).
    """
    return sync_stream(_migration(thread_id, metadata), client, None).run()


async def athread_to_conversation(
    client: AsyncOpenAI, thread_id: str, *, metadata: Mapping[str, str] | None = None
) -> str:
    """Async :func:`thread_to_conversation` (``openai.AsyncOpenAI``)."""
    return await async_stream(_migration(thread_id, metadata), client, None).run()


def _migration(thread_id: str, metadata: Mapping[str, str] | None) -> Core[str]:
    if not isinstance(thread_id, str) or not thread_id:
        raise ConfigurationError("thread_to_conversation() needs a thread id ('thread_...').")
    meta = {**dict(metadata or {}), "assistants_thread_id": thread_id}
    return _copy(thread_id, meta)


def _copy(thread_id: str, metadata: dict[str, str]) -> Core[str]:
    messages: list[Any] = []
    after: str | None = None
    while True:
        query: dict[str, Any] = {"thread_id": thread_id, "order": "asc", "limit": _PAGE_SIZE}
        if after is not None:
            query["after"] = after
        page = yield ApiCall("beta.threads.messages.list", query, undeprecated=True)
        data = list(page.data)
        messages.extend(data)
        if not data or not getattr(page, "has_more", False):
            break
        after = data[-1].id
    items = [item for message in messages for item in _items(message)]
    chunks = list(_chunks(items, _ITEMS_PER_REQUEST))
    created = yield ApiCall(
        "conversations.create", {"items": chunks[0] if chunks else [], "metadata": metadata}
    )
    try:
        for chunk in chunks[1:]:
            yield ApiCall(
                "conversations.items.create", {"conversation_id": created.id, "items": chunk}
            )
    except BaseException:
        # A half-copied history would continue a different conversation: remove it. The
        # original failure is what the caller needs to see, not a failed cleanup.
        with contextlib.suppress(Exception):
            yield ApiCall("conversations.delete", {"conversation_id": created.id})
        raise
    return str(created.id)


def _items(message: Any) -> list[dict[str, Any]]:
    """The conversation item for one thread message (none when it has no content)."""
    role = _get(message, "role")
    parts = list(_get(message, "content") or [])
    if role == "user":
        content = [c for c in (_user_part(p) for p in parts) if c is not None]
        if not content:
            return []
        return [{"type": "message", "role": "user", "content": content}]
    texts = [t for t in (_assistant_text(p) for p in parts) if t]
    if not texts:
        return []
    return [{"type": "message", "role": "assistant", "content": "\n\n".join(texts)}]


def _user_part(part: Any) -> dict[str, Any] | None:
    kind = _get(part, "type")
    if kind == "text":
        return {"type": "input_text", "text": _text_value(part)}
    if kind == "image_file":
        image = _get(part, "image_file")
        return {
            "type": "input_image",
            "file_id": _get(image, "file_id"),
            "detail": _get(image, "detail") or "auto",
        }
    if kind == "image_url":
        image = _get(part, "image_url")
        return {
            "type": "input_image",
            "image_url": _get(image, "url"),
            "detail": _get(image, "detail") or "auto",
        }
    return None


def _assistant_text(part: Any) -> str:
    kind = _get(part, "type")
    if kind == "text":
        return _text_value(part)
    if kind == "image_file":
        return f"[image file {_get(_get(part, 'image_file'), 'file_id')}]"
    if kind == "image_url":
        return f"[image {_get(_get(part, 'image_url'), 'url')}]"
    if kind == "refusal":
        return str(_get(part, "refusal") or "")
    return ""


def _text_value(part: Any) -> str:
    text = _get(part, "text")
    value = _get(text, "value") if not isinstance(text, str) else text
    return str(value or "")


def _chunks(items: Sequence[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
