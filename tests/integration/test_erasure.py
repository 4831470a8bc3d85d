"""A customer erases their account (DELETE /v1/users/me) on the real stack: they register,
view and order with an address, review what they received; after the erasure their logins
and tokens are refused, the read models keep their order's lines and money and their
review's rating and text under "Deleted user", the seller's sales and the product's rating
are unchanged, and their e-mail, name and address are nowhere to be read: not in any table
of any context's database (read models, event stores, tracking), not on any topic read from
the beginning, not in an export without redaction, a replay, a time-travel read, a rebuild
or the workers' logs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from eventmart.broker import list_topics
from eventmart.personal_data import ERASED
from eventmart.sealing import open_envelope
from eventmart.settings import Settings
from eventmart.wiring import field_cipher
from projections.reviews import DELETED_USER
from tests.conftest import REVIEW_GROUPS
from tests.integration import test_reviews
from tests.integration.test_reviews import listing, received, review
from tests.shop import Customer, Seller, product_view
from tests.support import read_envelopes, read_topic, wait_for_groups_to_join, wait_until

admin = test_reviews.admin


@pytest.fixture(scope="module")
def shop(
    api: TestClient,
    settings: Settings,
    saga_workers: Any,
    catalog_projection: Any,
    orders_projection: Any,
    sales_projection: Any,
    review_workers: Any,
) -> TestClient:
    """The reviews tests' stack, and the seller's sales read model."""
    wait_for_groups_to_join(settings.bootstrap_servers, REVIEW_GROUPS, timeout=180)
    return api


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
    viewed = grace.post("/v1/events/view", {"product_id": mug, "source": "direct"})
    assert viewed.status_code == 202, viewed.text
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
    rating = wait_until(
        lambda: (found := product_view(shop, mug)["rating"])["count"] == 1 and found,
        timeout=60,
        message="the product's rating to count the review",
    )
    sales = wait_until(
        lambda: (found := sales_of(seller))["totals"]["units"] == 2 and found,
        timeout=60,
        message="the seller's sales to show the order",
    )
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
        "seller": seller,
        "rating": rating,
        "sales": sales,
    }


def sales_of(seller: Seller) -> dict[str, Any]:
    answer = seller.get("/v1/sellers/me/sales")
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def personal_texts(erased: dict[str, Any]) -> list[str]:
    return [erased["name"], erased["street"], erased["email"]]


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


def test_the_sellers_sales_and_the_products_rating_are_unchanged(
    erased: dict[str, Any], shop: TestClient
):
    # Runs after the read models showed the erasure: nothing the sellers count has moved.
    assert sales_of(erased["seller"]) == erased["sales"]
    assert product_view(shop, erased["product"])["rating"] == erased["rating"]


def tables_holding(dsn: str, texts: list[str]) -> list[str]:
    """Every table of the database with a row whose text (bytea columns as hex) holds one of
    the texts: read models, event stores (their `state` is bytea), tracking, keys."""
    needles = [*texts, *(text.encode().hex() for text in texts)]
    holding = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
        for schema, table in tables:
            found = conn.execute(
                sql.SQL(
                    "SELECT EXISTS (SELECT 1 FROM {} t, unnest(%s::text[]) n "
                    "WHERE strpos(t::text, n) > 0)"
                ).format(sql.Identifier(schema, table)),
                (needles,),
            ).fetchone()
            if found and found[0]:
                holding.append(f"{schema}.{table}")
    return holding


def test_the_personal_data_is_unreadable_in_every_table_and_every_topic(
    erased: dict[str, Any], settings: Settings
):
    personal = personal_texts(erased)
    databases = {settings.dsn, *settings.context_dsns().values()}
    assert [t for dsn in sorted(databases) for t in tables_holding(dsn, personal)] == []
    grace: Customer = erased["customer"]
    seen = 0
    topics = sorted(asyncio.run(list_topics(settings.bootstrap_servers)))
    assert {"users.events", "orders.events", "reviews.events", "behavior.events"} <= set(topics)
    for topic in topics:
        for record in read_topic(settings.bootstrap_servers, topic):
            for text in personal:
                assert text.encode() not in (record.value or b""), (topic, text)
                assert all(text.encode() not in (v or b"") for _, v in record.headers), topic
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


def test_a_replay_and_a_time_travel_read_erased(erased: dict[str, Any], eventmart_cli: Any):
    personal = personal_texts(erased)
    replayed = eventmart_cli(
        "analyst", "replay", "--group", f"erasure-replay-{erased['mark']}", "--from-beginning"
    )
    assert "order.placed" in replayed.output
    now = datetime.now(UTC).isoformat()
    order = eventmart_cli("analyst", "as-of", "order", erased["order_id"], "--at", now)
    user = eventmart_cli("analyst", "as-of", "user", erased["customer"].user_id, "--at", now)
    # The order's state never shows its address; the user's shows the sealed fields erased.
    assert erased["order_id"] in order.output and ERASED in user.output
    for text in personal:
        assert text not in replayed.output + order.output + user.output


def test_the_workers_logs_never_held_the_personal_data(erased: dict[str, Any], worker_logs: Path):
    logs = sorted(worker_logs.glob("*.log"))
    assert logs, "the workers write their logs here"
    for log in logs:
        text = log.read_text(errors="replace")
        for personal in personal_texts(erased):
            assert personal not in text, log.name
