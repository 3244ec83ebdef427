"""Fixtures shared by the tests: one fake Mixpeek per module, two search tools, a stub.

Every request a :class:`StubOpenAI` receives during a test is checked against OpenAI's
official OpenAPI description, read from ``../shared/openai/openapi.json`` next to the
project (never copied into it): a test that makes the loops send an off-spec request
fails. Tests that send off-spec requests on purpose (to see the stub refuse them) are
marked ``off_spec``. Without the description the check is skipped (see
``test_openapi_spec.py``, which says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mixpeek_openai.testing import FakeMixpeek, StubOpenAI
from mixpeek_openai.testing._openapi import OpenAPIRequestChecker
from mixpeek_openai.tools import MixpeekTools

OPENAPI_SPEC = Path(__file__).resolve().parents[1].parent / "shared" / "openai" / "openapi.json"
"""OpenAI's OpenAPI description (openai-openapi 2.3.0), outside the project."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "off_spec: the test sends requests that do not match the OpenAI API on purpose"
    )


@pytest.fixture(scope="session")
def openapi_spec_path() -> Path:
    """Where the suite looks for OpenAI's OpenAPI description."""
    return OPENAPI_SPEC


@pytest.fixture(scope="session")
def openapi_checker() -> OpenAPIRequestChecker | None:
    """The checker for OpenAI's description, or ``None`` when the file is absent."""
    return OpenAPIRequestChecker.from_path(OPENAPI_SPEC) if OPENAPI_SPEC.is_file() else None


@pytest.fixture(autouse=True)
def _requests_match_the_openai_spec(
    request: pytest.FixtureRequest, openapi_checker: OpenAPIRequestChecker | None
) -> Iterator[None]:
    """Check every request stubs receive in this test; fail the test on an off-spec one."""
    if openapi_checker is None or request.node.get_closest_marker("off_spec"):
        yield
        return
    previous = StubOpenAI.use_spec(openapi_checker)
    openapi_checker.clear()
    try:
        yield
    finally:
        StubOpenAI.use_spec(previous)
    found = list(openapi_checker.violations)
    openapi_checker.clear()
    if found:
        pytest.fail(
            f"{len(found)} request(s) do not match OpenAI's API description:\n"
            + "\n".join(str(v) for v in found[:5]),
            pytrace=False,
        )


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeMixpeek]:
    """A fake Mixpeek server shared by the tests of one module."""
    with FakeMixpeek() as server:
        yield server


@pytest.fixture
def tools(fake: FakeMixpeek) -> MixpeekTools:
    """Search tools for two sample retrievers, with the server's request log cleared."""
    fake.clear_requests()
    return MixpeekTools.from_retrievers(fake.client(), ["ret_product_demos", "ret_catalog"])


@pytest.fixture
def stub() -> StubOpenAI:
    """A fresh stub OpenAI API."""
    return StubOpenAI()
