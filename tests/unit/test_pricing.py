"""Pricing scenarios: the one pricing function, promotions, coupons and their limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from domain.coupons import Coupon, CouponCodeTaken, CouponInvalid, CouponUse
from domain.errors import ConcurrentUpdate, InvalidInput
from domain.price_rules import PriceRule
from domain.pricing import (
    CouponTerms,
    PricedProduct,
    PromotionTerms,
    Scope,
    Window,
    price_order,
)
from domain.pricing_context import Pricing
from domain.promotions import InvalidPromotion, NotPromotionOwner, Promotion

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
OPEN = Window(NOW - timedelta(days=1), NOW + timedelta(days=1))
SELLER = uuid4()
BUYER = uuid4()
MUG, TEA = uuid4(), uuid4()


def product(product_id: UUID = MUG, quantity: int = 1, price: int = 1000, floor: int = 0):
    return PricedProduct(product_id, quantity, price, "kitchen", SELLER, floor)


def promotion(kind: str = "percent_off", stackable: bool = False, **terms) -> PromotionTerms:
    return PromotionTerms(
        promotion_id=uuid4(),
        name=kind,
        kind=kind,  # type: ignore[arg-type]
        scope=Scope(seller_id=SELLER),
        window=terms.pop("window", OPEN),
        stackable=stackable,
        **terms,
    )


def coupon(**terms) -> CouponTerms:
    return CouponTerms(code="SAVE", scope=Scope(seller_id=SELLER), window=OPEN, **terms)


def test_given_no_promotion_when_priced_then_list_price_is_paid() -> None:
    quote = price_order([product(quantity=3)], [], None, NOW)
    [line] = quote.lines
    assert (line.list_price, line.unit_price, line.line_total, line.discounts) == (
        1000,
        1000,
        3000,
        (),
    )
    assert (quote.total, quote.discount_total) == (3000, 0)


def test_given_each_kind_when_priced_then_its_discount_is_taken() -> None:
    cases = [
        (promotion(percent_off=20), 2, 400),
        (promotion("amount_off", amount_off=150), 2, 300),
        (promotion("buy_x_get_y", buy_quantity=2, free_quantity=1), 7, 2000),  # 2 groups of 3
        (promotion("tiered", tiers=((5, 10), (10, 25))), 4, 0),
        (promotion("tiered", tiers=((5, 10), (10, 25))), 5, 500),
        (promotion("tiered", tiers=((5, 10), (10, 25))), 10, 2500),
    ]
    for terms, quantity, discount in cases:
        quote = price_order([product(quantity=quantity)], [terms], None, NOW)
        assert quote.discount_total == discount, terms.kind
        assert quote.total == quantity * 1000 - discount


def test_given_two_exclusive_promotions_then_only_the_best_applies_and_stackables_follow() -> None:
    ten, twenty = promotion(percent_off=10), promotion(percent_off=20)
    stacked = promotion(percent_off=10, stackable=True)
    quote = price_order([product(quantity=2)], [ten, twenty, stacked], None, NOW)
    [line] = quote.lines
    assert [(d.promotion_id, d.amount) for d in line.discounts] == [
        (twenty.promotion_id, 400),
        (stacked.promotion_id, 160),  # 10% of what is left (1600)
    ]
    assert line.line_total == 1440 and line.unit_price == 720


def test_given_a_promotion_outside_its_window_or_scope_then_it_does_not_apply() -> None:
    later = Window(NOW + timedelta(hours=1), NOW + timedelta(days=1))
    ended = Window(NOW - timedelta(days=1), NOW + timedelta(days=1), ended_at=NOW)
    other = PromotionTerms(
        uuid4(), "x", "percent_off", Scope(category="garden"), OPEN, percent_off=50
    )
    terms = [
        promotion(percent_off=30, window=later),
        promotion(percent_off=30, window=ended),
        other,
    ]
    assert price_order([product()], terms, None, NOW).discount_total == 0


def test_given_a_coupon_then_it_applies_after_promotions_and_once_per_order_for_amounts() -> None:
    promo = promotion(percent_off=20)
    quote = price_order(
        [product(MUG, 2), product(TEA, 1, price=500)], [promo], coupon(percent_off=10), NOW
    )
    mug, tea = quote.lines
    assert [d.kind for d in mug.discounts] == ["percent_off", "coupon"]
    assert mug.line_total == 1600 - 160 and tea.line_total == 400 - 40
    assert quote.coupon_code == "SAVE"
    amount = price_order(
        [product(MUG, 1), product(TEA, 1, price=500)], [], coupon(amount_off=1200), NOW
    )
    assert [line.line_total for line in amount.lines] == [1, 299]  # never free
    assert amount.discount_total == 1200


def test_given_min_order_not_met_then_the_coupon_is_refused_with_a_reason() -> None:
    quote = price_order([product()], [], coupon(percent_off=10, min_order=5000), NOW)
    assert (quote.discount_total, quote.coupon_code) == (0, None)
    assert quote.coupon_refused == "coupon_min_order_not_met"


def test_given_every_covered_line_at_its_floor_then_the_coupon_is_not_applied() -> None:
    """A coupon that would take nothing is refused, so placement does not lock a use."""
    for terms in (coupon(percent_off=50), coupon(amount_off=300)):
        quote = price_order([product(quantity=2, floor=1000)], [], terms, NOW)
        assert (quote.discount_total, quote.coupon_code) == (0, None)
        assert quote.coupon_refused == "coupon_takes_nothing_off"
    # A promotion took the line down to its floor first: the coupon has nothing left.
    floored = price_order(
        [product(quantity=1, floor=900)], [promotion(percent_off=50)], coupon(percent_off=10), NOW
    )
    assert floored.coupon_code is None and floored.coupon_refused == "coupon_takes_nothing_off"


def test_given_a_floor_then_no_discount_goes_below_it() -> None:
    quote = price_order(
        [product(quantity=2, floor=900)], [promotion(percent_off=50)], coupon(percent_off=50), NOW
    )
    [line] = quote.lines
    assert line.line_total == 1800 and [d.amount for d in line.discounts] == [200]


def test_promotion_rules_refuse_bad_terms() -> None:
    window = {"starts_at": NOW, "ends_at": NOW + timedelta(days=1)}
    scope = {"seller_id": SELLER}
    for kind, terms in [
        ("percent_off", {"percent_off": 101}),
        ("percent_off", {"percent_off": 0}),
        ("amount_off", {"amount_off": -5}),
        ("tiered", {"tiers": []}),
        ("buy_x_get_y", {"buy_quantity": 2}),
        ("bogus", {}),
        ("percent_off", {"percent_off": 10, "amount_off": 100}),
        ("amount_off", {"amount_off": 100, "tiers": [{"min_quantity": 2, "percent_off": 5}]}),
        ("tiered", {"tiers": [{"min_quantity": 2, "percent_off": 5}], "free_quantity": 1}),
    ]:
        with pytest.raises(InvalidPromotion):
            Promotion.create(SELLER, "p", kind, terms, scope, **window)
    with pytest.raises(InvalidPromotion):
        Promotion.create(SELLER, "p", "percent_off", {"percent_off": 5}, scope, NOW, NOW)
    with pytest.raises(InvalidPromotion):
        Promotion.create(
            SELLER, "p", "percent_off", {"percent_off": 5}, scope, **window, max_uses=0
        )


def test_given_a_promotion_when_another_seller_ends_it_then_refused_and_owner_may() -> None:
    promo = Promotion.create(
        SELLER,
        "p",
        "percent_off",
        {"percent_off": 5},
        {"seller_id": SELLER},
        NOW,
        NOW + timedelta(days=1),
    )
    with pytest.raises(NotPromotionOwner):
        promo.end(uuid4(), False, NOW)
    assert promo.end(SELLER, False, NOW + timedelta(hours=1))
    assert not promo.is_active(NOW + timedelta(hours=2))
    assert not promo.end(SELLER, False, NOW + timedelta(hours=3))


def new_coupon(total_uses: int = 2, per_user_uses: int = 1) -> Coupon:
    return Coupon.create(
        "save10",
        SELLER,
        10,
        None,
        None,
        {"seller_id": SELLER},
        NOW,
        NOW + timedelta(days=1),
        total_uses,
        per_user_uses,
    )


def test_coupon_given_limits_when_locked_then_total_and_per_user_hold() -> None:
    coupon_ = new_coupon(total_uses=2, per_user_uses=1)
    first, second, third = uuid4(), uuid4(), uuid4()
    assert coupon_.code == "SAVE10" and coupon_.may_lock(first, BUYER)
    coupon_.lock(first, BUYER)
    assert not coupon_.may_lock(second, BUYER)  # per user
    other = uuid4()
    coupon_.lock(second, other)
    assert coupon_.remaining_uses == 0 and not coupon_.may_lock(third, uuid4())
    assert coupon_.release(second, "cancelled") and coupon_.remaining_uses == 1
    assert coupon_.redeem(first) and not coupon_.redeem(first)
    assert (
        coupon_.uses_by(BUYER) == 1 and coupon_.why_unusable(BUYER, NOW) == "per_user_limit_reached"
    )
    assert coupon_.why_unusable(other, NOW + timedelta(days=2)) == "ended"


def test_coupon_refuses_bad_terms() -> None:
    window = (NOW, NOW + timedelta(days=1))
    with pytest.raises(InvalidInput):
        Coupon.create("save10", SELLER, 10, 100, None, {"seller_id": SELLER}, *window, 1, 1)
    with pytest.raises(InvalidInput):
        Coupon.create("save10", SELLER, None, None, None, {"seller_id": SELLER}, *window, 1, 1)
    with pytest.raises(CouponInvalid):
        Coupon.create("x", SELLER, 10, None, None, {"seller_id": SELLER}, *window, 1, 1)
    with pytest.raises(InvalidInput):
        Coupon.create("save10", SELLER, 10, None, None, {"seller_id": SELLER}, *window, 0, 1)


def test_coupon_use_given_an_order_when_locked_then_redeemed_and_a_late_release_changes_nothing() -> (
    None
):
    coupon_, order = new_coupon(), uuid4()
    use = CouponUse(order_id=order, code=coupon_.code)
    assert use.record_lock(coupon_, [], BUYER, None) and use.status == "locked"
    assert use.record_redemption(coupon_, [], None) and use.status == "redeemed"
    assert not use.record_release(coupon_, [], "cancelled", None)
    assert coupon_.remaining_uses == 1


def test_coupon_use_given_order_ended_before_lock_then_lock_holds_nothing() -> None:
    coupon_, order = new_coupon(), uuid4()
    use = CouponUse(order_id=order, code=None)
    assert use.record_release(None, [], "rejected", None)
    assert not use.record_lock(coupon_, [], BUYER, None)
    assert coupon_.remaining_uses == 2


def limited_pricing(max_uses: int | None, per_user_limit: int | None) -> tuple[Pricing, UUID]:
    pricing = Pricing()
    limited = pricing.create_promotion(
        SELLER,
        name="first three",
        kind="percent_off",
        terms={"percent_off": 30},
        scope={"product_ids": [MUG]},
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=1),
        max_uses=max_uses,
        per_user_limit=per_user_limit,
    )
    return pricing, limited.id


def test_limited_promotion_given_uses_locked_then_the_rest_are_refused_and_quotes_drop_it() -> None:
    pricing, promotion_id = limited_pricing(max_uses=2, per_user_limit=None)
    quote = pricing.quote([product(MUG, 1)], None, NOW)
    assert quote.limited_promotion_ids == [promotion_id]
    orders = [uuid4() for _ in range(3)]
    uses = [pricing.lock_coupon(o, None, uuid4(), promotion_ids=[promotion_id]) for o in orders]
    assert [u.status for u in uses] == ["locked", "locked", "refused"]
    assert pricing.quote([product(MUG, 1)], None, NOW).total == 1000  # none left: list price
    assert pricing.redeem_coupon(orders[0]) and pricing.release_coupon(orders[1], "rejected")
    assert pricing.get_promotion(promotion_id).remaining_uses == 1
    assert pricing.quote([product(MUG, 1)], None, NOW).total == 700


def test_limited_promotion_given_a_per_user_limit_then_a_second_use_by_that_user_is_refused() -> (
    None
):
    pricing, promotion_id = limited_pricing(max_uses=None, per_user_limit=1)
    first = pricing.lock_coupon(uuid4(), None, BUYER, promotion_ids=[promotion_id])
    second = pricing.lock_coupon(uuid4(), None, BUYER, promotion_ids=[promotion_id])
    assert (first.status, second.status) == ("locked", "refused")
    assert pricing.lock_coupon(uuid4(), None, uuid4(), promotion_ids=[promotion_id]).status == (
        "locked"
    )
    assert pricing.quote([product(MUG, 1)], None, NOW, BUYER).total == 1000
    assert pricing.quote([product(MUG, 1)], None, NOW).total == 700


def pricing_with_promotions() -> Pricing:
    pricing = Pricing()
    pricing.create_promotion(
        SELLER,
        name="twenty",
        kind="percent_off",
        terms={"percent_off": 20},
        scope={"product_ids": [MUG]},
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=1),
    )
    pricing.create_promotion(
        SELLER,
        name="bulk",
        kind="tiered",
        terms={"tiers": [{"min_quantity": 3, "percent_off": 10}]},
        scope={"category": "kitchen", "seller_id": SELLER},
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=1),
        stackable=True,
    )
    return pricing


def test_pricing_given_promotions_filed_when_quoted_then_the_rule_prices_every_line() -> None:
    pricing = pricing_with_promotions()
    quote = pricing.quote([product(MUG, 3), product(TEA, 1, price=500)], None, NOW)
    mug, tea = quote.lines
    assert [d.amount for d in mug.discounts] == [600, 240]
    assert tea.discounts == () and quote.total == 2160 + 500
    assert len(pricing.all_promotions()) == 2


def test_pricing_given_a_coupon_code_taken_then_refused_and_lock_race_loses() -> None:
    pricing = Pricing()
    fields = {
        "percent_off": 10,
        "amount_off": None,
        "min_order": None,
        "scope": {"seller_id": SELLER},
        "starts_at": NOW,
        "ends_at": NOW + timedelta(days=1),
        "total_uses": 1,
        "per_user_uses": 1,
    }
    pricing.create_coupon(SELLER, "spring", **fields)
    with pytest.raises(CouponCodeTaken):
        pricing.create_coupon(SELLER, "SPRING", **fields)
    stale = pricing.get_coupon("spring")
    first = pricing.lock_coupon(uuid4(), "spring", BUYER)
    assert first.status == "locked"
    stale.lock(uuid4(), uuid4())
    with pytest.raises(ConcurrentUpdate):
        pricing._save(stale)
    refused = pricing.lock_coupon(uuid4(), "spring", uuid4())
    assert refused.status == "refused"
    assert pricing.release_coupon(first.order_id, "cancelled")
    assert pricing.coupon_status("spring", BUYER, NOW).remaining_uses == 1
    with pytest.raises(CouponInvalid):
        pricing.usable_coupon("spring", NOW + timedelta(days=2))
    with pytest.raises(CouponInvalid):
        pricing.usable_coupon("nosuch", NOW)


def test_price_rule_given_stock_thresholds_then_price_moves_within_floor_and_ceiling() -> None:
    rule = PriceRule.create(
        SELLER,
        "scarce",
        "stock_level",
        {"product_ids": [MUG]},
        {
            "thresholds": [
                {"below_available": 5, "price": 1500},
                {"below_available": 2, "price": 9000},
            ]
        },
        floor=800,
        ceiling=2000,
    )
    assert rule.price_for_stock(10) is None
    assert rule.price_for_stock(4) == 1500 and rule.price_for_stock(1) == 2000
    assert rule.change_price(MUG, 1500, "available 4") and not rule.change_price(MUG, 1500, "again")
    assert rule.price_at(MUG, 1000, NOW) == 1500
    demand = PriceRule.create(
        SELLER,
        "hot",
        "demand",
        {"product_ids": [MUG]},
        {"step_percent": 10, "sales_per_step": 5},
        floor=900,
        ceiling=1300,
    )
    assert [demand.price_for_demand(1000, units) for units in (0, 5, 10, 500)] == [
        1000,
        1100,
        1200,
        1300,
    ]


def test_demand_rule_given_sales_then_price_steps_up_within_its_band_and_back_after_an_hour() -> (
    None
):
    pricing = Pricing()
    rule = pricing.create_rule(
        SELLER,
        name="hot",
        kind="demand",
        scope={"product_ids": [MUG]},
        params={"step_percent": 10, "sales_per_step": 2},
        floor=900,
        ceiling=1200,
    )
    prices = []
    for n in range(5):
        order_id = uuid4()
        assert pricing.note_demand(order_id, [(MUG, 2), (TEA, 1)])
        assert pricing.count_demand(order_id, NOW + timedelta(minutes=n))
        assert not pricing.count_demand(order_id, NOW)  # counted once
        prices.append(pricing.quote([product(MUG, 1)], None, NOW).lines[0].list_price)
    assert prices == [1100, 1200, 1200, 1200, 1200]  # never past the ceiling
    assert not pricing.note_demand(uuid4(), [(TEA, 3)])  # no demand rule watches tea
    stored = pricing.get_rule(rule.id)
    assert stored.units_last_hour(MUG, NOW + timedelta(minutes=5)) == 10
    assert stored.demand_due == NOW + timedelta(hours=1)
    assert pricing.reprice_for_demand(rule.id, NOW + timedelta(hours=2))
    assert pricing.get_rule(rule.id).demand_due is None
    assert pricing.quote([product(MUG, 1)], None, NOW).lines[0].list_price == 1000


def test_every_pricing_event_a_scenario_stores_becomes_a_valid_public_envelope() -> None:
    from eventmart.contracts import envelope_from_domain

    pricing = pricing_with_promotions()
    pricing.create_coupon(
        SELLER,
        "winter",
        percent_off=None,
        amount_off=500,
        min_order=1000,
        scope={"seller_id": SELLER},
        starts_at=NOW,
        ends_at=NOW + timedelta(days=1),
        total_uses=5,
        per_user_uses=2,
    )
    kept, dropped = uuid4(), uuid4()
    pricing.lock_coupon(kept, "winter", BUYER)
    pricing.lock_coupon(dropped, "winter", BUYER)
    pricing.redeem_coupon(kept)
    pricing.release_coupon(dropped, "cancelled")
    pricing.create_rule(
        SELLER,
        name="flash",
        kind="time_window",
        scope={"product_ids": [MUG]},
        params={"starts_at": NOW, "ends_at": NOW + timedelta(hours=1), "price": 900},
        floor=500,
        ceiling=1500,
    )
    types = set()
    for notification in pricing.recorder.select_notifications(start=1, limit=100):
        stored = pricing.mapper.to_domain_event(notification)
        envelope = envelope_from_domain(stored)
        if envelope is not None:
            types.add(envelope.type)
    assert {
        "promotion.created",
        "coupon.created",
        "coupon.locked",
        "coupon.redeemed",
        "coupon.released",
        "coupon_use.locked",
        "coupon_use.redeemed",
        "coupon_use.released",
        "price_rule.created",
    } <= types


def test_pricing_given_a_stock_level_rule_when_stock_crosses_then_a_price_change_is_stored() -> (
    None
):
    pricing = Pricing()
    rule = pricing.create_rule(
        SELLER,
        name="scarce",
        kind="stock_level",
        scope={"product_ids": [MUG]},
        params={"thresholds": [{"below_available": 5, "price": 1500}]},
        floor=800,
        ceiling=2000,
    )
    assert pricing.reprice_for_stock(MUG, 10) == []
    assert [r.id for r in pricing.reprice_for_stock(MUG, 4)] == [rule.id]
    assert pricing.reprice_for_stock(MUG, 3) == []  # same price: no event
    assert pricing.quote([product(MUG)], None, NOW).lines[0].list_price == 1500
    assert pricing.reprice_for_stock(MUG, 9) and pricing.get_rule(rule.id).prices == {}


def test_a_time_window_rule_starts_and_ends_on_time_within_its_bounds() -> None:
    rule = PriceRule.create(
        SELLER,
        "flash",
        "time_window",
        {"product_ids": [MUG]},
        {"starts_at": NOW, "ends_at": NOW + timedelta(hours=1), "price": 500},
        floor=600,
        ceiling=1500,
    )
    before, start, end = NOW - timedelta(seconds=1), NOW, NOW + timedelta(hours=1)
    assert rule.price_at(MUG, 1000, before) is None
    assert rule.price_at(MUG, 1000, start) == 600  # the floor holds
    assert rule.price_at(MUG, 1000, end - timedelta(microseconds=1)) == 600
    assert rule.price_at(MUG, 1000, end) is None
