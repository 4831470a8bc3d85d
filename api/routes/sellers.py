"""Seller sales: what the calling seller sold, refunded and earned, from the sales read
model (see projections/sales.py for what counts as a sale and when)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, BeforeValidator, Field

from api.deps import SalesDb, ServicesDep, require_role
from api.errors import ApiError, error_responses
from api.money import Amount
from api.params import Cursor, Limit
from api.security import Principal
from projections.sales import list_sale_lines, sales_summary

router = APIRouter(prefix="/v1/sellers", tags=["sellers"])

Seller = Annotated[Principal, require_role("seller")]
# An ISO 8601 date and time (seconds, fraction and zone optional; no zone means UTC), not
# the bare numbers pydantic would also read as Unix times.
DATE_TIME = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?([Zz]|[+-]\d{2}:?\d{2})?$"


def _date_time_text(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(DATE_TIME, value):
        raise ValueError("must be an ISO 8601 date and time, such as 2026-11-25T10:00:00Z")
    return value


def _moment(alias: str, description: str) -> Any:
    return Query(alias=alias, description=description, json_schema_extra={"pattern": DATE_TIME})


Since = Annotated[
    datetime | None, BeforeValidator(_date_time_text), _moment("from", "inclusive; no zone: UTC")
]
Until = Annotated[
    datetime | None, BeforeValidator(_date_time_text), _moment("to", "exclusive; no zone: UTC")
]


class SalesFigures(BaseModel):
    orders: int
    units: int
    refunded_orders: int
    refunded_units: int
    gross: Amount = Field(description="what the buyers paid: after discounts")
    gross_before_discounts: Amount = Field(description="the same units at their list prices")
    discounts: Amount = Field(description="gross_before_discounts - gross")
    refunds: Amount
    net: Amount


class ProductSales(SalesFigures):
    product_id: UUID
    name: str


class SalesSummary(BaseModel):
    seller_id: UUID
    from_: datetime | None = Field(alias="from")
    to: datetime | None
    currency: str
    totals: SalesFigures
    products: list[ProductSales]


class SaleLine(BaseModel):
    order_id: UUID
    product_id: UUID
    name: str
    quantity: int
    list_price: Amount
    unit_price: Amount
    line_total: Amount
    status: Literal["sold", "refunded"]
    sold_at: datetime
    refunded_at: datetime | None


class SaleLinePage(BaseModel):
    items: list[SaleLine]
    next_cursor: str | None


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise ApiError(422, "invalid_range", "`from` must be before `to`")
    return since, until


def _figures(measures: dict[str, Any], currency: str) -> dict[str, Any]:
    return {
        **{
            name: measures[name]
            for name in ("orders", "units", "refunded_orders", "refunded_units")
        },
        **{
            name: Amount(amount=measures[name], currency=currency)
            for name in ("gross", "gross_before_discounts", "discounts", "refunds", "net")
        },
    }


@router.get("/me/sales", response_model=SalesSummary, responses=error_responses(401, 403, 503))
def my_sales(
    user: Seller, db: SalesDb, services: ServicesDep, since: Since = None, until: Until = None
) -> SalesSummary:
    """Totals and per-product figures over [from, to): a line is sold when its order is
    confirmed (paid) and refunded when that order is cancelled afterwards; each counts in
    the range its own moment falls in, and net = gross - refunds."""
    since, until = _range(since, until)
    currency = services.settings.currency
    summary = sales_summary(db, str(user.user_id), since=since, until=until)
    return SalesSummary.model_validate(
        {
            "seller_id": user.user_id,
            "from": since,
            "to": until,
            "currency": currency,
            "totals": _figures(summary["totals"], currency),
            "products": [
                {
                    "product_id": product["product_id"],
                    "name": product["name"],
                    **_figures(product, currency),
                }
                for product in summary["products"]
            ],
        }
    )


@router.get(
    "/me/sales/lines", response_model=SaleLinePage, responses=error_responses(401, 403, 503)
)
def my_sale_lines(
    user: Seller,
    db: SalesDb,
    services: ServicesDep,
    since: Since = None,
    until: Until = None,
    limit: Limit = 20,
    cursor: Cursor = None,
) -> SaleLinePage:
    """The caller's order lines sold in [from, to), newest sale first; a refunded line
    shows when it was refunded."""
    since, until = _range(since, until)
    lines, next_cursor = list_sale_lines(
        db,
        str(user.user_id),
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
        cursors=services.cursors,
    )
    return SaleLinePage(
        items=[
            SaleLine(
                order_id=line["order_id"],
                product_id=line["product_id"],
                name=line["name"],
                quantity=line["quantity"],
                list_price=Amount(amount=line["list_price"], currency=line["currency"]),
                unit_price=Amount(amount=line["unit_price"], currency=line["currency"]),
                line_total=Amount(amount=line["line_total"], currency=line["currency"]),
                status="refunded" if line["refunded_at"] is not None else "sold",
                sold_at=line["sold_at"],
                refunded_at=line["refunded_at"],
            )
            for line in lines
        ],
        next_cursor=next_cursor,
    )
