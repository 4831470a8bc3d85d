"""Recommendations over HTTP, with a model trained on a small shop and stored where the
API looks: the rules hold whatever the model says (nothing bought, nothing out of stock,
no seller's own products), a new user gets popular products, and bad input is 422."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.recommendations import POPULAR_CACHE_SECONDS
from eventmart.ml import store
from eventmart.ml.interactions import Interaction, Item, interactions_frame, items_frame
from eventmart.ml.recommender import HybridParams, train
from eventmart.settings import Settings
from tests.shop import Customer, Seller
from tests.support import WorkerProcess, child_env, wait_for_groups_to_join, wait_until


@dataclass
class Shop:
    kitchen_seller: Seller
    garden_seller: Seller
    kitchen: list[str]  # the last one has a single unit in stock, and is the best seller
    garden: list[str]
    fan: Customer  # known to the model: viewed kitchen products
    version: str


def recommendations(shopper: Customer | Seller, limit: int = 10) -> dict[str, Any]:
    answer = shopper.get("/v1/users/me/recommendations", limit=limit)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def ids(answer: dict[str, Any]) -> list[str]:
    return [item["product_id"] for item in answer["items"]]


def serve_model(
    api: TestClient, directory: Path, interactions: list[Interaction], items: list[Item]
) -> str:
    trained = train(
        interactions_frame(interactions),
        items_frame(items),
        params=HybridParams(epochs=10, components=8),
        seen={"behavior.events:0": len(interactions)},
    )
    store.save(trained.to_serving(), directory)
    wait_until(
        lambda: (
            (api.get("/v1/recommendations/popular").json()["model"] or {}).get("version")
            == trained.version
        ),
        timeout=15,
        message=f"the API to serve model {trained.version}",
    )
    return trained.version


@pytest.fixture(scope="module")
def inventory_saga(settings: Settings, worker_logs: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(
        "recs-inventory-saga", ["worker", "inventory-saga"], child_env(settings), worker_logs
    ).start()
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def shop(
    api: TestClient,
    settings: Settings,
    catalog_projection: WorkerProcess,
    orders_projection: WorkerProcess,
    sales_projection: WorkerProcess,
) -> Shop:
    suffix = uuid.uuid4().hex[:8]
    kitchen_seller, garden_seller = Seller(api), Seller(api)
    kitchen = [
        kitchen_seller.product(name=f"Kitchen mug {n}", category=f"kitchen-{suffix}", stock=5)
        for n in range(5)
    ] + [kitchen_seller.product(name="Kitchen kettle", category=f"kitchen-{suffix}", stock=1)]
    garden = [
        garden_seller.product(name=f"Garden spade {n}", category=f"garden-{suffix}", stock=5)
        for n in range(6)
    ]
    fan = Customer(api)
    at = datetime(2026, 12, 1, tzinfo=UTC)
    interactions = [
        Interaction.purchase(f"shopper-{n}", product, at + timedelta(minutes=n))
        for n in range(30)
        for product in (kitchen if n % 2 else garden)[n % 3 :: 2]
    ]
    interactions += [Interaction.purchase(f"shopper-{n}", kitchen[-1], at) for n in range(30)]
    interactions += [Interaction.view(fan.user_id, product, at) for product in kitchen[:2]]
    items = [
        Item(product, f"Kitchen mug {n}", "", f"kitchen-{suffix}", 1250.0, kitchen_seller.user_id)
        for n, product in enumerate(kitchen)
    ] + [
        Item(product, f"Garden spade {n}", "", f"garden-{suffix}", 1250.0, garden_seller.user_id)
        for n, product in enumerate(garden)
    ]
    wait_until(
        lambda: api.get(f"/v1/products/{garden[-1]}").status_code == 200,
        message="the catalogue read model",
    )
    version = serve_model(api, settings.models_dir, interactions, items)
    return Shop(kitchen_seller, garden_seller, kitchen, garden, fan, version)


def test_a_known_user_gets_the_model_s_products_never_one_they_bought(api: TestClient, shop: Shop):
    first = recommendations(shop.fan)
    assert first["model"]["version"] == shop.version
    assert first["items"] and all(item["reason"] for item in first["items"])
    item = first["items"][0]
    assert set(item) == {"product_id", "name", "price", "score", "reason"}
    assert item["price"] == {"amount": 1250, "currency": "CNY"}
    memory = api.app.state.recommendations.memory  # type: ignore[attr-defined]
    assert memory.bought.get(shop.fan.user_id) == frozenset(), "answered from memory next time"
    bought = [product for product in ids(first) if product != shop.kitchen[-1]][:2]
    order_id = shop.fan.place([(product, 1) for product in bought])
    # At once, before the orders read model shows the order: this process remembers it.
    assert not set(bought) & set(ids(recommendations(shop.fan)))
    shop.fan.wait_for(order_id, "pending", "reserved", "confirmed", "rejected", timeout=20)
    # Then from the read model: the order's row announces its buyer when it commits, and the
    # API drops what it remembered of the fan as it hears that.
    recently = api.app.state.recently_ordered  # type: ignore[attr-defined]
    recently.seconds = -1.0  # the read model alone decides from now on
    wait_until(
        lambda: not set(bought) & set(ids(recommendations(shop.fan))),
        timeout=5,
        message="the bought products to leave the fan's recommendations",
    )
    recently.seconds = 60.0


def test_a_new_user_gets_popular_products_of_the_categories_they_viewed_first(
    api: TestClient, shop: Shop
):
    newbie = Customer(api)
    cold = recommendations(newbie, limit=5)
    assert cold["items"] and {item["reason"] for item in cold["items"]} == {"popular"}
    viewed = newbie.post("/v1/events/view", {"product_id": shop.garden[0]})
    assert viewed.status_code == 202, viewed.text
    warm = recommendations(newbie, limit=3)
    assert set(ids(warm)) <= set(shop.garden), warm
    assert {item["reason"] for item in warm["items"]} == {"popular"}


def test_a_category_the_model_predates_comes_first_for_a_visitor_who_viewed_it(
    api: TestClient, shop: Shop, db: psycopg.Connection
):
    """A product listed and sold after the model was trained is unknown to it, but its
    sales are in the sales read model: a new user who viewed its category gets it first,
    as API.md says (popular products of the categories they viewed), and so does the
    category's popular list. (The sale is written straight into the read model.)"""
    category = f"lamps-{uuid.uuid4().hex[:8]}"
    lamp = Seller(api).product(name="Desk lamp", category=category, stock=5)
    order_id = uuid.uuid4()
    db.execute(
        "INSERT INTO sale_lines (order_id, product_id, quantity, unit_price, currency, "
        "placed_at, sold_at) VALUES (%s, %s, 1, 1250, 'CNY', now(), now())",
        (order_id, lamp),
    )
    try:
        newbie = Customer(api)
        wait_until(
            lambda: api.get(f"/v1/products/{lamp}").status_code == 200,
            message="the catalogue read model",
        )
        assert newbie.post("/v1/events/view", {"product_id": lamp}).status_code == 202
        wait_until(  # the most sold products are cached for POPULAR_CACHE_SECONDS
            lambda: ids(recommendations(newbie, limit=3))[:1] == [lamp],
            timeout=POPULAR_CACHE_SECONDS + 10,
            message="the lamp first for its category's visitor",
        )
        popular = api.get("/v1/recommendations/popular", params={"category": category}).json()
        assert ids(popular) == [lamp] and popular["items"][0]["reason"] == "popular"
        assert popular["model"]["version"] == shop.version
    finally:  # not in the event log: a rebuild compared with live must not meet it
        db.execute("DELETE FROM sale_lines WHERE order_id = %s", (order_id,))


