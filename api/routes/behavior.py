"""The behaviour stream: product views (clicks on recommendations are views with their
source), straight to `behavior.events`, answered 202 once the broker has them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api.behavior import (
    BehaviorPublisher,
    KnownProducts,
    RecentCategories,
    RecordView,
    publish_view,
)
from api.deps import OPTIONAL_TOKEN, OptionalUser
from api.errors import ApiError, error_responses
from api.idempotency import IdempotencyKeyHeader, RecentKeys
from domain.catalog import ProductNotFound
from projections.catalog import product_category as category_of


@asynccontextmanager
async def behavior_stream(app: FastAPI) -> AsyncIterator[None]:
    """One producer for the process; the products views may name, and what visitors viewed."""
    publisher = BehaviorPublisher(app.state.services.settings)
    await publisher.start()
    app.state.behavior = publisher
    app.state.known_products = KnownProducts()
    app.state.recent_categories = RecentCategories()
    app.state.view_keys = RecentKeys()
    try:
        yield
    finally:
        await publisher.stop()


router = APIRouter(prefix="/v1", tags=["behaviour"], lifespan=behavior_stream)


class ViewAccepted(BaseModel):
    event_id: UUID


async def product_category(request: Request, product_id: UUID) -> str:
    """The category of a product that exists; 422 `unknown_product` otherwise (a product
    listed a moment ago, not yet in the read model, is found in the catalogue's store)."""
    known: KnownProducts = request.app.state.known_products
    category = known.get(product_id)
    if category is not None:
        return category
    async with request.app.state.catalog_reads.connection() as conn:
        category = await category_of(conn, product_id)
    if category is None:
        catalog = request.app.state.services.applications.catalog
        try:
            product = await run_in_threadpool(catalog.get_product, product_id)
        except ProductNotFound as error:
            raise ApiError(422, "unknown_product", f"no product {product_id}") from error
        category = product.category
    known.add([(product_id, category)])
    return category


@router.post(
    "/events/view",
    status_code=202,
    openapi_extra=OPTIONAL_TOKEN,
    response_model=ViewAccepted,
    responses=error_responses(401, 503),
)
async def record_view(
    body: RecordView,
    request: Request,
    user: OptionalUser,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ViewAccepted:
    """Record a product view of a signed-in user (the token) or an anonymous visitor
    (`session_id`, then required: 422 `session_required`). 422 `unknown_product` for a
    product that does not exist. 202 once Kafka acknowledged it; 503 if it could not in
    time. With an Idempotency-Key a retried view is the same event; the key with another
    view is 422 `idempotency_key_reused` (while this process remembers the key)."""
    user_id = user.user_id if user is not None else None
    if user_id is None and body.session_id is None:
        raise ApiError(422, "session_required", "an anonymous view needs a session_id")
    category = await product_category(request, body.product_id)
    envelope = await publish_view(request.app.state, body, category, user_id, idempotency_key)
    return ViewAccepted(event_id=envelope.event_id)
