"""Catalogue: products a seller lists, with a SKU unique across the marketplace."""

from __future__ import annotations

from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import Conflict, DomainError, InvalidInput, NotFound
from domain.idempotency import claim_key, find_key, result_as_left, save_with_key
from domain.limits import (
    MAX_CATEGORY_LENGTH,
    MAX_DESCRIPTION_LENGTH,
    MAX_MONEY_AMOUNT,
    MAX_PRODUCT_NAME_LENGTH,
    MAX_SKU_LENGTH,
    check_currency,
    check_text,
    is_whole_number,
)
from domain.reads import ReadsWithoutChanging

SKU_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:sku")
EDITABLE_FIELDS = ("name", "description", "category")
TEXT_LIMITS = {
    "name": MAX_PRODUCT_NAME_LENGTH,
    "description": MAX_DESCRIPTION_LENGTH,
    "category": MAX_CATEGORY_LENGTH,
}


class SkuTaken(Conflict):
    code = "sku_taken"


class NotProductOwner(DomainError):
    """Only the seller who listed a product may change it or its stock (HTTP 403)."""

    code = "not_product_owner"


class ProductNotFound(NotFound):
    code = "product_not_found"


class InvalidPrice(InvalidInput):
    code = "invalid_price"


class CurrencyMismatch(InvalidInput):
    code = "currency_mismatch"


def normalise_sku(sku: str) -> str:
    """SKUs compare case-insensitively, so `ab-1` and `AB-1` cannot both exist."""
    return check_text("sku", sku, MAX_SKU_LENGTH).upper()


def check_price(amount: int) -> None:
    """Money is integer minor units, nothing is given away, and no price overflows a total."""
    if not is_whole_number(amount, MAX_MONEY_AMOUNT):
        raise InvalidPrice(
            f"price amount must be a whole number of minor units from 1 to {MAX_MONEY_AMOUNT}"
        )


def check_field(field: str, value: str) -> str:
    """Names and categories are shown to buyers, so they must say something; a description
    may be empty and may run over several lines."""
    blank_ok = field == "description"
    return check_text(field, value, TEXT_LIMITS[field], blank_ok=blank_ok, multiline=blank_ok)


class Product(Aggregate):
    """A listed product; its price and descriptive fields change by its seller only."""

    @event("Created")
    def __init__(
        self,
        seller_id: UUID,
        sku: str,
        name: str,
        description: str,
        category: str,
        price_amount: int,
        currency: str,
    ) -> None:
        self.seller_id = seller_id
        self.sku = sku
        self.name = name
        self.description = description
        self.category = category
        self.price_amount = price_amount
        self.currency = currency

    @staticmethod
    def create(
        seller_id: UUID,
        sku: str,
        name: str,
        description: str,
        category: str,
        price_amount: int,
        currency: str,
    ) -> Product:
        check_price(price_amount)
        currency = check_currency(currency)
        return Product(
            seller_id=seller_id,
            sku=normalise_sku(sku),
            name=check_field("name", name),
            description=check_field("description", description),
            category=check_field("category", category),
            price_amount=price_amount,
            currency=currency,
        )

    def check_owner(self, seller_id: UUID) -> None:
        if seller_id != self.seller_id:
            raise NotProductOwner(f"product {self.id} belongs to another seller")

    def update(
        self,
        seller_id: UUID,
        *,
        name: str | None = None,
        description: str | None = None,
        category: str | None = None,
        price_amount: int | None = None,
        currency: str | None = None,
    ) -> None:
        """Record only what really changed, so consumers never see empty updates."""
        self.check_owner(seller_id)
        proposed = {"name": name, "description": description, "category": category}
        changes: dict[str, str] = {}
        for field, value in proposed.items():
            if value is None:
                continue
            value = check_field(field, value)
            if value != getattr(self, field):
                changes[field] = value
        if price_amount is not None:
            check_price(price_amount)
        if currency is not None and currency.strip().upper() != self.currency:
            raise CurrencyMismatch(f"prices are in {self.currency}")
        if changes:
            self._update(changes=changes)
        if price_amount is not None and price_amount != self.price_amount:
            self._change_price(old_amount=self.price_amount, new_amount=price_amount)

    @event("Updated")
    def _update(self, changes: dict[str, str]) -> None:
        for field, value in changes.items():
            setattr(self, field, value)

    @event("PriceChanged")
    def _change_price(self, old_amount: int, new_amount: int) -> None:
        self.price_amount = new_amount


class SkuIndex(Aggregate):
    """Makes SKUs unique in the event store: a second claim collides on its derived id."""

    @staticmethod
    def create_id(sku: str, **_: Any) -> UUID:
        return uuid5(SKU_NAMESPACE, sku)

    @event("Claimed")
    def __init__(self, sku: str, product_id: UUID) -> None:
        self.sku = sku
        self.product_id = product_id


class Catalog(ReadsWithoutChanging, Application[UUID]):
    """Command entry point for the catalogue context (tables `catalog_events`)."""

    name = "Catalog"

    def create_product(
        self,
        seller_id: UUID,
        sku: str,
        name: str,
        description: str,
        category: str,
        price_amount: int,
        currency: str,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> UUID:
        """With an Idempotency-Key, the same request again answers the first product."""
        scope = f"create_product:{seller_id}"
        earlier = find_key(self, scope, idempotency_key)
        if earlier is not None:
            return earlier.replay(fingerprint)
        product = Product.create(
            seller_id, sku, name, description, category, price_amount, currency
        )
        index = SkuIndex(sku=product.sku, product_id=product.id)
        claim = claim_key(scope, idempotency_key, fingerprint, product)
        try:
            earlier = save_with_key(self, claim, product, index)
        except IntegrityError as error:
            raise SkuTaken(f"sku {product.sku} is already listed") from error
        return product.id if earlier is None else earlier.replay(fingerprint)

    def update_product(
        self,
        product_id: UUID,
        seller_id: UUID,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        **changes: Any,
    ) -> Product:
        """`changes` holds any of name, description, category, price_amount, currency.
        With an Idempotency-Key, the same request again changes nothing and answers the
        product as the first one left it."""
        unknown = set(changes) - {*EDITABLE_FIELDS, "price_amount", "currency"}
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}")
        scope = f"update_product:{seller_id}"
        earlier = find_key(self, scope, idempotency_key)
        if earlier is not None:
            return result_as_left(self, earlier, fingerprint, Product)
        product = self.get_product(product_id)
        product.update(seller_id, **changes)
        earlier = save_with_key(
            self, claim_key(scope, idempotency_key, fingerprint, product), product
        )
        return product if earlier is None else result_as_left(self, earlier, fingerprint, Product)

    def product_to_read(self, product_id: UUID) -> Product:
        """The product, not a copy (never change it), from memory where the process keeps
        one (domain.reads): for quotes and placement's prices."""
        product = self.read_only(product_id)
        if not isinstance(product, Product):
            raise ProductNotFound(str(product_id))
        return product

    def get_product(self, product_id: UUID) -> Product:
        try:
            product: object = self.repository.get(product_id)
        except AggregateNotFoundError as error:
            raise ProductNotFound(str(product_id)) from error
        if not isinstance(product, Product):
            raise ProductNotFound(str(product_id))
        return product

    def find_product_id(self, sku: str) -> UUID | None:
        try:
            index: SkuIndex = self.repository.get(SkuIndex.create_id(normalise_sku(sku)))
        except (AggregateNotFoundError, InvalidInput):
            return None
        return index.product_id
