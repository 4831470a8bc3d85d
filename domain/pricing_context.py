"""The pricing context's application (tables `pricing_events`): promotions, coupons, price
rules, the quote, and the coupon steps of the order saga."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Iterable, Sequence
from copy import deepcopy
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from domain.coupons import (
    Coupon,
    CouponCodeTaken,
    CouponInvalid,
    CouponNotFound,
    CouponUse,
    normalise_code,
)
from domain.errors import ConcurrentUpdate
from domain.idempotency import IdempotencyKey, claim_key, find_key, save_with_key
from domain.price_rules import DemandHold, PriceRule
from domain.pricing import CouponTerms, OrderQuote, PricedProduct, Scope, price_order
from domain.promotions import (
    PricingIndex,
    Promotion,
    PromotionNotFound,
    active_terms,
    index_keys_for,
    index_keys_of,
)
from domain.reads import ReadsWithoutChanging

ALL_PROMOTIONS = "all"


@dataclass(frozen=True)
class CouponStatus:
    code: str
    remaining_uses: int
    valid: bool
    reason: str | None


class Pricing(ReadsWithoutChanging, Application[UUID]):
    name = "Pricing"
    # Quotes read the same few aggregates again and again: kept in memory, each read only
    # fast-forwards past the version held (one query), never replays from the start.
    env: ClassVar[dict[str, str]] = {"AGGREGATE_CACHE_MAXSIZE": "20000"}

    # Promotions

    def create_promotion(
        self,
        owner_id: UUID,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        **fields: Any,
    ) -> Promotion:
        """With an Idempotency-Key, the same request again answers the first promotion."""
        scope = f"create_promotion:{owner_id}"
        earlier = find_key(self, scope, idempotency_key)
        if earlier is not None:
            return self.get_promotion(earlier.replay(fingerprint))
        promotion = Promotion.create(owner_id, **fields)
        keys = [*index_keys_of(Scope.from_dict(promotion.scope)), ALL_PROMOTIONS]
        earlier = self._save_filed(
            promotion,
            keys,
            lambda index: index.file_promotion(promotion.id),
            claim_key(scope, idempotency_key, fingerprint, promotion),
        )
        return promotion if earlier is None else self.get_promotion(earlier.replay(fingerprint))

    def end_promotion(self, promotion_id: UUID, by: UUID, is_admin: bool, now: datetime) -> bool:
        promotion = self.get_promotion(promotion_id)
        ended = promotion.end(by, is_admin, now)
        if ended:
            self._save(promotion)
        return ended

    def get_promotion(self, promotion_id: UUID) -> Promotion:
        found = self._find(promotion_id)
        if not isinstance(found, Promotion):
            raise PromotionNotFound(str(promotion_id))
        return found

    def indexes(self, keys: Iterable[str], *, to_change: bool = True) -> list[PricingIndex]:
        found = (self._find(PricingIndex.create_id(key), to_change) for key in keys)
        return [index for index in found if isinstance(index, PricingIndex)]

    def promotions_filed(self, keys: Iterable[str]) -> list[Promotion]:
        """The promotions filed under any of these index keys, each once, oldest first."""
        return self._promotions_in(self.indexes(keys))

    def _promotions_in(
        self, indexes: Iterable[PricingIndex], *, to_change: bool = True
    ) -> list[Promotion]:
        ids = dict.fromkeys(i for index in indexes for i in index.promotion_ids)
        found = (self._find(i, to_change) for i in ids)
        return [p for p in found if isinstance(p, Promotion)]

    def _rules_in(
        self, indexes: Iterable[PricingIndex], *, to_change: bool = True
    ) -> list[PriceRule]:
        ids = dict.fromkeys(i for index in indexes for i in index.rule_ids)
        found = (self._find(i, to_change) for i in ids)
        return [r for r in found if isinstance(r, PriceRule)]

    def promotions_for(self, product_id: UUID, category: str, seller_id: UUID) -> list[Promotion]:
        return self.promotions_filed(index_keys_for(product_id, category, seller_id))

    def all_promotions(self) -> list[Promotion]:
        return self.promotions_filed([ALL_PROMOTIONS])

    # Price rules

    def create_rule(
        self,
        owner_id: UUID,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        **fields: Any,
    ) -> PriceRule:
        """With an Idempotency-Key, the same request again answers the first rule."""
        scope = f"create_rule:{owner_id}"
        earlier = find_key(self, scope, idempotency_key)
        if earlier is not None:
            return self.get_rule(earlier.replay(fingerprint))
        rule = PriceRule.create(owner_id, **fields)
        keys = index_keys_of(Scope.from_dict(rule.scope))
        earlier = self._save_filed(
            rule,
            keys,
            lambda index: index.file_rule(rule.id),
            claim_key(scope, idempotency_key, fingerprint, rule),
        )
        return rule if earlier is None else self.get_rule(earlier.replay(fingerprint))

    def rules_for(self, product_id: UUID, category: str, seller_id: UUID) -> list[PriceRule]:
        return self._rules_in(self.indexes(index_keys_for(product_id, category, seller_id)))

    def get_rule(self, rule_id: UUID) -> PriceRule:
        found = self._find(rule_id)
        if not isinstance(found, PriceRule):
            raise PromotionNotFound(f"no price rule {rule_id}")
        return found

    def reprice_for_stock(
        self, product_id: UUID, available: int, caused_by: UUID | None = None
    ) -> list[PriceRule]:
        """Inventory reported the product's available stock: each stock_level rule filed
        under the product records the price it now sets, if that changed (`price.changed`,
        with the reason). Rules scoped by category or seller are not moved by stock."""
        changed = []
        for rule in self._rules_in(self.indexes([f"product:{product_id}"])):
            if rule.kind != "stock_level":
                continue
            price = rule.price_for_stock(available)
            if rule.change_price(product_id, price, f"available stock {available}", caused_by):
                changed.append(rule)
        if changed:
            self._save(*changed)
        return changed

    def move_window(self, rule_id: UUID, now: datetime, caused_by: UUID | None = None) -> bool:
        """A time_window rule's change due at `now` recorded (workers/pricing.py)."""
        rule = self._find(rule_id)
        if not isinstance(rule, PriceRule) or not rule.move_window(now, caused_by):
            return False
        self._save(rule)
        return True

    def note_demand(self, order_id: UUID, lines: Iterable[tuple[UUID, int]]) -> bool:
        """A placed order's units of products a demand rule watches (rules filed under the
        product), to count as sales if it is confirmed."""
        if self._find(DemandHold.create_id(order_id)) is not None:
            return False
        watched = [
            {"rule_id": rule.id, "product_id": product_id, "units": units}
            for product_id, units in lines
            for rule in self._rules_in(self.indexes([f"product:{product_id}"], to_change=False))
            if rule.kind == "demand"
        ]
        if not watched:
            return False
        self._save(DemandHold(order_id=order_id, lines=watched))
        return True

    def count_demand(self, order_id: UUID, now: datetime, caused_by: UUID | None = None) -> bool:
        """The order is confirmed: its units are sales of the last hour; each rule moves
        its price if its steps changed."""
        hold = self._find(DemandHold.create_id(order_id))
        if not isinstance(hold, DemandHold) or not hold.count():
            return False
        rules: dict[UUID, PriceRule] = {}
        for line in hold.lines:
            rule_id = UUID(str(line["rule_id"]))
            rule = rules.get(rule_id) or self._find(rule_id)
            if isinstance(rule, PriceRule):
                rules[rule_id] = rule
                rule.record_sale(UUID(str(line["product_id"])), line["units"], now, caused_by)
        self._save(*rules.values(), hold)
        return True

    def reprice_for_demand(self, rule_id: UUID, now: datetime) -> bool:
        """Sales left the hour: the rule steps its price back (its timer, workers/pricing)."""
        rule = self._find(rule_id)
        if not isinstance(rule, PriceRule) or not rule.reprice_for_demand(now):
            return False
        self._save(rule)
        return True

    # Coupons

    def create_coupon(
        self,
        owner_id: UUID,
        code: str | None,
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
        **fields: Any,
    ) -> Coupon:
        """With an Idempotency-Key, the same request again answers the first coupon (a
        code made up for it included) instead of 409 `coupon_code_taken`."""
        scope = f"create_coupon:{owner_id}"
        earlier = find_key(self, scope, idempotency_key)
        if earlier is not None:
            return self._created_coupon(earlier.replay(fingerprint))
        coupon = Coupon.create(code or secrets.token_hex(5).upper(), owner_id, **fields)
        try:
            earlier = save_with_key(
                self, claim_key(scope, idempotency_key, fingerprint, coupon), coupon
            )
        except IntegrityError as error:
            raise CouponCodeTaken(f"coupon {coupon.code} exists already") from error
        return coupon if earlier is None else self._created_coupon(earlier.replay(fingerprint))

    def _created_coupon(self, coupon_id: UUID) -> Coupon:
        found = self._find(coupon_id)
        if not isinstance(found, Coupon):
            raise CouponNotFound(f"no coupon {coupon_id}")
        return found

    def find_coupon(self, code: str, *, to_change: bool = True) -> Coupon | None:
        try:
            found = self._find(Coupon.create_id(normalise_code(code)), to_change)
        except CouponInvalid:
            return None
        return found if isinstance(found, Coupon) else None

    def get_coupon(self, code: str, *, to_change: bool = True) -> Coupon:
        coupon = self.find_coupon(code, to_change=to_change)
        if coupon is None:
            raise CouponNotFound(f"no coupon {code}")
        return coupon

    def coupon_status(self, code: str, user_id: UUID | None, now: datetime) -> CouponStatus:
        coupon = self.get_coupon(code, to_change=False)
        reason = coupon.why_unusable(user_id, now)
        return CouponStatus(coupon.code, max(coupon.remaining_uses, 0), reason is None, reason)

    def usable_coupon(self, code: str, now: datetime) -> Coupon:
        """At placement: 422 `coupon_invalid` if unknown, not begun or ended. Whether a use
        is left is the saga's question (uses are locked with the stock)."""
        coupon = self.find_coupon(code, to_change=False)
        if coupon is None:
            raise CouponInvalid(f"no coupon {code}")
        reason = coupon.why_unusable(None, now)
        if reason in ("not_started", "ended"):
            raise CouponInvalid(f"coupon {coupon.code} has {reason.replace('_', ' ')}")
        return coupon

    # The quote: the one pricing function, fed from this context's store

    def quote(
        self,
        products: Sequence[PricedProduct],
        coupon: CouponTerms | None,
        now: datetime,
        user_id: UUID | None = None,
    ) -> OrderQuote:
        """`products` carry the catalogue's price: a price rule's current price replaces it
        (bounded by the rule's floor, which discounts may not go below either). A promotion
        with no use left (for `user_id`, if given) takes nothing."""
        promotions: dict[UUID, Promotion] = {}
        priced: list[PricedProduct] = []
        for product in products:
            assert product.seller_id is not None
            keys = index_keys_for(product.product_id, product.category, product.seller_id)
            indexes = self.indexes(keys, to_change=False)
            promotions.update((p.id, p) for p in self._promotions_in(indexes, to_change=False))
            priced.append(_with_rules(product, self._rules_in(indexes, to_change=False), now))
        terms = active_terms(list(promotions.values()), now, user_id)
        return price_order(priced, terms, coupon, now)

    # The saga's coupon steps (the pricing participant, workers/pricing.py)

    def lock_coupon(
        self,
        order_id: UUID,
        code: str | None,
        user_id: UUID,
        caused_by: UUID | None = None,
        promotion_ids: Sequence[UUID] = (),
    ) -> CouponUse:
        """With the order's stock held: one use of its coupon and of each of its limited
        promotions locked for the order, all or none (refused)."""
        use = self._find(CouponUse.create_id(order_id))
        if not isinstance(use, CouponUse):
            use = CouponUse(order_id=order_id, code=None if code is None else normalise_code(code))
        if use.status != "open":
            return use
        coupon = None
        if code is not None:
            coupon = self.find_coupon(code)
            if coupon is None:
                raise CouponNotFound(f"no coupon {code}")
        promotions = self._limited_promotions(promotion_ids)
        use.record_lock(coupon, promotions, user_id, caused_by)
        self._save(*([coupon] if coupon is not None else []), *promotions, use)
        return use

    def redeem_coupon(self, order_id: UUID, caused_by: UUID | None = None) -> bool:
        use = self._find(CouponUse.create_id(order_id))
        if not isinstance(use, CouponUse):
            return False
        coupon = self.get_coupon(use.code) if use.code else None
        promotions = self._limited_promotions(use.promotion_ids)
        if not use.record_redemption(coupon, promotions, caused_by):
            return False
        self._save(*([coupon] if coupon is not None else []), *promotions, use)
        return True

    def release_coupon(self, order_id: UUID, reason: str, caused_by: UUID | None = None) -> bool:
        """The order ended unpaid (or was refunded): its uses go back. An order that ends
        before its uses were locked closes them, so a late lock holds nothing."""
        use = self._find(CouponUse.create_id(order_id))
        if not isinstance(use, CouponUse):
            use = CouponUse(order_id=order_id, code=None)
        coupon = self.find_coupon(use.code) if use.code else None
        promotions = self._limited_promotions(use.promotion_ids)
        if not use.record_release(coupon, promotions, reason, caused_by):
            return False
        self._save(*([coupon] if coupon is not None else []), *promotions, use)
        return True

    def _limited_promotions(self, promotion_ids: Iterable[UUID]) -> list[Promotion]:
        found = (self._find(UUID(str(i))) for i in dict.fromkeys(promotion_ids))
        return [p for p in found if isinstance(p, Promotion) and p.limited]

    def find_coupon_use(self, order_id: UUID) -> CouponUse | None:
        use = self._find(CouponUse.create_id(order_id))
        return use if isinstance(use, CouponUse) else None

    # Storage

    def _find(self, aggregate_id: UUID, to_change: bool = True) -> Any:
        """`to_change=False` for reads that change nothing (the quote): the aggregate
        itself, not a copy of it (copying was a third of a quote's time), from memory
        where the process keeps one (domain.reads)."""
        if not to_change:
            return self.read_only(aggregate_id)
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def _save_filed(
        self,
        filed: Aggregate,
        keys: Iterable[str],
        file: Any,
        claim: IdempotencyKey | None = None,
    ) -> IdempotencyKey | None:
        """Save an aggregate with the indexes it is filed in (and its Idempotency-Key's
        claim); a racing filing retries (after a short random pause, so racers spread out).
        Returns the earlier claim, saving nothing, if a racing request used the key first."""
        for attempt in range(50):
            if attempt:
                time.sleep(random.uniform(0, 0.002 * attempt))
            candidate = deepcopy(filed)  # a failed save takes the pending events with it
            indexes = []
            for key in keys:
                index = self._find(PricingIndex.create_id(key))
                if not isinstance(index, PricingIndex):
                    index = PricingIndex(key=key)
                file(index)
                indexes.append(index)
            try:
                self.save(candidate, *indexes, deepcopy(claim))
                return None
            except IntegrityError:
                earlier = None if claim is None else find_key(self, claim.scope, claim.key)
                if earlier is not None:
                    return earlier
                continue
        raise ConcurrentUpdate("the pricing index kept changing; retry")

    def _save(self, *aggregates: Aggregate) -> None:
        try:
            self.save(*aggregates)
        except IntegrityError as error:
            raise ConcurrentUpdate("a coupon changed meanwhile; retry") from error


def _with_rules(product: PricedProduct, rules: Sequence[PriceRule], now: datetime) -> PricedProduct:
    """The first rule in force sets the list price; every rule on the product bounds the
    discounts by its floor."""
    if not rules:
        return product
    prices = (rule.price_at(product.product_id, product.list_price, now) for rule in rules)
    price = next((p for p in prices if p is not None), product.list_price)
    return PricedProduct(
        product_id=product.product_id,
        quantity=product.quantity,
        list_price=price,
        category=product.category,
        seller_id=product.seller_id,
        floor=max(rule.floor for rule in rules),
    )
