"""A synthetic but consistent shop history, as the envelopes the relay would publish.

Generating a million events through the HTTP API would take hours at the saga's rate,
so the rebuild benchmark writes envelopes straight to the topics instead. They are what
the real system produces: every type's pydantic payload, ids and event ids derived as
the domain derives them (`event_id_for`, `Stock.create_id`, ...), versions consecutive
per aggregate (private events such as `Stock.Registered` take their version without
being published), stock counts that never go negative, and the saga's event mix: most
orders complete, some are declined, rejected for stock, cancelled by the buyer or time
out, and the last ones are still in flight. A small share of events is published twice
(a relay re-publishing after a crash), as consumers must tolerate.
"""

from __future__ import annotations

import bisect
import heapq
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID, uuid5

import orjson

from domain.payments import Payment
from domain.reservations import Reservation
from domain.shipping import Shipment
from domain.stock import Stock
from eventmart.contracts import CONTRACTS
from eventmart.contracts.envelope import EVENT_NAMESPACE

START = datetime(2026, 1, 1, tzinfo=UTC)
CITIES = ["Shanghai", "Beijing", "Shenzhen", "Hangzhou", "Chengdu", "Wuhan", "Xi'an", "Nanjing"]
CATEGORIES = [
    "kitchen",
    "books",
    "toys",
    "garden",
    "electronics",
    "sports",
    "beauty",
    "office",
    "pets",
    "music",
    "shoes",
    "tools",
]
EVENTS_PER_ORDER = 19  # about, with 1.5 lines per order and the outcome mix below

Message = tuple[str, bytes, bytes]  # topic, key, value
Id = str  # ids are kept as their canonical strings: str(UUID) is slow at this volume


def new_id(rng: random.Random) -> Id:
    return str(UUID(int=rng.getrandbits(128), version=4))


def event_id(aggregate_id: Id, version: int) -> Id:
    """`event_id_for` on an id already in its canonical string form."""
    return str(uuid5(EVENT_NAMESPACE, f"{aggregate_id}:{version}"))


def _time(at: datetime) -> str:
    """As pydantic serialises an aware UTC datetime (what the relay publishes)."""
    return at.isoformat().replace("+00:00", "Z")


@dataclass
class StockLevel:
    stock_id: Id
    on_hand: int = 0
    reserved: int = 0
    version: int = 1  # Stock.Registered, private
    restock_due: bool = False


@dataclass
class Shop:
    """The simulation: a clock-ordered queue of steps, each emitting envelopes."""

    rng: random.Random
    duplicate_share: float
    seconds: float
    emitted: int = 0
    queue: list[tuple[float, int, Callable[[float], object]]] = field(default_factory=list)
    out: list[Message] = field(default_factory=list)
    republish: list[tuple[int, Message]] = field(default_factory=list)
    versions: dict[Id, int] = field(default_factory=dict)
    stock: dict[Id, StockLevel] = field(default_factory=dict)
    prices: dict[Id, int] = field(default_factory=dict)
    sequence: int = 0

    def at(self, when: float, step: Callable[[float], object]) -> None:
        if when <= self.seconds:  # later steps are still in flight when the log ends
            self.sequence += 1
            heapq.heappush(self.queue, (when, self.sequence, step))

    def emit(
        self,
        type_: str,
        aggregate_id: Id,
        when: float,
        payload: dict[str, Any],
        *,
        correlation_id: Id | None = None,
        causation_id: Id | None = None,
    ) -> Id:
        """Append the aggregate's next event; returns its event id (the next one's cause)."""
        contract = CONTRACTS[type_]
        version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = version
        this_id = event_id(aggregate_id, version)
        envelope = {
            "event_id": this_id,
            "type": type_,
            "schema_version": contract.schema_version,
            "aggregate_id": aggregate_id,
            "aggregate_version": version,
            "occurred_at": _time(START + timedelta(seconds=when)),
            "correlation_id": correlation_id or this_id,
            "causation_id": causation_id,
            "payload": payload,
        }
        message = (contract.topic, aggregate_id.encode(), orjson.dumps(envelope))
        self.out.append(message)
        self.emitted += 1
        if self.rng.random() < self.duplicate_share:
            heapq.heappush(self.republish, (self.emitted + self.rng.randint(10, 5000), message))
        return this_id

    def skip_version(self, aggregate_id: Id) -> None:
        """A private event (Opened, Registered) takes a version but is never published."""
        self.versions[aggregate_id] = self.versions.get(aggregate_id, 0) + 1

    def run(self) -> Iterator[Message]:
        while self.queue:
            when, _, step = heapq.heappop(self.queue)
            step(when)
            yield from self.out
            self.out.clear()
            while self.republish and self.republish[0][0] <= self.emitted:
                yield heapq.heappop(self.republish)[1]
        for _, message in self.republish:
            yield message

    # --- stock -----------------------------------------------------------------

    def stock_event(
        self,
        type_: str,
        product_id: Id,
        when: float,
        quantity: int,
        order_id: Id | None = None,
        reason: str | None = None,
    ) -> Id:
        """Counts after the change; fields in the order the payload models declare them."""
        level = self.stock[product_id]
        payload: dict[str, Any] = {
            "product_id": product_id,
            "on_hand": level.on_hand,
            "reserved": level.reserved,
            "available": level.on_hand - level.reserved,
        }
        if order_id is not None:
            payload["order_id"] = order_id
        payload["quantity"] = quantity
        if reason is not None:
            payload["reason"] = reason
        return self.emit(type_, level.stock_id, when, payload, correlation_id=order_id)

    def receive(self, product_id: Id, when: float, quantity: int) -> None:
        level = self.stock[product_id]
        level.on_hand += quantity
        level.restock_due = False
        self.stock_event("stock.received", product_id, when, quantity)


