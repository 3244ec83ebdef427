"""Contract checks for the fake Mixpeek API.

Requests are checked against the ``mixpeek`` package's generated request models (undeclared
keys included) and retriever inputs against the retriever's ``input_schema``; responses can
be checked against the generated response models with :func:`validate_response`.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import mixpeek.models as _mixpeek_models
import pydantic

# The generated models are not all re-exported for type checkers; use them untyped.
_models: Any = _mixpeek_models

__all__ = [
    "FILTER_OPERATORS",
    "RESPONSE_MODELS",
    "ContractViolation",
    "error_body",
    "validate_filters",
    "validate_inputs",
    "validate_request_body",
    "validate_response",
]

#: Operators accepted in top-level ``filters`` conditions.
FILTER_OPERATORS = frozenset(
    {"eq", "ne", "in", "nin", "gt", "gte", "lt", "lte", "contains", "exists"}
)

_OPERATOR_LIST = ", ".join(sorted(FILTER_OPERATORS))
_LOGICAL_KEYS = ("AND", "OR", "NOT")

_ERROR_TYPES = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "ForbiddenError",
    404: "NotFoundError",
    405: "MethodNotAllowedError",
    408: "RequestTimeoutError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
    422: "ValidationError",
    429: "RateLimitError",
    500: "InternalServerError",
    502: "BadGatewayError",
    503: "ServiceUnavailableError",
    504: "GatewayTimeoutError",
}

#: The generated model each endpoint's successful response must fit. ``execute_batch``
#: has no generated response model ("object"): each of its per-query results is checked
#: against ``ExecuteRetrieverResponse`` instead.
RESPONSE_MODELS: Mapping[str, Any] = {
    "get_retriever": _models.RetrieverModelOutput,
    "list_retrievers": _models.ListRetrieversResponse,
    "execute": _models.ExecuteRetrieverResponse,
    "execute_batch": _models.ExecuteRetrieverResponse,
    "explain": _models.ExplainRetrieverResponse,
    "get_collection": _models.CollectionResponse,
    "list_collections": _models.ListCollectionsResponse,
    "get_taxonomy": _models.TaxonomyResponse,
    "list_taxonomies": _models.ListTaxonomiesResponse,
    "get_cluster": _models.ClusterMetadata,
    "list_clusters": _models.ListClustersResponse,
    "get_object": _models.ObjectResponse,
    "list_objects": _models.ListObjectsResponse,
    "get_document": _models.DocumentResponse,
    "list_documents": _models.ListDocumentsResponse,
    "error": _models.ErrorResponse,
}


class ContractViolation(ValueError):
    """A payload does not fit the generated ``mixpeek`` model it is checked against.

    ``errors`` lists the problems as ``{"loc": [...], "msg": str, "type": str}`` dicts.
    """

    def __init__(self, message: str, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__(message)


def error_body(
    status: int,
    message: str,
    *,
    error_type: str | None = None,
    details: Mapping[str, Any] | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The API's error body (``mixpeek.models.ErrorResponse``) for ``status``."""
    error: dict[str, Any] = {
        "message": message,
        "type": error_type or _ERROR_TYPES.get(status, "HTTPError"),
    }
    if code is not None:
        error["code"] = code
    if details is not None:
        error["details"] = dict(details)
    return {"success": False, "status": status, "error": error}


def _declared_keys(model: Any) -> tuple[frozenset[str], bool]:
    """The JSON keys ``model`` declares, and whether it keeps undeclared ones."""
    keys = set()
    open_model = False
    for name, info in model.model_fields.items():
        if name == "additional_properties":
            open_model = True
            continue
        keys.add(info.alias or name)
    return frozenset(keys), open_model


