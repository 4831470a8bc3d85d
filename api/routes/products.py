"""Catalogue and stock: sellers list products and receive stock; anyone browses."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.behavior import BehaviorPublisher, behavior_envelope
from api.deps import OPTIONAL_TOKEN, ServicesDep, bearer, require_role, retry_concurrent
from api.errors import ApiError, error_responses
from api.idempotency import IdempotencyKeyHeader, fingerprint
from api.params import Cursor, Limit, text_query
from api.product_cache import ProductCache, encode
from api.security import InvalidToken, Principal
from domain.catalog import CurrencyMismatch, Product
from domain.limits import MAX_CATEGORY_LENGTH
from eventmart.contracts.behavior import MAX_QUERY_LENGTH, SessionId
from eventmart.contracts.bounds import (
    Category,
    CurrencyCode,
    Description,
    MoneyAmount,
    ProductName,
    Sku,
    StockReceipt,
)
from eventmart.database import make_async_pool
from eventmart.groups import database_of
from projections.catalog import get_product, list_products

log = logging.getLogger("eventmart.api.products")


@asynccontextmanager
async def catalog_reads(app: FastAPI) -> AsyncIterator[None]:
    """The catalogue queries' own async pool: no thread hop per request, and autocommit, so
    a connection goes back to the pool without a ROLLBACK round trip. And the product
    detail cache (api.product_cache), which the fast path in front of the routes answers
    from; the route below serves what it passes on."""
    settings = app.state.services.settings
    dsn = database_of("catalog-projection", settings)
    # Checked before lending: a connection PostgreSQL closed while idle (a restart) is
    # replaced, not failed on.
    pool = make_async_pool(dsn, min_size=2, max_size=8, timeout=settings.database_wait_seconds)
    await pool.open(wait=True, timeout=30)
    app.state.catalog_reads = pool
    cache = ProductCache(dsn)
    await cache.start()
    app.state.product_cache = cache
    try:
        yield
    finally:
        await cache.stop()
        await pool.close()


router = APIRouter(prefix="/v1", tags=["products"], lifespan=catalog_reads)

Seller = Annotated[Principal, require_role("seller")]


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: MoneyAmount
    currency: CurrencyCode = Field(description="the deployment's currency (EVENTMART_CURRENCY)")


class CreateProduct(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sku: Sku
    name: ProductName
    description: Description = ""
    category: Category
    price: Money


class UpdateProduct(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: ProductName | None = None
    description: Description | None = None
    category: Category | None = None
    price: Money | None = None


class ReceiveStock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quantity: StockReceipt


class ProductCreated(BaseModel):
    product_id: UUID


class StockReceived(BaseModel):
    on_hand: int


class StockView(BaseModel):
    on_hand: int
    reserved: int
    available: int


class RatingView(BaseModel):
    """Over the product's counted reviews (withdrawn and hidden ones leave it)."""

    average: float | None
    count: int
    bayesian_average: float | None = Field(
        description="pulled towards the catalogue-wide mean by 5 reviews' weight (docs/reviews.md)"
    )
    histogram: dict[Literal["1", "2", "3", "4", "5"], int]


class ProductFields(BaseModel):
    """What every answer about a product carries."""

    product_id: UUID
    sku: str
    name: str
    description: str
    category: str
    seller_id: UUID
    price: Money


class ProductStored(ProductFields):
    """A product as its aggregate holds it (the answer to a change)."""

    version: int


class ProductView(ProductFields):
    """A product as the read model shows it, with stock and rating."""

    stock: StockView
    rating: RatingView
    created_at: datetime
    updated_at: datetime


class ProductPage(BaseModel):
    items: list[ProductView]
    next_cursor: str | None


def _check_currency(money: Money | None, currency: str) -> None:
    """One currency per deployment (the OpenAPI document names it)."""
    if money is not None and money.currency != currency:
        raise CurrencyMismatch(f"prices are in {currency}")


def _stored(product: Product) -> ProductStored:
    return ProductStored(
        product_id=product.id,
        sku=product.sku,
        name=product.name,
        description=product.description,
        category=product.category,
        seller_id=product.seller_id,
        price=Money(amount=product.price_amount, currency=product.currency),
        version=product.version,
    )


