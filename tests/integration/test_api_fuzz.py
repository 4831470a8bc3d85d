"""Schemathesis against the real API process and stack (tests/fuzz/schemathesis.toml):
each role's operations with that role's token, inputs valid and invalid by the schema,
every phase (examples, coverage boundaries, fuzzing, and stateful sequences that follow
the links from a new product or order). No answer may be a 5xx (bar the read models'
documented `503 not_yet_visible`), carry an undeclared status or break its schema; every
schema-invalid request must be refused; 405 and `Allow` must be right.

Schemathesis runs as its command-line tool: its pytest plugin does not work with pytest 9.2
(it still sets `Node._nodeid`). Bounded to a few minutes: FUZZ_EXAMPLES examples per
operation and phase (EVENTMART_FUZZ_EXAMPLES for a longer hunt; the seed of each run is
printed, and `EVENTMART_FUZZ_SEED` replays one)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import PROJECT_ROOT
from tests.support import wait_until

FUZZ_EXAMPLES = os.environ.get("EVENTMART_FUZZ_EXAMPLES", "10")
CONFIG = PROJECT_ROOT / "tests" / "fuzz" / "schemathesis.toml"
PASSWORD = "fuzzing password"
# Each role fuzzes the operations it may use (the others answer it 403 before any work).
OPERATIONS = {
    "customer": r"^/v1/(orders|users|auth|reviews|events|recommendations)",
    "seller": r"^/v1/(products|sellers|promotions|pricing|coupons)",
    "admin": r"^(/v1/ops|/healthz|/readyz|/metrics)",
}

pytestmark = pytest.mark.usefixtures(
    "catalog_projection", "orders_projection", "sales_projection", "saga_workers"
)


def login(base_url: str, email: str) -> str | bool:
    answer = httpx.post(f"{base_url}/v1/auth/token", json={"email": email, "password": PASSWORD})
    return answer.status_code == 200 and answer.json()["access_token"]


def token_for(role: str, api: TestClient, base_url: str) -> str:
    """A bearer token of a new user; an admin is made through the Users application, as
    an operator would (no route makes admins)."""
    email = f"fuzz-{role}-{uuid.uuid4().hex[:10]}@example.com"
    if role == "admin":
        services = api.app.state.services
        services.applications.users.register_user(
            email, services.hasher.hash(PASSWORD), "Fuzz admin", "admin"
        )
    else:
        body = {"email": email, "password": PASSWORD, "display_name": "Fuzz", "role": role}
        assert httpx.post(f"{base_url}/v1/users", json=body).status_code == 201
    token = wait_until(lambda: login(base_url, email), message=f"the {role} to log in")
    return str(token)


@pytest.mark.parametrize("role", sorted(OPERATIONS))
def test_the_api_keeps_its_contract(role: str, api: TestClient, api_server: str, tmp_path: Path):
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{api_server}/openapi.json",
        "--header",
        f"Authorization: Bearer {token_for(role, api, api_server)}",
        "--include-path-regex",
        OPERATIONS[role],
        "--max-examples",
        FUZZ_EXAMPLES,
        "--output-sanitize",
        "true",
    ]
    if "EVENTMART_FUZZ_SEED" in os.environ:
        command += ["--seed", os.environ["EVENTMART_FUZZ_SEED"]]
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.checks",
        "PYTHONPATH": str(PROJECT_ROOT),
        "NO_COLOR": "1",
    }
    run = subprocess.run(
        command,
        check=False,  # the exit code is asserted below, with the report
        cwd=tmp_path,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = run.stdout[-12000:]
    assert run.returncode == 0, f"schemathesis found problems as {role}:\n{summary}\n{run.stderr}"
    assert " passed" in run.stdout and " 0 passed" not in run.stdout, summary
