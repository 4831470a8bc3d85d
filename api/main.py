"""The FastAPI application and the one place its services are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg_pool import ConnectionPool

from api.auth import UserDirectory
from api.boundary import HttpBoundary
from api.deps import Services
from api.errors import install_error_handlers
from api.openapi import install_contract
from api.order_events import OrderAnnouncements
from api.outages import install_outage_handlers
from api.product_cache import ProductDetailFastPath, route_named
from api.quiet_reads import QuietReads
from api.recommendation_memory import RecentlyOrdered
from api.routes import (
    behavior,
    coupons,
    health,
    metrics,
    ops,
    ops_users,
    orders,
    price_rules,
    products,
    promotions,
    quotes,
    recommendations,
    reviews,
    sellers,
    users,
)
from api.security import PasswordHasher, TokenIssuer
from api.shedding import ShedLoad
from api.throttle import LoginThrottle
from api.tracing import TraceCommands
from api.view_fast_path import ViewFastPath
from eventmart import tracing
from eventmart.database import make_pool
from eventmart.groups import database_of, group_names
from eventmart.payment_intents import PostgresPaymentIntents
from eventmart.settings import Settings, get_settings
from eventmart.wiring import build_applications, field_cipher
from projections.cursors import Cursors
from projections.registry import install


def build_services(settings: Settings) -> Services:
    # Autocommit: read-model queries need no transaction (each statement sees its own
    # snapshot at READ COMMITTED anyway); writers here open one explicitly.
    def pool_for(dsn: str) -> ConnectionPool:
        return make_pool(dsn, max_size=16, timeout=settings.database_wait_seconds, autocommit=True)

    pools = {settings.dsn: pool_for(settings.dsn)}
    read_pools = {}
    for group in group_names("projections"):
        dsn = database_of(group, settings)
        if dsn not in pools:
            pools[dsn] = pool_for(dsn)
        read_pools[group] = pools[dsn]
    for each in pools.values():
        with each.connection() as conn:
            install(conn)
    pool = pools[settings.dsn]
    payments_dsn = settings.context_dsn("payments")  # intents live beside payments' store
    if payments_dsn not in pools:
        pools[payments_dsn] = pool_for(payments_dsn)
    with pool.connection() as conn:
        LoginThrottle.install(conn)
    applications = build_applications(
        settings, pool_size=10, prompt_seconds=settings.database_wait_seconds
    )
    return Services(
        settings=settings,
        applications=applications,
        payment_intents=PostgresPaymentIntents(pools[payments_dsn]),
        pool=pool,
        hasher=PasswordHasher(settings.bcrypt_rounds),
        cursors=Cursors(settings.secret_key),
        tokens=TokenIssuer.for_settings(settings),
        login_throttle=LoginThrottle(pool, settings),
        cipher=field_cipher(settings),
        directory=UserDirectory(
            settings.context_dsn("users"),  # the users' event store
            applications.users.mapper,
            wait_seconds=settings.database_wait_seconds,
        ),
        read_pools=read_pools,
        other_pools=list(pools.values()),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing.configure("api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        await services.directory.open()
        # Quotes' (and placement's prices') reads of products, promotions, rules and coupons,
        # from memory while their stores announce no change (api.quiet_reads).
        quiet = [
            QuietReads(services.applications.catalog, settings.context_dsn("catalog")),
            QuietReads(services.applications.pricing, settings.context_dsn("pricing")),
        ]
        for reads in quiet:
            await reads.start()
        app.state.services = services
        # What each user just ordered, until the orders read model shows it (recommendations).
        app.state.recently_ordered = RecentlyOrdered()
        # Order streams' wake-ups (api.order_events): listens once the first stream opens.
        app.state.order_announcements = OrderAnnouncements(
            database_of("orders-projection", settings)
        )
        try:
            yield
        finally:
            await app.state.order_announcements.stop()
            for reads in quiet:
                await reads.stop()
            await services.directory.close()
            for pool in services.pools():
                pool.close()
            for application in services.applications.all():
                application.close()

    app = FastAPI(
        title="EventMart",
        version="1",
        lifespan=lifespan,
        description="Event-sourced e-commerce: commands and queries (see API.md).",
    )
    install_error_handlers(app)
    install_contract(app, settings.currency)
    install_outage_handlers(app, settings.unavailable_retry_after_seconds)
    app.include_router(health.router)
    app.include_router(users.router)
    app.include_router(products.router)
    app.include_router(behavior.router)  # after products: it reads their catalogue pool
    app.include_router(recommendations.router)  # after behavior: it publishes impressions
    app.include_router(orders.router)
    app.include_router(sellers.router)
    app.include_router(reviews.router)
    app.include_router(promotions.router)
    app.include_router(price_rules.router)
    app.include_router(coupons.router)
    app.include_router(quotes.router)
    app.include_router(ops.router)
    app.include_router(ops_users.router)
    app.include_router(metrics.router)
    # The last added runs first: the boundary refuses what no route should see and dresses
    # every answer, requests are timed, shed past the in-flight bound, then product detail
    # may be answered from memory and a view published before the routes.
    app.add_middleware(TraceCommands)
    app.add_middleware(
        ViewFastPath,
        state=app.state,
        route=route_named(behavior.router.routes, behavior.record_view.__name__),
    )
    app.add_middleware(
        ProductDetailFastPath,
        state=app.state,
        route=route_named(products.router.routes, products.product_detail.__name__),
    )
    app.add_middleware(ShedLoad, max_in_flight=settings.api_max_in_flight)
    app.add_middleware(metrics.RequestLatency)
    app.add_middleware(HttpBoundary, max_body_bytes=settings.max_body_bytes)
    return app
