"""The FastAPI application and the one place its services are built."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.deps import Services
from api.errors import install_error_handlers
from api.product_cache import ProductDetailFastPath, route_named
from api.routes import health, metrics, ops, orders, products, sellers, users
from api.security import LoginThrottle, PasswordHasher, TokenIssuer
from api.shedding import ShedLoad
from eventmart.database import make_pool
from eventmart.groups import database_of, group_names
from eventmart.settings import Settings, get_settings
from eventmart.wiring import build_applications
from projections.registry import install


def build_services(settings: Settings) -> Services:
    pools = {settings.dsn: make_pool(settings.dsn, max_size=16)}
    read_pools = {}
    for group in group_names("projections"):
        dsn = database_of(group, settings)
        if dsn not in pools:
            pools[dsn] = make_pool(dsn, max_size=16)
        read_pools[group] = pools[dsn]
    for pool in pools.values():
        with pool.connection() as conn:
            install(conn)
    return Services(
        settings=settings,
        applications=build_applications(settings, pool_size=10),
        pool=pools[settings.dsn],
        hasher=PasswordHasher(settings.bcrypt_rounds),
        tokens=TokenIssuer(settings.secret_key, settings.token_ttl_seconds),
        login_throttle=LoginThrottle(settings.login_attempts_per_minute),
        read_pools=read_pools,
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        try:
            yield
        finally:
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
    app.include_router(health.router)
    app.include_router(users.router)
    app.include_router(products.router)
    app.include_router(orders.router)
    app.include_router(sellers.router)
    app.include_router(ops.router)
    app.include_router(metrics.router)
    # The last added runs first: requests are timed, shed past the in-flight bound, then
    # product detail may be answered from memory before the routes.
    app.add_middleware(
        ProductDetailFastPath,
        state=app.state,
        route=route_named(products.router.routes, products.product_detail.__name__),
    )
    app.add_middleware(ShedLoad, max_in_flight=settings.api_max_in_flight)
    app.add_middleware(metrics.RequestLatency)
    return app