def _pydantic_errors(exc: pydantic.ValidationError, prefix: list[Any]) -> list[dict[str, Any]]:
    return [
        {"loc": [*prefix, *err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _extra_key_errors(
    body: Mapping[str, Any], model: Any, prefix: list[Any]
) -> list[dict[str, Any]]:
    declared, open_model = _declared_keys(model)
    if open_model:
        return []
    return [
        {
            "loc": [*prefix, key],
            "msg": f"Extra inputs are not permitted; accepted keys: {', '.join(sorted(declared))}",
            "type": "extra_forbidden",
        }
        for key in body
        if key not in declared
    ]


def validate_request_body(model: Any, body: Any) -> tuple[Any, list[dict[str, Any]]]:
    """Check ``body`` against the generated request ``model``.

    Returns ``(instance, errors)``; ``instance`` is ``None`` when ``errors`` is not empty.
    Undeclared keys are errors (``extra_forbidden``), as the API refuses them.
    """
    if not isinstance(body, dict):
        return None, [
            {"loc": ["body"], "msg": "Input should be a JSON object", "type": "dict_type"}
        ]
    errors = _extra_key_errors(body, model, [])
    errors.extend(_nested_extra_key_errors(model, body))
    if errors:
        return None, errors
    try:
        instance = model.from_dict(body)
    except pydantic.ValidationError as exc:
        return None, _pydantic_errors(exc, [])
    except (ValueError, TypeError) as exc:
        # The generated oneOf wrappers (e.g. ``pagination``) raise plain ValueErrors.
        return None, [
            {"loc": _guess_loc(body, str(exc)), "msg": _short(exc), "type": "value_error"}
        ]
    return instance, []


def _nested_extra_key_errors(model: Any, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    errors: list[dict[str, Any]] = []
    if model is _models.ExecuteBatchRequest and isinstance(body.get("queries"), list):
        for i, query in enumerate(body["queries"]):
            if isinstance(query, dict):
                errors.extend(_extra_key_errors(query, _models.BatchQueryItem, ["queries", i]))
    pagination = body.get("pagination")
    if model is _models.ExecuteRetrieverRequest and isinstance(pagination, dict):
        target = _PAGINATION_MODELS.get(pagination.get("method"))
        if target is not None:
            errors.extend(_extra_key_errors(pagination, target, ["pagination"]))
    return errors


_PAGINATION_MODELS: Mapping[Any, Any] = {
    "cursor": _models.CursorPaginationParams,
    "offset": _models.OffsetPaginationParams,
    "scroll": _models.ScrollPaginationParams,
    "keyset": _models.KeysetPaginationParams,
}


def _guess_loc(body: Mapping[str, Any], message: str) -> list[Any]:
    for key in body:
        if key in message.lower():
            return [key]
    return ["body"]


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 300 else text[:297] + "..."


# --- filters -------------------------------------------------------------------------


def validate_filters(filters: Any, loc: list[Any]) -> list[dict[str, Any]]:
    """Check a top-level ``filters`` value: ``{"AND"|"OR"|"NOT": [condition | group]}``."""
    errors: list[dict[str, Any]] = []
    _check_group(filters, loc, errors)
    return errors


def _check_group(group: Any, loc: list[Any], errors: list[dict[str, Any]]) -> None:
    if not isinstance(group, dict):
        errors.append({"loc": loc, "msg": "A filter group must be an object", "type": "dict_type"})
        return
    for key, value in group.items():
        if key == "case_sensitive":
            if not isinstance(value, bool):
                errors.append({"loc": [*loc, key], "msg": "must be a boolean", "type": "bool_type"})
            continue
        if key not in _LOGICAL_KEYS:
            errors.append(
                {
                    "loc": [*loc, key],
                    "msg": f"Unknown logical operator {key!r}; use AND, OR or NOT",
                    "type": "extra_forbidden",
                }
            )
            continue
        if not isinstance(value, list):
            errors.append({"loc": [*loc, key], "msg": "must be a list", "type": "list_type"})
            continue
        for i, item in enumerate(value):
            if isinstance(item, dict) and any(k in item for k in _LOGICAL_KEYS):
                _check_group(item, [*loc, key, i], errors)
            else:
                _check_condition(item, [*loc, key, i], errors)


def _check_condition(cond: Any, loc: list[Any], errors: list[dict[str, Any]]) -> None:
    if not isinstance(cond, dict):
        errors.append({"loc": loc, "msg": "A condition must be an object", "type": "dict_type"})
        return
    extra = set(cond) - {"field", "operator", "value"}
    if extra:
        errors.append(
            {
                "loc": [*loc, sorted(extra)[0]],
                "msg": "Extra inputs are not permitted; accepted keys: field, operator, value",
                "type": "extra_forbidden",
            }
        )
    if not isinstance(cond.get("field"), str) or not cond.get("field"):
        errors.append({"loc": [*loc, "field"], "msg": "Field required", "type": "missing"})
    operator = cond.get("operator", "eq")
    if operator not in FILTER_OPERATORS:
        errors.append(
            {
                "loc": [*loc, "operator"],
                "msg": f"Unknown operator {operator!r}; use one of {_OPERATOR_LIST}",
                "type": "enum",
            }
        )
    elif operator in ("in", "nin") and not isinstance(cond.get("value"), list):
        errors.append(
            {"loc": [*loc, "value"], "msg": f"{operator} needs a list value", "type": "list_type"}
        )
    elif operator != "exists" and "value" not in cond:
        errors.append({"loc": [*loc, "value"], "msg": "Field required", "type": "missing"})


# --- retriever inputs ----------------------------------------------------------------

_STRING_TYPES = frozenset({"string", "text", "image", "audio", "video", "pdf", "excel"})


def validate_inputs(schema: Mapping[str, Any], inputs: Any) -> list[dict[str, Any]]:
    """Check retriever ``inputs`` against its ``input_schema``.

    Unknown keys, missing required fields, wrong types and values outside an ``enum`` are
    errors. ``null`` for an optional field means "not given".
    """
    errors: list[dict[str, Any]] = []
    if inputs is None:
        inputs = {}
    if not isinstance(inputs, dict):
        return [{"loc": ["inputs"], "msg": "Input should be a JSON object", "type": "dict_type"}]
    _check_object(schema, inputs, ["inputs"], errors)
    return errors


def _check_object(
    properties: Mapping[str, Any],
    value: Mapping[str, Any],
    loc: list[Any],
    errors: list[dict[str, Any]],
) -> None:
    accepted = ", ".join(sorted(properties)) or "(none)"
    for key in value:
        if key not in properties:
            errors.append(
                {
                    "loc": [*loc, key],
                    "msg": f"Unknown input; accepted inputs: {accepted}",
                    "type": "extra_forbidden",
                }
            )
    for key, spec in properties.items():
        given = value.get(key)
        if given is None:
            if spec.get("required") and spec.get("default") is None:
                errors.append({"loc": [*loc, key], "msg": "Field required", "type": "missing"})
            continue
        _check_value(spec, given, [*loc, key], errors)


def _check_value(
    spec: Mapping[str, Any], value: Any, loc: list[Any], errors: list[dict[str, Any]]
) -> None:
    kind = spec.get("type", "string")
    problem = _type_problem(kind, value)
    if problem is not None:
        errors.append({"loc": loc, "msg": problem, "type": f"{kind}_type"})
        return
    enum = spec.get("enum")
    if enum and value not in enum:
        errors.append(
            {
                "loc": loc,
                "msg": f"Input should be one of {', '.join(map(repr, enum))}",
                "type": "enum",
            }
        )
    if kind == "object" and spec.get("properties"):
        _check_object(spec["properties"], value, loc, errors)
    elif kind == "array" and isinstance(spec.get("items"), dict):
        for i, item in enumerate(value):
            if item is None:
                errors.append({"loc": [*loc, i], "msg": "Items may not be null", "type": "none"})
            else:
                _check_value(spec["items"], item, [*loc, i], errors)


def _type_problem(kind: str, value: Any) -> str | None:
    if kind in _STRING_TYPES:
        if not isinstance(value, str):
            return f"Input should be a string ({kind})"
        if kind not in ("string", "text") and not value.strip():
            return f"Input should be a non-empty {kind} URL or data URI"
        return None
    if kind in ("number", "float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "Input should be a number"
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "Input should be a valid integer"
    if kind == "boolean":
        return None if isinstance(value, bool) else "Input should be a valid boolean"
    if kind == "object":
        return None if isinstance(value, dict) else "Input should be a JSON object"
    if kind == "array":
        return None if isinstance(value, list) else "Input should be a list"
    if kind == "date":
        return _date_problem(value)
    if kind == "datetime":
        return _datetime_problem(value)
    if kind == "document_reference":
        if not isinstance(value, dict):
            return "Input should be an object with collection_id and document_id"
        if set(value) != {"collection_id", "document_id"} or not all(
            isinstance(v, str) and v for v in value.values()
        ):
            return "A document_reference needs exactly string collection_id and document_id"
        return None
    return f"Unsupported input type {kind!r}"


def _date_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "Input should be a date string (YYYY-MM-DD)"
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        return "Input should be a valid date (YYYY-MM-DD)"
    return None


def _datetime_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "Input should be an ISO 8601 datetime string"
    try:
        parse_datetime(value)
    except ValueError:
        return "Input should be a valid ISO 8601 datetime"
    return None


def parse_datetime(value: str) -> _dt.datetime:
    """Parse an ISO 8601 date or datetime (``Z`` allowed) as an aware UTC datetime."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if len(text) == 10:
        parsed = _dt.datetime.combine(_dt.date.fromisoformat(text), _dt.time())
    else:
        parsed = _dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed


# --- responses -----------------------------------------------------------------------


def validate_response(endpoint: str, payload: Any, *, status: int = 200) -> None:
    """Check a response body against the generated model for ``endpoint``.

    Error statuses (>= 400) are checked against ``ErrorResponse``. For ``execute_batch``
    every entry of ``results`` is checked against ``ExecuteRetrieverResponse``.
    Raises :class:`ContractViolation` when the body does not fit.
    """
    key = "error" if status >= 400 else endpoint
    model = RESPONSE_MODELS.get(key)
    if model is None:
        raise KeyError(f"No response model known for endpoint {endpoint!r}")
    if not isinstance(payload, dict):
        raise ContractViolation(
            f"{endpoint}: response body is not a JSON object",
            [{"loc": [], "msg": "not an object", "type": "dict_type"}],
        )
    items: list[tuple[list[Any], Any]] = [([], payload)]
    if key == "execute_batch":
        results = payload.get("results")
        if not isinstance(results, list):
            raise ContractViolation(
                "execute_batch: response has no results list",
                [{"loc": ["results"], "msg": "Field required", "type": "missing"}],
            )
        items = [(["results", i], item) for i, item in enumerate(results)]
    for prefix, item in items:
        try:
            model.from_dict(item)
        except pydantic.ValidationError as exc:
            errors = _pydantic_errors(exc, prefix)
            raise ContractViolation(
                f"{endpoint}: response does not fit {model.__name__}: {errors}", errors
            ) from exc
        except (ValueError, TypeError, AttributeError) as exc:
            # The generated models' from_dict can fail on a wrong shape before validating.
            errors = [{"loc": prefix, "msg": _short(exc), "type": "value_error"}]
            raise ContractViolation(
                f"{endpoint}: response does not fit {model.__name__}: {_short(exc)}", errors
            ) from exc
