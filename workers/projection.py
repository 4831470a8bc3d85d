"""A projection worker: one read model, its own consumer group, rows + tracking in one
transaction per batch."""

from __future__ import annotations

import faust
from psycopg_pool import ConnectionPool

from eventmart.database import make_pool
from eventmart.settings import Settings
from projections.registry import READ_MODELS, ReadModel, install
from projections.tracking import Delivery, apply_deliveries
from workers.consumer import GroupConsumer, build_app


class ProjectionProcessor:
    def __init__(self, model: ReadModel, pool: ConnectionPool) -> None:
        self.model = model
        self.pool = pool

    def __call__(self, deliveries: list[Delivery]) -> int:
        with self.pool.connection() as conn:
            return apply_deliveries(conn, self.model.group, self.model.handlers, deliveries)


def build_projection_worker(name: str, settings: Settings) -> faust.App:
    model = READ_MODELS[name]
    pool = make_pool(settings.dsn, max_size=4)
    with pool.connection() as conn:
        install(conn)
    app = build_app(model.group, settings)
    GroupConsumer(
        app,
        model.group,
        model.topics,
        ProjectionProcessor(model, pool),
        bootstrap=settings.bootstrap_servers,
        max_tries=settings.worker_max_tries,
        gather_ms=settings.projection_fetch_wait_ms,
    )
    return app
