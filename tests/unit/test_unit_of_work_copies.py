"""A saga batch's unit of work hands each policy a copy of what the batch changed so far
(workers.tracking): the copy is the policy's own, and the events pending on it are the ones
the batch made, in order, whatever the copy's owner does with them."""

from __future__ import annotations

from uuid import uuid4

from domain.coupons import Coupon
from tests.unit.test_pricing import new_coupon
from workers.tracking import copy_in_unit

BUYER = uuid4()


def locked_twice() -> Coupon:
    coupon = new_coupon(total_uses=10, per_user_uses=10)
    for _ in range(2):
        coupon.lock(uuid4(), BUYER)
    return coupon


def test_the_copy_keeps_the_pending_events_and_changes_alone():
    held = locked_twice()
    before = list(held.pending_events)
    copied = copy_in_unit(held)
    assert copied is not held and copied.locks == held.locks and copied.locks is not held.locks
    assert copied.pending_events == before and copied.pending_events is not held.pending_events

    copied.lock(uuid4(), BUYER)  # what the next policy does with its copy
    assert len(copied.pending_events) == len(before) + 1
    assert held.pending_events == before and len(held.locks) == 2  # the held one is untouched

    assert [e.originator_version for e in copied.collect_events()] == [1, 2, 3, 4]
    assert held.pending_events == before  # collecting the copy's did not empty the held one


def test_an_aggregate_with_nothing_pending_is_copied_whole():
    coupon = new_coupon()
    coupon.collect_events()
    copied = copy_in_unit(coupon)
    assert copied == coupon and copied is not coupon and copied.pending_events == []
