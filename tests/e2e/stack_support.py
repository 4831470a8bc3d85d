"""Driving a whole `eventmart up` stack from a test, as an operator meets it: its own
ports and state directory, orders placed over plain HTTP at a steady rate (a client that
retries a 503 or a refused connection with the same Idempotency-Key), processes killed
with SIGKILL by the pid `eventmart status` shows, readiness watched from outside."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from eventmart.settings import PROJECT_ROOT, Settings
from eventmart.supervision import read_state
from tests.saga_invariants import PlacedOrder
from tests.shop import Customer, Seller
from tests.support import free_port, wait_until


@dataclass
class UpStack:
    """One `eventmart up --brokers N` in a state directory of its own."""

    name: str
    brokers: int = 1
    state: Path = field(init=False)
    postgres_port: int = field(init=False)
    kafka_port: int = field(init=False)
    api_port: int = field(init=False)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.state = PROJECT_ROOT / ".eventmart" / f"e2e-{self.name}"
        # PostgreSQL, then each node's broker and controller ports side by side, the API.
        base = free_port(2 + 2 * self.brokers)
        self.postgres_port, self.kafka_port = base, base + 1
        self.api_port = base + 1 + 2 * self.brokers

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def settings(self) -> Settings:
        return Settings(
            state_dir=self.state,
            env="test",
            postgres_port=self.postgres_port,
            kafka_port=self.kafka_port,
            kafka_controller_port=self.kafka_port + 1,
            kafka_brokers=self.brokers,
            api_port=self.api_port,
            payment_timeout_seconds=120,
        )

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")
        }
        env.update(
            {
                "EVENTMART_STATE_DIR": str(self.state),
                "EVENTMART_ENV": "test",
                "EVENTMART_BCRYPT_ROUNDS": "4",
                "EVENTMART_POSTGRES_PORT": str(self.postgres_port),
                "EVENTMART_KAFKA_PORT": str(self.kafka_port),
                "EVENTMART_KAFKA_CONTROLLER_PORT": str(self.kafka_port + 1),
                "EVENTMART_KAFKA_BROKERS": str(self.brokers),
                "EVENTMART_API_PORT": str(self.api_port),
                "EVENTMART_CARRIER_STEP_SECONDS": "1",
                "EVENTMART_AUTO_COMPLETE_SECONDS": "2",
                "EVENTMART_SAGA_TIMER_SECONDS": "0.25",
                "EVENTMART_PAYMENT_TIMEOUT_SECONDS": "120",
                # Small JVMs: three brokers share two cores with everything else.
                "EVENTMART_KAFKA_HEAP": "320m" if self.brokers > 1 else "384m",
            }
        )
        return env

    def start(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir(parents=True)
        log = open(self.state / "up.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", "up", "--no-demo"],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
        wait_until(
            lambda: self.process is not None and self.process.poll() is None and self.ready(),
            timeout=240,
            interval=0.5,
            message=f"the stack to be ready (see {self.state / 'up.log'})",
        )

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.api}/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False

    def readiness(self) -> dict[str, Any]:
        try:
            answer = httpx.get(f"{self.api}/readyz", timeout=10)
            return {"code": answer.status_code, **answer.json()}
        except (httpx.HTTPError, ValueError) as error:
            return {"code": None, "error": type(error).__name__}

    def processes(self) -> dict[str, dict[str, Any]]:
        """`eventmart status --json`, by process name."""
        done = subprocess.run(
            [sys.executable, "-m", "entrypoints", "status", "--json"],
            env=self.env(),
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            check=False,
        )
        assert done.returncode in (0, 3), done.stdout + done.stderr
        return {p["name"]: p for p in json.loads(done.stdout)["processes"]}

    def kill(self, name: str) -> dict[str, Any]:
        """SIGKILL one supervised process; returns what status said of it before."""
        before = self.processes()[name]
        assert before["pid"] and before["state"] == "running", before
        os.kill(before["pid"], signal.SIGKILL)
        return before

    def wait_restarted(self, name: str, before: dict[str, Any], timeout: float = 180) -> None:
        """Until the supervisor has started `name` again and it is up."""
        wait_until(
            lambda: (
                (now := self.processes()[name])["restarts"] > before["restarts"]
                and now["pid"] != before["pid"]
                and now["state"] == "running"
                and now["health"] == "up"
            ),
            timeout=timeout,
            interval=0.5,
            message=f"{name} restarted by the supervisor and up",
        )

    def red_then_green(self, *, red_within: float = 30, green_within: float = 240) -> str:
        """Readiness fails (returns what it said then), then passes again."""
        red = wait_until(
            lambda: (said := self.readiness())["code"] != 200 and said,
            timeout=red_within,
            interval=0.1,
            message="readiness to go red",
        )
        wait_until(self.ready, timeout=green_within, interval=0.5, message="readiness green")
        return json.dumps(red.get("checks") or red)

    def supervised(self) -> dict[str, Any] | None:
        return read_state(self.state)


@dataclass
class Attempt:
    at: float
    accepted: bool


class OrderStream(threading.Thread):
    """Orders at a steady rate over HTTP, `total` of them or until stopped. Each placement
    is retried (same Idempotency-Key) while the answer is 503 or the API does not answer at
    all; anything else but 202 is a failure. Notes every attempt's time and outcome, for
    the refusal windows."""

    def __init__(self, api: str, *, rate: float, total: int, stock: int, seed: int = 3) -> None:
        super().__init__(daemon=True, name="orders")
        self.client = httpx.Client(base_url=api, timeout=10)
        self.rate, self.total = rate, total
        seller = Seller(self.client)  # type: ignore[arg-type] - the same calls as TestClient
        self.products = [seller.product(price=100 * (n + 1), stock=stock) for n in range(3)]
        self.customers = [Customer(self.client) for _ in range(6)]  # type: ignore[arg-type]
        self.rng = random.Random(seed)
        self.placed: list[PlacedOrder] = []
        self.attempts: list[Attempt] = []
        self.failures: list[str] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        for n in range(self.total):
            if self.stopping.is_set():
                return
            due = started + n / self.rate
            time.sleep(max(0.0, due - time.monotonic()))
            self._place(n)

    def _place(self, n: int) -> None:
        customer = self.customers[n % len(self.customers)]
        product = self.rng.choice(self.products)
        token = "tok_declined" if self.rng.random() < 0.1 else "tok_ok"
        body = customer.order_body([(product, 1)], token)
        headers = {**customer.headers, "Idempotency-Key": f"stream-{uuid.uuid4().hex}"}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                answer = self.client.post("/v1/orders", json=body, headers=headers)
            except httpx.HTTPError:
                self.attempts.append(Attempt(time.monotonic(), False))
                time.sleep(0.2)
                continue
            if answer.status_code == 503:
                self.attempts.append(Attempt(time.monotonic(), False))
                time.sleep(0.2)
                continue
            if answer.status_code == 202:
                self.attempts.append(Attempt(time.monotonic(), True))
                self.placed.append(PlacedOrder(answer.json()["order_id"], product, token))
            else:
                self.failures.append(f"{answer.status_code}: {answer.text[:300]}")
            return
        self.failures.append(f"order {n} never accepted")

    def longest_refusal(self) -> float:
        """The longest time from a refused placement to the next accepted one."""
        longest, refused_since = 0.0, None
        for attempt in sorted(self.attempts, key=lambda a: a.at):
            if not attempt.accepted and refused_since is None:
                refused_since = attempt.at
            elif attempt.accepted and refused_since is not None:
                longest = max(longest, attempt.at - refused_since)
                refused_since = None
        return longest

    def refused(self) -> int:
        return sum(1 for a in self.attempts if not a.accepted)

    def stop(self) -> None:
        """No new order after the one being placed; waits for that one."""
        self.stopping.set()
        self.join(timeout=330)

    def wait_for(self, placed: int, timeout: float = 300) -> None:
        wait_until(
            lambda: len(self.placed) >= placed or self.failures or not self.is_alive(),
            timeout=timeout,
            message=f"{placed} orders accepted",
        )
        assert not self.failures, self.failures[:3]
        assert len(self.placed) >= placed, f"the stream ended at {len(self.placed)} orders"
