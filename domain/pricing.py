"""Pricing: the one function that prices order lines, and the terms it prices them with.

`price_order` is pure (no I/O, no clock: `now` is an argument). The quote
(`GET /v1/products/{id}/price`) and placement (`POST /v1/orders`) both call it, so what a
shopper is shown is what they pay.

How discounts combine, for each line (the documented rule):

1. The list price is the catalogue price, or the price a dynamic rule set (domain.price_rules).
2. Of the promotions that cover the product and are active at `now`, the best
   non-stackable one (the largest discount on the line; ties go to the earliest start,
   then the smallest id) applies first, to the line's list total.
3. Then every stackable promotion, in order of start then id, each on what is left.
4. Then the coupon, if it covers the product and the order reaches its `min_order` (the
   order's total after promotions): a percentage of what is left of each covered line, or
   an amount once per order, taken from the covered lines in order.
5. No discount takes a line below its floor (a price rule's floor x quantity), nor below
   one minor unit per unit (an order is never free: a payment of nothing is no payment):
   a discount that would is cut to fit; a discount cut to nothing is not listed. A coupon
   cut to nothing on every line is not applied (`coupon_takes_nothing_off`): the order
   does not record it, so no use of it is locked or spent.

Overlapping windows are allowed: the rule above resolves them. The line total is
authoritative; `unit_price` is the line total divided by the quantity, rounded down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

PromotionKind = Literal["percent_off", "amount_off", "buy_x_get_y", "tiered"]
PROMOTION_KINDS: tuple[PromotionKind, ...] = ("percent_off", "amount_off", "buy_x_get_y", "tiered")


@dataclass(frozen=True)
class Scope:
    """Which products a promotion or coupon covers: every field given must match."""

    product_ids: frozenset[UUID] = frozenset()
    category: str | None = None
    seller_id: UUID | None = None

    def covers(self, product: PricedProduct) -> bool:
        if self.product_ids and product.product_id not in self.product_ids:
            return False
        if self.category is not None and self.category != product.category:
            return False
        return self.seller_id is None or self.seller_id == product.seller_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "product_ids": sorted(str(product_id) for product_id in self.product_ids),
            "category": self.category,
            "seller_id": None if self.seller_id is None else str(self.seller_id),
        }

    @staticmethod
    def from_dict(scope: dict[str, Any]) -> Scope:
        seller_id = scope.get("seller_id")
        return Scope(
            product_ids=frozenset(UUID(str(p)) for p in scope.get("product_ids") or ()),
            category=scope.get("category"),
            seller_id=None if seller_id is None else UUID(str(seller_id)),
        )


@dataclass(frozen=True)
class Window:
    starts_at: datetime
    ends_at: datetime
    ended_at: datetime | None = None  # ended early by its owner

    @property
    def end(self) -> datetime:
        return self.ends_at if self.ended_at is None else min(self.ends_at, self.ended_at)

    def is_open(self, now: datetime) -> bool:
        return self.starts_at <= now < self.end


@dataclass(frozen=True)
class PromotionTerms:
    promotion_id: UUID
    name: str
    kind: PromotionKind
    scope: Scope
    window: Window
    stackable: bool = False
    limited: bool = False  # max_uses or per_user_limit: the saga locks a use per order
    percent_off: int | None = None
    amount_off: int | None = None  # per unit
    buy_quantity: int | None = None
    free_quantity: int | None = None
    tiers: tuple[tuple[int, int], ...] = ()  # (min_quantity, percent_off)

    def discount_on(self, list_price: int, quantity: int, left: int) -> int:
        """What this promotion takes off a line of `quantity` at `list_price`, of which
        `left` is still to pay (stacked promotions work on what is left)."""
        if self.kind == "percent_off":
            return left * (self.percent_off or 0) // 100
        if self.kind == "amount_off":
            return (self.amount_off or 0) * quantity
        if self.kind == "buy_x_get_y":
            group = (self.buy_quantity or 0) + (self.free_quantity or 0)
            free_units = (quantity // group) * (self.free_quantity or 0) if group else 0
            return free_units * list_price
        percent = max((p for minimum, p in self.tiers if quantity >= minimum), default=0)
        return left * percent // 100

    @property
    def label(self) -> str:
        if self.kind == "percent_off":
            return f"{self.name}: {self.percent_off}% off"
        if self.kind == "amount_off":
            return f"{self.name}: {self.amount_off} off each"
        if self.kind == "buy_x_get_y":
            return f"{self.name}: buy {self.buy_quantity}, get {self.free_quantity} free"
        return f"{self.name}: volume discount"


@dataclass(frozen=True)
class CouponTerms:
    code: str
    scope: Scope
    window: Window
    percent_off: int | None = None
    amount_off: int | None = None  # once per order
    min_order: int = 0

    @property
    def label(self) -> str:
        off = f"{self.percent_off}%" if self.percent_off is not None else f"{self.amount_off}"
        return f"coupon {self.code}: {off} off"


@dataclass(frozen=True)
class PricedProduct:
    """A line to price: what the catalogue (and any price rule) says of its product."""

    product_id: UUID
    quantity: int
    list_price: int
    category: str = ""
    seller_id: UUID | None = None
    floor: int = 0  # per unit


@dataclass(frozen=True)
class Discount:
    kind: str  # a promotion kind, or "coupon"
    amount: int
    label: str
    promotion_id: UUID | None = None
    coupon_code: str | None = None
    ends_at: datetime | None = field(default=None, compare=False)  # when it stops applying
    limited: bool = field(default=False, compare=False)  # a promotion whose uses are counted

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "promotion_id": self.promotion_id,
            "coupon_code": self.coupon_code,
            "amount": self.amount,
            "label": self.label,
        }


@dataclass(frozen=True)
class LineQuote:
    product_id: UUID
    quantity: int
    list_price: int
    discounts: tuple[Discount, ...]
    line_total: int

    @property
    def unit_price(self) -> int:
        return self.line_total // self.quantity

    @property
    def discount_total(self) -> int:
        return sum(discount.amount for discount in self.discounts)


@dataclass(frozen=True)
class OrderQuote:
    lines: tuple[LineQuote, ...]
    coupon_code: str | None = None  # set when the coupon took something off
    coupon_refused: str | None = field(default=None)  # why a coupon given did not apply

    @property
    def holds_until(self) -> datetime | None:
        """When the first discount taken stops applying (None: none was taken)."""
        ends = [d.ends_at for line in self.lines for d in line.discounts if d.ends_at]
        return min(ends, default=None)

    @property
    def discount_total(self) -> int:
        return sum(line.discount_total for line in self.lines)

    @property
    def limited_promotion_ids(self) -> list[UUID]:
        """The promotions taken whose uses are limited: the saga locks one use of each."""
        ids = {d.promotion_id for line in self.lines for d in line.discounts if d.limited}
        return sorted(i for i in ids if i is not None)

    @property
    def total(self) -> int:
        return sum(line.line_total for line in self.lines)


class _Line:
    """A line while it is being priced: what is left to pay, never below its floor."""

    def __init__(self, product: PricedProduct) -> None:
        self.product = product
        self.left = product.list_price * product.quantity
        self.lowest = min(max(product.floor, 1) * product.quantity, self.left)
        self.discounts: list[Discount] = []

    def take(self, wanted: int, kind: str, label: str, **source: Any) -> int:
        amount = max(0, min(wanted, self.left - self.lowest))
        if amount:
            self.left -= amount
            self.discounts.append(Discount(kind=kind, amount=amount, label=label, **source))
        return amount

    def quote(self) -> LineQuote:
        p = self.product
        return LineQuote(p.product_id, p.quantity, p.list_price, tuple(self.discounts), self.left)


def _promotion_order(promotion: PromotionTerms) -> tuple[datetime, str]:
    return promotion.window.starts_at, str(promotion.promotion_id)


def _apply_promotions(line: _Line, promotions: Sequence[PromotionTerms], now: datetime) -> None:
    p = line.product
    active = sorted(
        (x for x in promotions if x.window.is_open(now) and x.scope.covers(p)),
        key=_promotion_order,
    )
    exclusive = [x for x in active if not x.stackable]
    if exclusive:
        gross = line.left
        best = max(exclusive, key=lambda x: x.discount_on(p.list_price, p.quantity, gross))
        wanted = best.discount_on(p.list_price, p.quantity, gross)
        line.take(
            wanted,
            best.kind,
            best.label,
            promotion_id=best.promotion_id,
            ends_at=best.window.end,
            limited=best.limited,
        )
    for stacked in (x for x in active if x.stackable):
        wanted = stacked.discount_on(p.list_price, p.quantity, line.left)
        line.take(
            wanted,
            stacked.kind,
            stacked.label,
            promotion_id=stacked.promotion_id,
            ends_at=stacked.window.end,
            limited=stacked.limited,
        )


def _apply_coupon(lines: Sequence[_Line], coupon: CouponTerms, now: datetime) -> str | None:
    """Why the coupon did not apply, or None if it did."""
    if not coupon.window.is_open(now):
        return "coupon_not_active"
    covered = [line for line in lines if coupon.scope.covers(line.product)]
    if not covered:
        return "coupon_not_applicable"
    if sum(line.left for line in lines) < coupon.min_order:
        return "coupon_min_order_not_met"
    budget = coupon.amount_off or 0
    taken_in_all = 0
    for line in covered:
        if coupon.percent_off is not None:
            wanted = line.left * coupon.percent_off // 100
        else:
            wanted = budget
        taken = line.take(
            wanted, "coupon", coupon.label, coupon_code=coupon.code, ends_at=coupon.window.end
        )
        taken_in_all += taken
        if coupon.percent_off is None:
            budget -= taken
    # Every covered line at its floor already: an order that took the coupon would spend
    # one of its uses for nothing.
    return None if taken_in_all else "coupon_takes_nothing_off"


def price_order(
    products: Iterable[PricedProduct],
    promotions: Sequence[PromotionTerms],
    coupon: CouponTerms | None,
    now: datetime,
) -> OrderQuote:
    """Price every line: list price, then promotions, then the coupon (module docstring)."""
    lines = [_Line(product) for product in products]
    for line in lines:
        _apply_promotions(line, promotions, now)
    refused = None if coupon is None else _apply_coupon(lines, coupon, now)
    applied = coupon is not None and refused is None
    return OrderQuote(
        lines=tuple(line.quote() for line in lines),
        coupon_code=coupon.code if applied and coupon is not None else None,
        coupon_refused=refused,
    )
