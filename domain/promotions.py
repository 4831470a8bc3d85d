"""Promotions: a seller's (or an admin's) discount on a set of products, for a time window.

Which promotions combine, and how, is the pricing function's rule (domain.pricing): the
best non-stackable one, then the stackable ones, then the coupon, never below a floor.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from domain.errors import DomainError, InvalidInput, NotFound
from domain.limits import (
    MAX_CATEGORY_LENGTH,
    MAX_LINE_QUANTITY,
    MAX_MONEY_AMOUNT,
    MAX_PRODUCT_NAME_LENGTH,
    check_text,
    is_whole_number,
)
from domain.pricing import PROMOTION_KINDS, PromotionTerms, Scope, Window

INDEX_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:pricing-index")
MAX_SCOPE_PRODUCTS = 100
MAX_TIERS = 10
MAX_USES = 10**9
MAX_PER_USER = 10**6
EVERY_PRODUCT = "every-product"


class PromotionNotFound(NotFound):
    code = "promotion_not_found"


class NotPromotionOwner(DomainError):
    """A seller may discount only their own products, and end only their own promotions."""

    code = "not_product_owner"


class InvalidPromotion(InvalidInput):
    code = "invalid_promotion"


def check_percent(field: str, value: object) -> int:
    if not is_whole_number(value, 100):
        raise InvalidPromotion(f"{field} must be a whole number from 1 to 100")
    assert isinstance(value, int)
    return value


def check_count(field: str, value: object, maximum: int) -> int:
    if not is_whole_number(value, maximum):
        raise InvalidPromotion(f"{field} must be a whole number from 1 to {maximum}")
    assert isinstance(value, int)
    return value


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    if starts_at.tzinfo is None or ends_at.tzinfo is None:
        raise InvalidPromotion("starts_at and ends_at must be timezone-aware")
    if ends_at <= starts_at:
        raise InvalidPromotion("ends_at must be after starts_at")


def check_scope(scope: Mapping[str, Any]) -> Scope:
    """Every field given must match; an empty scope (an admin's) covers every product."""
    product_ids = list(scope.get("product_ids") or ())
    if len(product_ids) > MAX_SCOPE_PRODUCTS:
        raise InvalidPromotion(f"a scope names at most {MAX_SCOPE_PRODUCTS} products")
    category = scope.get("category")
    if category is not None:
        category = check_text("scope category", category, MAX_CATEGORY_LENGTH)
    return Scope.from_dict({**scope, "product_ids": product_ids, "category": category})


KIND_TERMS = {
    "percent_off": ("percent_off",),
    "amount_off": ("amount_off",),
    "buy_x_get_y": ("buy_quantity", "free_quantity"),
    "tiered": ("tiers",),
}


def check_kind_terms(kind: str, terms: Mapping[str, Any]) -> dict[str, Any]:
    """The field named after the kind is required; a field of another kind is refused (it
    would be dropped, and the seller would think it applies). None, or no tiers, is absent."""
    if kind not in PROMOTION_KINDS:
        raise InvalidPromotion(f"kind must be one of {', '.join(PROMOTION_KINDS)}")
    foreign = sorted(
        name
        for name, value in terms.items()
        if value is not None and value != [] and name not in KIND_TERMS[kind]
    )
    if foreign:
        raise InvalidPromotion(f"{', '.join(foreign)} does not belong to a {kind} promotion")
    if kind == "percent_off":
        return {"percent_off": check_percent("percent_off", terms.get("percent_off"))}
    if kind == "amount_off":
        return {"amount_off": check_count("amount_off", terms.get("amount_off"), MAX_MONEY_AMOUNT)}
    if kind == "buy_x_get_y":
        return {
            "buy_quantity": check_count(
                "buy_quantity", terms.get("buy_quantity"), MAX_LINE_QUANTITY
            ),
            "free_quantity": check_count(
                "free_quantity", terms.get("free_quantity"), MAX_LINE_QUANTITY
            ),
        }
    tiers = list(terms.get("tiers") or ())
    if not 1 <= len(tiers) <= MAX_TIERS:
        raise InvalidPromotion(f"a tiered promotion needs 1 to {MAX_TIERS} tiers")
    checked = sorted(
        (
            check_count("tier min_quantity", tier.get("min_quantity"), MAX_LINE_QUANTITY),
            check_percent("tier percent_off", tier.get("percent_off")),
        )
        for tier in tiers
    )
    return {"tiers": [{"min_quantity": q, "percent_off": p} for q, p in checked]}


def index_id(key: str) -> UUID:
    """The index of promotions and price rules for one product, category or seller."""
    return uuid5(INDEX_NAMESPACE, key)


def index_keys_of(scope: Scope) -> list[str]:
    """Where a promotion is filed: under its most selective scope field."""
    if scope.product_ids:
        return [f"product:{product_id}" for product_id in sorted(map(str, scope.product_ids))]
    if scope.category is not None:
        return [f"category:{scope.category}"]
    if scope.seller_id is not None:
        return [f"seller:{scope.seller_id}"]
    return [EVERY_PRODUCT]


def index_keys_for(product_id: UUID, category: str, seller_id: UUID) -> list[str]:
    """Every index a product's promotions may be filed in."""
    return [f"product:{product_id}", f"category:{category}", f"seller:{seller_id}", EVERY_PRODUCT]


class UseLedger:
    """The uses of a limited offer (a coupon, a promotion with limits): which orders hold one
    (`locks`: order id -> user id, until settled), how many were redeemed, and how many each
    user took (locked or redeemed). Only what is in flight is kept per order, the rest are
    counts, so the state a saga batch copies does not grow with every order. The aggregates'
    events call these; their names and payloads are theirs."""

    locks: dict[str, str]
    redeemed_count: int
    uses_per_user: dict[str, int]

    def _open_ledger(self) -> None:
        self.locks = {}
        self.redeemed_count = 0
        self.uses_per_user = {}

    @property
    def uses_taken(self) -> int:
        return len(self.locks) + self.redeemed_count

    def uses_by(self, user_id: UUID) -> int:
        return self.uses_per_user.get(str(user_id), 0)

    def holds_use_for(self, order_id: UUID) -> bool:
        """A use locked for the order (a redeemed one is its CouponUse's to remember)."""
        return str(order_id) in self.locks

    def holder_of(self, order_id: UUID) -> UUID:
        return UUID(self.locks[str(order_id)])

    def _note_locked(self, order_id: UUID, user_id: UUID) -> None:
        self.locks[str(order_id)] = str(user_id)
        self.uses_per_user[str(user_id)] = self.uses_by(user_id) + 1

    def _note_redeemed(self, order_id: UUID) -> None:
        del self.locks[str(order_id)]
        self.redeemed_count += 1

    def _note_released(self, order_id: UUID) -> None:
        user = self.locks.pop(str(order_id))
        left = self.uses_per_user.get(user, 1) - 1
        if left:
            self.uses_per_user[user] = left
        else:
            self.uses_per_user.pop(user, None)


class Promotion(UseLedger, Aggregate):
    @event("Created")
    def __init__(
        self,
        owner_id: UUID,
        name: str,
        kind: str,
        terms: dict[str, Any],
        scope: dict[str, Any],
        starts_at: datetime,
        ends_at: datetime,
        max_uses: int | None,
        per_user_limit: int | None,
        stackable: bool,
    ) -> None:
        self.owner_id = owner_id
        self.name = name
        self.kind = kind
        self.terms = terms
        self.scope = scope
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.max_uses = max_uses
        self.per_user_limit = per_user_limit
        self.stackable = stackable
        self.ended_at: datetime | None = None
        # Uses, for a promotion with a limit (as a coupon keeps them): only what is in
        # flight is kept per order, the rest are counts.
        self._open_ledger()

    @staticmethod
    def create(
        owner_id: UUID,
        name: str,
        kind: str,
        terms: Mapping[str, Any],
        scope: Mapping[str, Any],
        starts_at: datetime,
        ends_at: datetime,
        max_uses: int | None = None,
        per_user_limit: int | None = None,
        stackable: bool = False,
    ) -> Promotion:
        check_window(starts_at, ends_at)
        return Promotion(
            owner_id=owner_id,
            name=check_text("name", name, MAX_PRODUCT_NAME_LENGTH),
            kind=kind,
            terms=check_kind_terms(kind, terms),
            scope=check_scope(scope).as_dict(),
            starts_at=starts_at,
            ends_at=ends_at,
            max_uses=None if max_uses is None else check_count("max_uses", max_uses, MAX_USES),
            per_user_limit=None
            if per_user_limit is None
            else check_count("per_user_limit", per_user_limit, MAX_PER_USER),
            stackable=bool(stackable),
        )

    def end(self, by: UUID, is_admin: bool, now: datetime) -> bool:
        if not is_admin and by != self.owner_id:
            raise NotPromotionOwner(f"promotion {self.id} belongs to another seller")
        if self.ended_at is not None or now >= self.ends_at:
            return False
        self._ended(ended_at=now)
        return True

    @event("Ended")
    def _ended(self, ended_at: datetime) -> None:
        self.ended_at = ended_at

    def is_active(self, now: datetime) -> bool:
        return self.terms_for_pricing().window.is_open(now)

    # Limits: `max_uses` orders in all, `per_user_limit` per buyer. A use is locked for an
    # order by the pricing participant of the saga (with the order's stock and coupon, all
    # or nothing), redeemed on confirmation, released when the order ends unpaid. Every use
    # is an event of this one aggregate, so a racing save of the same version is refused
    # and the limits hold under any concurrency.

    @property
    def limited(self) -> bool:
        return self.max_uses is not None or self.per_user_limit is not None

    @property
    def remaining_uses(self) -> int | None:
        """None: no total limit."""
        if self.max_uses is None:
            return None
        return self.max_uses - self.uses_taken

    def has_use_for(self, user_id: UUID | None) -> bool:
        """A use is left (for this user, if known): else quotes leave the promotion out."""
        remaining = self.remaining_uses
        if remaining is not None and remaining <= 0:
            return False
        per_user = self.per_user_limit
        return per_user is None or user_id is None or self.uses_by(user_id) < per_user

    def may_lock(self, order_id: UUID, user_id: UUID) -> bool:
        return self.holds_use_for(order_id) or self.has_use_for(user_id)

    def lock_use(self, order_id: UUID, user_id: UUID, causation_id: UUID | None) -> None:
        if self.holds_use_for(order_id) or not self.may_lock(order_id, user_id):
            return
        remaining = self.remaining_uses
        self._use_locked(
            order_id=order_id,
            user_id=user_id,
            remaining_uses=None if remaining is None else remaining - 1,
            correlation_id=order_id,
            causation_id=causation_id,
        )

    @event("UseLocked")
    def _use_locked(
        self,
        order_id: UUID,
        user_id: UUID,
        remaining_uses: int | None,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self._note_locked(order_id, user_id)

    def redeem_use(self, order_id: UUID, causation_id: UUID | None) -> bool:
        if not self.holds_use_for(order_id):
            return False
        self._use_redeemed(
            order_id=order_id,
            user_id=self.holder_of(order_id),
            remaining_uses=self.remaining_uses,
            correlation_id=order_id,
            causation_id=causation_id,
        )
        return True

    @event("UseRedeemed")
    def _use_redeemed(
        self,
        order_id: UUID,
        user_id: UUID,
        remaining_uses: int | None,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self._note_redeemed(order_id)

    def release_use(self, order_id: UUID, reason: str, causation_id: UUID | None) -> bool:
        if not self.holds_use_for(order_id):
            return False
        remaining = self.remaining_uses
        self._use_released(
            order_id=order_id,
            user_id=self.holder_of(order_id),
            reason=reason,
            remaining_uses=None if remaining is None else remaining + 1,
            correlation_id=order_id,
            causation_id=causation_id,
        )
        return True

    @event("UseReleased")
    def _use_released(
        self,
        order_id: UUID,
        user_id: UUID,
        reason: str,
        remaining_uses: int | None,
        correlation_id: UUID | None,
        causation_id: UUID | None,
    ) -> None:
        self._note_released(order_id)

    def terms_for_pricing(self) -> PromotionTerms:
        tiers = tuple((t["min_quantity"], t["percent_off"]) for t in self.terms.get("tiers", ()))
        return PromotionTerms(
            promotion_id=self.id,
            name=self.name,
            kind=self.kind,  # type: ignore[arg-type]
            scope=Scope.from_dict(self.scope),
            window=Window(self.starts_at, self.ends_at, self.ended_at),
            stackable=self.stackable,
            limited=self.limited,
            percent_off=self.terms.get("percent_off"),
            amount_off=self.terms.get("amount_off"),
            buy_quantity=self.terms.get("buy_quantity"),
            free_quantity=self.terms.get("free_quantity"),
            tiers=tiers,
        )


class PricingIndex(Aggregate):
    """The promotions and price rules filed under one product, category or seller, so a
    quote loads a few small aggregates rather than scanning every promotion."""

    @staticmethod
    def create_id(key: str, **_: Any) -> UUID:
        return index_id(key)

    @event("Opened")
    def __init__(self, key: str) -> None:
        self.key = key
        self.promotion_ids: list[UUID] = []
        self.rule_ids: list[UUID] = []

    def file_promotion(self, promotion_id: UUID) -> None:
        if promotion_id not in self.promotion_ids:
            self._promotion_filed(promotion_id=promotion_id)

    @event("PromotionFiled")
    def _promotion_filed(self, promotion_id: UUID) -> None:
        self.promotion_ids.append(promotion_id)

    def file_rule(self, rule_id: UUID) -> None:
        if rule_id not in self.rule_ids:
            self._rule_filed(rule_id=rule_id)

    @event("RuleFiled")
    def _rule_filed(self, rule_id: UUID) -> None:
        self.rule_ids.append(rule_id)


def active_terms(
    promotions: Sequence[Promotion], now: datetime, user_id: UUID | None = None
) -> list[PromotionTerms]:
    """The promotions in force, less those with no use left (for `user_id`, if known)."""
    return [
        p.terms_for_pricing() for p in promotions if p.is_active(now) and p.has_use_for(user_id)
    ]
