"""Installing a rebuilt shadow (projections.rebuild) in place of the live read model, in one
transaction: lock the tracking tables, then the live tables; apply whatever the live
worker applied since; make the group's `applied_events` and `consumer_positions` the
shadow's; drop the live tables and move the shadow's into `public`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql

TRACKING_TABLES = ("applied_events", "consumer_positions")


async def swap_in(
    conn: psycopg.Connection[Any],
    group: str,
    schema: str,
    tables: Sequence[str],
    catch_up: Callable[[], Awaitable[None]],
) -> None:
    """The shadow in `schema` becomes `group`'s live model; `catch_up` applies, under the
    locks, what the live worker applied since the shadow last caught up."""
    shadow = sql.Identifier(schema)
    public = sql.Identifier("public")
    with conn.transaction():
        # Tracking first, then the model: the order a worker's transaction takes them.
        conn.execute(
            sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.Identifier("public", table) for table in TRACKING_TABLES)
            )
        )
        conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.SQL(", ").join(sql.Identifier("public", table) for table in tables)
            )
        )
        await catch_up()
        _replace_applied_events(conn, group, shadow)
        conn.execute(
            sql.SQL(
                "INSERT INTO public.consumer_positions (consumer_group, topic, partition, next_offset) "
                "SELECT consumer_group, topic, partition, next_offset FROM {}.consumer_positions "
                "WHERE consumer_group = %s ON CONFLICT (consumer_group, topic, partition) DO UPDATE "
                "SET next_offset = GREATEST(consumer_positions.next_offset, EXCLUDED.next_offset), "
                "updated_at = now()"
            ).format(shadow),
            (group,),
        )
        for table in tables:
            conn.execute(sql.SQL("DROP TABLE {}.{}").format(public, sql.Identifier(table)))
            conn.execute(
                sql.SQL("ALTER TABLE {}.{} SET SCHEMA public").format(shadow, sql.Identifier(table))
            )
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(shadow))
        for table in tables:
            # Whoever caches a table's rows (api.product_cache) hears, on commit, that
            # every row may have changed; the channel is the table's name.
            conn.execute("SELECT pg_notify(%s, '*')", (table,))
        conn.execute("SET LOCAL search_path TO public")
    conn.execute("SET search_path TO public")


def _replace_applied_events(
    conn: psycopg.Connection[Any], group: str, shadow: sql.Identifier
) -> None:
    """The group's event identities become the shadow's. Both sets are nearly always the
    same (the shadow caught up to the live positions), so instead of deleting and
    inserting every row under the lock, drop what the shadow lacks and add, in key
    order, what the live set lacks: two anti-joins, not a conflict check per row."""
    conn.execute(
        sql.SQL(
            "DELETE FROM public.applied_events AS live WHERE live.consumer_group = %(group)s "
            "AND NOT EXISTS (SELECT 1 FROM {}.applied_events AS rebuilt "
            "WHERE rebuilt.consumer_group = %(group)s AND rebuilt.aggregate_id = live.aggregate_id "
            "AND rebuilt.aggregate_version = live.aggregate_version)"
        ).format(shadow),
        {"group": group},
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO public.applied_events SELECT * FROM {}.applied_events AS rebuilt "
            "WHERE rebuilt.consumer_group = %(group)s AND NOT EXISTS (SELECT 1 FROM "
            "public.applied_events AS live WHERE live.consumer_group = %(group)s "
            "AND live.aggregate_id = rebuilt.aggregate_id "
            "AND live.aggregate_version = rebuilt.aggregate_version) "
            "ORDER BY consumer_group, aggregate_id, aggregate_version"
        ).format(shadow),
        {"group": group},
    )
