"""The outbox relay: each application's notification log -> its Kafka topic.

An event and its notification are stored in one transaction, so the log is the
outbox. The relay reads past its saved position, produces every public event
keyed by aggregate id with acks=all and the idempotent producer, waits for the
broker's acknowledgements, and only then saves the new position. Killed at any
point, it resends from the last saved position: consumers drop the duplicates
by event identity. Rolled-back transactions leave gaps in notification ids;
reading `id > position` steps over them (the recorder's table lock makes ids
visible in commit order, so no lower id can appear later).

No one event, and no one application, can stop it:
- each application's outbox is relayed by a task of its own, so one that fails waits
  (and is retried) while the others flow;
- an event that cannot be encoded or published after `relay_max_tries` is parked, with
  its aggregate's later events held behind it (workers.outbox), and the relay moves on;
  operators redrive or skip it (eventmart.relay_operations), and the relay acts on that;
- PostgreSQL or Kafka away is waited out, not counted against any event: the relay
  reconnects, takes its lock again, reloads its positions and carries on.

It writes a heartbeat (relay_heartbeat) so /readyz can tell a live relay from a dead one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from eventsourcing.application import Application

from eventmart import tracing
from eventmart.outages import DATABASE_AWAY, database_away, dependency_away
from eventmart.relay_operations import NOTIFY_CHANNEL, REQUESTS_PREFIX
from eventmart.settings import Settings
from eventmart.wiring import APPLICATION_TOPICS, application_dsn, build_application, events_table
from workers.outbox import DEAD_LETTERS_DDL, Outbox
from workers.relay_send import LockLost, OutboxSender, SharedConnection

log = logging.getLogger("eventmart.relay")
RELAY_LOCK = 7002
LONGEST_PAUSE_SECONDS = 5.0

POSITIONS_DDL = """
CREATE TABLE IF NOT EXISTS relay_positions (
    application text PRIMARY KEY,
    notification_id bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS relay_heartbeat (
    relay text PRIMARY KEY,
    host text NOT NULL,
    pid integer NOT NULL,
    alive_at timestamptz NOT NULL,
    progress_at timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION eventmart_notify_relay() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('eventmart_events', TG_TABLE_NAME);
    RETURN NULL;
END $$ LANGUAGE plpgsql;
"""
HEARTBEAT = """
INSERT INTO relay_heartbeat (relay, host, pid, alive_at, progress_at)
VALUES ('active', %(host)s, %(pid)s, now(), now() - make_interval(secs => %(since)s))
ON CONFLICT (relay) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
    alive_at = EXCLUDED.alive_at, progress_at = EXCLUDED.progress_at
"""


def install(dsn: str, applications: list[Application[Any]]) -> None:
    """Positions, dead letters and heartbeat tables, and a trigger that wakes the relay
    when a transaction commits events."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(7001)")  # DDL from several processes at once
        try:
            conn.execute(POSITIONS_DDL)
            conn.execute(DEAD_LETTERS_DDL)
            for application in applications:
                table = events_table(application)
                conn.execute(f"DROP TRIGGER IF EXISTS relay_wakeup ON {table}")
                conn.execute(
                    f"CREATE TRIGGER relay_wakeup AFTER INSERT ON {table} "
                    "FOR EACH STATEMENT EXECUTE FUNCTION eventmart_notify_relay()"
                )
        finally:
            conn.execute("SELECT pg_advisory_unlock(7001)")


def install_everywhere(settings: Settings, applications: list[Application[Any]]) -> None:
    """The relay's own tables in the shared database (where its lock, positions, dead
    letters and heartbeat live), and the wake-up trigger on each outbox in whichever
    database its context keeps it (EVENTMART_<CONTEXT>_DATABASE_URL)."""
    install(settings.dsn, [])
    for dsn, members in outbox_databases(settings, applications).items():
        install(dsn, members)


def outbox_databases(
    settings: Settings, applications: list[Application[Any]]
) -> dict[str, list[Application[Any]]]:
    """The applications by the database their events (their outbox) are stored in."""
    grouped: dict[str, list[Application[Any]]] = {}
    for application in applications:
        grouped.setdefault(application_dsn(type(application), settings), []).append(application)
    return grouped


@dataclass
class Pause:
    """Exponential pauses between attempts at something that keeps failing."""

    first: float = 0.5
    seconds: float = 0.0

    def next(self) -> float:
        self.seconds = min(LONGEST_PAUSE_SECONDS, self.seconds * 2 if self.seconds else self.first)
        return self.seconds

    def reset(self) -> None:
        self.seconds = 0.0


class Relay:
    def __init__(self, settings: Settings, outboxes: list[Outbox]) -> None:
        self.settings = settings
        self.outboxes = outboxes
        self.by_table = {outbox.table: outbox for outbox in outboxes}
        self.by_name = {outbox.name: outbox for outbox in outboxes}
        self.stopping = asyncio.Event()

    @classmethod
    def build(cls, settings: Settings) -> Relay:
        # Prompt recorders: a read while PostgreSQL is away fails in seconds, not minutes,
        # so the relay notices, reconnects and takes its lock again.
        outboxes = [
            Outbox(build_application(app_class, settings, pool_size=2, prompt_seconds=2), topic)
            for app_class, topic in APPLICATION_TOPICS.items()
        ]
        install_everywhere(settings, [outbox.application for outbox in outboxes])
        return cls(settings, outboxes)

    async def run(self) -> None:
        producer = await self._started_producer()
        if producer is None:
            return
        listener = asyncio.create_task(self._listen())
        pause = Pause(first=1.0)
        try:
            while not self.stopping.is_set():
                try:
                    await self._session(producer)
                    pause.reset()
                except (LockLost, *DATABASE_AWAY) as error:  # type: ignore[misc]
                    seconds = pause.next()
                    log.warning("relay lost PostgreSQL (%s); again in %.1fs", error, seconds)
                    await self._sleep(seconds)
        finally:
            listener.cancel()
            await producer.stop()

    async def _started_producer(self) -> AIOKafkaProducer | None:
        """The producer, once Kafka answers (None if told to stop first)."""
        pause = Pause(first=1.0)
        while not self.stopping.is_set():
            producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                linger_ms=2,
                max_batch_size=262144,
            )
            try:
                await producer.start()
                return producer
            except KafkaError as error:
                await producer.stop()
                seconds = pause.next()
                log.warning("relay cannot reach Kafka (%s); again in %.1fs", error, seconds)
                await self._sleep(seconds)
        return None

    async def _session(self, producer: AIOKafkaProducer) -> None:
        """Hold the relay's lock on one connection and relay every outbox until told to
        stop or the connection breaks."""
        conn: psycopg.Connection[Any] = await asyncio.to_thread(
            lambda: psycopg.connect(self.settings.dsn, autocommit=True, connect_timeout=5)
        )
        shared = SharedConnection(conn)
        try:
            if not await self._locked(shared):
                return
            for outbox in self.outboxes:
                await shared.run(outbox.load)
                outbox.wakeup.set()
                outbox.progress_at = time.monotonic()
            log.info("relay active: %s", {o.name: o.position for o in self.outboxes})
            tasks = [
                asyncio.create_task(self._relay(outbox, producer, shared))
                for outbox in self.outboxes
            ]
            tasks.append(asyncio.create_task(self._beat(shared)))
            try:
                # Told to stop, every task finishes what it is sending and returns.
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            await asyncio.to_thread(conn.close)

    async def _locked(self, shared: SharedConnection) -> bool:
        """One active relay per database; another one waits here as a hot standby."""
        while not self.stopping.is_set():
            row = await shared.run(
                lambda conn: conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (RELAY_LOCK,)
                ).fetchone()
            )
            if row is not None and row[0]:
                return True
            await self._sleep(self.settings.relay_poll_seconds)
        return False

    async def _beat(self, shared: SharedConnection) -> None:
        """Say the relay is alive, and when its stalest outbox last got through, every
        poll interval; returns when stopping, raises LockLost if the connection broke."""
        host, pid = socket.gethostname(), os.getpid()
        while not self.stopping.is_set():
            since = time.monotonic() - min(outbox.progress_at for outbox in self.outboxes)
            try:
                await shared.run(_beat, {"host": host, "pid": pid, "since": since})
            except psycopg.Error as error:
                raise LockLost(str(error)) from error
            await self._sleep(max(0.5, self.settings.relay_poll_seconds))

    async def _relay(
        self, outbox: Outbox, producer: AIOKafkaProducer, shared: SharedConnection
    ) -> None:
        """This outbox, until stopping. A failure waits and tries again (growing pauses);
        it never stops the other outboxes. Only a lost lock ends the session."""
        sender = OutboxSender(outbox, producer, shared, self.settings, self.stopping)
        pause = Pause()
        while not self.stopping.is_set():
            again_in = self.settings.relay_poll_seconds
            try:
                if outbox.requests_pending:
                    outbox.requests_pending = False
                    await sender.act_on_requests()
                retry = await sender.drain_all()
                outbox.progress_at = time.monotonic()
                pause.reset()
                if retry is not None:
                    again_in = retry
            except Exception as error:
                if isinstance(error, LockLost):
                    raise
                if shared.broken:
                    raise LockLost(str(error)) from error
                again_in = pause.next()
                if dependency_away(error):
                    log.warning("%s: %s; again in %.1fs", outbox.name, error, again_in)
                else:
                    log.exception("%s: relaying failed; again in %.1fs", outbox.name, again_in)
                await shared.run(outbox.load)  # what was saved, not what was meant
            await self._wait(outbox, again_in)

    async def _wait(self, outbox: Outbox, seconds: float) -> None:
        """Until a commit or a request is announced, stopping, or `seconds` pass (a lost
        notification or LISTEN connection must not stall the log)."""
        waits = [
            asyncio.create_task(outbox.wakeup.wait()),
            asyncio.create_task(self.stopping.wait()),
        ]
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        outbox.wakeup.clear()

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass

    async def _listen(self) -> None:
        """LISTEN for commits (in every database holding an outbox) and operators'
        requests (in the shared one); a lost connection only means falling back to the poll."""
        applications = [outbox.application for outbox in self.outboxes]
        dsns = {self.settings.dsn, *outbox_databases(self.settings, applications)}
        await asyncio.gather(*(self._listen_to(dsn) for dsn in sorted(dsns)))

    async def _listen_to(self, dsn: str) -> None:
        while not self.stopping.is_set():
            try:
                conn = await psycopg.AsyncConnection.connect(
                    dsn, autocommit=True, connect_timeout=5
                )
                async with conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    for outbox in self.outboxes:  # commits made while not listening
                        outbox.requests_pending = True
                        outbox.wakeup.set()
                    async for notify in conn.notifies():
                        self._heard(notify.payload)
            except (psycopg.OperationalError, OSError) as error:
                log.warning("relay LISTEN connection lost (%s); polling meanwhile", error)
                await self._sleep(1)

    def _heard(self, payload: str) -> None:
        if payload.startswith(REQUESTS_PREFIX):
            outbox = self.by_name.get(payload.removeprefix(REQUESTS_PREFIX))
            if outbox is not None:
                outbox.requests_pending = True
        else:
            outbox = self.by_table.get(payload)
        if outbox is not None:
            outbox.wakeup.set()

    def stop(self) -> None:
        self.stopping.set()


def _beat(conn: psycopg.Connection[Any], parameters: dict[str, Any]) -> None:
    conn.execute(HEARTBEAT, parameters)


def run_relay(settings: Settings) -> None:
    tracing.configure("relay")

    async def main() -> None:
        relay = await _built(settings)
        if relay is None:
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, relay.stop)
        await relay.run()

    asyncio.run(main())


async def _built(settings: Settings) -> Relay | None:
    """The relay, once PostgreSQL answers (it may be starting, or restarting)."""
    pause = Pause(first=1.0)
    while True:
        try:
            return await asyncio.to_thread(Relay.build, settings)
        except Exception as error:
            if not database_away(error):
                raise
            seconds = pause.next()
            log.warning("relay cannot reach PostgreSQL (%s); again in %.1fs", error, seconds)
            await asyncio.sleep(seconds)
