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

from eventmart.personal_data import ERASED
from eventmart.sealing import open_envelope
from eventmart.settings import Settings
from eventmart.wiring import field_cipher
from projections.reviews import DELETED_USER
from tests.integration import test_reviews
from tests.integration.test_reviews import listing, received, review
from tests.shop import Customer, Seller
from tests.support import read_envelopes, read_topic, wait_until

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
    listed = wait_until(
        lambda: [item for item in listing(shop, mug) if item["review_id"] == review_id],
        timeout=60,
        message="the review to be listed",
    )
    # Sealed in the events, opened by the read models that show them.
    assert listed[0]["author"] == {"display_name": name}
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
    me = grace.get("/v1/users/me")  # still there, and readable
    assert me.status_code == 200, me.text
    assert (me.json()["email"], me.json()["display_name"]) == (grace.email, erased["name"])


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


# Where each context stores its events (eventsourcing's table per application name).
EVENT_STORES = {
    "users": "users_events",
    "orders": "orders_events",
    "reviews": "reviews_events",
    "shipping": "shipping_events",
}
TOPICS = ["users.events", "orders.events", "reviews.events", "shipping.events"]


def test_the_personal_data_is_unreadable_in_the_event_stores_and_the_topics(
    erased: dict[str, Any], settings: Settings
):
    personal = [erased["name"], erased["street"], erased["email"]]
    for context, table in EVENT_STORES.items():
        with psycopg.connect(settings.context_dsn(context), autocommit=True) as conn:
            for text in personal:
                found = conn.execute(
                    f"SELECT count(*) FROM {table} WHERE position(%s::bytea in state) > 0",
                    (text.encode(),),
                ).fetchone()
                assert found == (0,), (table, text)
    grace: Customer = erased["customer"]
    seen = 0
    for topic in TOPICS:
        for record in read_topic(settings.bootstrap_servers, topic):
            for text in personal:
                assert text.encode() not in record.value, (topic, text)
            if record.key == grace.user_id.encode() or record.key == erased["order_id"].encode():
                seen += 1
    assert seen >= 2  # the user's and the order's events are there, sealed
    (registered,) = [
        e
        for e in read_envelopes(settings.bootstrap_servers, "users.events")
        if e.type == "user.registered" and str(e.aggregate_id) == grace.user_id
    ]
    assert registered.payload["email"]["enc"] == "v1"
    cipher = field_cipher(settings)
    assert open_envelope(registered, cipher).payload["email"] == ERASED
    (placed,) = [
        e
        for e in read_envelopes(settings.bootstrap_servers, "orders.events")
        if e.type == "order.placed" and str(e.aggregate_id) == erased["order_id"]
    ]
    address = open_envelope(placed, cipher).payload["shipping_address"]
    assert address == {
        "name": ERASED,
        "line1": ERASED,
        "city": ERASED,
        "postal_code": ERASED,
        "country": "GB",
    }


def test_an_export_without_redaction_and_a_rebuild_read_erased(
    erased: dict[str, Any], settings: Settings, eventmart_cli: Any, tmp_path: Any
):
    eventmart_cli(
        "analyst", "export", "--out", str(tmp_path), "--format", "jsonl", "--no-redact-pii"
    )
    exported = "".join(path.read_text() for path in tmp_path.glob("*.jsonl"))
    assert erased["order_id"] in exported and ERASED in exported
    for text in (erased["name"], erased["street"], erased["email"]):
        assert text not in exported
    eventmart_cli("analyst", "rebuild", "reviews")
    assert listing_after_rebuild(settings, erased["review_id"]) == [(DELETED_USER, 5)]


def listing_after_rebuild(settings: Settings, review_id: str) -> list[tuple[str, int]]:
    with psycopg.connect(settings.context_dsn("reviews"), autocommit=True) as conn:
        return conn.execute(
            "SELECT author_name, rating FROM reviews_view WHERE review_id = %s", (review_id,)
        ).fetchall()
