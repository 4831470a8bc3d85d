"""Public event contracts: importing this package registers every event type."""

from eventmart.contracts import (
    behavior,  # noqa: F401  (registers behavior.* events)
    catalog,  # noqa: F401  (registers product.* events)
    coupons,  # noqa: F401  (registers coupon.*, coupon_use.* events)
    inventory,  # noqa: F401  (registers stock.*, reservation.*)
    orders,  # noqa: F401  (registers order.* events)
    payments,  # noqa: F401  (registers payment.* events)
    price_rules,  # noqa: F401  (registers price_rule.*, price.* events)
    promotions,  # noqa: F401  (registers promotion.* events)
    recommender,  # noqa: F401  (registers recommender.* events)
    reviews,  # noqa: F401  (registers review.* events)
    shipping,  # noqa: F401  (registers shipment.* events)
    users,  # noqa: F401  (registers users.* events)
)
from eventmart.contracts.envelope import (
    CONTRACTS,
    Decoder,
    Envelope,
    Event,
    MalformedEvent,
    envelope_from_domain,
    event_id_for,
    json_schemas,
    parse,
)

__all__ = [
    "CONTRACTS",
    "Decoder",
    "Envelope",
    "Event",
    "MalformedEvent",
    "envelope_from_domain",
    "event_id_for",
    "json_schemas",
    "parse",
]
