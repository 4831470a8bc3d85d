"""PostgreSQL or Kafka away is not the caller's fault: 503 `service_unavailable` with
Retry-After, in one place for every route (eventmart.outages says which errors those are).
/readyz reports the same outage to whatever routes traffic here."""

from __future__ import annotations

import logging

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import error_body
from eventmart.outages import DATABASE_AWAY, database_away, dependency_away

log = logging.getLogger("eventmart.api.outages")


def unavailable(
    method: str, path: str, error: Exception, retry_after_seconds: int
) -> JSONResponse | None:
    """The 503 for a dependency that is away, logged; None for any other error."""
    if not dependency_away(error):
        return None  # a broker error that will not pass by waiting: a 500 like any other
    dependency = "PostgreSQL" if database_away(error) else "Kafka"
    log.warning(
        "%s %s: %s unreachable (%s: %s)", method, path, dependency, type(error).__name__, error
    )
    return JSONResponse(
        error_body(
            "service_unavailable",
            f"{dependency} cannot be reached just now; retry in {retry_after_seconds}s",
        ),
        503,
        headers={"Retry-After": str(retry_after_seconds)},
    )


def install_outage_handlers(app: FastAPI, retry_after_seconds: int) -> None:
    async def handler(request: Request, error: Exception) -> JSONResponse:
        answer = unavailable(request.method, request.url.path, error, retry_after_seconds)
        if answer is None:
            raise error
        return answer

    for kind in (*DATABASE_AWAY, KafkaError):
        app.add_exception_handler(kind, handler)
