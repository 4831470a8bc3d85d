"""Recommendations: a user's, products similar to one, and what is popular. Each answer
names the model it came from (`model: null` before any was trained) and why each item is
there; the rules of API.md hold whatever the model says (api/recommendations.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from threadpoolctl import threadpool_limits

from api.behavior import BehaviorPublisher, behavior_envelope
from api.deps import OPTIONAL_TOKEN, CurrentUser, OptionalUser
from api.errors import ApiError, error_responses
from api.params import text_query
from api.product_cache import encode
from api.recommendation_memory import NeedsDatabase, ReadModelMemory
from api.recommendation_model import ModelHolder
from api.recommendations import Answer, Recommendations, as_json
from api.routes.products import Money
from api.security import Principal
from domain.limits import MAX_CATEGORY_LENGTH
from eventmart.contracts.behavior import MAX_SHOWN, Surface
from eventmart.groups import database_of


@asynccontextmanager
async def recommender(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    settings = services.settings
    # Scoring is one small matrix-vector product per request, on the request's thread: BLAS
    # threads of its own only contend for the cores (4x the CPU per request, measured).
    threadpool_limits(limits=1)
    models = ModelHolder(settings.models_dir, settings.recommender_reload_seconds)
    await models.start()
    memory = ReadModelMemory(
        database_of("catalog-projection", settings), database_of("orders-projection", settings)
    )
    await memory.start()
    app.state.recommendations = Recommendations(
        models,
        catalog=services.read_pool("catalog-projection"),
        orders=services.read_pool("orders-projection"),
        sales=services.read_pool("sales-projection"),
        memory=memory,
        recently_ordered=app.state.recently_ordered,
    )
    try:
        yield
    finally:
        await memory.stop()
        await models.stop()


router = APIRouter(prefix="/v1", tags=["recommendations"], lifespan=recommender)

T = TypeVar("T")


async def from_memory(call: Callable[..., T], *args: Any) -> T:
    """`call(*args)` on the event loop when every read it needs is in memory (a fraction of
    a millisecond of numpy and dict look-ups); in a thread, filling the memory, otherwise."""
    try:
        return call(*args, memory_only=True)
    except NeedsDatabase:
        return await run_in_threadpool(call, *args)


RecommendationLimit = Annotated[
    int, Query(ge=1, le=MAX_SHOWN, description="items to answer, at most 50")
]


class ModelView(BaseModel):
    version: str
    trained_at: datetime


class RecommendedItem(BaseModel):
    product_id: UUID
    name: str
    price: Money
    score: float
    reason: str


class RecommendationList(BaseModel):
    model: ModelView | None
    items: list[RecommendedItem]


def _answer(
    request: Request,
    answer: Answer,
    user: Principal | None,
    surface: Surface,
    anchor: UUID | None = None,
) -> Response:
    """The answer, and its impression on the behaviour stream (not waited for)."""
    if user is not None and answer.items:
        publisher: BehaviorPublisher = request.app.state.behavior
        publisher.publish_soon(
            behavior_envelope(
                "behavior.recommendations_shown",
                {
                    "surface": surface,
                    "product_ids": [shown.product.product_id for shown in answer.items],
                    "anchor_product_id": anchor,
                    "model_version": answer.model.version if answer.model else None,
                },
                user_id=user.user_id,
                session_id=None,
            )
        )
    return Response(encode(as_json(answer)), media_type="application/json")


@router.get(
    "/users/me/recommendations",
    response_model=RecommendationList,
    responses=error_responses(401, 503),
)
async def my_recommendations(
    request: Request, user: CurrentUser, limit: RecommendationLimit = 10
) -> Response:
    """The caller's top products by the model, never one they bought, one out of stock or
    (for a seller) their own. A user the model does not know yet gets popular products (of
    the categories they viewed first), with reason "popular"."""
    recommendations: Recommendations = request.app.state.recommendations
    categories = request.app.state.recent_categories.of(user.user_id)
    answer = await from_memory(recommendations.for_user, user.user_id, user.role, limit, categories)
    return _answer(request, answer, user, "recommendations")


@router.get(
    "/products/{product_id}/similar",
    response_model=RecommendationList,
    openapi_extra=OPTIONAL_TOKEN,
    responses=error_responses(401, 404, 503),
)
async def similar_products(
    product_id: UUID, request: Request, user: OptionalUser, limit: RecommendationLimit = 10
) -> Response:
    """Products nearest to this one in the model's item embeddings (a product the model has
    not seen is placed by its name, category, price and seller); 404 for an unknown product."""
    recommendations: Recommendations = request.app.state.recommendations
    product = await from_memory(recommendations.product, product_id)
    if product is None:
        catalog = request.app.state.services.applications.catalog
        await run_in_threadpool(catalog.get_product, product_id)  # 404 if unknown
        raise ApiError(
            503,
            "not_yet_visible",
            "the product is listed but the read model has not caught up; retry shortly",
            {"Retry-After": "1"},
        )
    answer = await from_memory(recommendations.similar, product, limit, user)
    return _answer(request, answer, user, "similar", product_id)


@router.get(
    "/recommendations/popular",
    response_model=RecommendationList,
    openapi_extra=OPTIONAL_TOKEN,
    responses=error_responses(401, 503),
)
async def popular_products(
    request: Request,
    user: OptionalUser,
    category: Annotated[str | None, text_query(MAX_CATEGORY_LENGTH, min_length=1)] = None,
    limit: RecommendationLimit = 10,
) -> Response:
    """The products most users liked (bought, rated well, viewed), in stock, of `category`
    if given; reason "popular"."""
    recommendations: Recommendations = request.app.state.recommendations
    answer = await from_memory(recommendations.popular, limit, category, user)
    return _answer(request, answer, user, "popular")
