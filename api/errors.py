"""Every error leaves the API as {"error": {"code", "message"}}; domain errors map here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from api.boundary import allowed_methods
from domain.catalog import NotProductOwner
from domain.errors import ConcurrentUpdate, Conflict, DomainError, InvalidInput, NotFound
from domain.promotions import NotPromotionOwner
from domain.reviews import NotAVerifiedBuyer, NotProductSeller, OwnReview

# First match wins: specific classes before the bases they subclass.
STATUS_FOR_DOMAIN_ERROR: list[tuple[type[DomainError], int]] = [
    (NotProductOwner, 403),
    (NotAVerifiedBuyer, 403),
    (NotProductSeller, 403),
    (OwnReview, 403),
    (NotPromotionOwner, 403),
    (ConcurrentUpdate, 409),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (DomainError, 422),
]


HTTP_ERROR_CODES = {
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}

# What each status means wherever a route declares it (the OpenAPI document's wording).
STATUS_MEANINGS = {
    401: "No valid bearer token (`not_authenticated`, `invalid_token`)",
    403: "The caller's role or ownership does not allow this (`forbidden`, ...)",
    404: "No such resource, or not the caller's",
    409: "The resource's state or another request came first",
    413: "The request body is over the size limit (`payload_too_large`)",
    415: "The request body is not JSON (`unsupported_media_type`)",
    422: "The request breaks a validation rule (`invalid_input`, `invalid_cursor`, ...)",
    429: "Too many attempts; wait for `Retry-After` seconds",
    500: "An unexpected failure (`internal_error`); nothing is half stored",
    503: "A dependency or a read model is not ready yet; retry after `Retry-After` seconds",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The one shape of every error answer."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route: the given statuses and 500, all in the error shape."""
    return {
        status: {"model": ErrorBody, "description": STATUS_MEANINGS[status]}
        for status in sorted({*statuses, 500})
    }


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(error.code, error.message), error.status, headers=error.headers
        )

    @app.exception_handler(DomainError)
    async def domain_error(_: Request, error: DomainError) -> JSONResponse:
        status = next(code for kind, code in STATUS_FOR_DOMAIN_ERROR if isinstance(error, kind))
        return JSONResponse(error_body(error.code, str(error)), status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        described = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'] if part != 'body')}: {problem['msg']}"
            for problem in problems
        )
        # A cursor that fails its pattern was tampered with, like one that fails its signature.
        cursor_only = problems and all(
            tuple(problem["loc"]) == ("query", "cursor") for problem in problems
        )
        code = "invalid_cursor" if cursor_only else "invalid_input"
        return JSONResponse(error_body(code, described or "invalid request"), 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400:  # FastAPI's word for a body it cannot decode
            return JSONResponse(
                error_body("invalid_input", "the request body is not JSON in UTF-8"), 422
            )
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:  # every method the path serves, not one route's
            headers["Allow"] = ", ".join(allowed_methods(request.app.router.routes, request.scope))
        if error.status_code == 413:
            headers["Connection"] = "close"
        return JSONResponse(
            error_body(HTTP_ERROR_CODES.get(error.status_code, "http_error"), str(error.detail)),
            error.status_code,
            headers=headers or None,
        )
