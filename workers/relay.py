"""The outbox relay: each application's notification log -> its Kafka topic.

An event and its notification are stored in one transaction, so the log is the
outbox. The relay reads past its saved position, produces every public event
keyed by aggregate id with acks=all and the idempotent producer, waits for the
broker's acknowledgements, and only then saves the new position. Killed at any
point, it resends from the last saved position: consumers drop the duplicates
by event identity. Rolled-back transactions leave gaps in notification ids;
reading `id > position` steps over them (the recorder's table lock makes ids
visible in commit order, so no lower id can appear later).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from eventsourcing.application import Application

from eventmart.contracts import envelope_from_domain
from eventmart.settings import Settings
from eventmart.wiring import APPLICATION_TOPICS, build_application, events_table

log = logging.getLogger("eventmart.relay")
NOTIFY_CHANNEL = "eventmart_events"

POSITIONS_DDL = """
CREATE TABLE IF NOT EXISTS relay_positions (
    application text PRIMARY KEY,
    notification_id bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION eventmart_notify_relay() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('eventmart_events', TG_TABLE_NAME);
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""


def install(dsn: str, applications: list[Application[Any]]) -> None:
    """Positions table, and a trigger that wakes the relay when a transaction commits events."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7001)")  # DDL from several processes at once
        try:
            conn.execute(POSITIONS_DDL)
            for application in applications:
                table = events_table(application)
                conn.execute(f"DROP TRIGGER IF EXISTS relay_wakeup ON {table}")
                conn.execute(
                    f"CREATE TRIGGER relay_wakeup AFTER INSERT ON {table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION eventmart_notify_relay()"
                )
        finally:
            conn.execute("SELECT pg_advisory_unlock(7001)")


@dataclass
class Outbox:
    """One application's notification log and where the relay has got to in it."""

    application: Application[Any]
    topic: str
    position: int = 0

    @property
    def name(self) -> str:
        return self.application.name

    @property
    def table(self) -> str:
        """Its events table, as the wake-up trigger names it."""
        return events_table(self.application)

    def load_position(self, conn: psycopg.Connection) -> None:
        row = conn.execute(
            "SELECT notification_id FROM relay_positions WHERE application = %s", (self.name,)
        ).fetchone()
        self.position = row[0] if row else 0

    def save_position(self, conn: psycopg.Connection, position: int) -> None:
        conn.execute(
            "INSERT INTO relay_positions (application, notification_id) VALUES (%s, %s) "
            "ON CONFLICT (application) DO UPDATE SET notification_id = EXCLUDED.notification_id, "
            "updated_at = now() WHERE relay_positions.notification_id < EXCLUDED.notification_id",
            (self.name, position),
        )
        self.position = position

    def pending(self, limit: int) -> list[tuple[int, bytes, bytes] | tuple[int, None, None]]:
        """(notification id, key, value) past the position; private events have no value."""
        notifications = self.application.recorder.select_notifications(
            start=self.position + 1, limit=limit
        )
        batch: list[tuple[int, bytes, bytes] | tuple[int, None, None]] = []
        for notification in notifications:
            domain_event = self.application.mapper.to_domain_event(notification)
            envelope = envelope_from_domain(domain_event)
            if envelope is None:
                batch.append((notification.id, None, None))
            else:
                batch.append((notification.id, envelope.key(), envelope.to_bytes()))
        return batch


class Relay:
    def __init__(self, settings: Settings, outboxes: list[Outbox]) -> None:
        self.settings = settings
        self.outboxes = outboxes
        self.wakeup = asyncio.Event()
        # Events tables with commits not relayed yet, as the trigger names them: a wakeup
        # reads only those outboxes, not all eight (most of them idle at any moment).
        self.dirty: set[str] = set()
        self.tables = {outbox.table for outbox in outboxes}
        self.stopping = asyncio.Event()
        self.relayed = 0

    @classmethod
    def build(cls, settings: Settings) -> Relay:
        outboxes = [
            Outbox(build_application(app_class, settings, pool_size=2), topic)
            for app_class, topic in APPLICATION_TOPICS.items()
        ]
        install(settings.dsn, [outbox.application for outbox in outboxes])
        return cls(settings, outboxes)

    async def run(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            linger_ms=2,
            max_batch_size=262144,
        )
        await producer.start()
        listener = asyncio.create_task(self._listen())
        try:
            with psycopg.connect(self.settings.dsn, autocommit=True) as conn:
                # One active relay per database; a second one waits as a hot standby.
                await asyncio.to_thread(conn.execute, "SELECT pg_advisory_lock(7002)")
                for outbox in self.outboxes:
                    outbox.load_position(conn)
                log.info("relay active: %s", {o.name: o.position for o in self.outboxes})
                self.dirty |= self.tables
                while not self.stopping.is_set():
                    for outbox in self.outboxes:
                        if outbox.table in self.dirty:
                            self.dirty.discard(outbox.table)  # a commit from now on marks it again
                            if (
                                await self._drain(producer, conn, outbox)
                                == self.settings.relay_batch_size
                            ):
                                self.dirty.add(outbox.table)  # a full batch: there may be more
                    if not self.dirty:
                        self.wakeup.clear()
                        if not await self._wait_for_work():
                            self.dirty |= self.tables  # no news for a while: look everywhere
        finally:
            listener.cancel()
            await producer.stop()

    async def _drain(
        self, producer: AIOKafkaProducer, conn: psycopg.Connection, outbox: Outbox
    ) -> int:
        batch = await asyncio.to_thread(outbox.pending, self.settings.relay_batch_size)
        if not batch:
            return 0
        deliveries = [
            await producer.send(outbox.topic, value=value, key=key)
            for _, key, value in batch
            if value is not None
        ]
        await asyncio.gather(*deliveries)  # acks=all: on every in-sync replica
        await asyncio.to_thread(outbox.save_position, conn, batch[-1][0])
        self.relayed += len(deliveries)
        return len(batch)

    async def _wait_for_work(self) -> bool:
        """Until a commit is announced (True), the relay is stopped, or the poll interval
        passes (False: a lost notification or LISTEN connection must not stall the log)."""
        waits = [asyncio.create_task(self.wakeup.wait()), asyncio.create_task(self.stopping.wait())]
        done, _ = await asyncio.wait(
            waits, timeout=self.settings.relay_poll_seconds, return_when=asyncio.FIRST_COMPLETED
        )
        for task in waits:
            task.cancel()
        return bool(done)

    async def _listen(self) -> None:
        """LISTEN for commits; a lost connection only means falling back to the poll."""
        while not self.stopping.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(self.settings.dsn, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self.dirty |= self.tables  # commits made while not listening
                    self.wakeup.set()
                    async for notify in conn.notifies():
                        self.dirty.add(notify.payload)
                        self.wakeup.set()
            except (psycopg.OperationalError, OSError) as error:
                log.warning("relay LISTEN connection lost (%s); polling meanwhile", error)
                await asyncio.sleep(1)

    def stop(self) -> None:
        self.stopping.set()


def run_relay(settings: Settings) -> None:
    async def main() -> None:
        relay = await asyncio.to_thread(Relay.build, settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, relay.stop)
        await relay.run()

    asyncio.run(main())
