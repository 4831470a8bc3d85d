"""The one shape of money in every answer: `{amount, currency}`, the amount an integer of
minor units (1250 = 12.50). Requests take prices in the same shape (routes/products.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

# Timeline details name money by these keys (payment.captured's amount, order.confirmed's
# total, ...); answers show each as an Amount in the order's currency.
MONEY_DETAILS = ("amount", "total")


class Amount(BaseModel):
    """Money in minor units (may be zero or negative where it is a net after refunds)."""

    amount: int = Field(description="minor units, e.g. 1250 = 12.50")
    currency: str


def amount_of(value: int, currency: str) -> Amount:
    return Amount(amount=value, currency=currency)


def money_in_detail(detail: dict[str, Any], currency: str) -> dict[str, Any]:
    """A timeline entry's detail with its money as Amounts (a detail's own currency, where
    it names one, folded into them)."""
    own = detail.get("currency", currency)
    return {
        key: {"amount": value, "currency": own}
        if key in MONEY_DETAILS and isinstance(value, int)
        else value
        for key, value in detail.items()
        if key != "currency"
    }
