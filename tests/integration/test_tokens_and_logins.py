"""Tokens are checked against the user as they are now, and logins are throttled as OWASP
advises: on the real database, through the HTTP API."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import TokenIssuer
from eventmart.settings import Settings
from tests.conftest import make_test_settings
from tests.shop import Customer
from tests.support import wait_until

PASSWORD = "correct horse"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(api: TestClient, password: str = PASSWORD, role: str = "customer") -> str:
    email = f"{role}-{uuid.uuid4().hex[:12]}@example.com"
    answer = api.post(
        "/v1/users",
        json={"email": email, "password": password, "display_name": "T", "role": role},
    )
    assert answer.status_code == 201, answer.text
    return email


def login(api: TestClient, email: str, password: str = PASSWORD, **headers: str) -> Any:
    return api.post("/v1/auth/token", json={"email": email, "password": password}, headers=headers)


@pytest.fixture()
def operator(eventmart_cli: Any) -> Any:
    """Runs `eventmart ops users ...` in-process against the test database."""

    def run(*args: str, password: str | None = None, exit_code: int = 0) -> Any:
        env = {"EVENTMART_ADMIN_PASSWORD": password} if password else {}
        return eventmart_cli("ops", "users", *args, exit_code=exit_code, env=env)

    return run


@pytest.fixture()
def ops(operator: Any) -> Any:
    """The JSON an `eventmart ops users` command that succeeds prints."""

    def run(*args: str, password: str | None = None) -> dict[str, Any]:
        return json.loads(operator(*args, password=password).stdout)

    return run


def test_a_token_signed_with_any_other_key_is_401(api: TestClient, settings: Settings):
    customer = Customer(api)
    assert api.get("/v1/orders", headers=customer.headers).status_code == 200
    user_id = uuid.UUID(customer.user_id)
    for key in (
        "dev-only-secret-change-me-0123456789abcdef",  # the default key the code once had
        secrets.token_urlsafe(32),
        settings.secret_key + "x",
    ):
        forged = TokenIssuer(key, 60).issue(user_id, "admin")
        answer = api.get("/v1/orders", headers=bearer(forged))
        assert answer.status_code == 401, key
        assert answer.json()["error"]["code"] == "invalid_token"
        assert api.get("/v1/ops/sagas", headers=bearer(forged)).status_code == 401


def test_a_valid_token_for_a_user_that_does_not_exist_is_401(api: TestClient, settings: Settings):
    nobody = TokenIssuer.for_settings(settings).issue(uuid.uuid4(), "admin")
    for path in ("/v1/users/me", "/v1/orders", "/v1/ops/sagas"):
        answer = api.get(path, headers=bearer(nobody))
        assert answer.status_code == 401, path
        assert answer.json()["error"]["code"] == "invalid_token"


def heard_of(api: TestClient, user_id: str) -> None:
    """Until the API process heard the users store announce the change (the trigger's
    notification, delivered at commit: about a millisecond), it may answer from memory."""
    directory = api.app.state.services.directory  # type: ignore[attr-defined]
    wait_until(lambda: directory.unchanged.get(user_id) is None, timeout=5, message="notified")


def test_a_disabled_user_is_401_at_once_and_back_when_enabled(api: TestClient, ops):
    customer = Customer(api)
    assert api.get("/v1/orders", headers=customer.headers).status_code == 200
    directory = api.app.state.services.directory  # type: ignore[attr-defined]
    assert directory.unchanged.get(customer.user_id) is not None  # answered from memory next
    assert ops("disable", customer.email)["disabled"] is True
    heard_of(api, customer.user_id)
    answer = api.get("/v1/orders", headers=customer.headers)  # the token they already hold
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_token"
    assert login(api, customer.email).status_code == 401  # and no new one
    assert ops("enable", customer.user_id)["disabled"] is False
    heard_of(api, customer.user_id)
    assert api.get("/v1/orders", headers=customer.headers).status_code == 200
    assert login(api, customer.email).status_code == 200


def test_a_demoted_admin_loses_operations_access_at_once(api: TestClient, ops):
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    created = ops("create-admin", email, "--display-name", "Root", password="operator pass")
    assert created["role"] == "admin"
    answer = login(api, email, "operator pass")
    assert answer.status_code == 200, answer.text
    admin = bearer(answer.json()["access_token"])
    assert api.get("/v1/ops/sagas", headers=admin).status_code == 200

    assert ops("set-role", email, "customer")["changed"] is True
    heard_of(api, created["user_id"])
    demoted = api.get("/v1/ops/sagas", headers=admin)  # at once, with the same token
    assert demoted.status_code == 403 and demoted.json()["error"]["code"] == "forbidden"

    assert ops("set-role", created["user_id"], "admin")["role"] == "admin"
    heard_of(api, created["user_id"])
    assert api.get("/v1/ops/sagas", headers=admin).status_code == 200


@pytest.fixture(scope="module")
def admin_headers(api: TestClient) -> dict[str, str]:
    services = api.app.state.services  # type: ignore[attr-defined]
    email = f"admin-{uuid.uuid4().hex[:12]}@example.com"
    services.applications.users.create_admin(email, services.hasher.hash(PASSWORD), "Root")
    answer = login(api, email)
    assert answer.status_code == 200, answer.text
    return bearer(answer.json()["access_token"])


def test_an_admin_disables_and_enables_a_user_over_http(api: TestClient, admin_headers):
    customer = Customer(api)
    assert api.get("/v1/orders", headers=customer.headers).status_code == 200
    disabled = api.post(f"/v1/ops/users/{customer.user_id}/disable", headers=admin_headers)
    assert disabled.status_code == 202, disabled.text
    assert disabled.json() == {
        "user_id": customer.user_id,
        "role": "customer",
        "disabled": True,
        "changed": True,
    }
    heard_of(api, customer.user_id)
    refused = api.get("/v1/orders", headers=customer.headers)  # the token they already hold
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_token"
    assert login(api, customer.email).status_code == 401
    again = api.post(f"/v1/ops/users/{customer.user_id}/disable", headers=admin_headers)
    assert again.status_code == 202 and again.json()["changed"] is False

    enabled = api.post(f"/v1/ops/users/{customer.user_id}/enable", headers=admin_headers)
    assert enabled.status_code == 202 and enabled.json()["disabled"] is False
    heard_of(api, customer.user_id)
    assert api.get("/v1/orders", headers=customer.headers).status_code == 200
    assert login(api, customer.email).status_code == 200


def test_an_admin_changes_a_role_over_http_and_it_counts_at_once(api: TestClient, admin_headers):
    customer = Customer(api)
    path = f"/v1/ops/users/{customer.user_id}"
    assert api.get("/v1/ops/sagas", headers=customer.headers).status_code == 403
    promoted = api.patch(path, json={"role": "admin"}, headers=admin_headers)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["role"] == "admin" and promoted.json()["changed"] is True
    heard_of(api, customer.user_id)
    assert api.get("/v1/ops/sagas", headers=customer.headers).status_code == 200
    demoted = api.patch(path, json={"role": "customer"}, headers=customer.headers)
    assert demoted.status_code == 200 and demoted.json()["role"] == "customer"
    heard_of(api, customer.user_id)
    assert api.get("/v1/ops/sagas", headers=customer.headers).status_code == 403
    stored = api.app.state.services.applications.users.get_user(uuid.UUID(customer.user_id))  # type: ignore[attr-defined]
    assert stored.role == "customer"


def test_user_management_refuses_non_admins_unknown_users_and_roles(api: TestClient, admin_headers):
    customer = Customer(api)
    path = f"/v1/ops/users/{customer.user_id}"
    assert api.post(f"{path}/disable").status_code == 401
    forbidden = api.post(f"{path}/disable", headers=customer.headers)
    assert forbidden.status_code == 403 and forbidden.json()["error"]["code"] == "forbidden"
    assert api.patch(path, json={"role": "admin"}, headers=customer.headers).status_code == 403
    nobody = f"/v1/ops/users/{uuid.uuid4()}"
    for answer in (
        api.post(f"{nobody}/enable", headers=admin_headers),
        api.patch(nobody, json={"role": "seller"}, headers=admin_headers),
    ):
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "user_not_found"
    for body in ({"role": "root"}, {}, {"role": "seller", "disabled": True}):
        assert api.patch(path, json=body, headers=admin_headers).status_code == 422, body
    assert api.get("/v1/ops/sagas", headers=customer.headers).status_code == 403  # unchanged


def test_operators_commands_refuse_unknown_users_roles_and_short_passwords(operator: Any):
    assert "no user" in operator("disable", "nobody@example.com", exit_code=1).output
    assert operator("set-role", str(uuid.uuid4()), "admin", exit_code=1).output
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    short = operator("create-admin", email, password="short", exit_code=2)
    assert "8 to 72 bytes" in short.output


# Throttling: an API of its own, with a small backoff, and peers of its own (the throttle's
# table is shared with the session's API, as it is between API processes).
THROTTLED = {
    "login_free_failures": 3,
    "login_backoff_base_seconds": 1.0,
    "login_backoff_max_seconds": 60.0,
    "login_address_max_failures": 30,
    "trusted_proxies": "127.0.0.1",
}


@pytest.fixture(scope="module")
def throttled_app(infrastructure, relay, users_projection) -> Iterator[Any]:
    yield create_app(make_test_settings(**THROTTLED))


def client_at(app: Any, peer: str) -> TestClient:
    return TestClient(app, client=(peer, 40000))


@pytest.fixture(scope="module")
def office(throttled_app: Any) -> Iterator[TestClient]:
    """Everyone behind one office NAT: one address."""
    with client_at(throttled_app, f"203.0.113.{secrets.randbelow(250) + 1}") as client:
        yield client


def test_fifteen_people_log_in_from_one_address_within_a_minute(office: TestClient):
    emails = [register(office) for _ in range(15)]
    started = time.monotonic()
    answers = [login(office, email) for email in emails]
    assert [a.status_code for a in answers] == [200] * 15
    assert time.monotonic() - started < 60


def test_wrong_passwords_back_one_account_off_exponentially_not_the_others(office: TestClient):
    victim, bystander = register(office), register(office)
    statuses, waits = [], []
    for _ in range(15):
        answer = login(office, victim, "not the password")
        statuses.append(answer.status_code)
        if answer.status_code == 429:
            waits.append(int(answer.headers["Retry-After"]))
            assert answer.json()["error"]["code"] == "too_many_attempts"
            assert login(office, bystander).status_code == 200  # others log in meanwhile
            if len(waits) in (1, 3):  # honour two of the waits, so failures keep counting
                time.sleep(waits[-1])
    assert statuses[:3] == [401, 401, 401]  # the free failures
    assert statuses[3] == 429 and statuses.count(401) == 5 and statuses.count(429) == 10
    # Read right after the 3rd, 4th and 5th failures: 1 s, 2 s, 4 s. It doubles.
    assert (waits[0], waits[1], waits[3]) == (1, 2, 4)
    assert all(1 <= wait <= 4 for wait in waits)
    # The right password is refused while the account waits, and accepted after it.
    answer = login(office, victim)
    assert answer.status_code == 429
    time.sleep(int(answer.headers["Retry-After"]))
    assert login(office, victim).status_code == 200
    assert login(office, victim, "not the password").status_code == 401  # counting afresh


def test_a_client_address_over_its_failure_limit_waits(throttled_app: Any):
    limit = THROTTLED["login_address_max_failures"]
    with client_at(throttled_app, "192.0.2.77") as client:
        email = register(client)
        for _ in range(limit):  # one failure on each of many accounts
            assert (
                login(client, f"nobody-{uuid.uuid4().hex}@example.com", "x" * 8).status_code == 401
            )
        refused = login(client, email)  # even the right password, from this address
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 60


def test_x_forwarded_for_from_an_untrusted_peer_changes_nothing(throttled_app: Any):
    limit = THROTTLED["login_address_max_failures"]
    with client_at(throttled_app, "192.0.2.78") as untrusted:
        for n in range(limit):
            spoofed = {"X-Forwarded-For": f"10.9.{n}.1"}
            wrong = login(untrusted, f"nobody-{uuid.uuid4().hex}@example.com", "x" * 8, **spoofed)
            assert wrong.status_code == 401
        fresh = {"X-Forwarded-For": "10.99.99.99"}
        assert login(untrusted, "anyone@example.com", "x" * 8, **fresh).status_code == 429
    # From a trusted proxy, each client behind it has its own count.
    with client_at(throttled_app, "127.0.0.1") as proxy:
        hidden = f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250)}"
        for n in range(limit):
            behind = {"X-Forwarded-For": f"{hidden}, 127.0.0.1"}
            assert (
                login(proxy, f"n-{uuid.uuid4().hex}@example.com", "x" * 8, **behind).status_code
                == 401
            )
        assert (
            login(proxy, "a@example.com", "x" * 8, **{"X-Forwarded-For": hidden}).status_code == 429
        )
        other = {"X-Forwarded-For": "10.255.255.254"}
        assert login(proxy, "a@example.com", "x" * 8, **other).status_code == 401


def test_a_password_over_72_bytes_never_logs_in(api: TestClient):
    password = "é" * 36  # 72 bytes in UTF-8, the most bcrypt takes
    email = register(api, password=password)
    assert login(api, email, password).status_code == 200
    for longer in (password + "x", password + password):
        answer = login(api, email, longer)
        assert answer.status_code == 401, longer
        assert answer.json()["error"]["code"] == "invalid_credentials"
