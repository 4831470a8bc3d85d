"""Idempotency keys as scenarios: given a command stored with a key, when the same key
comes again (with the same body, another body, or racing the first), then what is stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError

import domain.catalog
import domain.inventory
import domain.pricing_context
from domain.catalog import Catalog, Product, SkuTaken
from domain.coupons import CouponCodeTaken
from domain.errors import InvalidInput
from domain.idempotency import (
    IdempotencyKey,
    IdempotencyKeyReused,
    claim_key,
    find_key,
    result_as_left,
    save_with_key,
)
from domain.inventory import Inventory
from domain.pricing_context import Pricing
from domain.stock import Stock

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
SELLER = uuid4()


def stored(application: Application[Any]) -> int:
    """How many events the application's store holds."""
    return len(application.recorder.select_notifications(start=1, limit=100_000))


def lookup_misses_once(monkeypatch: pytest.MonkeyPatch, module: Any) -> None:
    """The racing request looked the key up just before the first one committed."""
    real = module.find_key
    calls = {"count": 0}

    def racing(*args: Any) -> IdempotencyKey | None:
        calls["count"] += 1
        return None if calls["count"] == 1 else real(*args)

    monkeypatch.setattr(module, "find_key", racing)


def listed(
    catalog: Catalog,
    key: str | None = "k",
    fingerprint: str = "body-1",
    sku: str = "mug-1",
    name: str = "Mug",
) -> UUID:
    return catalog.create_product(
        SELLER, sku, name, "", "kitchen", 4900, "CNY", idempotency_key=key, fingerprint=fingerprint
    )


def stocked(inventory: Inventory) -> UUID:
    product_id = uuid4()
    inventory.register_product(product_id, SELLER)
    return product_id


def receive(
    inventory: Inventory,
    product_id: UUID,
    quantity: int,
    key: str | None = "k",
    fingerprint: str = "body-1",
) -> int:
    return inventory.receive_stock(
        product_id, SELLER, quantity, NOW, idempotency_key=key, fingerprint=fingerprint
    )


def test_a_claim_remembers_the_result_and_the_version_it_was_left_at() -> None:
    product = Product.create(SELLER, "mug-1", "Mug", "", "kitchen", 4900, "CNY")
    claim = claim_key("scope", "k", "f", product)
    assert claim is not None
    assert (claim.result_id, claim.result_version, claim.replay("f")) == (product.id, 1, product.id)
    with pytest.raises(IdempotencyKeyReused) as raised:
        claim.replay("g")
    assert raised.value.code == "idempotency_key_reused"
    assert claim_key("scope", None, "f", product) is None
    assert IdempotencyKey("scope", "old", "f", product.id).result_version is None


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_keys_are_one_to_255_characters(key: str) -> None:
    product = Product.create(SELLER, "mug-1", "Mug", "", "kitchen", 4900, "CNY")
    with pytest.raises(InvalidInput):
        claim_key("scope", key, "f", product)
    with pytest.raises(InvalidInput):
        find_key(Catalog(), "scope", key)


def test_a_second_claim_of_a_key_saves_nothing_and_answers_the_first() -> None:
    catalog = Catalog()
    first = Product.create(SELLER, "mug-1", "Mug", "", "kitchen", 4900, "CNY")
    assert save_with_key(catalog, claim_key("scope", "k", "f", first), first) is None
    before = stored(catalog)
    racer = Product.create(SELLER, "mug-2", "Mug", "", "kitchen", 4900, "CNY")
    earlier = save_with_key(catalog, claim_key("scope", "k", "f", racer), racer)
    assert earlier is not None and earlier.replay("f") == first.id
    assert stored(catalog) == before
    assert result_as_left(catalog, earlier, "f", Product).id == first.id
    with pytest.raises(TypeError):
        result_as_left(catalog, earlier, "f", Stock)


def test_a_collision_that_is_not_the_key_still_raises() -> None:
    catalog = Catalog()
    product = Product.create(SELLER, "mug-1", "Mug", "", "kitchen", 4900, "CNY")
    catalog.save(product)
    stale = catalog.get_product(product.id)
    catalog.update_product(product.id, SELLER, name="Mug II")
    stale.update(SELLER, name="Mug III")
    with pytest.raises(IntegrityError):
        save_with_key(catalog, claim_key("scope", "k", "f", stale), stale)
    assert find_key(catalog, "scope", "k") is None


def test_listing_twice_with_one_key_lists_once() -> None:
    catalog = Catalog()
    product_id = listed(catalog)
    before = stored(catalog)
    assert listed(catalog) == product_id
    assert stored(catalog) == before


def test_one_key_with_another_listing_is_refused_not_taken() -> None:
    catalog = Catalog()
    listed(catalog)
    before = stored(catalog)
    with pytest.raises(IdempotencyKeyReused):
        listed(catalog, fingerprint="body-2", name="Other mug")
    with pytest.raises(IdempotencyKeyReused):
        listed(catalog, fingerprint="body-2", sku="mug-2")
    assert stored(catalog) == before
    assert catalog.find_product_id("mug-2") is None
    with pytest.raises(SkuTaken):
        listed(catalog, key="another key")


def test_a_listing_racing_its_retry_is_stored_once(monkeypatch: pytest.MonkeyPatch) -> None:
    catalog = Catalog()
    product_id = listed(catalog)
    before = stored(catalog)
    lookup_misses_once(monkeypatch, domain.catalog)
    assert listed(catalog) == product_id
    assert stored(catalog) == before