def _users(shop: Shop, count: int, sellers: int) -> tuple[list[Id], list[tuple[float, Id]]]:
    """Sellers register first; customers over the first 60% of the period."""
    seller_ids: list[Id] = []
    customers: list[tuple[float, Id]] = []
    for n in range(count):
        user_id = new_id(shop.rng)
        role = "seller" if n < sellers else "customer"
        when = shop.rng.uniform(0, shop.seconds * (0.01 if role == "seller" else 0.6))
        if role == "seller":
            seller_ids.append(user_id)
        else:
            customers.append((when, user_id))
        shop.at(
            when,
            partial(
                shop.emit,
                "user.registered",
                user_id,
                payload={
                    "user_id": user_id,
                    "email": f"user{n}@example.com",
                    "display_name": f"User {n}",
                    "role": role,
                },
            ),
        )
        if role == "customer":
            _operator_changes(shop, n, user_id, when)
    return seller_ids, sorted(customers)


def _operator_changes(shop: Shop, n: int, user_id: Id, registered: float) -> None:
    """Operators' later changes to a few customers, chosen by n: promoted to seller;
    disabled, and some of those enabled again."""

    def later(share: float, kind: str, payload: dict[str, Any]) -> None:
        when = registered + shop.seconds * share
        shop.at(when, partial(shop.emit, kind, user_id, payload={"user_id": user_id, **payload}))

    if n % 40 == 3:
        later(0.1, "user.role_changed", {"role": "seller", "previous_role": "customer"})
    if n % 40 == 5:
        later(0.05, "user.disabled", {})
        if n % 80 == 45:
            later(0.1, "user.enabled", {})


def _products(shop: Shop, count: int, seller_ids: list[Id]) -> list[Id]:
    rng, product_ids = shop.rng, []
    for n in range(count):
        product_id = new_id(rng)
        seller_id = rng.choice(seller_ids)
        created = rng.uniform(shop.seconds * 0.01, shop.seconds * 0.04)
        price = rng.randint(5, 2000) * 100 - 1
        product_ids.append(product_id)
        shop.prices[product_id] = price
        shop.stock[product_id] = StockLevel(str(Stock.create_id(UUID(product_id))))

        def create(
            t: float, p: Id = product_id, s: Id = seller_id, n: int = n, price: int = price
        ) -> None:
            shop.emit(
                "product.created",
                p,
                t,
                {
                    "product_id": p,
                    "seller_id": s,
                    "sku": f"SKU-{n:06d}",
                    "name": f"Product {n}",
                    "description": f"Synthetic product number {n}",
                    "category": CATEGORIES[n % len(CATEGORIES)],
                    "price_amount": price,
                    "currency": "CNY",
                },
            )
            shop.skip_version(shop.stock[p].stock_id)  # Stock.Registered
            shop.receive(p, t + 60, rng.randint(50, 500))

        shop.at(created, create)
        for when in sorted(
            rng.uniform(created + 3600, shop.seconds) for _ in range(rng.randint(0, 3))
        ):
            shop.at(when, partial(_change_product, shop, product_id))
    return product_ids


def _change_product(shop: Shop, product_id: Id, when: float) -> None:
    if shop.rng.random() < 0.6:
        old = shop.prices[product_id]
        new = max(99, old + shop.rng.choice([-500, -100, 100, 300]))
        if new != old:
            shop.prices[product_id] = new
            shop.emit(
                "product.price_changed",
                product_id,
                when,
                {"product_id": product_id, "old_amount": old, "new_amount": new},
            )
    else:
        shop.emit(
            "product.updated",
            product_id,
            when,
            {"product_id": product_id, "changes": {"description": f"Now improved ({int(when)})"}},
        )


