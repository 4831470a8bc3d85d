"""The order saga's guarantees, checked after a load test has run (crashes, scaling), in a
form a lost or doubled event cannot pass:

- every order ends as its payment token and the stock dictate (a `tok_ok` order with stock
  completes, `tok_declined` is cancelled as declined, `tok_timeout` as timed out, an order
  is rejected only if its product was out of stock; a buyer's accepted cancel cancels);
- every event a participant consumes about these orders was applied (its identity is in
  the participant's tracking), and no effect was stored twice;
- no reservation is left open, stock and money are conserved;
- nothing about these orders was parked on any dead-letter topic (what other tests left on
  the topics for the groups to chew through, poison and made-up orders, is theirs).

Orders here are one line of one unit, as the load tests place them.
"""

from __future__ import annotations

import importlib
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from domain.stock import Stock
from eventmart.broker import consumer_groups
from eventmart.contracts import MalformedEvent, parse
from eventmart.settings import Settings
from eventmart.wiring import SAGA_PARTICIPANTS, Applications, build_applications
from tests.shop import TERMINAL
from tests.support import (
    parked_since,
    read_envelopes,
    wait_for_quiet,
    wait_until,
)

SAGA_TOPICS = [
    "orders.events",
    "inventory.events",
    "payments.events",
    "shipping.events",
    "pricing.events",
]
# A replica may decide on a stock it read a moment before another replica's release of a
# hold was saved: a rejection must find the product out of stock within this window.
STOCK_READ_SLACK = timedelta(seconds=1)


@dataclass(frozen=True)
class PlacedOrder:
    """What a load test placed, and what the buyer did afterwards."""

    order_id: str
    product_id: str
    token: str
    # The buyer's cancel was accepted (202): the order ends cancelled, or as it already had.
    cancelled_by_buyer: bool = False
    coupon_code: str | None = None


def parked_about(
    settings: Settings, marks: dict[tuple[str, int], int], order_ids: set[str]
) -> list[Any]:
    """Records parked since `marks` (tests.support.dead_letter_marks) about these orders."""
    found = []
    for record in parked_since(settings.bootstrap_servers, marks):
        try:
            envelope = parse(record.value)
        except MalformedEvent:
            continue  # planted poison: no order's event
        if {str(envelope.correlation_id), str(envelope.payload.get("order_id"))} & order_ids:
            found.append(record)
    return found


def events_by_type(
    db: psycopg.Connection[Any], table: str, order_ids: list[str]
) -> Counter[tuple[str, str]]:
    """(order id, event class) -> how many such events the context stored."""
    stored_ids = [uuid.UUID(order_id).hex for order_id in order_ids]  # stored as uuid_hex
    rows = db.execute(
        f"SELECT topic, convert_from(state, 'UTF8')::jsonb -> 'order_id' ->> '_data_' FROM {table} "
        "WHERE convert_from(state, 'UTF8')::jsonb -> 'order_id' ->> '_data_' = ANY(%s)",
        (stored_ids,),
    ).fetchall()
    return Counter((order_id, topic) for topic, order_id in rows)


