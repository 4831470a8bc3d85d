"""The console's guards over plain HTTP: every page, stream and action redirects an
anonymous visitor to the login and answers a customer's or a seller's session 403; an
action without the session's CSRF token is refused; the cookie's flags; a Content-Security-
Policy without inline scripts."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.routing import Route

from entrypoints.console import routes, users
from tests.browser.conftest import Account, register

OPEN = {"/console/login"}  # the login form and its POST: the only ways in
SAMPLE = {
    "group": "inventory-saga",
    "offset": "0",
    "application": "Orders",
    "notification_id": "1",
    "order_id": str(uuid.uuid4()),
    "action": "skip",
    "user_id": str(uuid.uuid4()),
}
# Per router, the samples its paths' patterns need.
ROUTERS = [(routes.router, {}), (users.router, {"action": "disable"})]


def console_routes(api: TestClient) -> list[tuple[str, str]]:
    """(method, path) of every console route, its parameters filled in."""
    found = []
    for router, samples in ROUTERS:
        sample = SAMPLE | samples
        for route in router.routes:
            if not isinstance(route, Route) or route.path in OPEN:
                continue
            path = re.sub(
                r"\{(\w+)(:\w+)?\}", lambda m, known=sample: known[m.group(1)], route.path
            )
            if path == "/console/orders":
                path += f"?order_id={SAMPLE['order_id']}"
            found += [(m, path) for m in sorted(route.methods or ()) if m != "HEAD"]
    return found


def sign_in(api: TestClient, account: Account) -> TestClient:
    """A client of its own holding the account's console session."""
    client = TestClient(api.app, base_url="http://testserver")
    answer = client.post(
        "/console/login", json={"email": account.email, "password": account.password}
    )
    assert answer.status_code == 204, answer.text
    assert answer.headers["hx-redirect"] == "/console"
    return client


def csrf_token_of(client: TestClient) -> str:
    page = client.get("/console/relay")
    assert page.status_code == 200, page.text
    found = re.search(r'"X-CSRF-Token": "([0-9a-f]{64})"', page.text)
    assert found, "the page carries no CSRF token"
    return found.group(1)


def request(client: TestClient, method: str, path: str, **extra: Any) -> Any:
    body = {"json": {}} if method == "POST" else {}
    return client.request(method, path, follow_redirects=False, **body, **extra)


@pytest.fixture(scope="module")
def admin_client(api: TestClient, admin_account: Account) -> TestClient:
    return sign_in(api, admin_account)


def test_there_is_a_console_route_of_each_kind(api):
    routes = console_routes(api)
    assert ("GET", "/console/groups") in routes and ("GET", "/console/live/groups") in routes
    assert ("POST", "/console/dead-letters/inventory-saga/redrive") in routes
    assert ("POST", "/console/relay/skip") in routes and len(routes) >= 20
    user = SAMPLE["user_id"]
    assert ("POST", f"/console/users/{user}/disable") in routes
    assert ("POST", f"/console/users/{user}/role") in routes and ("GET", "/console/users") in routes


def test_an_anonymous_visitor_is_sent_to_the_login_from_every_page_and_action(api):
    anonymous = TestClient(api.app)
    for method, path in console_routes(api):
        answer = request(anonymous, method, path)
        assert answer.status_code == 303, (method, path, answer.status_code)
        assert answer.headers["location"] == "/console/login", (method, path)
    assert anonymous.get("/console/login").status_code == 200


@pytest.mark.parametrize("role", ["customer", "seller"])
def test_a_customers_or_sellers_session_is_refused_every_page_and_action(api, role):
    client = sign_in(api, register(api, role))
    for method, path in console_routes(api):
        answer = request(client, method, path)
        assert answer.status_code == 403, (role, method, path, answer.status_code)
        assert "inventory-saga" not in answer.text


def test_an_action_without_the_sessions_csrf_token_is_refused(api, admin_client, db):
    body = {"application": "Orders", "notification_id": 987654321}
    refused = admin_client.post("/console/relay/skip", json=body)
    assert refused.status_code == 403 and "CSRF" in refused.text
    forged = admin_client.post("/console/relay/skip", json=body, headers={"X-CSRF-Token": "0" * 64})
    assert forged.status_code == 403
    other_session = csrf_token_of(sign_in(api, register(api, "admin")))
    assert (
        admin_client.post(
            "/console/relay/skip", json=body, headers={"X-CSRF-Token": other_session}
        ).status_code
        == 403
    )
    accepted = admin_client.post(
        "/console/relay/skip", json=body, headers={"X-CSRF-Token": csrf_token_of(admin_client)}
    )
    assert accepted.status_code == 200, accepted.text
    assert "0 skipped" in accepted.text  # no such parked event: nothing to skip, but recorded
    # Once: the refused attempts did nothing, so recorded nothing.
    [(who, what, outcome)] = db.execute(
        "SELECT operator_email, action, outcome FROM console_operator_actions "
        "WHERE target = 'Orders #987654321'"
    ).fetchall()
    assert what == "relay skip" and outcome == "0 skipped" and who.startswith("admin-")


