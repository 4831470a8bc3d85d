"""The relay's ordering rules for one batch (workers.outbox.plan), without I/O: what is
sent, what is parked, what waits behind a parked event, and where the batch stops."""

from __future__ import annotations

from uuid import UUID, uuid4

from workers.outbox import Encoded, plan

A, B = uuid4(), uuid4()


def event(notification_id: int, aggregate: UUID, version: int, *, fails: bool = False) -> Encoded:
    return Encoded(
        notification_id=notification_id,
        aggregate_id=aggregate,
        aggregate_version=version,
        event_type="domain.catalog:Product.Created",
        key=str(aggregate).encode(),
        value=None if fails else b"{}",
        error=TypeError("Integer exceeds 64-bit range") if fails else None,
    )


def ids(events: list[Encoded]) -> list[int]:
    return [e.notification_id for e in events]


def test_a_batch_that_encodes_is_sent_in_order():
    batch = [event(1, A, 1), event(2, B, 1), event(3, A, 2)]
    decided = plan(batch, {}, {}, {}, max_tries=3)
    assert ids(decided.sends) == [1, 2, 3] and not decided.parks and decided.retry is None


def test_a_failing_event_with_tries_left_stops_the_batch_before_it():
    batch = [event(1, B, 1), event(2, A, 1, fails=True), event(3, B, 2)]
    decided = plan(batch, {}, {}, {}, max_tries=3)
    assert ids(decided.sends) == [1]
    assert decided.retry is batch[1] and decided.retry_tries == 1
    again = plan(batch[1:], {}, {2: 1}, {}, max_tries=3)
    assert again.retry is batch[1] and again.retry_tries == 2


def test_on_its_last_try_it_is_parked_its_aggregate_held_and_the_rest_flows():
    batch = [event(2, A, 1, fails=True), event(3, B, 1), event(4, A, 2), event(5, A, 3)]
    decided = plan(batch, {}, {2: 2}, {}, max_tries=3)
    assert ids(decided.sends) == [3]  # B is not held up
    failed, *held = decided.parks
    assert (failed.event.notification_id, failed.tries, failed.held_behind) == (2, 3, None)
    assert isinstance(failed.error, TypeError)
    assert [(h.event.notification_id, h.held_behind) for h in held] == [(4, 2), (5, 2)]
    assert decided.retry is None


def test_an_aggregate_parked_earlier_keeps_its_later_events_back():
    batch = [event(7, A, 4), event(8, B, 3)]
    decided = plan(batch, {A: 2}, {}, {}, max_tries=3)
    assert ids(decided.sends) == [8]
    assert [(p.event.notification_id, p.held_behind) for p in decided.parks] == [(7, 2)]


def test_an_event_the_broker_refused_is_sent_again_until_its_tries_are_spent():
    refusal = ValueError("MessageSizeTooLargeError")
    batch = [event(1, A, 1), event(2, A, 2)]
    retried = plan(batch, {}, {1: 2}, {1: refusal}, max_tries=3)
    assert ids(retried.sends) == [1, 2]
    spent = plan(batch, {}, {1: 3}, {1: refusal}, max_tries=3)
    assert not spent.sends
    assert [(p.event.notification_id, p.error, p.held_behind) for p in spent.parks] == [
        (1, refusal, None),
        (2, None, 1),
    ]


def test_private_events_are_neither_sent_nor_parked():
    private = Encoded(3, A, 1, "domain.catalog:SkuIndex.Claimed")
    decided = plan([private], {}, {}, {}, max_tries=3)
    assert not decided.sends and not decided.parks and decided.retry is None