def open_orders(db: psycopg.Connection[Any], order_ids: list[str]) -> int:
    """How many of these orders the read model does not show terminal (yet)."""
    row = db.execute(
        "SELECT count(*) FROM unnest(%s::uuid[]) AS placed(order_id) "
        "LEFT JOIN orders_view USING (order_id) "
        "WHERE orders_view.status IS NULL OR orders_view.status <> ALL(%s)",
        (order_ids, list(TERMINAL)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def settle(
    settings: Settings,
    db: psycopg.Connection[Any],
    order_ids: list[str],
    *,
    stall_timeout: float = 300,
) -> dict[str, dict[str, Any]]:
    """Wait until every order is terminal and the saga has nothing left to do; returns
    each order's final row (status, reason, total) from the read model. Fails only if no
    order becomes terminal for `stall_timeout` seconds: a slow machine is not a lost order."""
    remaining = [open_orders(db, order_ids)]

    def progressed() -> bool:
        before = remaining[-1]
        remaining.append(open_orders(db, order_ids))
        return remaining[-1] < before

    while remaining[-1]:
        wait_until(
            progressed,
            timeout=stall_timeout,
            interval=1.0,
            message=f"any of {remaining[-1]} open orders (of {len(order_ids)}) to become terminal",
        )
    wait_for_quiet(
        settings,
        {
            group: topics
            for group, topics in consumer_groups().items()
            if group in SAGA_PARTICIPANTS
        },
    )
    rows = db.execute(
        "SELECT order_id::text, status, reason, total FROM orders_view "
        "WHERE order_id = ANY(%s::uuid[])",
        (order_ids,),
    ).fetchall()
    return {
        order_id: {"status": status, "reason": reason, "total": total}
        for order_id, status, reason, total in rows
    }


def expected_outcome(order: PlacedOrder, final: dict[str, Any]) -> str | None:
    """Why this order's end contradicts its token, stock and buyer; None if it does not.
    A rejection is checked against the stock separately (assert_rejections_were_for_stock)."""
    status, reason = final["status"], final["reason"]
    if status == "rejected":
        return None if reason == "insufficient_stock" else f"rejected for {reason}"
    if order.cancelled_by_buyer:
        return None if status == "cancelled" else f"{status} after the buyer's cancel"
    wanted = {
        "tok_ok": ("completed", None),
        "tok_declined": ("cancelled", "payment_declined"),
        "tok_timeout": ("cancelled", "payment_timeout"),
    }[order.token]
    return None if (status, reason) == wanted else f"{status} ({reason}), not {wanted}"


def assert_outcomes(placed: list[PlacedOrder], finals: dict[str, dict[str, Any]]) -> None:
    wrong = {
        order.order_id: (order.token, problem)
        for order in placed
        if (problem := expected_outcome(order, finals[order.order_id])) is not None
    }
    assert not wrong, f"{len(wrong)} orders ended against their token and stock: {wrong}"


def availability(applications: Applications, product_id: str) -> list[tuple[datetime, int]]:
    """(moment, units available from then on) over the product's whole stock history."""
    history = applications.inventory.events.get(Stock.create_id(uuid.UUID(product_id)))
    return [
        (event.timestamp, getattr(event, "on_hand", 0) - getattr(event, "reserved", 0))
        for event in history
    ]


def assert_rejections_were_for_stock(
    applications: Applications, placed: list[PlacedOrder], finals: dict[str, dict[str, Any]]
) -> None:
    """An order is rejected only when its product had no unit left: at the moment of the
    rejection (give or take STOCK_READ_SLACK), the stock's history shows none available."""
    timelines = {
        product: availability(applications, product) for product in {o.product_id for o in placed}
    }
    for order in placed:
        if finals[order.order_id]["status"] != "rejected":
            continue
        reservation = applications.inventory.find_reservation(uuid.UUID(order.order_id))
        assert reservation is not None and reservation.status == "failed", order
        assert str(reservation.failed_product_id) == order.product_id, order
        decided_at = reservation.modified_on
        start = decided_at - STOCK_READ_SLACK
        timeline = timelines[order.product_id]
        before = [(moment, available) for moment, available in timeline if moment <= start]
        in_effect = [max(before)[1]] if before else []
        during = [available for moment, available in timeline if start < moment <= decided_at]
        assert min(in_effect + during, default=1) < 1, (order, decided_at, in_effect, during)


def participant_types() -> dict[str, tuple[str, list[str], set[str]]]:
    """Per saga group: its application's tracking table, its topics and the types it handles."""
    found = {}
    for group in SAGA_PARTICIPANTS:
        module = importlib.import_module(f"workers.{group.removesuffix('-saga')}")
        participant = module.PARTICIPANT
        table = f"{participant.application.name.lower()}_tracking"
        found[group] = (table, participant.topics, set(participant.policies))
    return found


def assert_every_event_applied(
    settings: Settings, db: psycopg.Connection[Any], order_ids: list[str]
) -> None:
    """Every event about these orders that a participant handles has its identity in that
    participant's tracking: applied (once: the tracking's key and the stored-effect counts
    below see to that), none skipped for good, whatever was redelivered or killed."""
    wanted = set(order_ids)
    on_topics = {
        topic: [
            e
            for e in read_envelopes(settings.bootstrap_servers, topic)
            if str(e.payload.get("order_id", e.aggregate_id)) in wanted
        ]
        for topic in SAGA_TOPICS
    }
    for group, (table, topics, types) in participant_types().items():
        expected = {
            (str(e.aggregate_id), e.aggregate_version)
            for topic in topics
            for e in on_topics[topic]
            if e.type in types
        }
        names = sorted({name for name, _ in expected})
        tracked = {
            (name, version)
            for name, version in db.execute(
                f"SELECT application_name, notification_id FROM {table} "
                "WHERE application_name = ANY(%s)",
                (names,),
            ).fetchall()
        }
        missing = expected - tracked
        assert not missing, f"{group} never applied {len(missing)} events: {sorted(missing)[:5]}"


def assert_saga_invariants(
    settings: Settings,
    db: psycopg.Connection[Any],
    placed: list[PlacedOrder],
    finals: dict[str, dict[str, Any]],
    stock_per_product: int,
    marks: dict[tuple[str, int], int],
) -> None:
    order_ids = [order.order_id for order in placed]
    statuses = Counter(view["status"] for view in finals.values())
    assert sum(statuses.values()) == len(placed) and set(statuses) <= TERMINAL, statuses

    parked = parked_about(settings, marks, set(order_ids))
    assert not parked, [
        (r.topic, dict(r.headers).get("x-error-type"), dict(r.headers).get("x-error-message"))
        for r in parked[:5]
    ]
    assert_outcomes(placed, finals)
    assert_every_event_applied(settings, db, order_ids)

    applications = build_applications(settings, pool_size=4)
    try:
        assert_rejections_were_for_stock(applications, placed, finals)
        # Every reservation is committed, released or failed: none is left open.
        for order_id in order_ids:
            reservation = applications.inventory.find_reservation(uuid.UUID(order_id))
            assert reservation is not None and reservation.status in (
                "committed",
                "released",
                "failed",
            ), (order_id, reservation and reservation.status, finals[order_id]["status"])
        # Stock is conserved: what was received is on the shelf or sold, nothing held.
        completed_units = Counter(
            o.product_id for o in placed if finals[o.order_id]["status"] == "completed"
        )
        for product in {o.product_id for o in placed}:
            stock = applications.inventory.get_stock(uuid.UUID(product))
            figures = (product, stock.on_hand, stock.reserved, stock.sold, completed_units[product])
            assert stock.reserved == 0, figures
            assert stock.on_hand + stock.sold == stock_per_product, figures
            assert stock.sold == completed_units[product], figures
        # Money is conserved: captured - refunded = totals of orders that went through.
        payments = [
            applications.payments.find_payment(uuid.UUID(order_id)) for order_id in order_ids
        ]
        captured = sum(
            p.amount for p in payments if p is not None and p.status in ("captured", "refunded")
        )
        refunded = sum(p.amount for p in payments if p is not None and p.status == "refunded")
        confirmed_totals = sum(
            view["total"] for view in finals.values() if view["status"] == "completed"
        )
        assert captured - refunded == confirmed_totals, (captured, refunded, confirmed_totals)
        assert_coupon_uses(applications, placed)
    finally:
        for application in applications.all():
            application.close()

    # No effect twice: one charge, one hold, one shipment per order, whatever was redelivered.
    for table in ("payments_events", "inventory_events", "shipping_events", "pricing_events"):
        stored = events_by_type(db, table, order_ids)
        assert not stored or max(stored.values()) == 1, (table, stored.most_common(3))


def assert_coupon_uses(applications: Applications, placed: list[PlacedOrder]) -> None:
    """A coupon's use is redeemed for each order with it that was confirmed (paid), and no
    use is left locked: every other one was released or refused."""
    with_coupon = [order for order in placed if order.coupon_code is not None]
    paid = set()
    for order in with_coupon:
        payment = applications.payments.find_payment(uuid.UUID(order.order_id))
        if payment is not None and payment.status in ("captured", "refunded"):
            paid.add(order.order_id)
    redeemed = set()
    for order in with_coupon:
        use = applications.pricing.find_coupon_use(uuid.UUID(order.order_id))
        status = None if use is None else use.status
        assert status in (None, "redeemed", "released", "refused"), (order.order_id, status)
        if status == "redeemed":
            redeemed.add(order.order_id)
    assert redeemed == paid, (len(redeemed), len(paid))
    for code in {order.coupon_code for order in with_coupon}:
        assert code is not None
        coupon = applications.pricing.get_coupon(code)
        mine = {order.order_id for order in with_coupon if order.coupon_code == code}
        assert not set(coupon.locks) & mine, "a use is still locked"
        assert coupon.redeemed_count == len(paid & mine), (coupon.redeemed_count, len(paid))


def unpaid(db: psycopg.Connection[Any], order_ids: list[str]) -> int:
    """Of these orders, how many the read model shows not yet past payment (or not yet)."""
    row = db.execute(
        "SELECT count(*) FROM unnest(%s::uuid[]) AS placed(order_id) "
        "LEFT JOIN orders_view USING (order_id) "
        "WHERE orders_view.status IS NULL OR orders_view.status IN ('pending', 'reserved')",
        (order_ids,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def assert_published_in_aggregate_order(
    settings: Settings, topic: str, aggregate_ids: set[str]
) -> int:
    """Each of these aggregates' events reached `topic` in version order: copies of earlier
    versions may follow (a relay resumes from its saved position), but a version never
    appears for the first time before the one ahead of it. Returns the copies seen."""
    seen: dict[str, int] = {}
    copies = 0
    for envelope in read_envelopes(settings.bootstrap_servers, topic):
        aggregate = str(envelope.aggregate_id)
        if aggregate not in aggregate_ids:
            continue
        highest = seen.get(aggregate, 0)
        if envelope.aggregate_version <= highest:
            copies += 1
            continue
        assert envelope.aggregate_version == highest + 1, (
            f"{topic}: {aggregate} v{envelope.aggregate_version} published before v{highest + 1}"
        )
        seen[aggregate] = envelope.aggregate_version
    return copies
