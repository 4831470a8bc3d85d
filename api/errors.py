"""Every error leaves the API as {"error": {"code", "message"}}; domain errors map here."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from domain.catalog import NotProductOwner
from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.inventory import ConcurrentUpdate

# First match wins: specific classes before the bases they subclass.
STATUS_FOR_DOMAIN_ERROR: list[tuple[type[DomainError], int]] = [
    (NotProductOwner, 403),
    (ConcurrentUpdate, 409),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (DomainError, 422),
]


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
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'] if part != 'body')}: {problem['msg']}"
            for problem in error.errors()
        )
        return JSONResponse(error_body("invalid_input", problems or "invalid request"), 422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, error: HTTPException) -> JSONResponse:
        code = {
            401: "not_authenticated",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
        }.get(error.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(error.detail)),
            error.status_code,
            headers=getattr(error, "headers", None),
        )