class OrderLife:
    """One order through the saga, step by step on the shop's clock."""

    def __init__(self, shop: Shop, buyer_id: Id, lines: list[tuple[Id, int]]) -> None:
        self.shop, self.rng = shop, shop.rng
        self.order_id = new_id(self.rng)
        order_uuid = UUID(self.order_id)
        self.buyer_id, self.lines = buyer_id, lines
        self.reservation_id = str(Reservation.create_id(order_uuid))
        self.payment_id = str(Payment.create_id(order_uuid))
        self.shipment_id = str(Shipment.create_id(order_uuid))
        self.total = 0
        self.cause: Id | None = None
        self.address = {
            "name": f"Buyer {buyer_id[:8]}",
            "line1": f"{self.rng.randint(1, 999)} Road",
            "city": self.rng.choice(CITIES),
            "postal_code": "200000",
            "country": "CN",
        }

    def emit(self, type_: str, aggregate_id: Id, when: float, payload: dict[str, Any]) -> None:
        self.cause = self.shop.emit(
            type_,
            aggregate_id,
            when,
            {"order_id": self.order_id, **payload},
            correlation_id=self.order_id,
            causation_id=self.cause,
        )

    def place(self, when: float) -> None:
        prices = {product_id: self.shop.prices[product_id] for product_id, _ in self.lines}
        self.total = sum(prices[p] * q for p, q in self.lines)
        outcome = self.rng.random()
        token = "tok_declined" if outcome < 0.05 else "tok_timeout" if outcome < 0.06 else "tok_ok"
        self.cause = self.shop.emit(
            "order.placed",
            self.order_id,
            when,
            {
                "order_id": self.order_id,
                "buyer_id": self.buyer_id,
                "lines": [
                    {
                        "product_id": p,
                        "quantity": q,
                        "unit_price": prices[p],
                        "list_price": prices[p],
                        "discounts": [],
                        "line_total": prices[p] * q,
                    }
                    for p, q in self.lines
                ],
                "total": self.total,
                "currency": "CNY",
                "shipping_address": self.address,
                # The token stays with the payments context: the order names the intent.
                "payment": {
                    "method": self.rng.choice(["card", "alipay", "wechat"]),
                    "intent_id": new_id(self.rng),
                },
                "payment_deadline": _time(START + timedelta(seconds=when + 900)),
                "discount_total": 0,
                "coupon_code": None,
            },
            correlation_id=self.order_id,
        )
        self.shop.at(when + 0.05, lambda t: self.reserve(t, token))

    def reserve(self, when: float, token: str) -> None:
        shop = self.shop
        shop.skip_version(self.reservation_id)  # Reservation.Opened
        short = next(
            (p for p, q in self.lines if shop.stock[p].on_hand - shop.stock[p].reserved < q), None
        )
        if short is not None:
            self.emit(
                "reservation.failed",
                self.reservation_id,
                when,
                {"reason": "insufficient_stock", "product_id": short},
            )
            self.emit(
                "order.rejected", self.order_id, when + 0.05, {"reason": "insufficient_stock"}
            )
            return
        for product_id, quantity in self.lines:
            shop.stock[product_id].reserved += quantity
            shop.stock_event("stock.reserved", product_id, when, quantity, order_id=self.order_id)
            self._restock_if_low(product_id, when)
        self.emit(
            "reservation.confirmed",
            self.reservation_id,
            when,
            {
                "lines": [{"product_id": p, "quantity": q} for p, q in self.lines],
                "expires_at": _time(START + timedelta(seconds=when + 1800)),
            },
        )
        self.emit("order.reserved", self.order_id, when + 0.03, {})
        self.shop.at(when + 0.2, lambda t: self.pay(t, token))

    def pay(self, when: float, token: str) -> None:
        self.shop.skip_version(self.payment_id)  # Payment.Opened
        if token == "tok_declined":
            self.emit("payment.declined", self.payment_id, when, {"reason": "card_declined"})
            self.cancel(when + 0.05, "payment_declined", refund_due=False)
            return
        if token == "tok_timeout":
            self.emit("payment.pending", self.payment_id, when, {})
            self.shop.at(when + 900, self.time_out)
            return
        self.emit(
            "payment.captured",
            self.payment_id,
            when,
            {
                "amount": self.total,
                "currency": "CNY",
                "method": "card",
                "reference": f"sbx_ch_{self.rng.getrandbits(96):024x}",
            },
        )
        self.emit("order.confirmed", self.order_id, when + 0.06, {"total": self.total})
        self.shop.skip_version(self.reservation_id)  # Reservation.OrderPaid
        self.shop.emit(
            "shipment.created",
            self.shipment_id,
            when + 0.2,
            {
                "order_id": self.order_id,
                "shipment_id": self.shipment_id,
                "address": self.address,
                "created_at": _time(START + timedelta(seconds=when + 0.2)),
            },
            correlation_id=self.order_id,
            causation_id=self.cause,
        )
        if self.rng.random() < 0.04:
            self.shop.at(when + self.rng.uniform(60, 3000), self.buyer_cancels)
        else:
            self.shop.at(when + self.rng.uniform(3600, 6 * 3600), self.pick_up)

    def time_out(self, when: float) -> None:
        self.cancel(when, "payment_timeout", refund_due=False)
        self.emit("payment.voided", self.payment_id, when + 0.1, {})

    def buyer_cancels(self, when: float) -> None:
        self.cancel(when, "cancelled_by_buyer", refund_due=True)
        self.emit(
            "payment.refunded",
            self.payment_id,
            when + 0.1,
            {"amount": self.total, "reference": f"sbx_re_{self.rng.getrandbits(96):024x}"},
        )

    def cancel(self, when: float, reason: str, *, refund_due: bool) -> None:
        self.emit(
            "order.cancelled", self.order_id, when, {"reason": reason, "refund_due": refund_due}
        )
        self.emit("reservation.released", self.reservation_id, when + 0.02, {"reason": "cancelled"})
        for product_id, quantity in self.lines:
            self.shop.stock[product_id].reserved -= quantity
            self.shop.stock_event(
                "stock.released",
                product_id,
                when + 0.02,
                quantity,
                order_id=self.order_id,
                reason="cancelled",
            )

    def pick_up(self, when: float) -> None:
        tracked = {"shipment_id": self.shipment_id}
        self.emit("shipment.picked_up", self.shipment_id, when, tracked)
        for product_id, quantity in self.lines:
            level = self.shop.stock[product_id]
            level.reserved -= quantity
            level.on_hand -= quantity
            self.shop.stock_event(
                "stock.committed", product_id, when, quantity, order_id=self.order_id
            )
        self.emit("reservation.committed", self.reservation_id, when, {})
        self.emit("order.shipped", self.order_id, when + 0.05, tracked)
        day = 86400.0
        steps = [
            ("shipment.in_transit", day * 0.5),
            ("shipment.out_for_delivery", day * 2),
            ("shipment.delivered", day * 2.3),
        ]
        for type_, after in steps:
            self.shop.at(when + after, partial(self.emit, type_, self.shipment_id, payload=tracked))
        self.shop.at(when + day * 2.3 + 1, self.deliver)

    def deliver(self, when: float) -> None:
        self.emit(
            "order.delivered",
            self.order_id,
            when,
            {
                "shipment_id": self.shipment_id,
                "delivered_at": _time(START + timedelta(seconds=when - 1)),
            },
        )
        automatic = self.rng.random() < 0.5
        self.shop.at(
            when + (7 * 86400 if automatic else self.rng.uniform(600, 3 * 86400)),
            lambda t: self.emit("order.completed", self.order_id, t, {"automatic": automatic}),
        )

    def _restock_if_low(self, product_id: Id, when: float) -> None:
        level = self.shop.stock[product_id]
        if level.on_hand - level.reserved < 10 and not level.restock_due:
            level.restock_due = True
            self.shop.at(
                when + self.rng.uniform(3600, 86400),
                lambda t: self.shop.receive(product_id, t, self.rng.randint(100, 400)),
            )


