"""The OpenAPI document as the contract: every status an operation can answer, each error
in the one error shape.

Routes declare what is theirs (401, 403, 404, 409, 429, 503) with `error_responses`; the
statuses the HTTP boundary (api.boundary) and validation can give any operation are added
here, once: 413 to every operation, 415 to those that take a body, 422 to those with
parameters or a body (in place of FastAPI's own validation-error schema, which this API
never answers with) and 500 to all.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api.errors import STATUS_MEANINGS, ErrorBody

ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
BODY_METHODS = ("post", "put", "patch")
# Answers in a shape of their own: readiness says which check failed.
OWN_RESPONSES: dict[tuple[str, str], dict[str, Any]] = {
    ("/readyz", "get"): {
        "503": {
            "description": "Not ready: a dependency did not answer; `checks` says which",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
}


def _error(status: int) -> dict[str, Any]:
    return {
        "description": STATUS_MEANINGS[status],
        "content": {"application/json": {"schema": ERROR_REF}},
    }


def contract(app: FastAPI, currency: str) -> dict[str, Any]:
    document = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    error_schema = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in error_schema.pop("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas.setdefault("ErrorBody", error_schema)
    for path, methods in document.get("paths", {}).items():
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            responses.update(OWN_RESPONSES.get((path, method), {}))
            statuses = [413, 500]
            if method in BODY_METHODS or operation.get("requestBody"):
                statuses.append(415)
            if operation.get("parameters") or operation.get("requestBody"):
                statuses.append(422)
            for status in statuses:
                responses[str(status)] = _error(status)
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    # One currency per deployment: the only one a request may name.
    schemas["Money"]["properties"]["currency"]["enum"] = [currency]
    return document


def install_contract(app: FastAPI, currency: str) -> None:
    """Serve `contract(app)` as the app's OpenAPI document (built once, on first use)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = contract(app, currency)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
