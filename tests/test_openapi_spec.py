"""The suite's spec check: what StubOpenAI receives is validated against OpenAI's description.

``conftest.py`` installs the checker for every test; these tests show that it is active,
that it catches the off-spec requests it is there for, and say clearly when it cannot run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from mixpeek_openai.testing import StubOpenAI
from mixpeek_openai.testing._openapi import OpenAPIRequestChecker

OLD_REPLAY_ITEM = {
    "type": "message",
    "role": "assistant",
    "content": [{"type": "output_text", "text": "Earlier answer."}],
}


@pytest.fixture
def checker(
    openapi_checker: OpenAPIRequestChecker | None, openapi_spec_path: Path
) -> OpenAPIRequestChecker:
    if openapi_checker is None:
        pytest.skip(
            f"OpenAI's OpenAPI description is not at {openapi_spec_path}: requests sent to "
            "StubOpenAI are not checked against the API in this run."
        )
    return openapi_checker


def test_every_stub_of_the_suite_is_checked(checker: OpenAPIRequestChecker) -> None:
    active = StubOpenAI.use_spec(None)
    StubOpenAI.use_spec(active)
    assert active is checker


@pytest.mark.off_spec
def test_off_spec_requests_are_reported_with_the_offending_field(
    checker: OpenAPIRequestChecker,
) -> None:
    stub = StubOpenAI(spec=checker)
    client = stub.client()
    checker.clear()

    # What the Responses loop used to replay: an output message without id and status.
    client.responses.create(
        model="gpt-4o", input=[OLD_REPLAY_ITEM, {"role": "user", "content": "And now?"}]
    )
    # Images in a Chat tool message: the API takes text only (the stub refuses it too).
    with pytest.raises(openai.BadRequestError, match="only support text"):
        client.chat.completions.create(
            model="gpt-4o",
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "c1",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                },
            ],
        )

    found = stub.spec_violations
    assert [(v.method, v.path) for v in found] == [
        ("POST", "/v1/responses"),
        ("POST", "/v1/chat/completions"),
    ]
    assert "body['input']" in found[0].problems[0] and "output_text" in found[0].problems[0]
    assert "body['messages'][2]" in found[1].problems[0]
    assert len(checker.violations) == 2
    checker.clear()


@pytest.mark.off_spec
def test_unknown_operations_and_missing_bodies_are_reported(
    checker: OpenAPIRequestChecker,
) -> None:
    checker.clear()
    assert checker.check("POST", "/v1/responses/resp_1/rewind", {}) == [
        "no operation POST /responses/resp_1/rewind in the API description"
    ]
    assert checker.check("POST", "/v1/responses", None) == ["the operation requires a JSON body"]
    assert checker.check("GET", "/v1/threads/thread_1/runs/run_1", None) == []
    checker.clear()


def test_what_the_loops_send_now_is_on_spec(checker: OpenAPIRequestChecker) -> None:
    bodies: list[tuple[str, dict[str, Any]]] = [
        (
            "/v1/responses",
            {
                "model": "o4-mini",
                "store": False,
                "include": ["reasoning.encrypted_content"],
                "input": [
                    {"role": "user", "content": "q"},
                    {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "e"},
                    {"role": "assistant", "content": "Earlier answer."},
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [
                            {"type": "input_text", "text": "{}"},
                            {
                                "type": "input_image",
                                "image_url": "https://x/y.png",
                                "detail": "low",
                            },
                        ],
                    },
                ],
                "tools": [{"type": "web_search"}],
                "background": True,
            },
        ),
        ("/v1/conversations", {"items": [{"role": "assistant", "content": "a"}], "metadata": {}}),
    ]
    for path, body in bodies:
        assert checker.check("POST", path, body) == [], path
