"""/metrics for Prometheus, and the middleware timing every API request.

Lag, DLQ sizes and saga outcomes are read when scraped, at most every few seconds:
scrapes from several Prometheus replicas should not each walk the broker."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import ServicesDep, bearer, get_current_user
from api.errors import ApiError, error_responses
from api.throttle import client_address, in_networks
from eventmart.broker import consumer_groups
from eventmart.metrics import CONTENT_TYPE_LATEST, METRICS, SAGA_TERMINAL_STATUSES
from eventmart.operations import consumer_group_lag, dead_letter_summaries
from eventmart.relay_operations import dead_letter_summary, relay_health
from eventmart.supervision import read_state

router = APIRouter(tags=["ops"])
log = logging.getLogger("eventmart.api.metrics")

REFRESH_EVERY_SECONDS = 5.0
REFRESH_TIMEOUT_SECONDS = 5.0


class RequestLatency:
    """Observes each HTTP request's duration by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            route = scope.get("route")
            # Unmatched paths share one label, so scanners cannot blow up the series count.
            template = getattr(route, "path", None) or _documentation_path(scope) or "unmatched"
            METRICS.http_request_duration.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - started
            )


def _documentation_path(scope: Scope) -> str | None:
    """FastAPI serves its OpenAPI document and docs pages outside the router (no route in
    the scope); they are a fixed few paths, so they keep their own label."""
    app = scope.get("app")
    fixed = {getattr(app, name, None) for name in ("openapi_url", "docs_url", "redoc_url")}
    return scope["path"] if scope["path"] in fixed - {None} else None


def _database_gauges(services: Any) -> None:
    """Saga outcomes (from the orders read model's database), and the relay: its dead
    letters (group `relay`) and the outboxes (the shared database)."""
    with services.read_pool("orders-projection").connection() as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM orders_view WHERE status = ANY(%s) GROUP BY status",
            (list(SAGA_TERMINAL_STATUSES),),
        ).fetchall()
    METRICS.record_saga_outcomes({status: count for status, count in rows})
    with services.pool.connection() as conn:
        METRICS.record_dead_letters([dead_letter_summary(conn)])
        METRICS.record_relay(relay_health(conn, services.applications.all(), services.settings))


async def refresh_operational_gauges(services: Any) -> None:
    """Read lag, DLQ sizes, saga outcomes, the relay's and the supervisor's state into the
    gauges."""
    METRICS.record_supervision(read_state(services.settings.state_dir))
    await asyncio.to_thread(_database_gauges, services)
    groups = consumer_groups()
    bootstrap = services.settings.bootstrap_servers
    METRICS.record_lag(await consumer_group_lag(bootstrap, groups))
    METRICS.record_dead_letters(
        await dead_letter_summaries(bootstrap, services.settings.dsn, list(groups))
    )


async def scraper_allowed(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """The scrape shows lag, dead letters and request counts: answered to the networks of
    EVENTMART_METRICS_ALLOWED_NETWORKS (loopback by default), or with an admin's token."""
    settings = services.settings
    if in_networks(
        client_address(request, settings.trusted_proxies), settings.metrics_allowed_networks
    ):
        return
    user = await get_current_user(services, credentials)
    if user.role != "admin":
        raise ApiError(403, "forbidden", "/metrics needs the role admin or an allowed address")


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(scraper_allowed)],
    # The token is optional: the allowed networks scrape without one (`{}`, OpenAPI's
    # "no authentication" alternative, appended to the bearer requirement).
    openapi_extra={"security": [{}]},
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}},
        **error_responses(401, 403),
    },
)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus text, for the allowed networks or an admin's token; a failed refresh
    serves the last values rather than no scrape."""
    state = request.app.state
    refreshed_at = getattr(state, "metrics_refreshed_at", None)
    if refreshed_at is None or time.monotonic() - refreshed_at >= REFRESH_EVERY_SECONDS:
        lock = getattr(state, "metrics_lock", None) or asyncio.Lock()
        state.metrics_lock = lock
        async with lock:
            if getattr(state, "metrics_refreshed_at", None) == refreshed_at:
                try:
                    await asyncio.wait_for(
                        refresh_operational_gauges(services), REFRESH_TIMEOUT_SECONDS
                    )
                    state.metrics_refreshed_at = time.monotonic()
                except Exception as error:  # noqa: BLE001 - stale gauges beat a failed scrape
                    log.warning("could not refresh operational metrics: %r", error)
    return Response(METRICS.render(), media_type=CONTENT_TYPE_LATEST)
