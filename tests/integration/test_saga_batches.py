"""A participant applies a batch of consumed events as one unit of work: each policy sees
what the ones before it did, everything is saved with every tracking in one transaction,
and when that cannot be (a conflict, a failing event) the batch is redone one event at a
time. On the real PostgreSQL, with the inventory participant, in a database of its own:
its made-up orders must not reach the live workers through the relay."""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from domain.inventory import Inventory
from domain.orders import Orders
from domain.shipping import SandboxCarrier
from entrypoints.stack import prepare_database
from eventmart.contracts import Envelope, event_id_for
from eventmart.database import drop_database, ensure_database, eventsourcing_env
from eventmart.metrics import METRICS
from eventmart.settings import Settings
from projections.tracking import Delivery
from tests.support import wait_until
from workers.due import act_on_each
from workers.inventory import PARTICIPANT as INVENTORY
from workers.inventory import expire_reservations, reserve_stock
from workers.orders import PARTICIPANT as ORDERS
from workers.saga import Context, PolicyProcessor, build_context
from workers.shipping import PARTICIPANT as SHIPPING
from workers.shipping import touches_order, track_shipments

SELLER = uuid.uuid4()
ADDRESS = {
    "name": "Ada",
    "line1": "1 Test St",
    "city": "Shanghai",
    "postal_code": "200000",
    "country": "CN",
}


@pytest.fixture(scope="module")
def own_settings(infrastructure: object, settings: Settings) -> Iterator[Settings]:
    parts = urlsplit(settings.dsn)
    dsn = urlunsplit(parts._replace(path=parts.path + "_batches"))
    drop_database(dsn)
    ensure_database(dsn)
    isolated = settings.model_copy(update={"database_url": dsn})
    prepare_database(isolated)
    yield isolated
    drop_database(dsn)


