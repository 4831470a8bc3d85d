"""What checking a token against the user, and checking pooled connections, cost per
request: wall time and this process's CPU per call, on a running PostgreSQL.

    ./run up --no-demo                     # one shell (or any PostgreSQL with the tables)
    .venv/bin/python bench/auth_cost.py    # another; DATABASE_URL picks another database

Measured, each --calls times after a warm-up:
- verifying a token's signature and claims (api.security.TokenIssuer.verify);
- looking the user up as they are now (api.auth.UserDirectory.current): one indexed query
  for events past the version this process knows, nearly always none;
- lending a pooled connection: unchecked, pinged before lending (psycopg_pool's
  check_connection: an empty query), and checked as EventMart's pools do (a select() on
  the socket; a ping only if the server wrote to it), sync and async pools.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

from psycopg_pool import AsyncConnectionPool, ConnectionPool
from rich.console import Console
from rich.table import Table

from api.auth import UserDirectory
from api.security import TokenIssuer
from domain.users import Users
from eventmart.database import check_async_connection, check_connection
from eventmart.settings import get_settings
from eventmart.wiring import build_application


def timed(calls: int, work: Callable[[], object]) -> tuple[float, float]:
    """Microseconds of wall time and of this process's CPU per call."""
    for _ in range(min(200, calls)):
        work()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        work()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


async def timed_async(calls: int, work: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    for _ in range(min(200, calls)):
        await work()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        await work()
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


async def measure(calls: int) -> list[tuple[str, tuple[float, float]]]:
    settings = get_settings()
    users = build_application(Users, settings, pool_size=1)
    user_id = users.register_user(f"bench-{uuid.uuid4().hex}@example.com", "x", "Bench")
    issuer = TokenIssuer.for_settings(settings)
    token = issuer.issue(user_id, "customer")
    directory = UserDirectory(settings.dsn, users.mapper, wait_seconds=5)
    await directory.open()
    rows = [("token signature and claims", timed(calls, lambda: issuer.verify(token)))]
    rows.append(
        (
            "user as they are now (one query)",
            await timed_async(calls, lambda: directory.current(user_id)),
        )
    )
    await directory.close()
    checks = {"": None, ", pinged": "ping", ", socket checked": "socket"}
    for suffix, kind in checks.items():
        check = {"ping": ConnectionPool.check_connection, "socket": check_connection}.get(kind)
        with ConnectionPool(settings.dsn, min_size=1, max_size=1, check=check) as pool:

            def lend(pool: ConnectionPool = pool) -> None:
                with pool.connection():
                    pass

            rows.append((f"sync pool: lend a connection{suffix}", timed(calls, lend)))
    for suffix, kind in checks.items():
        async_check = {
            "ping": AsyncConnectionPool.check_connection,
            "socket": check_async_connection,
        }.get(kind)
        async with AsyncConnectionPool(
            settings.dsn, min_size=1, max_size=1, check=async_check, open=False
        ) as apool:

            async def lend_async(apool: AsyncConnectionPool = apool) -> None:
                async with apool.connection():
                    pass

            label = f"async pool: lend a connection{suffix}"
            rows.append((label, await timed_async(calls, lend_async)))
    users.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000)
    calls = parser.parse_args().calls
    table = Table("per call", "wall µs", "CPU µs (this process)", title=f"{calls} calls each")
    for label, (wall, cpu) in asyncio.run(measure(calls)):
        table.add_row(label, f"{wall:,.0f}", f"{cpu:,.0f}")
    Console().print(table)


if __name__ == "__main__":
    main()
