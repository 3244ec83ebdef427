"""Peer (a): the hand-written approach from Mixpeek's docs.

A hand-written function schema (``query`` and ``limit``), a sequential loop over the
model's ``tool_calls`` that calls ``retrievers.execute`` and ``json.dumps`` the raw
response into the tool message; for Assistants, ``create_and_poll`` and
``submit_tool_outputs_and_poll`` in a loop. No validation, no deadline, no shaping.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["HAND_TOOL", "HAND_TOOL_NAME", "handle_tool_calls", "run_assistant_by_hand", "search"]

HAND_TOOL_NAME = "search_videos"

HAND_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": HAND_TOOL_NAME,
        "description": "Search product demo videos in Mixpeek.",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "What to search for."},
                "limit": {"type": "integer", "description": "Maximum number of results."},
            },
            "required": ["query"],
        },
    },
}
"""The schema a developer writes by hand (Chat Completions / Assistants format)."""


def search(mixpeek: Any, retriever_id: str, query: str, limit: int = 10) -> str:
    """The body every peer wraps: ``retrievers.execute`` and ``json.dumps`` of the response."""
    result = mixpeek.retrievers.execute(retriever_id, inputs={"query": query}, limit=limit)
    return json.dumps(result)


def _execute(mixpeek: Any, retriever_id: str, arguments: str) -> str:
    args = json.loads(arguments)
    return search(mixpeek, retriever_id, args["query"], args.get("limit", 10))


def handle_tool_calls(mixpeek: Any, retriever_id: str, tool_calls: Any) -> list[dict[str, Any]]:
    """Answer chat ``tool_calls`` (SDK objects) one after another, raw JSON as content."""
    messages = []
    for tool_call in tool_calls:
        content = _execute(mixpeek, retriever_id, tool_call.function.arguments)
        messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": content})
    return messages


def run_assistant_by_hand(
    client: Any, mixpeek: Any, retriever_id: str, *, assistant_id: str, message: str
) -> tuple[Any, list[str]]:
    """Run an assistant with the SDK's polling helpers; returns the run and reply texts."""
    threads = client.beta.threads
    thread = threads.create(messages=[{"role": "user", "content": message}])
    run = threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant_id)
    while run.status == "requires_action":
        outputs = [
            {
                "tool_call_id": call.id,
                "output": _execute(mixpeek, retriever_id, call.function.arguments),
            }
            for call in run.required_action.submit_tool_outputs.tool_calls
        ]
        run = threads.runs.submit_tool_outputs_and_poll(
            thread_id=thread.id, run_id=run.id, tool_outputs=outputs
        )
    texts = [
        part.text.value
        for msg in threads.messages.list(thread_id=thread.id, run_id=run.id)
        for part in msg.content
        if part.type == "text"
    ]
    return run, texts
