"""The order's status machine as a table: for each command and each status, apply it,
skip it (a duplicate or late saga event: a no-op) or refuse it with a named error.
Order (domain/orders.py) consults it before every command; the unit tests walk every cell."""

from __future__ import annotations

from typing import Literal

from domain.errors import Conflict, DomainError

STATUSES = (
    "pending",
    "reserved",
    "paid",
    "confirmed",
    "shipped",
    "delivered",
    "completed",
    "cancelled",
    "rejected",
)


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"


class OrderNotDelivered(Conflict):
    code = "order_not_delivered"


class OrderNotRejectable(Conflict):
    code = "order_not_rejectable"


class InvalidOrderTransition(Conflict):
    """An event arrived that the saga can never produce in this state: park it, don't guess."""

    code = "invalid_order_transition"


APPLY: Literal["apply"] = "apply"
SKIP: Literal["skip"] = "skip"
Outcome = Literal["apply", "skip"] | type[DomainError]


def _row(default: Outcome, **overrides: Outcome) -> dict[str, Outcome]:
    return {status: overrides.get(status, default) for status in STATUSES}


# command -> status -> apply (record events) | skip (duplicate or late: no-op) | error raised
TRANSITIONS: dict[str, dict[str, Outcome]] = {
    "mark_reserved": _row(SKIP, pending=APPLY),
    "reject": _row(
        OrderNotRejectable, pending=APPLY, reserved=APPLY, cancelled=SKIP, rejected=SKIP
    ),
    "mark_paid_and_confirm": _row(SKIP, pending=APPLY, reserved=APPLY, paid=APPLY),
    "cancel": _row(
        OrderNotCancellable,
        pending=APPLY,
        reserved=APPLY,
        paid=APPLY,
        confirmed=APPLY,
        cancelled=SKIP,
        rejected=SKIP,
    ),
    "mark_shipped": _row(
        InvalidOrderTransition,
        confirmed=APPLY,
        shipped=SKIP,
        delivered=SKIP,
        completed=SKIP,
        cancelled=SKIP,
    ),
    "mark_delivered": _row(
        InvalidOrderTransition,
        confirmed=APPLY,
        shipped=APPLY,
        delivered=SKIP,
        completed=SKIP,
        cancelled=SKIP,
    ),
    "confirm_receipt": _row(OrderNotDelivered, delivered=APPLY, completed=SKIP),
    "complete": _row(OrderNotDelivered, delivered=APPLY, completed=SKIP),
}
