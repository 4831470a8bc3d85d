"""A customer erases their account (DELETE /v1/users/me) on the real stack: they register,
order with an address, review what they received; after the erasure their logins and
tokens are refused, the read models keep their order's lines and money and their review's
rating and text under "Deleted user", and their e-mail, name and address are nowhere to be
read, neither in the read models, the event stores nor the topics."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from eventmart.settings import Settings
from projections.reviews import DELETED_USER
from tests.integration import test_reviews
from tests.integration.test_reviews import listing, received, review
from tests.shop import Customer, Seller
from tests.support import wait_until

shop = test_reviews.shop  # the stack the reviews tests run on: saga, projections, reviews
admin = test_reviews.admin


def erase(person: Customer, body: Any = None, **headers: str) -> Any:
    return person.api.request(
        "DELETE",
        "/v1/users/me",
        json={"password": "correct horse"} if body is None else body,
        headers={**person.headers, **headers},
    )


def users_row(settings: Settings, user_id: str) -> tuple[Any, ...] | None:
    with psycopg.connect(settings.context_dsn("users"), autocommit=True) as conn:
        return conn.execute(
            "SELECT email, display_name, disabled, erased_at FROM users_view WHERE user_id = %s",
            (user_id,),
        ).fetchone()


@pytest.fixture(scope="module")
def erased(shop: TestClient, settings: Settings) -> dict[str, Any]:
    """A customer with a delivered order and a review; the tests below erase them, in order."""
    mark = uuid.uuid4().hex[:10]
    name, street = f"Grace {mark}", f"{mark} Erasure Lane"
    address = {
        "name": name,
        "line1": street,
        "city": "Cambridge",
        "postal_code": "CB2 1TN",
        "country": "GB",
    }
    seller = Seller(shop)
    mug = seller.product(stock=5, price=1999)
    grace = Customer(shop, display_name=name)
    order_id = grace.place([(mug, 2)], address=address)
    grace.wait_for(order_id, "delivered", "completed", timeout=90)
    received(settings, grace, [mug])
    written = review(grace, mug, rating=5, body=f"Sturdy mug {mark}")
    assert written.status_code == 201, written.text
    review_id = written.json()["review_id"]
    wait_until(
        lambda: any(item["review_id"] == review_id for item in listing(shop, mug)),
        timeout=60,
        message="the review to be listed",
    )
    before = grace.view(order_id)
    assert before is not None
    return {
        "customer": grace,
        "name": name,
        "street": street,
        "email": grace.email,
        "product": mug,
        "order_id": order_id,
        "order": before,
        "review_id": review_id,
        "mark": mark,
    }


def test_a_wrong_password_or_a_bad_body_erases_nothing(erased: dict[str, Any], shop: TestClient):
    grace: Customer = erased["customer"]
    wrong = erase(grace, {"password": "not my password"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_credentials"
    for body in ({}, {"password": ""}, {"password": "x", "why": "gdpr"}, {"password": 5}):
        answer = erase(grace, body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["code"] == "invalid_input"
    not_json = grace.api.request(
        "DELETE",
        "/v1/users/me",
        content=b"password=correct horse",
        headers={**grace.headers, "content-type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code == 415, not_json.text
    anonymous = shop.request("DELETE", "/v1/users/me", json={"password": "correct horse"})
    assert anonymous.status_code == 401
    assert grace.get("/v1/users/me").status_code == 200  # still there


def test_after_the_erasure_logins_and_tokens_are_refused(
    erased: dict[str, Any], shop: TestClient, settings: Settings
):
    grace: Customer = erased["customer"]
    answer = erase(grace)
    assert answer.status_code == 202, answer.text
    assert grace.get("/v1/users/me").status_code == 401
    again = erase(grace)  # the token is refused now: nothing more to do
    assert again.status_code == 401
    login = shop.post("/v1/auth/token", json={"email": grace.email, "password": "correct horse"})
    assert login.status_code == 401 and login.json()["error"]["code"] == "invalid_credentials"
    with psycopg.connect(settings.context_dsn("users"), autocommit=True) as conn:
        key = conn.execute(
            "SELECT key, destroyed_at FROM personal_data_keys WHERE subject_id = %s",
            (grace.user_id,),
        ).fetchone()
    assert key is not None and key[0] is None and key[1] is not None


def test_the_read_models_show_the_erasure(
    erased: dict[str, Any],
    shop: TestClient,
    settings: Settings,
    admin: dict[str, str],
):
    grace: Customer = erased["customer"]
    row = wait_until(
        lambda: (found := users_row(settings, grace.user_id)) and found[3] is not None and found,
        timeout=60,
        message="the users read model to show the erasure",
    )
    assert row[:3] == (None, None, True)

    def shown() -> dict[str, Any] | None:
        items = [
            i for i in listing(shop, erased["product"]) if i["review_id"] == erased["review_id"]
        ]
        return items[0] if items and items[0]["author"]["display_name"] == DELETED_USER else None

    item = wait_until(shown, timeout=60, message="the review to show its author deleted")
    assert item["rating"] == 5 and item["body"] == f"Sturdy mug {erased['mark']}"

    # The order keeps its lines and money for the seller's books, and names no one.
    order = shop.get(f"/v1/orders/{erased['order_id']}", headers=admin)
    assert order.status_code == 200, order.text
    kept = order.json()
    assert kept["lines"] == erased["order"]["lines"] and kept["total"] == erased["order"]["total"]
    shown_text = order.text + str(users_row(settings, grace.user_id))
    for personal in (erased["name"], erased["street"], erased["email"]):
        assert personal not in shown_text