def shop_history(
    events: int, *, seed: int = 7, duplicate_share: float = 0.002, days: float = 90
) -> Iterator[Message]:
    """About `events` envelopes (a little more), in the order the relay would publish them."""
    shop = Shop(random.Random(seed), duplicate_share, days * 86400)
    users = max(1000, events // 20)
    products = max(100, events // 200)
    sellers = max(10, users // 100)
    orders = int((events - users - products * 3) / EVENTS_PER_ORDER * 1.1)
    seller_ids, customers = _users(shop, users, sellers)
    product_ids = _products(shop, products, seller_ids)
    popular = product_ids[: max(1, len(product_ids) // 5)]  # a fifth of the products sells most
    first_order = shop.seconds * 0.05
    registered_at = [when for when, _ in customers]
    for _ in range(orders):
        when = shop.rng.uniform(first_order, shop.seconds)
        buyer = customers[shop.rng.randrange(max(1, bisect.bisect(registered_at, when)))][1]
        chosen = {
            shop.rng.choice(popular if shop.rng.random() < 0.6 else product_ids): shop.rng.randint(
                1, 3
            )
            for _ in range(shop.rng.choice([1, 1, 1, 2, 2, 3]))
        }
        shop.at(when, OrderLife(shop, buyer, list(chosen.items())).place)
    yield from shop.run()
