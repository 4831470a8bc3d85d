"""Coupons: a code worth a discount, with a total and a per-user number of uses.

The limits hold under any concurrency because the coupon aggregate is the one writer of
its uses: every lock, redemption and release is an event of that one aggregate, and the
event store's optimistic concurrency refuses a racing save of the same version (the
loser reloads and asks again). A use is locked for an order with its stock (by the
pricing participant of the saga), then redeemed when the order is confirmed or released
when it is rejected, cancelled or expires. A `CouponUse` per order says, for the saga,
what became of that order's coupon.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import Conflict, InvalidInput, NotFound
from domain.limits import MAX_MONEY_AMOUNT, is_whole_number
from domain.pricing import CouponTerms, Scope, Window
from domain.promotions import (
    MAX_PER_USER,
    MAX_USES,
    Promotion,
    UseLedger,
    check_count,
    check_percent,
    check_scope,
    check_window,
)

COUPON_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:coupon")
COUPON_USE_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:coupon-use")
COUPON_CODE = re.compile(r"[A-Z0-9][A-Z0-9_-]{2,31}")
RELEASE_REASONS = ("rejected", "cancelled")
REFUSAL_REASON = "coupon_unavailable"
PROMOTION_REFUSAL_REASON = "promotion_unavailable"  # API.md names none for promotions
UseStatus = Literal["locked", "refused", "redeemed", "released"]


class CouponInvalid(InvalidInput):
    """At placement: no such coupon, or it has ended (or has not begun, or does not apply)."""

    code = "coupon_invalid"


class CouponNotFound(NotFound):
    code = "coupon_not_found"


class CouponCodeTaken(Conflict):
    code = "coupon_code_taken"


def normalise_code(code: str) -> str:
    """Codes compare case-insensitively: `spring10` is `SPRING10`."""
    normal = code.strip().upper() if isinstance(code, str) else ""
    if not COUPON_CODE.fullmatch(normal):
        raise CouponInvalid("a coupon code is 3 to 32 letters, digits, '-' or '_'")
    return normal


class Coupon(UseLedger, Aggregate):
    """Invariant: locked + redeemed uses <= total_uses, and per user <= per_user_uses."""

    @staticmethod
    def create_id(code: str, **_: Any) -> UUID:
        """`code` as normalise_code leaves it."""
        return uuid5(COUPON_NAMESPACE, str(code))

    @event("Created")
    def __init__(
        self,
        code: str,
        owner_id: UUID,
        percent_off: int | None,
        amount_off: int | None,
        min_order: int,
        scope: dict[str, Any],
        starts_at: datetime,
        ends_at: datetime,
        total_uses: int,
        per_user_uses: int,
    ) -> None:
        self.code = code
        self.owner_id = owner_id
        self.percent_off = percent_off
        self.amount_off = amount_off
        self.min_order = min_order
        self.scope = scope
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.total_uses = total_uses
        self.per_user_uses = per_user_uses
        self._open_ledger()

    @staticmethod
    def create(
        code: str,
        owner_id: UUID,
        percent_off: int | None,
        amount_off: int | None,
        min_order: int | None,
        scope: Mapping[str, Any],
        starts_at: datetime,
        ends_at: datetime,
        total_uses: int,
        per_user_uses: int,
    ) -> Coupon:
        if (percent_off is None) == (amount_off is None):
            raise InvalidInput("a coupon has exactly one of percent_off and amount_off")
        check_window(starts_at, ends_at)
        if min_order is not None and not is_whole_number(min_order, MAX_MONEY_AMOUNT):
            raise InvalidInput(f"min_order must be a whole number from 1 to {MAX_MONEY_AMOUNT}")
        return Coupon(
            code=normalise_code(code),
            owner_id=owner_id,
            percent_off=None if percent_off is None else check_percent("percent_off", percent_off),
            amount_off=None
            if amount_off is None
            else check_count("amount_off", amount_off, MAX_MONEY_AMOUNT),
            min_order=min_order or 0,
            scope=check_scope(scope).as_dict(),
            starts_at=starts_at,
            ends_at=ends_at,
            total_uses=check_count("total_uses", total_uses, MAX_USES),
            per_user_uses=check_count("per_user_uses", per_user_uses, MAX_PER_USER),
        )

    @property
    def remaining_uses(self) -> int:
        return self.total_uses - self.uses_taken

    def terms(self) -> CouponTerms:
        return CouponTerms(
            code=self.code,
            scope=Scope.from_dict(self.scope),
            window=Window(self.starts_at, self.ends_at),
            percent_off=self.percent_off,
            amount_off=self.amount_off,
            min_order=self.min_order,
        )

    def why_unusable(self, user_id: UUID | None, now: datetime) -> str | None:
        if not self.terms().window.is_open(now):
            return "not_started" if now < self.starts_at else "ended"
        if self.remaining_uses <= 0:
            return "used_up"
        if user_id is not None and self.uses_by(user_id) >= self.per_user_uses:
            return "per_user_limit_reached"
        return None

    def may_lock(self, order_id: UUID, user_id: UUID) -> bool:
        """Limits only: the window was checked when the order was placed."""
        if self.holds_use_for(order_id):
            return True
        return self.remaining_uses > 0 and self.uses_by(user_id) < self.per_user_uses

    def lock(self, order_id: UUID, user_id: UUID, causation_id: UUID | None = None) -> None:
        if self.holds_use_for(order_id) or not self.may_lock(order_id, user_id):
            return
        self._locked(
            code=self.code,
            order_id=order_id,
            user_id=user_id,
            remaining_uses=self.remaining_uses - 1,
            correlation_id=order_id,
            causation_id=causation_id,
        )

    @event("Locked")
    def _locked(
        self,
        code: str,
        order_id: UUID,
        user_id: UUID,
        remaining_uses: int,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self._note_locked(order_id, user_id)

    def redeem(self, order_id: UUID, causation_id: UUID | None = None) -> bool:
        if not self.holds_use_for(order_id):
            return False
        self._redeemed(
            code=self.code,
            order_id=order_id,
            user_id=self.holder_of(order_id),
            remaining_uses=self.remaining_uses,
            correlation_id=order_id,
            causation_id=causation_id,
        )
        return True

    @event("Redeemed")
    def _redeemed(
        self,
        code: str,
        order_id: UUID,
        user_id: UUID,
        remaining_uses: int,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self._note_redeemed(order_id)

    def release(self, order_id: UUID, reason: str, causation_id: UUID | None = None) -> bool:
        if not self.holds_use_for(order_id):
            return False
        self._released(
            code=self.code,
            order_id=order_id,
            user_id=self.holder_of(order_id),
            reason=reason,
            remaining_uses=self.remaining_uses + 1,
            correlation_id=order_id,
            causation_id=causation_id,
        )
        return True

    @event("Released")
    def _released(
        self,
        code: str,
        order_id: UUID,
        user_id: UUID,
        reason: str,
        remaining_uses: int,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self._note_released(order_id)


class CouponUse(Aggregate):
    """What became of one order's coupon and limited promotions (those with `max_uses` or
    `per_user_limit`): a use of each locked together, or refused, then redeemed or
    released. Opened closed (`closed_before_lock`) when the order ended before its stock
    was held, so a late reservation locks nothing."""

    @staticmethod
    def create_id(order_id: UUID, **_: Any) -> UUID:
        return uuid5(COUPON_USE_NAMESPACE, str(order_id))

    @event("Opened")
    def __init__(self, order_id: UUID, code: str | None) -> None:
        self.order_id = order_id
        self.code = code
        self.status: str = "open"
        self.promotion_ids: list[UUID] = []

    @event("Locked")
    def _locked(
        self,
        order_id: UUID,
        code: str | None,
        correlation_id: UUID | None,
        causation_id: UUID | None,
        promotion_ids: list[UUID] | None = None,
    ) -> None:
        """`promotion_ids`: the limited promotions a use was locked of (uses locked before
        promotion limits were enforced have none)."""
        self.status = "locked"
        self.promotion_ids = list(promotion_ids or ())

    @event("Refused")
    def _refused(
        self,
        order_id: UUID,
        code: str | None,
        reason: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status = "refused"

    @event("Redeemed")
    def _redeemed(
        self,
        order_id: UUID,
        code: str | None,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status = "redeemed"

    @event("Released")
    def _released(
        self,
        order_id: UUID,
        code: str | None,
        reason: str,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self.status = "released"

    def record_lock(
        self,
        coupon: Coupon | None,
        promotions: Sequence[Promotion],
        user_id: UUID,
        causation_id: UUID | None,
    ) -> bool:
        """Lock one use of the coupon and of each limited promotion, all or none: True if
        the uses are held. Refused for the coupon first (`coupon_unavailable`), then for a
        promotion (`promotion_unavailable`)."""
        if self.status != "open":
            return self.status == "locked"
        order_id = self.order_id
        code = None if coupon is None else coupon.code
        reason = None
        if coupon is not None and not coupon.may_lock(order_id, user_id):
            reason = REFUSAL_REASON
        elif not all(p.may_lock(order_id, user_id) for p in promotions):
            reason = PROMOTION_REFUSAL_REASON
        if reason is not None:
            self._refused(
                order_id=order_id,
                code=code,
                reason=reason,
                correlation_id=order_id,
                causation_id=causation_id,
            )
            return False
        if coupon is not None:
            coupon.lock(order_id, user_id, causation_id)
        for promotion in promotions:
            promotion.lock_use(order_id, user_id, causation_id)
        self._locked(
            order_id=order_id,
            code=code,
            correlation_id=order_id,
            causation_id=causation_id,
            promotion_ids=[p.id for p in promotions],
        )
        return True

    def record_redemption(
        self, coupon: Coupon | None, promotions: Sequence[Promotion], causation_id: UUID | None
    ) -> bool:
        if self.status != "locked":
            return False
        if coupon is not None:
            coupon.redeem(self.order_id, causation_id)
        for promotion in promotions:
            promotion.redeem_use(self.order_id, causation_id)
        self._redeemed(
            order_id=self.order_id,
            code=self.code,
            correlation_id=self.order_id,
            causation_id=causation_id,
        )
        return True

    def record_release(
        self,
        coupon: Coupon | None,
        promotions: Sequence[Promotion],
        reason: str,
        causation_id: UUID | None,
    ) -> bool:
        """Gives the uses back (if held); an open use is closed, so no later lock holds one."""
        if self.status not in ("open", "locked"):
            return False
        if coupon is not None:
            coupon.release(self.order_id, reason, causation_id)
        for promotion in promotions:
            promotion.release_use(self.order_id, reason, causation_id)
        self._released(
            order_id=self.order_id,
            code=self.code,
            reason=reason,
            correlation_id=self.order_id,
            causation_id=causation_id,
        )
        return True