def test_a_seller_never_gets_their_own_products(shop: Shop):
    for seller, own in ((shop.kitchen_seller, shop.kitchen), (shop.garden_seller, shop.garden)):
        answer = recommendations(seller, limit=50)
        assert answer["items"] and not set(ids(answer)) & set(own)
        popular = seller.get("/v1/recommendations/popular", limit=50).json()
        assert not set(ids(popular)) & set(own)


def test_similar_products_come_from_the_model_and_unknown_ones_are_404(api: TestClient, shop: Shop):
    similar = api.get(f"/v1/products/{shop.garden[0]}/similar", params={"limit": 3})
    assert similar.status_code == 200, similar.text
    assert similar.json()["model"]["version"] == shop.version
    found = ids(similar.json())
    assert found and shop.garden[0] not in found
    assert all(item["reason"].startswith("similar to") for item in similar.json()["items"])
    assert api.get(f"/v1/products/{uuid.uuid4()}/similar").status_code == 404


def test_an_out_of_stock_product_disappears_within_seconds_of_the_stock_event(
    api: TestClient, settings: Settings, shop: Shop, inventory_saga: WorkerProcess
):
    kettle = shop.kitchen[-1]
    popular = api.get("/v1/recommendations/popular", params={"limit": 50}).json()
    assert kettle in ids(popular)
    wait_for_groups_to_join(settings.bootstrap_servers, ["inventory-saga"])
    Customer(api).place([(kettle, 1)])  # the last unit: reserved, none available
    wait_until(
        lambda: (
            kettle not in ids(api.get("/v1/recommendations/popular", params={"limit": 50}).json())
        ),
        timeout=20,
        message="the kettle to leave the popular products",
    )
    assert kettle not in ids(recommendations(shop.fan, limit=50))


def test_bad_input_is_422(api: TestClient, shop: Shop):
    for path in (
        "/v1/recommendations/popular",
        f"/v1/products/{shop.garden[0]}/similar",
    ):
        for limit in (0, 51, "many"):
            answer = api.get(path, params={"limit": limit})
            assert answer.status_code == 422, (path, limit, answer.text)
    assert shop.fan.get("/v1/users/me/recommendations", limit=51).status_code == 422
    assert api.get("/v1/users/me/recommendations").status_code == 401
    assert api.get("/v1/products/not-a-uuid/similar").status_code == 422
