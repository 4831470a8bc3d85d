"""Liveness and readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from psycopg.conninfo import conninfo_to_dict

from api.deps import Services, ServicesDep
from eventmart.broker import list_topics
from eventmart.relay_operations import relay_health
from eventmart.supervision import read_state, trouble

router = APIRouter(tags=["ops"])


class Unavailable(Exception):
    """A dependency that did not answer, named."""


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up; says nothing about its dependencies."""
    return {"status": "ok"}


def _relay(services: Services) -> dict[str, Any]:
    with services.pool.connection(timeout=2) as conn:
        return relay_health(conn, services.applications.all(), services.settings)


def _where(conninfo: str) -> str:
    """host:port/dbname of a pool's database (never its password)."""
    parts = conninfo_to_dict(conninfo)
    return f"{parts.get('host', '?')}:{parts.get('port', '5432')}/{parts.get('dbname', '?')}"


@router.get("/readyz")
async def readyz(services: ServicesDep) -> JSONResponse:
    """Ready only when PostgreSQL (every database the API uses) and Kafka both answer, and the relay is alive with no
    event waiting longer than relay_max_lag_seconds to be published (parked ones count):
    a platform whose events stopped reaching the bus is not ready, whatever else answers.
    Under `eventmart up`, also every process its supervisor runs must be up (`processes`
    names the ones that are not: restarting, crash-looping). A check that fails says which
    database, broker or process is away."""

    def database() -> None:
        for pool in services.pools():
            try:
                with pool.connection(timeout=2) as conn:
                    conn.execute("SELECT 1")
            except Exception as error:
                raise Unavailable(
                    f"{_where(str(pool.conninfo))} ({type(error).__name__})"
                ) from error

    async def kafka() -> None:
        bootstrap = services.settings.bootstrap_servers
        try:
            await asyncio.wait_for(list_topics(bootstrap), timeout=3)
        except Exception as error:
            raise Unavailable(f"{bootstrap} ({type(error).__name__})") from error

    checks: dict[str, str] = {}
    relay: dict[str, Any] | None = None
    for name, probe in (("database", asyncio.to_thread(database)), ("kafka", kafka())):
        try:
            await probe
            checks[name] = "ok"
        except Exception as error:  # noqa: BLE001 - reported, not raised
            checks[name] = f"unavailable: {error}"
    supervised = read_state(services.settings.state_dir)
    if supervised is not None:
        problems = trouble(supervised)
        checks["processes"] = "ok" if not problems else f"not running: {', '.join(problems)}"
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
