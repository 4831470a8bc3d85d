"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import Services, ServicesDep
from eventmart.broker import list_topics
from eventmart.relay_operations import relay_health

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up; says nothing about its dependencies."""
    return {"status": "ok"}


def _relay(services: Services) -> dict[str, Any]:
    with services.pool.connection(timeout=2) as conn:
        return relay_health(conn, services.applications.all(), services.settings)


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready only when PostgreSQL (every database the API uses) and Kafka both answer, and the relay is alive with no
    event waiting longer than relay_max_lag_seconds to be published (parked ones count):
    a platform whose events stopped reaching the bus is not ready, whatever else answers."""

    def database() -> None:
        for pool in services.pools():
            with pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")

    checks: dict[str, str] = {}
    relay: dict[str, Any] | None = None
    for name, probe in (
        ("database", asyncio.to_thread(database)),
        ("kafka", asyncio.wait_for(list_topics(services.settings.bootstrap_servers), timeout=3)),
    ):
        try:
            await probe
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - reported, not raised
            checks[name] = f"unavailable: {type(error).__name__}"
    try:
        relay = await asyncio.to_thread(_relay, services)
        checks["relay"] = "ok" if relay["ready"] else f"not ready: {relay['problem']}"
    except Exception as error:  # noqa: BLE001 - reported, not raised
        checks["relay"] = f"unknown: {type(error).__name__}"
    ready = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks, "relay": relay},
        200 if ready else 503,
    )
