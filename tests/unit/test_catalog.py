"""Catalogue rules as scenarios: given a product, when a seller acts, then these events."""

from __future__ import annotations

from uuid import uuid4

import pytest

from domain.catalog import (
    Catalog,
    CurrencyMismatch,
    InvalidPrice,
    NotProductOwner,
    Product,
    ProductNotFound,
    SkuTaken,
)
from domain.errors import InvalidInput

SELLER = uuid4()


def listed(**overrides: object) -> Product:
    fields: dict[str, object] = {
        "seller_id": SELLER,
        "sku": "mug-001",
        "name": "Blue mug",
        "description": "350 ml",
        "category": "kitchen",
        "price_amount": 4900,
        "currency": "cny",
    }
    fields.update(overrides)
    product = Product.create(**fields)
    product.collect_events()
    return product


def event_names(product: Product) -> list[str]:
    return [type(e).__name__ for e in product.collect_events()]


def test_creating_a_product_records_created_with_normalised_sku_and_currency() -> None:
    product = Product.create(SELLER, " mug-001 ", "Blue mug", "", "kitchen", 4900, "cny")
    [created] = product.collect_events()
    assert type(created).__name__ == "Created"
    assert (product.sku, product.currency, product.price_amount) == ("MUG-001", "CNY", 4900)


@pytest.mark.parametrize("amount", [0, -1, True, 12.5])
def test_price_must_be_positive_integer_minor_units(amount: object) -> None:
    with pytest.raises(InvalidPrice) as raised:
        Product.create(SELLER, "A", "n", "d", "c", amount, "CNY")
    assert raised.value.code == "invalid_price"


@pytest.mark.parametrize("field", ["name", "category", "sku"])
def test_blank_name_category_or_sku_is_invalid(field: str) -> None:
    with pytest.raises(InvalidInput):
        listed(**{field: "  "})


def test_owner_update_records_only_changed_fields() -> None:
    product = listed()
    product.update(SELLER, name="Big mug", description="350 ml", category="kitchen")
    [updated] = product.collect_events()
    assert type(updated).__name__ == "Updated"
    assert updated.changes == {"name": "Big mug"}
    assert product.name == "Big mug"


def test_price_change_records_old_and_new_amount() -> None:
    product = listed()
    product.update(SELLER, price_amount=3900, currency="CNY")
    [changed] = product.collect_events()
    assert type(changed).__name__ == "PriceChanged"
    assert (changed.old_amount, changed.new_amount) == (4900, 3900)


def test_update_without_changes_records_nothing() -> None:
    product = listed()
    product.update(SELLER, name="Blue mug", price_amount=4900)
    assert event_names(product) == []


def test_only_the_owning_seller_may_change_a_product() -> None:
    product = listed()
    with pytest.raises(NotProductOwner) as raised:
        product.update(uuid4(), name="Mine now")
    assert raised.value.code == "not_product_owner"
    assert event_names(product) == []


def test_currency_cannot_change_and_bad_price_is_refused_before_any_event() -> None:
    product = listed()
    with pytest.raises(CurrencyMismatch):
        product.update(SELLER, price_amount=100, currency="USD")
    with pytest.raises(InvalidPrice):
        product.update(SELLER, name="New", price_amount=0)
    assert event_names(product) == []


def test_catalog_creates_updates_and_reads_products() -> None:
    catalog = Catalog()
    product_id = catalog.create_product(SELLER, "mug-1", "Mug", "", "kitchen", 4900, "CNY")
    catalog.update_product(product_id, SELLER, name="Mug II", price_amount=5900)
    product = catalog.get_product(product_id)
    assert (product.name, product.price_amount, product.version) == ("Mug II", 5900, 3)
    assert catalog.find_product_id("MUG-1") == product_id


def test_sku_is_unique_case_insensitively() -> None:
    catalog = Catalog()
    catalog.create_product(SELLER, "mug-1", "Mug", "", "kitchen", 4900, "CNY")
    with pytest.raises(SkuTaken) as raised:
        catalog.create_product(uuid4(), "MUG-1", "Other", "", "kitchen", 100, "CNY")
    assert raised.value.code == "sku_taken"


def test_unknown_product_and_unknown_field_are_refused() -> None:
    catalog = Catalog()
    with pytest.raises(ProductNotFound):
        catalog.get_product(uuid4())
    product_id = catalog.create_product(SELLER, "mug-1", "Mug", "", "kitchen", 4900, "CNY")
    with pytest.raises(InvalidInput):
        catalog.update_product(product_id, SELLER, sku="OTHER")
