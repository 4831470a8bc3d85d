"""The HTTP boundary on the real stack: one error shape for every failure (500 included),
body limits and content types, HEAD and OPTIONS, and the security headers on every answer,
the product fast path's included."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.errors import ErrorBody
from tests.shop import Customer, Seller
from tests.support import wait_until

pytestmark = pytest.mark.usefixtures("catalog_projection", "orders_projection")

TWO_MB = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def product_id(api: TestClient, seller: Seller) -> str:
    product_id = seller.product(price=1250, stock=5)
    wait_until(
        lambda: api.get(f"/v1/products/{product_id}").status_code == 200,
        message="the product to be visible",
    )
    return product_id


def assert_error(answer: Any, status: int, code: str | None = None) -> dict[str, str]:
    """The answer is `status` in the one error shape, and nothing more."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    ErrorBody.model_validate(body)
    assert body["error"]["message"]
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]


def error_cases(seller: Seller, customer: Customer, product_id: str) -> Iterator[tuple]:
    """(what, method, path, request options, status, code) across the routes."""
    bearer = {"Authorization": "Bearer not-a-token"}
    unknown = str(uuid.uuid4())
    yield "no token", "GET", "/v1/users/me", {}, 401, "not_authenticated"
    yield "forged token", "GET", "/v1/orders", {"headers": bearer}, 401, "invalid_token"
    yield "role", "POST", "/v1/orders", {"headers": seller.headers, "json": {}}, 403, "forbidden"
    yield "not an admin", "GET", "/v1/ops/dlq", {"headers": customer.headers}, 403, "forbidden"
    yield (
        "not the owner",
        "PATCH",
        f"/v1/products/{product_id}",
        {"headers": Seller(seller.api).headers, "json": {"name": "Mine now"}},
        403,
        "not_product_owner",
    )
    yield "unknown product", "GET", f"/v1/products/{unknown}", {}, 404, "product_not_found"
    yield (
        "unknown order",
        "GET",
        f"/v1/orders/{unknown}",
        {"headers": customer.headers},
        404,
        "order_not_found",
    )
    yield "unknown path", "GET", "/v1/nothing-here", {}, 404, "not_found"
    yield "wrong method", "DELETE", "/v1/products", {}, 405, "method_not_allowed"
    yield (
        "taken sku",
        "POST",
        "/v1/products",
        {
            "headers": seller.headers,
            "json": {
                "sku": seller.api.get(f"/v1/products/{product_id}").json()["sku"],
                "name": "Again",
                "category": "kitchen",
                "price": {"amount": 1, "currency": "CNY"},
            },
        },
        409,
        "sku_taken",
    )
    yield (
        "not cancellable twice over",
        "POST",
        f"/v1/orders/{unknown}/cancel",
        {"headers": customer.headers},
        404,
        "order_not_found",
    )
    yield (
        "too large",
        "POST",
        "/v1/users",
        {"content": b"{" + b" " * TWO_MB + b"}", "headers": {"content-type": "application/json"}},
        413,
        "payload_too_large",
    )
    yield (
        "not json",
        "POST",
        "/v1/auth/token",
        {"content": b"email=a&password=b", "headers": {"content-type": "text/plain"}},
        415,
        "unsupported_media_type",
    )
    yield (
        "another currency",
        "PATCH",
        f"/v1/products/{product_id}",
        {"headers": seller.headers, "json": {"price": {"amount": 1, "currency": "USD"}}},
        422,
        "currency_mismatch",
    )
    yield "bad id", "GET", "/v1/products/not-a-uuid", {}, 422, "invalid_input"
    yield "bad json", "POST", "/v1/users", {"content": b"{", "headers": _json()}, 422, None
    yield (
        "bad range",
        "GET",
        "/v1/sellers/me/sales?from=2026-02-01T00:00Z&to=2026-01-01T00:00Z",
        {"headers": seller.headers},
        422,
        "invalid_range",
    )
    yield "bad cursor", "GET", "/v1/products?cursor=abc", {}, 422, "invalid_cursor"
    yield "bad limit", "GET", "/v1/orders?limit=0", {"headers": customer.headers}, 422, None
    yield (
        "mass assignment",
        "POST",
        "/v1/users",
        {
            "json": {
                "email": "x@example.com",
                "password": "long enough",
                "display_name": "X",
                "role": "admin",
            }
        },
        422,
        "invalid_input",
    )


def _json() -> dict[str, str]:
    return {"content-type": "application/json"}


def test_every_error_answer_has_the_one_shape(
    api: TestClient, seller: Seller, customer: Customer, product_id: str
):
    seen = set()
    for what, method, path, options, status, code in error_cases(seller, customer, product_id):
        answer = api.request(method, path, **options)
        try:
            assert_error(answer, status, code)
        except AssertionError as failure:
            raise AssertionError(f"{what}: {method} {path}: {failure}") from failure
        seen.add(status)
    assert seen == {401, 403, 404, 405, 409, 413, 415, 422}