@router.post(
    "/products",
    status_code=201,
    response_model=ProductCreated,
    responses=error_responses(401, 403, 409, 503),
)
def create_product(
    body: CreateProduct,
    user: Seller,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ProductCreated:
    """List a product (409 `sku_taken`); its stock exists at once, so it can be received.
    With an Idempotency-Key, repeating the same listing answers with the same product."""
    _check_currency(body.price, services.settings.currency)
    applications = services.applications
    product_id = applications.catalog.create_product(
        user.user_id,
        body.sku,
        body.name,
        body.description,
        body.category,
        body.price.amount,
        body.price.currency,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(services.settings.secret_key, body),
    )
    applications.inventory.register_product(product_id, user.user_id)
    return ProductCreated(product_id=product_id)


@router.patch(
    "/products/{product_id}",
    response_model=ProductStored,
    responses=error_responses(401, 403, 404, 409, 503),
)
def update_product(
    product_id: UUID,
    body: UpdateProduct,
    user: Seller,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ProductStored:
    """Change any of name, description, category, price; only the owning seller may (403).
    With an Idempotency-Key, repeating the same change answers the product as it left it."""
    _check_currency(body.price, services.settings.currency)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"price"})
    changes = {field: value for field, value in changes.items() if value is not None}
    if body.price is not None:
        changes.update(price_amount=body.price.amount, currency=body.price.currency)
    request = fingerprint(services.settings.secret_key, body, product_id)
    product = retry_concurrent(
        lambda: services.applications.catalog.update_product(
            product_id,
            user.user_id,
            idempotency_key=idempotency_key,
            fingerprint=request,
            **changes,
        )
    )
    return _stored(product)


@router.post(
    "/products/{product_id}/stock",
    response_model=StockReceived,
    responses=error_responses(401, 403, 404, 409, 503),
)
def receive_stock(
    product_id: UUID,
    body: ReceiveStock,
    user: Seller,
    services: ServicesDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> StockReceived:
    """Record units received into stock; answers the new on-hand count. With an
    Idempotency-Key, repeating the same receipt receives nothing and answers the same count."""
    applications = services.applications
    product = applications.catalog.get_product(product_id)
    product.check_owner(user.user_id)
    applications.inventory.register_product(product_id, product.seller_id)
    request = fingerprint(services.settings.secret_key, body, product_id)
    on_hand = retry_concurrent(
        lambda: applications.inventory.receive_stock(
            product_id,
            user.user_id,
            body.quantity,
            idempotency_key=idempotency_key,
            fingerprint=request,
        )
    )
    return StockReceived(on_hand=on_hand)


@router.get(
    "/products",
    response_model=ProductPage,
    openapi_extra=OPTIONAL_TOKEN,
    responses=error_responses(503),
)
async def browse_products(
    request: Request,
    category: Annotated[str | None, text_query(MAX_CATEGORY_LENGTH, min_length=1)] = None,
    q: Annotated[
        str | None, text_query(MAX_QUERY_LENGTH, description="words to search for")
    ] = None,
    seller_id: UUID | None = None,
    sort: Literal["price", "-price", "rating", "newest"] = "newest",
    limit: Limit = 20,
    cursor: Cursor = None,
    session_id: Annotated[
        SessionId | None,
        Query(description="an anonymous visitor's session, for the behaviour stream"),
    ] = None,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)] = None,
) -> Response:
    """Browse and search the catalogue read model, one page at a time. The first page of a
    search (`q`) is published as `behavior.searched`, keyed by the signed-in user (a token
    is optional here, and one that does not verify only makes the search anonymous), else
    by `session_id`, else anonymous; the answer never waits for it."""
    async with request.app.state.catalog_reads.connection() as conn:
        items, next_cursor = await list_products(
            conn,
            category=category,
            seller_id=str(seller_id) if seller_id else None,
            q=q,
            sort=sort,
            limit=limit,
            cursor=cursor,
            cursors=request.app.state.services.cursors,
        )
    if q is not None and cursor is None and q.strip():
        _publish_search(request, q, category, len(items), credentials, session_id)
    return _json({"items": items, "next_cursor": next_cursor})


def _publish_search(
    request: Request,
    query: str,
    category: str | None,
    found: int,
    credentials: HTTPAuthorizationCredentials | None,
    session_id: str | None,
) -> None:
    """The search on the behaviour stream, not waited for (a lost one is only logged)."""
    user_id = None
    if credentials is not None:
        try:
            user_id = request.app.state.services.tokens.verify(credentials.credentials).user_id
        except InvalidToken:
            pass  # browsing needs no token: a stale one only makes the search anonymous
    try:
        envelope = behavior_envelope(
            "behavior.searched",
            {"query": query, "category": category, "result_count": found},
            user_id=user_id,
            session_id=None if user_id is not None else session_id,
        )
    except ValidationError as error:  # the API's bounds are the contract's; just in case
        log.warning("behaviour: search not published (%s)", error)
        return
    publisher: BehaviorPublisher = request.app.state.behavior
    publisher.publish_soon(envelope)


@router.get(
    "/products/{product_id}", response_model=ProductView, responses=error_responses(404, 503)
)
async def product_detail(product_id: UUID, request: Request) -> Response:
    """A product with its stock and rating. Right after listing, the read model may lag:
    503 with Retry-After then."""
    async with request.app.state.catalog_reads.connection() as conn:
        found = await get_product(conn, str(product_id))
    if found is not None:
        return _json(found)
    services = request.app.state.services
    # 404 product_not_found if unknown
    await run_in_threadpool(services.applications.catalog.get_product, product_id)
    raise ApiError(
        503,
        "not_yet_visible",
        "the product is listed but the read model has not caught up; retry shortly",
        {"Retry-After": "1"},
    )


def _json(content: dict[str, Any]) -> Response:
    return Response(encode(content), media_type="application/json")
