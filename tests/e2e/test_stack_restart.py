"""The local stack as a user runs it: `eventmart up`, use it, Ctrl-C, `eventmart up` again —
users and the Kafka log are still there."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from eventmart.broker import port_open
from eventmart.settings import PROJECT_ROOT
from tests.support import free_port, read_envelopes, wait_until

STATE = PROJECT_ROOT / ".eventmart" / "e2e"
# Four free ports, chosen once: PostgreSQL, Kafka, its controller, the API.
POSTGRES_PORT = free_port(4)
KAFKA_PORT, CONTROLLER_PORT, API_PORT = POSTGRES_PORT + 1, POSTGRES_PORT + 2, POSTGRES_PORT + 3
API = f"http://127.0.0.1:{API_PORT}"
KAFKA = f"127.0.0.1:{KAFKA_PORT}"


@pytest.fixture()
def stack_env() -> Iterator[dict[str, str]]:
    shutil.rmtree(STATE, ignore_errors=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
    }
    env.update(
        {
            "EVENTMART_STATE_DIR": str(STATE),
            "EVENTMART_ENV": "test",
            "EVENTMART_BCRYPT_ROUNDS": "4",
            "EVENTMART_POSTGRES_PORT": str(POSTGRES_PORT),
            "EVENTMART_KAFKA_PORT": str(KAFKA_PORT),
            "EVENTMART_KAFKA_CONTROLLER_PORT": str(CONTROLLER_PORT),
            "EVENTMART_API_PORT": str(API_PORT),
        }
    )
    yield env


def start(env: dict[str, str]) -> subprocess.Popen[bytes]:
    STATE.mkdir(parents=True, exist_ok=True)
    log = open(STATE / "up.log", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "eventmart", "up", "--no-demo"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
    )
    wait_until(
        lambda: process.poll() is None and _ready(),
        timeout=180,
        interval=0.5,
        message=f"the stack to be ready (see {STATE / 'up.log'})",
    )
    return process


def _ready() -> bool:
    try:
        return httpx.get(f"{API}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)  # what Ctrl-C sends
    assert process.wait(timeout=90) == 0
    assert not port_open("127.0.0.1", API_PORT) and not port_open("127.0.0.1", KAFKA_PORT)
    assert not port_open("127.0.0.1", POSTGRES_PORT)


def me(token: str) -> httpx.Response:
    return httpx.get(f"{API}/v1/users/me", headers={"Authorization": f"Bearer {token}"})


def test_restarting_the_stack_keeps_users_and_the_kafka_log(stack_env: dict[str, str]):
    email = f"restart-{uuid.uuid4().hex[:8]}@example.com"
    credentials = {"email": email, "password": "correct horse"}
    process = start(stack_env)
    try:
        created = httpx.post(f"{API}/v1/users", json={**credentials, "display_name": "Before"})
        assert created.status_code == 201, created.text
        user_id = created.json()["user_id"]
        token = httpx.post(f"{API}/v1/auth/token", json=credentials).json()["access_token"]
        wait_until(
            lambda: me(token).status_code == 200, timeout=60, message="the user in the read model"
        )
    finally:
        stop(process)

    process = start(stack_env)
    try:
        token = httpx.post(f"{API}/v1/auth/token", json=credentials).json()["access_token"]
        answer = me(token)
        assert answer.status_code == 200 and answer.json()["user_id"] == user_id
        events = [
            e for e in read_envelopes(KAFKA, "users.events") if str(e.aggregate_id) == user_id
        ]
        assert len(events) == 1  # kept, and not re-published after a clean restart
        later = httpx.post(
            f"{API}/v1/users",
            json={"email": f"after-{email}", "password": "correct horse", "display_name": "After"},
        )
        assert later.status_code == 201
        wait_until(
            lambda: any(
                str(e.aggregate_id) == later.json()["user_id"]
                for e in read_envelopes(KAFKA, "users.events")
            ),
            timeout=60,
            message="the relay to resume after restart",
        )
    finally:
        stop(process)