def test_an_admin_disables_enables_and_changes_a_users_role_with_the_csrf_token(
    api, admin_client, admin_account, db
):
    customer = register(api, "customer")
    login = {"email": customer.email, "password": customer.password}
    token = api.post("/v1/auth/token", json=login).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert api.get("/v1/orders", headers=bearer).status_code == 200

    found = admin_client.get("/console/users", params={"who": customer.email.upper()})
    assert found.status_code == 200 and f'data-user-id="{customer.user_id}"' in found.text
    base = f"/console/users/{customer.user_id}"
    assert admin_client.post(f"{base}/disable", json={}).status_code == 403  # no CSRF token
    assert api.get("/v1/orders", headers=bearer).status_code == 200  # so nothing changed

    csrf = {"X-CSRF-Token": csrf_token_of(admin_client)}
    disabled = admin_client.post(f"{base}/disable", json={}, headers=csrf)
    assert disabled.status_code == 200 and 'data-disabled="true"' in disabled.text
    assert api.get("/v1/orders", headers=bearer).status_code == 401  # on their next request
    assert api.post("/v1/auth/token", json=login).status_code == 401
    again = admin_client.post(f"{base}/disable", json={}, headers=csrf)
    assert "(already so)" in again.text

    enabled = admin_client.post(f"{base}/enable", json={}, headers=csrf)
    assert enabled.status_code == 200 and 'data-disabled="false"' in enabled.text
    assert api.get("/v1/orders", headers=bearer).status_code == 200
    promoted = admin_client.post(f"{base}/role", json={"role": "seller"}, headers=csrf)
    assert promoted.status_code == 200 and 'data-role="seller"' in promoted.text
    users = api.app.state.services.applications.users  # type: ignore[attr-defined]
    assert users.get_user(uuid.UUID(customer.user_id)).role == "seller"
    refused = admin_client.post(f"{base}/role", json={"role": "root"}, headers=csrf)
    assert refused.status_code == 422
    unknown = admin_client.post(f"/console/users/{uuid.uuid4()}/disable", json={}, headers=csrf)
    assert unknown.status_code == 404 and "user_not_found" in unknown.text
    missing = admin_client.get("/console/users", params={"who": "nobody@example.com"})
    assert missing.status_code == 404 and 'id="no-user"' in missing.text

    recorded = db.execute(
        "SELECT operator_email, action, outcome FROM console_operator_actions "
        "WHERE target = %s ORDER BY id",
        (f"user {customer.user_id}",),
    ).fetchall()
    assert [(who, what) for who, what, _ in recorded] == [
        (admin_account.email, "user disable"),
        (admin_account.email, "user disable"),
        (admin_account.email, "user enable"),
        (admin_account.email, "user role"),
    ]
    assert recorded[-1][2] == "role seller, enabled"


def test_the_session_cookie_is_httponly_strict_and_secure_over_tls(api, admin_account):
    plain = TestClient(api.app).post(
        "/console/login", json={"email": admin_account.email, "password": admin_account.password}
    )
    tls = TestClient(api.app, base_url="https://testserver").post(
        "/console/login", json={"email": admin_account.email, "password": admin_account.password}
    )
    for answer in (plain, tls):
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in plain.headers["set-cookie"].lower()
    assert "; secure" in tls.headers["set-cookie"].lower()


def test_a_wrong_password_or_an_api_token_opens_no_session(api, admin_account):
    client = TestClient(api.app)
    wrong = client.post("/console/login", json={"email": admin_account.email, "password": "nope"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    token = client.post(
        "/v1/auth/token", json={"email": admin_account.email, "password": admin_account.password}
    ).json()["access_token"]
    client.cookies.set("eventmart_console", token)  # an API token is for another audience
    answer = client.get("/console/groups", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/console/login"


def test_every_page_has_a_content_security_policy_without_inline_script(api, admin_client):
    for path in ["/console/login", "/console/groups", "/console/relay", "/console/models"]:
        answer = admin_client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        policies = answer.headers.get_list("content-security-policy")
        assert len(policies) == 1, policies  # the API's own policy is not added beside it
        directives = dict(
            (part.strip().split(" ", 1) + [""])[:2]
            for part in policies[0].split(";")
            if part.strip()
        )
        assert directives["script-src"] == "'self'", policies
        assert "unsafe-inline" not in policies[0] and "unsafe-eval" not in policies[0]
        assert "<script>" not in answer.text and " on" + "click=" not in answer.text
        assert re.findall(r"<script(?![^>]*\bsrc=)", answer.text) == []
    assert (
        api.get("/v1/products").headers["content-security-policy"].startswith("default-src 'none'")
    )