def test_a_change_repeated_with_its_key_answers_the_product_as_it_left_it() -> None:
    catalog = Catalog()
    product_id = listed(catalog, key=None)
    first = catalog.update_product(
        product_id, SELLER, idempotency_key="k", fingerprint="f", name="Mug II"
    )
    catalog.update_product(product_id, SELLER, name="Mug III")
    before = stored(catalog)
    again = catalog.update_product(
        product_id, SELLER, idempotency_key="k", fingerprint="f", name="Mug II"
    )
    assert (again.name, again.version) == ("Mug II", first.version) == ("Mug II", 2)
    assert stored(catalog) == before
    assert catalog.get_product(product_id).name == "Mug III"
    with pytest.raises(IdempotencyKeyReused):
        catalog.update_product(
            product_id, SELLER, idempotency_key="k", fingerprint="g", name="Mug IV"
        )
    assert stored(catalog) == before


def test_receiving_twice_with_one_key_receives_once() -> None:
    inventory = Inventory()
    mug = stocked(inventory)
    assert receive(inventory, mug, 5) == 5
    before = stored(inventory)
    assert receive(inventory, mug, 5) == 5
    assert receive(inventory, mug, 3, key="another key") == 8
    assert receive(inventory, mug, 5) == 5  # the first answer, not today's count
    assert inventory.get_stock(mug).on_hand == 8
    assert stored(inventory) == before + 2  # the other key's receipt and its claim


def test_one_key_with_another_receipt_is_refused_and_stores_nothing() -> None:
    inventory = Inventory()
    mug, cup = stocked(inventory), stocked(inventory)
    receive(inventory, mug, 5)
    before = stored(inventory)
    with pytest.raises(IdempotencyKeyReused):
        receive(inventory, mug, 6, fingerprint="body-2")
    with pytest.raises(IdempotencyKeyReused):
        receive(inventory, cup, 5, fingerprint="body-for-cup")
    assert stored(inventory) == before
    assert (inventory.get_stock(mug).on_hand, inventory.get_stock(cup).on_hand) == (5, 0)


def test_a_receipt_racing_its_retry_is_stored_once(monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = Inventory()
    mug = stocked(inventory)
    receive(inventory, mug, 5)
    before = stored(inventory)
    lookup_misses_once(monkeypatch, domain.inventory)
    assert receive(inventory, mug, 5) == 5
    assert stored(inventory) == before
    assert inventory.get_stock(mug).on_hand == 5


def test_keys_are_per_seller() -> None:
    inventory = Inventory()
    mine, theirs = stocked(inventory), uuid4()
    other_seller = uuid4()
    inventory.register_product(theirs, other_seller)
    receive(inventory, mine, 5)
    assert (
        inventory.receive_stock(
            theirs, other_seller, 2, NOW, idempotency_key="k", fingerprint="body-1"
        )
        == 2
    )


def promoted(pricing: Pricing, key: str | None = "k", fingerprint: str = "body-1") -> UUID:
    return pricing.create_promotion(
        SELLER,
        idempotency_key=key,
        fingerprint=fingerprint,
        name="twenty",
        kind="percent_off",
        terms={"percent_off": 20},
        scope={"seller_id": SELLER},
        starts_at=NOW,
        ends_at=NOW + timedelta(days=1),
    ).id


def ruled(pricing: Pricing, key: str | None = "k", fingerprint: str = "body-1") -> UUID:
    return pricing.create_rule(
        SELLER,
        idempotency_key=key,
        fingerprint=fingerprint,
        name="hot",
        kind="demand",
        scope={"seller_id": SELLER},
        params={"step_percent": 10, "sales_per_step": 2},
        floor=900,
        ceiling=1200,
    ).id


def couponed(
    pricing: Pricing, code: str | None, key: str | None = "k", fingerprint: str = "body-1"
) -> str:
    return pricing.create_coupon(
        SELLER,
        code,
        idempotency_key=key,
        fingerprint=fingerprint,
        percent_off=10,
        amount_off=None,
        min_order=None,
        scope={"seller_id": SELLER},
        starts_at=NOW,
        ends_at=NOW + timedelta(days=1),
        total_uses=5,
        per_user_uses=1,
    ).code


@pytest.mark.parametrize("create", [promoted, ruled])
def test_a_promotion_or_rule_created_twice_with_one_key_is_created_once(create: Any) -> None:
    pricing = Pricing()
    first = create(pricing)
    before = stored(pricing)
    assert create(pricing) == first
    assert stored(pricing) == before
    with pytest.raises(IdempotencyKeyReused):
        create(pricing, fingerprint="body-2")
    assert stored(pricing) == before
    assert create(pricing, key="another key") != first
    assert len(pricing.all_promotions()) == (2 if create is promoted else 0)


def made_up_coupon(pricing: Pricing, key: str | None = "k", fingerprint: str = "body-1") -> str:
    return couponed(pricing, None, key, fingerprint)


@pytest.mark.parametrize("create", [promoted, ruled, made_up_coupon])
def test_a_promotion_rule_or_coupon_racing_its_retry_is_stored_once(
    monkeypatch: pytest.MonkeyPatch, create: Any
) -> None:
    pricing = Pricing()
    first = create(pricing)
    before = stored(pricing)
    lookup_misses_once(monkeypatch, domain.pricing_context)
    assert create(pricing) == first
    assert stored(pricing) == before


@pytest.mark.parametrize("code", ["SPRING", None])
def test_a_coupon_created_twice_with_one_key_answers_its_code_not_code_taken(
    code: str | None,
) -> None:
    pricing = Pricing()
    first = couponed(pricing, code)
    before = stored(pricing)
    assert couponed(pricing, code) == first  # a made-up code included
    assert stored(pricing) == before
    with pytest.raises(IdempotencyKeyReused):
        couponed(pricing, code, fingerprint="body-2")
    with pytest.raises(CouponCodeTaken):
        couponed(pricing, first, key="another key")
    assert stored(pricing) == before
