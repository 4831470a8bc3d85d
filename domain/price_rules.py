"""Dynamic price rules: a price that moves with stock, time or demand, within a floor and a
ceiling. Every change a rule causes is an event (`PriceChanged`, with its reason), so a
price's history can be replayed and explained.

- `stock_level`: `{thresholds: [{below_available, price}]}`; when the product's available
  stock falls below a threshold, the price of the lowest threshold crossed applies (the
  pricing participant records the change as inventory reports the stock).
- `time_window`: `{starts_at, ends_at, price}`: the price applies inside the window only
  (a flash sale). The quote reads the clock, so the price starts and ends on time; the
  pricing-saga records the change: it takes the rule on (`WindowScheduled`), and its timer
  records `WindowOpened` (with the price) at the start and `WindowClosed` (back to the list
  price) at the end, each due as a deadline of the rule (workers/pricing.py).
- `demand`: `{step_percent, sales_per_step}`: each `sales_per_step` units sold in the last
  hour raise the price by `step_percent` of the list price; never past the ceiling. Sales
  are the units of confirmed orders, fed by the pricing-saga from the order stream
  (`SaleRecorded`, private); each change of the rule's steps for a product is
  `DemandChanged` (public `price_rule.demand_changed`), and as sales leave the hour the
  rule's timer steps the price back down (a deadline of the rule).

A rule's price is always clamped to `floor..ceiling`, and the floor also bounds discounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.limits import MAX_LINE_QUANTITY, MAX_MONEY_AMOUNT, MAX_PRODUCT_NAME_LENGTH, check_text
from domain.promotions import (
    InvalidPromotion,
    check_count,
    check_percent,
    check_scope,
    check_window,
)

DEMAND_HOLD_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:demand-hold")
RULE_KINDS = ("stock_level", "time_window", "demand")
DEMAND_WINDOW = timedelta(hours=1)
MAX_THRESHOLDS = 10


def check_params(kind: str, params: Mapping[str, Any]) -> dict[str, Any]:
    if kind not in RULE_KINDS:
        raise InvalidPromotion(f"kind must be one of {', '.join(RULE_KINDS)}")
    if kind == "stock_level":
        thresholds = list(params.get("thresholds") or ())
        if not 1 <= len(thresholds) <= MAX_THRESHOLDS:
            raise InvalidPromotion(f"a stock_level rule needs 1 to {MAX_THRESHOLDS} thresholds")
        checked = sorted(
            (
                check_count("below_available", t.get("below_available"), 10**9),
                check_count("price", t.get("price"), MAX_MONEY_AMOUNT),
            )
            for t in thresholds
        )
        return {"thresholds": [{"below_available": b, "price": p} for b, p in checked]}
    if kind == "time_window":
        starts_at, ends_at = params.get("starts_at"), params.get("ends_at")
        if not isinstance(starts_at, datetime) or not isinstance(ends_at, datetime):
            raise InvalidPromotion("a time_window rule needs starts_at and ends_at")
        check_window(starts_at, ends_at)
        price = check_count("price", params.get("price"), MAX_MONEY_AMOUNT)
        return {"starts_at": starts_at, "ends_at": ends_at, "price": price}
    return {
        "step_percent": check_percent("step_percent", params.get("step_percent")),
        "sales_per_step": check_count(
            "sales_per_step", params.get("sales_per_step"), MAX_LINE_QUANTITY
        ),
    }


class PriceRule(Aggregate):
    @event("Created")
    def __init__(
        self,
        owner_id: UUID,
        name: str,
        kind: str,
        scope: dict[str, Any],
        params: dict[str, Any],
        floor: int,
        ceiling: int,
    ) -> None:
        self.owner_id = owner_id
        self.name = name
        self.kind = kind
        self.scope = scope
        self.params = params
        self.floor = floor
        self.ceiling = ceiling
        self.prices: dict[str, int] = {}  # product id -> the price the rule set
        # time_window: None (not taken on yet), "scheduled", "open" or "closed".
        self.window: str | None = None
        # demand, per product: the sales of the last hour [(at, units)] and the steps they
        # make (the price is the list price raised by steps x step_percent, clamped).
        self.sales: dict[str, list[tuple[datetime, int]]] = {}
        self.steps: dict[str, int] = {}

    @staticmethod
    def create(
        owner_id: UUID,
        name: str,
        kind: str,
        scope: Mapping[str, Any],
        params: Mapping[str, Any],
        floor: int,
        ceiling: int,
    ) -> PriceRule:
        floor = check_count("floor", floor, MAX_MONEY_AMOUNT)
        ceiling = check_count("ceiling", ceiling, MAX_MONEY_AMOUNT)
        if ceiling < floor:
            raise InvalidPromotion("ceiling must not be below floor")
        return PriceRule(
            owner_id=owner_id,
            name=check_text("name", name, MAX_PRODUCT_NAME_LENGTH),
            kind=kind,
            scope=check_scope(scope).as_dict(),
            params=check_params(kind, params),
            floor=floor,
            ceiling=ceiling,
        )

    def clamp(self, price: int) -> int:
        return max(self.floor, min(self.ceiling, price))

    def price_at(self, product_id: UUID, list_price: int, now: datetime) -> int | None:
        """The price this rule sets for the product now, or None if it sets none."""
        if self.kind == "time_window":
            if self.params["starts_at"] <= now < self.params["ends_at"]:
                return self.clamp(self.params["price"])
            return None
        if self.kind == "demand":
            steps = self.steps.get(str(product_id), 0)
            percent = self.params["step_percent"] * steps
            return self.clamp(list_price + list_price * percent // 100)
        price = self.prices.get(str(product_id))
        return None if price is None else self.clamp(price)

    def price_for_stock(self, available: int) -> int | None:
        """A stock_level rule's price at this availability (None: the list price)."""
        crossed = [
            t["price"] for t in self.params["thresholds"] if available < t["below_available"]
        ]
        return self.clamp(crossed[0]) if crossed else None

    def price_for_demand(self, list_price: int, units_last_hour: int) -> int:
        steps = units_last_hour // self.params["sales_per_step"]
        return self.clamp(list_price + list_price * self.params["step_percent"] * steps // 100)

    def change_price(
        self, product_id: UUID, price: int | None, reason: str, causation_id: UUID | None = None
    ) -> bool:
        """Record a new price for the product (None: back to the list price) if it changed."""
        price = None if price is None else self.clamp(price)
        if self.prices.get(str(product_id)) == price:
            return False
        self._price_changed(
            product_id=product_id, price=price, reason=reason, causation_id=causation_id
        )
        return True

    @property
    def window_due(self) -> datetime | None:
        """When a time_window rule's next change is due (None: none is)."""
        if self.window == "scheduled":
            return self.params["starts_at"]  # type: ignore[no-any-return]
        if self.window == "open":
            return self.params["ends_at"]  # type: ignore[no-any-return]
        return None

    def move_window(self, now: datetime, causation_id: UUID | None = None) -> bool:
        """Record what the window's price is at `now`: taken on, opened, closed (a late
        timer records both the opening and the closing). True if anything was recorded."""
        if self.kind != "time_window":
            return False
        moved = False
        if self.window is None:
            self._window_scheduled(causation_id=causation_id)
            moved = True
        if self.window == "scheduled" and now >= self.params["starts_at"]:
            self._window_opened(price=self.clamp(self.params["price"]), causation_id=causation_id)
            moved = True
        if self.window == "open" and now >= self.params["ends_at"]:
            self._window_closed(causation_id=causation_id)
            moved = True
        return moved

    def units_last_hour(self, product_id: UUID, now: datetime) -> int:
        since = now - DEMAND_WINDOW
        return sum(units for at, units in self.sales.get(str(product_id), ()) if at > since)

    @property
    def demand_due(self) -> datetime | None:
        """When the oldest sale counted leaves the hour (None: no sale is counted)."""
        oldest = [sales[0][0] for sales in self.sales.values() if sales]
        return min(oldest) + DEMAND_WINDOW if oldest else None

    def record_sale(
        self, product_id: UUID, units: int, now: datetime, causation_id: UUID | None = None
    ) -> None:
        """A confirmed order's units of the product: counted for an hour."""
        self._sale_recorded(product_id=product_id, units=units, at=now, causation_id=causation_id)
        self.reprice_for_demand(now, causation_id)

    @event("SaleRecorded")
    def _sale_recorded(
        self, product_id: UUID, units: int, at: datetime, causation_id: UUID | None
    ) -> None:
        self.sales.setdefault(str(product_id), []).append((at, units))

    def reprice_for_demand(self, now: datetime, causation_id: UUID | None = None) -> bool:
        """Each product's steps as its last hour's sales make them; sales older than the
        hour are dropped. True if anything was recorded."""
        moved = False
        for product in sorted(self.sales):
            units = self.units_last_hour(UUID(product), now)
            steps = units // self.params["sales_per_step"]
            stale = any(at <= now - DEMAND_WINDOW for at, _ in self.sales[product])
            if steps != self.steps.get(product, 0) or stale:
                self._demand_changed(
                    product_id=UUID(product),
                    units_last_hour=units,
                    steps=steps,
                    since=now - DEMAND_WINDOW,
                    causation_id=causation_id,
                )
                moved = True
        return moved

    @event("DemandChanged")
    def _demand_changed(
        self,
        product_id: UUID,
        units_last_hour: int,
        steps: int,
        since: datetime,
        causation_id: UUID | None,
    ) -> None:
        product = str(product_id)
        kept = [(at, units) for at, units in self.sales.get(product, ()) if at > since]
        if kept:
            self.sales[product] = kept
        else:
            self.sales.pop(product, None)
        if steps:
            self.steps[product] = steps
        else:
            self.steps.pop(product, None)

    @event("WindowScheduled")
    def _window_scheduled(self, causation_id: UUID | None) -> None:
        self.window = "scheduled"

    @event("WindowOpened")
    def _window_opened(self, price: int, causation_id: UUID | None) -> None:
        self.window = "open"

    @event("WindowClosed")
    def _window_closed(self, causation_id: UUID | None) -> None:
        self.window = "closed"

    @event("PriceChanged")
    def _price_changed(
        self, product_id: UUID, price: int | None, reason: str, causation_id: UUID | None
    ) -> None:
        if price is None:
            self.prices.pop(str(product_id), None)
        else:
            self.prices[str(product_id)] = price


class DemandHold(Aggregate):
    """An order's units of products a demand rule watches, noted when it is placed and
    counted as sales when it is confirmed (private: it never leaves the pricing context).
    Orders of products no demand rule watches have none."""

    @staticmethod
    def create_id(order_id: UUID, **_: Any) -> UUID:
        return uuid5(DEMAND_HOLD_NAMESPACE, str(order_id))

    @event("Noted")
    def __init__(self, order_id: UUID, lines: list[dict[str, Any]]) -> None:
        """`lines`: [{rule_id, product_id, units}]."""
        self.order_id = order_id
        self.lines = lines
        self.counted = False

    def count(self) -> bool:
        if self.counted:
            return False
        self._counted()
        return True

    @event("Counted")
    def _counted(self) -> None:
        self.counted = True
