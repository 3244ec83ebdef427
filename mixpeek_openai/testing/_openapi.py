"""Checking requests against OpenAI's OpenAPI description, for :class:`StubOpenAI`.

:class:`OpenAPIRequestChecker` reads the official description (``openapi.json`` of the
``openai-openapi`` project; nothing of it is copied here) and checks each request a stub
receives: the method and path must be an operation of the API, and a JSON body must
validate against the operation's request schema (JSON Schema 2020-12, with ``jsonschema``).
Unions are read as OpenAPI tools read them: the description is generated for SDKs, and
its ``oneOf`` lists overlapping branches (a user message with a list of parts is both an
``EasyInputMessage`` and an ``InputMessage``, and the API takes it), so a value is valid
when it matches *at least one* branch; a value no branch accepts is reported. Problems
are collected, not raised, so a test sees every off-spec request it caused, and
the stub keeps answering as the real API would (it refuses most off-spec bodies itself).

Validators are compiled once per operation and shared by every stub using the checker.
"""

from __future__ import annotations

import importlib
import json
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["OpenAPIRequestChecker", "SpecViolation"]

_SPEC_URI = "urn:openai-openapi"
_API_PREFIX = "/v1"


class SpecViolation:
    """One request that does not match the API description."""

    __slots__ = ("body", "method", "path", "problems")

    def __init__(self, method: str, path: str, body: Any, problems: list[str]) -> None:
        self.method = method
        self.path = path
        self.body = body
        self.problems = problems

    def __str__(self) -> str:
        body = json.dumps(self.body, default=str)
        if len(body) > 2000:
            body = body[:2000] + "..."
        return f"{self.method} {self.path}: " + "; ".join(self.problems) + f"\n  body: {body}"

    def __repr__(self) -> str:
        return f"SpecViolation({self.method!r}, {self.path!r}, {self.problems!r})"


class OpenAPIRequestChecker:
    """Validates requests against an OpenAPI description of the OpenAI API.

    Args:
        spec: the parsed description (the JSON document), or the path of an ``openapi.json``.

    ``violations`` lists what :meth:`check` found since the last :meth:`clear`.
    """

    def __init__(self, spec: Mapping[str, Any] | Path) -> None:
        self._source = spec
        self._loaded = False
        self._lock = threading.Lock()
        self.violations: list[SpecViolation] = []

    def _load(self) -> None:
        """Parse the description and index its operations (once, at the first check)."""
        with self._lock:
            if self._loaded:
                return
            source = self._source
            if isinstance(source, Path):
                with open(source, encoding="utf-8") as handle:
                    source = json.load(handle)
            self._index(source)
            self._loaded = True

    def _index(self, spec: Mapping[str, Any]) -> None:
        # jsonschema ships without type information; it is a test-only dependency.
        jsonschema: Any = importlib.import_module("jsonschema")
        import referencing
        import referencing.jsonschema

        self._jsonschema = jsonschema
        resource = referencing.Resource.from_contents(
            spec, default_specification=referencing.jsonschema.DRAFT202012
        )
        self._registry: Any = referencing.Registry().with_resource(_SPEC_URI, resource)
        self._operations: list[tuple[re.Pattern[str], str, str]] = []
        for template, item in (spec.get("paths") or {}).items():
            if "?" in template or not isinstance(item, Mapping):
                continue  # "?beta=true" duplicates of the same operations
            pattern = re.compile(
                "^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$"
            )
            for method in item:
                if method in ("get", "post", "put", "patch", "delete"):
                    self._operations.append((pattern, method.upper(), template))
        self._spec = spec
        self._validators: dict[tuple[str, str], Any] = {}

    @classmethod
    def from_path(cls, path: str | Path) -> OpenAPIRequestChecker:
        """A checker for the description at ``path`` (an ``openapi.json``), read at the
        first check (it is a few megabytes)."""
        return cls(Path(path))

    def clear(self) -> None:
        """Forget the violations found so far."""
        with self._lock:
            self.violations.clear()

    def check(self, method: str, path: str, body: Any) -> list[str]:
        """Check one request (``path`` as sent, with ``/v1``); returns and records problems."""
        self._load()
        problems = self._problems(method.upper(), path, body)
        if problems:
            with self._lock:
                self.violations.append(SpecViolation(method.upper(), path, body, problems))
        return problems

    def _problems(self, method: str, path: str, body: Any) -> list[str]:
        relative = path[len(_API_PREFIX) :] if path.startswith(_API_PREFIX + "/") else path
        templates = [t for rx, m, t in self._operations if m == method and rx.match(relative)]
        if not templates:
            return [f"no operation {method} {relative} in the API description"]
        # A literal path ("/threads/runs") wins over a templated one ("/threads/{id}").
        template = min(templates, key=lambda t: t.count("{"))
        operation = self._spec["paths"][template][method.lower()]
        schema = (
            ((operation.get("requestBody") or {}).get("content") or {}).get("application/json")
            or {}
        ).get("schema")
        if schema is None:
            return []
        if body is None:
            required = bool((operation.get("requestBody") or {}).get("required"))
            return ["the operation requires a JSON body"] if required else []
        validator = self._validator(template, method)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        return [_describe(e) for e in errors[:5]]

    def _validator(self, template: str, method: str) -> Any:
        key = (template, method)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                pointer = "/".join(
                    _escape(part)
                    for part in (
                        "paths",
                        template,
                        method.lower(),
                        "requestBody",
                        "content",
                        "application/json",
                        "schema",
                    )
                )
                schema = {"$ref": f"{_SPEC_URI}#/{quote(pointer, safe='/~')}"}
                validator = self._validator_class()(schema, registry=self._registry)
                self._validators[key] = validator
            return validator

    def _validator_class(self) -> Any:
        """Draft 2020-12 with ``oneOf`` read as "at least one branch" (see the module)."""
        base = self._jsonschema.Draft202012Validator
        return self._jsonschema.validators.extend(base, {"oneOf": base.VALIDATORS["anyOf"]})


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _describe(error: Any) -> str:
    """An error with the path into the body and, for unions, the most relevant branch's reason."""
    where = _where(error.absolute_path)
    message = error.message
    if len(message) > 300:
        message = message[:300] + "..."
    detail = ""
    if error.context:
        best_match = importlib.import_module("jsonschema.exceptions").best_match
        best = error
        while best.context:
            # The branch that got furthest into the value says most about what is wrong.
            deepest = max(len(e.absolute_path) for e in best.context)
            best = best_match([e for e in best.context if len(e.absolute_path) == deepest])
        detail = f" (best branch: body{_where(best.absolute_path)}: {best.message[:200]})"
    return f"body{where}: {message}{detail}"


def _where(path: Any) -> str:
    return "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path)
