"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import ServicesDep
from eventmart.broker import list_topics

router = APIRouter(tags=["ops"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up; says nothing about its dependencies."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready only when PostgreSQL (every database the API uses) and Kafka answer."""

    def database() -> None:
        for pool in services.pools():
            with pool.connection(timeout=2) as conn:
                conn.execute("SELECT 1")

    checks: dict[str, str] = {}
    for name, probe in (
        ("database", asyncio.to_thread(database)),
        ("kafka", asyncio.wait_for(list_topics(services.settings.bootstrap_servers), timeout=3)),
    ):
        try:
            await probe
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - reported, not raised
            checks[name] = f"unavailable: {type(error).__name__}"
    ready = all(state == "ok" for state in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": checks}, 200 if ready else 503
    )
