"""Product detail from memory (api.product_cache): an answer is dropped as soon as its
read-model row changes, a rebuild's swap drops them all, and a lost listener stops the
cache trusting itself. Real PostgreSQL notifications, the API in-process."""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.product_cache import ProductCache
from tests.integration.test_catalog_api import create, detail_when, user_headers
from tests.support import wait_until

# Far below the cache's max_age (30 s): only a notification can make these deadlines.
DEADLINE = 5.0


# Products here are listed through the API and shown by the catalog projection.
pytestmark = pytest.mark.usefixtures("catalog_projection")


def cache_of(api: TestClient) -> ProductCache:
    cache: ProductCache = api.app.state.product_cache  # type: ignore[attr-defined]
    return cache


def cached_product(api: TestClient) -> str:
    product_id = create(api, user_headers(api, "seller"), name="Cached mug")
    detail_when(api, product_id, lambda view: view["name"] == "Cached mug", "the listing")
    wait_until(
        lambda: (
            api.get(f"/v1/products/{product_id}").status_code == 200
            and cache_of(api).get(product_id) is not None
        ),
        timeout=DEADLINE,
        message="the answer to be cached",
    )
    return product_id


def test_a_cached_answer_goes_when_its_row_changes(api: TestClient, db: psycopg.Connection):
    product_id = cached_product(api)
    before = api.get(f"/v1/products/{product_id}").content
    assert cache_of(api).get(product_id) == before  # served from memory

    db.execute("UPDATE products_view SET name = 'Renamed mug' WHERE product_id = %s", (product_id,))

    wait_until(
        lambda: cache_of(api).get(product_id) is None,
        timeout=DEADLINE,
        message="the change to be heard",
    )
    assert api.get(f"/v1/products/{product_id}").json()["name"] == "Renamed mug"


def test_a_change_through_the_api_shows_within_the_projection_lag(api: TestClient):
    seller = user_headers(api, "seller")
    product_id = create(api, seller, name="Priced mug")
    detail_when(api, product_id, lambda view: view["name"] == "Priced mug", "the listing")
    assert (
        api.patch(
            f"/v1/products/{product_id}",
            headers=seller,
            json={"price": {"amount": 5100, "currency": "CNY"}},
        ).status_code
        == 200
    )
    assert (
        api.post(
            f"/v1/products/{product_id}/stock", headers=seller, json={"quantity": 3}
        ).status_code
        == 200
    )
    detail_when(
        api,
        product_id,
        lambda view: view["price"]["amount"] == 5100 and view["stock"]["on_hand"] == 3,
        "the new price and stock",
    )


def test_a_swap_announcement_drops_every_answer(api: TestClient, db: psycopg.Connection):
    product_id = cached_product(api)
    db.execute("SELECT pg_notify('products_view', '*')")
    wait_until(
        lambda: cache_of(api).get(product_id) is None,
        timeout=DEADLINE,
        message="every answer to be dropped",
    )


def test_a_lost_listener_drops_everything_and_listens_again(
    api: TestClient, db: psycopg.Connection
):
    product_id = cached_product(api)
    listeners = db.execute(
        "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN products_view'"
    ).fetchall()
    assert listeners, "the cache listens on its own connection"
    for (pid,) in listeners:
        db.execute("SELECT pg_terminate_backend(%s)", (pid,))

    wait_until(
        lambda: cache_of(api).get(product_id) is None,
        timeout=DEADLINE,
        message="the cache to stop trusting itself",
    )
    # Listening again (a new backend), it caches and drops as before.
    wait_until(
        lambda: (
            db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN products_view' "
                "AND NOT (pid = ANY(%s))",
                ([pid for (pid,) in listeners],),
            ).fetchone()[0]
            > 0
        ),  # type: ignore[index]
        timeout=DEADLINE * 2,
        message="a new listener",
    )
    wait_until(
        lambda: (
            api.get(f"/v1/products/{product_id}").status_code == 200
            and cache_of(api).get(product_id) is not None
        ),
        timeout=DEADLINE,
        message="caching again",
    )
    db.execute("UPDATE products_view SET name = 'Heard again' WHERE product_id = %s", (product_id,))
    wait_until(
        lambda: api.get(f"/v1/products/{product_id}").json()["name"] == "Heard again",
        timeout=DEADLINE,
        message="the change to be heard by the new listener",
    )


def test_detail_from_memory_is_timed_under_its_route(api: TestClient):
    product_id = cached_product(api)
    label = 'route="/v1/products/{product_id}",status="200"'

    local = TestClient(api.app, client=("127.0.0.1", 40000))  # /metrics answers loopback

    def served() -> float:
        for line in local.get("/metrics").text.splitlines():
            if line.startswith("eventmart_http_request_duration_seconds_count") and label in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = served()
    api.get(f"/v1/products/{product_id}")
    assert served() == before + 1


def test_ids_the_route_refuses_still_get_its_answers(api: TestClient):
    assert api.get("/v1/products/not-a-uuid").status_code == 422
    assert api.get("/v1/products/00000000-0000-4000-8000-000000000000").status_code == 404