@pytest.fixture(scope="module")
def db(own_settings: Settings) -> Iterator[psycopg.Connection]:
    with psycopg.connect(own_settings.dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def inventory(own_settings: Settings) -> Iterator[Inventory]:
    application = Inventory(env=eventsourcing_env(own_settings.dsn, pool_size=2))
    yield application
    application.close()


@pytest.fixture
def processor(own_settings: Settings) -> Iterator[PolicyProcessor]:
    context = build_context(INVENTORY, own_settings)
    yield PolicyProcessor(INVENTORY, context)
    context.pool.close()


def product_with(inventory: Inventory, units: int) -> uuid.UUID:
    product_id = uuid.uuid4()
    inventory.register_product(product_id, SELLER)
    inventory.receive_stock(product_id, SELLER, units)
    return product_id


def placed(product_id: uuid.UUID, quantity: int, offset: int, **payload: Any) -> Delivery:
    order_id = uuid.uuid4()
    envelope = Envelope(
        event_id=event_id_for(order_id, 1),
        type="order.placed",
        schema_version=1,
        aggregate_id=order_id,
        aggregate_version=1,
        occurred_at=datetime.now(UTC),
        correlation_id=order_id,
        payload={
            "order_id": str(order_id),
            "lines": [{"product_id": str(product_id), "quantity": quantity}],
            **payload,
        },
    )
    return Delivery("orders.events", 0, offset, envelope)


def stored(db: psycopg.Connection, originator_id: uuid.UUID) -> int:
    return db.execute(
        "SELECT count(*) FROM inventory_events WHERE originator_id = %s", (originator_id,)
    ).fetchone()[0]


def reservation_status(inventory: Inventory, delivery: Delivery) -> str | None:
    reservation = inventory.find_reservation(delivery.envelope.aggregate_id)
    return None if reservation is None else reservation.status


def test_a_batch_is_one_unit_of_work_that_sees_its_own_changes(processor, inventory, db):
    mug = product_with(inventory, 3)
    batch = [placed(mug, 1, offset) for offset in range(5)]

    processor(batch)

    assert (processor.batches_saved, processor.batches_split) == (1, 0)
    assert [reservation_status(inventory, d) for d in batch] == ["confirmed"] * 3 + ["failed"] * 2
    stock = inventory.get_stock(mug)
    assert (stock.on_hand, stock.reserved) == (3, 3)


def test_copies_in_a_batch_or_of_an_applied_batch_change_nothing(processor, inventory, db):
    mug = product_with(inventory, 10)
    batch = [placed(mug, 2, offset) for offset in range(3)]
    processor([*batch, batch[0], batch[1]])
    events_after_first = stored(db, inventory.get_stock(mug).id)

    processor([*batch, batch[2]])

    stock = inventory.get_stock(mug)
    assert stock.reserved == 6
    assert stored(db, stock.id) == events_after_first == 2 + 3  # registered, received, 3 holds


def test_a_failing_event_splits_the_batch_and_the_others_are_applied(processor, inventory, db):
    mug = product_with(inventory, 10)
    good = [placed(mug, 1, offset) for offset in range(3)]
    poison = placed(mug, 1, 3)
    del poison.envelope.payload["lines"]

    with pytest.raises(KeyError):
        processor([good[0], poison, *good[1:]])

    assert processor.batches_split == 1
    assert [reservation_status(inventory, d) for d in good] == ["confirmed"] * 3
    assert reservation_status(inventory, poison) is None
    assert inventory.get_stock(mug).reserved == 3


def test_another_writer_meanwhile_makes_the_batch_redo_event_by_event(own_settings, inventory, db):
    mug = product_with(inventory, 2)
    seller_restocks = Inventory(env=eventsourcing_env(own_settings.dsn, pool_size=1))
    restocked: list[int] = []
    calls: list[Envelope] = []

    def reserve_after_a_restock(ctx: Context, event: Envelope) -> None:
        calls.append(event)
        if len(calls) == 2:  # the seller's delivery lands while the batch is in memory
            restocked.append(seller_restocks.receive_stock(mug, SELLER, 5))
        reserve_stock(ctx, event)

    participant = dataclasses.replace(INVENTORY, policies={"order.placed": reserve_after_a_restock})
    context = build_context(participant, own_settings)
    processor = PolicyProcessor(participant, context)
    batch = [placed(mug, 1, offset) for offset in range(4)]

    processor(batch)
    context.pool.close()
    seller_restocks.close()

    assert (processor.batches_saved, processor.batches_split) == (0, 1)
    assert restocked == [7]
    # One by one, each reservation sees the restock: 4 of 7 held, none lost or doubled.
    assert [reservation_status(inventory, d) for d in batch] == ["confirmed"] * 4
    stock = inventory.get_stock(mug)
    assert (stock.on_hand, stock.reserved) == (7, 4)


def saga_event(type_name: str, aggregate_id: uuid.UUID, offset: int, **payload: Any) -> Delivery:
    envelope = Envelope(
        event_id=event_id_for(aggregate_id, 2),
        type=type_name,
        schema_version=1,
        aggregate_id=aggregate_id,
        aggregate_version=2,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.UUID(payload["order_id"]),
        payload=payload,
    )
    return Delivery(type_name.split(".")[0] + "s.events", 0, offset, envelope)


def test_a_capture_that_overtakes_its_reservation_in_one_batch_confirms_the_order(own_settings):
    """Ids come from payloads as strings; the second policy on the order must see the first
    one's changes in the unit of work, not the stored order (which it would overwrite)."""
    orders = Orders(env=eventsourcing_env(own_settings.dsn, pool_size=1))
    order_id, _ = orders.place_order(
        uuid.uuid4(),
        [{"product_id": uuid.uuid4(), "quantity": 1, "unit_price": 500}],
        {
            "name": "A",
            "line1": "1 Road",
            "city": "Shanghai",
            "postal_code": "200000",
            "country": "CN",
        },
        {"method": "card", "intent_id": str(uuid.uuid4())},
        None,
        "",
        datetime.now(UTC),
        timedelta(minutes=15),
    )
    context = build_context(ORDERS, own_settings)
    processor = PolicyProcessor(ORDERS, context)
    captured = saga_event("payment.captured", uuid.uuid4(), 0, order_id=str(order_id), amount=500)
    reserved = saga_event("reservation.confirmed", uuid.uuid4(), 0, order_id=str(order_id))

    processor([captured, reserved])
    context.pool.close()

    assert (processor.batches_saved, processor.batches_split) == (1, 0)
    order = orders.get_order(order_id)
    orders.close()
    assert (order.status, order.version) == ("confirmed", 3)  # placed, reserved, confirmed


def test_a_batch_loads_its_aggregates_in_one_query_and_sees_other_writers(
    own_settings, inventory, db, monkeypatch
):
    """The participant names the aggregates each event will touch; the batch loads them
    (stock of every line, the new reservations known absent) with one query, fast-forwarding
    cached copies past what another writer saved since."""
    shelves = [product_with(inventory, 1) for _ in range(3)]
    context = build_context(INVENTORY, own_settings)
    processor = PolicyProcessor(INVENTORY, context)
    processor([placed(shelf, 1, 0) for shelf in shelves])  # caches every stock at 1 unit held
    for shelf in shelves:
        inventory.receive_stock(shelf, SELLER, 2)  # another writer: 2 more units each
    recorder = context.application.recorder
    one_by_one: list[Any] = []
    monkeypatch.setattr(
        recorder, "select_events", lambda *args, **kwargs: one_by_one.append(args) or []
    )
    batch = [placed(shelf, 2, 1) for shelf in shelves]

    processor(batch)
    context.pool.close()

    assert one_by_one == []  # nothing loaded aggregate by aggregate
    assert (processor.batches_saved, processor.batches_split) == (2, 0)
    assert [reservation_status(inventory, d) for d in batch] == ["confirmed"] * 3
    assert {(s.on_hand, s.reserved) for s in map(inventory.get_stock, shelves)} == {(3, 3)}


def test_a_timer_tick_loads_the_aggregates_of_its_due_orders_in_one_query(
    own_settings, monkeypatch
):
    """The carrier's tick advances every due parcel in one unit of work, the shipments
    loaded with one query first; an order whose shipment is not made yet is skipped."""
    context = build_context(SHIPPING, own_settings)
    shipping, carrier = context.application, SandboxCarrier(step_seconds=60)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    parcels = [uuid.uuid4() for _ in range(3)]
    for order_id in parcels:
        shipping.create_shipment(order_id, ADDRESS, now=an_hour_ago)
    not_shipped_yet = uuid.uuid4()
    one_by_one: list[Any] = []
    monkeypatch.setattr(
        shipping.recorder, "select_events", lambda *args, **kwargs: one_by_one.append(args) or []
    )

    def advance(order_id: uuid.UUID) -> bool:
        return shipping.find_shipment(order_id) is not None and bool(
            shipping.advance(order_id, datetime.now(UTC), carrier)
        )

    advanced = act_on_each(context, [*parcels, not_shipped_yet], advance, touches=touches_order)
    monkeypatch.undo()
    context.pool.close()

    assert one_by_one == []  # nothing loaded shipment by shipment
    assert advanced == 3
    assert [shipping.get_shipment(order_id).status for order_id in parcels] == ["delivered"] * 3
    assert shipping.find_shipment(not_shipped_yet) is None


def test_a_redriven_event_is_applied_if_never_applied_and_skipped_if_it_was(
    own_settings, inventory, db, caplog
):
    """Identities, not a high-water mark: `order.placed` (v1) fails and is parked, the order
    moves on (`order.cancelled`, v2, applied), then an operator redrives v1. It was never
    applied, so it is now; redriven again, it is skipped, counted and said aloud."""
    mug = product_with(inventory, 5)
    calls: list[int] = []

    def down_on_first_try(ctx: Context, event: Envelope) -> None:
        calls.append(event.aggregate_version)
        if len(calls) == 1:
            raise ConnectionError("the database went away")  # every try: parked
        reserve_stock(ctx, event)

    participant = dataclasses.replace(
        INVENTORY, policies={**INVENTORY.policies, "order.placed": down_on_first_try}
    )
    context = build_context(participant, own_settings)
    processor = PolicyProcessor(participant, context)
    parked = placed(mug, 1, 0)
    order_id = parked.envelope.aggregate_id
    cancelled = saga_event("order.cancelled", order_id, 1, order_id=str(order_id))
    with pytest.raises(ConnectionError):
        processor([parked])
    processor([cancelled])  # the aggregate moved on: v2 applied (nothing held to release)
    skipped_before = skipped_count(INVENTORY.group)

    redriven = dataclasses.replace(parked, offset=7, redriven=True)
    processor([redriven])
    assert calls == [1, 1]
    assert reservation_status(inventory, parked) == "confirmed"
    assert tracked_versions(db, order_id) == [1, 2]
    # The hold of an order cancelled meanwhile expires like any unpaid one: nothing stays held.
    assert deadline(db, "inventory_deadlines", "expire_reservations", order_id) is not None

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eventmart.saga"):
        processor([dataclasses.replace(parked, offset=8, redriven=True)])
    context.pool.close()
    assert calls == [1, 1]  # not applied twice
    assert skipped_count(INVENTORY.group) == skipped_before + 1
    [line] = [r for r in caplog.records if "applied already" in r.getMessage()]
    assert line.levelno == logging.WARNING
    assert f"redriven order.placed {parked.envelope.event_id}" in line.getMessage()
    assert inventory.get_stock(mug).reserved == 1


def test_inventory_expires_holds_of_unpaid_orders_from_its_own_deadlines(own_settings, db):
    """Nothing of the orders context exists in this database: inventory knows from the
    `order.confirmed` it consumed which order was paid, and finds due holds in its own
    deadline table."""
    inventory_now = build_context(
        INVENTORY, own_settings.model_copy(update={"reservation_ttl_seconds": 0})
    )
    processor = PolicyProcessor(INVENTORY, inventory_now)
    mug = product_with(inventory_now.application, 5)
    unpaid, paid = placed(mug, 1, 0), placed(mug, 1, 1)
    paid_id = paid.envelope.aggregate_id
    confirmed = saga_event("order.confirmed", paid_id, 2, order_id=str(paid_id), total=100)
    processor([unpaid, paid, confirmed])
    unpaid_id = unpaid.envelope.aggregate_id
    assert deadline(db, "inventory_deadlines", "expire_reservations", unpaid_id) is not None
    assert deadline(db, "inventory_deadlines", "expire_reservations", paid_id) is None

    assert expire_reservations(inventory_now) == 1
    assert expire_reservations(inventory_now) == 0
    inventory_now.pool.close()
    application = inventory_now.application
    assert application.find_reservation(unpaid_id).status == "released"
    assert application.find_reservation(paid_id).status == "confirmed"
    assert deadline(db, "inventory_deadlines", "expire_reservations", unpaid_id) is None
    assert application.get_stock(mug).reserved == 1


def test_the_carrier_timer_finds_parcels_in_shippings_own_deadlines(own_settings, db):
    """Each shipment is due for the carrier one step after its last news, in shipping's own
    table; delivered, it is due no more."""
    fast = own_settings.model_copy(update={"carrier_step_seconds": 0.01})
    context = build_context(SHIPPING, fast)
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    parcels = [uuid.uuid4() for _ in range(3)]
    for order_id in parcels:
        context.application.create_shipment(order_id, ADDRESS, now=an_hour_ago)
        assert deadline(db, "shipping_deadlines", "track_shipments", order_id) is not None

    wait_until(
        lambda: (
            db.execute(
                "SELECT count(*) FROM shipping_deadlines WHERE order_id = ANY(%s) AND due_at <= %s",
                (parcels, datetime.now(UTC)),
            ).fetchone()[0]
            == 3
        ),
        timeout=10,
        message="the parcels to be due",
    )
    advanced = track_shipments(context)
    context.pool.close()

    assert advanced == 3
    statuses = [context.application.get_shipment(order_id).status for order_id in parcels]
    assert statuses == ["delivered"] * 3
    assert all(deadline(db, "shipping_deadlines", "track_shipments", o) is None for o in parcels)


def skipped_count(group: str) -> float:
    value = METRICS.registry.get_sample_value("eventmart_events_skipped_total", {"group": group})
    return value or 0.0


def tracked_versions(db: psycopg.Connection, aggregate_id: uuid.UUID) -> list[int]:
    rows = db.execute(
        "SELECT notification_id FROM inventory_tracking WHERE application_name = %s "
        "ORDER BY notification_id",
        (str(aggregate_id),),
    ).fetchall()
    return [row[0] for row in rows]


def deadline(
    db: psycopg.Connection, table: str, timer: str, order_id: uuid.UUID
) -> datetime | None:
    row = db.execute(
        f"SELECT due_at FROM {table} WHERE timer = %s AND order_id = %s", (timer, order_id)
    ).fetchone()
    return None if row is None else row[0]