def test_an_unexpected_failure_is_a_json_500_and_is_logged(
    api: TestClient, customer: Customer, monkeypatch: pytest.MonkeyPatch, caplog: Any
):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the read model exploded")

    monkeypatch.setattr("api.routes.orders.list_orders", broken)
    with caplog.at_level("ERROR", logger="eventmart.api"):
        answer = customer.get("/v1/orders")
    error = assert_error(answer, 500, "internal_error")
    assert "exploded" not in error["message"]  # no internals leak to the caller
    assert answer.headers["x-content-type-options"] == "nosniff"
    logged = [record for record in caplog.records if record.exc_info]
    assert logged and "the read model exploded" in str(logged[0].exc_info[1])


def test_a_body_over_the_limit_is_refused_before_authentication(api: TestClient):
    body = b'{"sku": "' + b"x" * TWO_MB + b'"}'
    declared = api.post("/v1/products", content=body, headers=_json())  # no token at all
    assert_error(declared, 413, "payload_too_large")
    assert declared.headers["connection"] == "close"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(32):
            yield b" " * (64 * 1024)

    streamed = api.post("/v1/products", content=chunks(), headers=_json())
    assert_error(streamed, 413, "payload_too_large")


def test_a_body_under_the_limit_streams_through(api: TestClient):
    def chunks() -> Iterator[bytes]:
        yield b'{"email": "nobody@example.com",'
        yield b' "password": "' + b"p" * 100 + b'"}'

    answer = api.post("/v1/auth/token", content=chunks(), headers=_json())
    assert_error(answer, 401, "invalid_credentials")


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_a_body_that_is_not_json_is_refused(api: TestClient, content_type: str | None):
    headers = {"content-type": content_type} if content_type else {}
    body = b'{"email": "a@example.com", "password": "x"}'
    answer = api.post("/v1/auth/token", content=body, headers=headers)
    assert_error(answer, 415, "unsupported_media_type")


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_in_its_spellings_is_accepted(api: TestClient, content_type: str):
    body = b'{"email": "nobody@example.com", "password": "whatever it is"}'
    answer = api.post("/v1/auth/token", content=body, headers={"content-type": content_type})
    assert_error(answer, 401, "invalid_credentials")


def test_head_answers_as_get_without_a_body(api: TestClient, customer: Customer, product_id: str):
    for path, headers in [
        (f"/v1/products/{product_id}", {}),  # the fast path, from memory
        ("/v1/products?limit=1", {}),
        ("/v1/users/me", customer.headers),
        ("/healthz", {}),
    ]:
        get, head = api.get(path, headers=headers), api.head(path, headers=headers)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"]
        assert head.headers["x-content-type-options"] == "nosniff"
    assert api.head("/v1/orders").status_code == 401


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/products", "GET, HEAD, POST, OPTIONS"),
        ("/v1/products/{id}", "GET, HEAD, PATCH, OPTIONS"),
        ("/v1/products/{id}/stock", "POST, OPTIONS"),
        ("/v1/users", "POST, OPTIONS"),
        ("/v1/orders/{id}/cancel", "POST, OPTIONS"),
    ],
)
def test_options_and_405_name_every_method_of_the_path(api: TestClient, path: str, allowed: str):
    path = path.replace("{id}", str(uuid.uuid4()))
    options = api.options(path)
    assert options.status_code == 204 and options.content == b""
    assert options.headers["allow"] == allowed
    assert options.headers["x-frame-options"] == "DENY"
    refused = api.put(path, json={})
    assert_error(refused, 405, "method_not_allowed")
    assert refused.headers["allow"] == allowed


def test_options_on_an_unknown_path_is_404(api: TestClient):
    assert_error(api.options("/v1/nothing-here"), 404, "not_found")


SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


def test_every_answer_carries_the_security_headers(
    api: TestClient, customer: Customer, product_id: str
):
    api.get(f"/v1/products/{product_id}")  # the second answer comes from the cache
    token = api.post("/v1/auth/token", json={"email": customer.email, "password": "correct horse"})
    answers = {
        "token": token,
        "profile": customer.get("/v1/users/me"),
        "orders": customer.get("/v1/orders"),
        "product from memory": api.get(f"/v1/products/{product_id}"),
        "products": api.get("/v1/products"),
        "an error": api.get("/v1/users/me"),
        "a refusal at the door": api.post("/v1/users", content=b"x", headers={}),
        "readiness": api.get("/readyz"),
        "the contract": api.get("/openapi.json"),
    }
    for what, answer in answers.items():
        for name, value in SECURITY.items():
            assert answer.headers.get(name) == value, (what, name, answer.headers)
        assert answer.headers["cache-control"] == "no-store", what
    docs = api.get("/docs")
    assert docs.status_code == 200
    assert "https://cdn.jsdelivr.net" in docs.headers["content-security-policy"]
    assert docs.headers["x-frame-options"] == "DENY"
