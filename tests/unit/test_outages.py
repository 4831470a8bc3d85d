"""A dependency away is a 503 with Retry-After, in one place; anything else stays an error."""

from __future__ import annotations

import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, UnsupportedVersionError
from eventsourcing.persistence import InterfaceError, OperationalError
from fastapi import FastAPI
from fastapi.testclient import TestClient
from psycopg_pool import PoolTimeout

from api.outages import install_outage_handlers
from eventmart.outages import broker_away, database_away, dependency_away


def app_raising(error: Exception) -> TestClient:
    app = FastAPI()
    install_outage_handlers(app, retry_after_seconds=7)

    @app.get("/")
    def fails() -> None:
        raise error

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(
    "error",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        PoolTimeout("couldn't get a connection after 2.00 sec"),
        OperationalError("connection refused"),  # eventsourcing's own
        InterfaceError("the connection is closed"),
        KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9092"),
        KafkaTimeoutError(),
    ],
    ids=type,
)
def test_a_dependency_away_is_503_service_unavailable_with_retry_after(error):
    assert dependency_away(error)
    answer = app_raising(error).get("/")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "7"
    assert answer.json()["error"]["code"] == "service_unavailable"


def test_errors_that_waiting_will_not_cure_are_not_called_outages():
    assert not dependency_away(psycopg.errors.UniqueViolation("duplicate key"))
    assert not dependency_away(ValueError("a bug"))
    assert not broker_away(UnsupportedVersionError())
    assert app_raising(UnsupportedVersionError()).get("/").status_code == 500
    assert database_away(PoolTimeout()) and not broker_away(PoolTimeout())
