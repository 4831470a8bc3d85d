"""A projection as a consumer group: one read model, rows + tracking in one transaction
per batch, on the database of the context that owns the read model."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from eventmart import tracing
from eventmart.groups import database_of
from eventmart.personal_data import FieldCipher
from eventmart.settings import Settings
from eventmart.wiring import field_cipher
from projections.registry import ReadModel, install
from projections.tracking import Delivery, apply_deliveries
from workers.hosted import HostedGroup, SharedResources
from workers.saga import transaction_span


class ProjectionProcessor:
    def __init__(
        self, model: ReadModel, pool: ConnectionPool, cipher: FieldCipher | None = None
    ) -> None:
        self.model = model
        self.pool = pool
        self.handlers = model.handlers_opening(cipher)

    def __call__(self, deliveries: list[Delivery]) -> int:
        span = transaction_span(self.model.group, deliveries)
        try:
            with self.pool.connection() as conn:
                applied = apply_deliveries(
                    conn, self.model.group, self.handlers, deliveries, self.model.recorder
                )
        except Exception as error:
            tracing.finish(span, "rolled_back", **{"error.type": type(error).__name__})
            raise
        tracing.finish(span, "committed", **{"eventmart.applied": applied})
        return applied


def build_projection_group(
    model: ReadModel, settings: Settings, shared: SharedResources
) -> HostedGroup:
    pool = shared.pool(database_of(model.group, settings))
    with pool.connection() as conn:
        install(conn)
    return HostedGroup(
        process=ProjectionProcessor(
            model, pool, field_cipher(settings) if model.personal else None
        ),
        gather_ms=settings.projection_fetch_wait_ms,
    )
