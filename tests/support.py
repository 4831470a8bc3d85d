"""Test scaffolding: the real broker and database, worker processes, and waiting on
conditions with deadlines (never bare sleeps)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from eventmart.contracts import Envelope, MalformedEvent, parse
from eventmart.settings import PROJECT_ROOT, Settings

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Poll `condition` until it returns something truthy; fail with `message` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = condition()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {last!r})")


class WorkerProcess:
    """One `python -m entrypoints ...` child, killable like a real deployment's process."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            [sys.executable, "-m", "entrypoints", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
        )
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush, as when a machine dies."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20) -> bool:
        """SIGTERM, then SIGKILL after `timeout`; True if it exited on SIGTERM."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return False
        return True

    def terminate(self) -> None:
        """Ask it to stop without waiting (see stop_all)."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGTERM)

    def log_tail(self, size: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-size:] if self.log_path.exists() else ""


def stop_all(workers: list[WorkerProcess]) -> None:
    """Stop several workers at once: their shutdowns overlap instead of adding up."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.stop()


def child_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVENTMART_")}
    for name, value in settings.model_dump().items():
        if value is not None and name not in ("database_url", "kafka_bootstrap_servers"):
            # Lists (trusted_proxies) are read back comma-separated.
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            env[f"EVENTMART_{name.upper()}"] = text
    env.update(
        {
            "DATABASE_URL": settings.dsn,
            "KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


async def _read_topic(bootstrap: str, topic: str) -> list[Any]:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        if not partitions:
            await consumer._client.force_metadata_update()  # first look at a topic
            partitions = [
                TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])
            ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, messages in batches.items():
                records.extend(messages)
                if messages and messages[-1].offset + 1 >= ends[tp]:
                    remaining.discard(tp)
        return records
    finally:
        await consumer.stop()


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every record on the topic now, from offset zero (no consumer group)."""
    return asyncio.run(_read_topic(bootstrap, topic))


def read_envelopes(bootstrap: str, topic: str) -> list[Envelope]:
    envelopes = []
    for record in read_topic(bootstrap, topic):
        try:
            envelopes.append(parse(record.value))
        except MalformedEvent:
            continue
    return envelopes


async def _publish(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def publish(
    bootstrap: str,
    topic: str,
    messages: list[tuple[bytes, bytes]],
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    asyncio.run(_publish(bootstrap, topic, messages, headers))


async def _group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in (consumer.partitions_for_topic(topic) or [])
        ]
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in (consumer.partitions_for_topic(topic) or [])
            ]
        ends = await consumer.end_offsets(partitions)
        return sum(
            max(0, end - (committed[tp].offset if tp in committed else 0))
            for tp, end in ends.items()
        )
    finally:
        await consumer.stop()
        await admin.close()


def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages on the group's topics past its committed offsets."""
    return asyncio.run(_group_lag(bootstrap, group, topics))


def _caught_up(bootstrap: str, group: str, topics: list[str]) -> bool:
    return group_lag(bootstrap, group, topics) == 0


def wait_for_groups_to_catch_up(
    bootstrap: str, groups: dict[str, list[str]], timeout: float = 60
) -> None:
    for group, topics in groups.items():
        wait_until(
            partial(_caught_up, bootstrap, group, topics),
            timeout=timeout,
            interval=0.3,
            message=f"consumer group {group} to catch up",
        )


def relay_backlog(dsn: str) -> int:
    """Stored notifications the relay has not yet published, over every application."""
    import psycopg

    from eventmart.wiring import APPLICATION_TOPICS

    backlog = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        for application in APPLICATION_TOPICS:
            name = application.name
            newest = conn.execute(
                f"SELECT coalesce(max(notification_id), 0) FROM {name.lower()}_events"
            ).fetchone()[0]
            row = conn.execute(
                "SELECT notification_id FROM relay_positions WHERE application = %s", (name,)
            ).fetchone()
            backlog += newest - (row[0] if row else 0)
    return backlog


def wait_for_quiet(settings: Settings, groups: dict[str, list[str]], timeout: float = 120) -> None:
    """Until the relay has published everything and the groups have consumed it, twice in a
    row (a consumed event may cause new ones)."""

    def quiet() -> bool:
        return relay_backlog(settings.dsn) == 0 and all(
            group_lag(settings.bootstrap_servers, group, topics) == 0
            for group, topics in groups.items()
        )

    wait_until(
        lambda: quiet() and quiet(),
        timeout=timeout,
        interval=0.5,
        message="the relay and the consumer groups to go quiet",
    )


async def _group_members(bootstrap: str, group: str) -> tuple[str, frozenset[str]]:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for response in await admin.describe_consumer_groups([group]):
            # (error, group, state, protocol type, protocol, members, ...); members
            # (member id, client id, host, metadata, assignment)
            for description in response.groups:
                return description[2], frozenset(member[0] for member in description[5])
        return "Dead", frozenset()
    except KafkaError:  # no coordinator yet, for a new group or a fresh broker
        return "Unknown", frozenset()
    finally:
        await admin.close()


def group_members(bootstrap: str, group: str) -> tuple[str, frozenset[str]]:
    """The group's state as the broker's coordinator sees it (`Stable`, `PreparingRebalance`,
    `CompletingRebalance`, `Empty`, ...) and its members' ids."""
    return asyncio.run(_group_members(bootstrap, group))


def group_membership(bootstrap: str, group: str) -> tuple[str, int]:
    """The group's state and how many members it has."""
    state, members = group_members(bootstrap, group)
    return state, len(members)


def wait_for_replacement(
    bootstrap: str, group: str, gone: frozenset[str], *, timeout: float = 180
) -> None:
    """Until the group is stable again with members, none of them one of `gone` (killed
    members the coordinator forgets after the session timeout): the replacements consume."""

    def replaced() -> bool:
        state, members = group_members(bootstrap, group)
        return state == "Stable" and bool(members) and not members & gone

    wait_until(replaced, timeout=timeout, interval=0.5, message=f"{group} to have replaced {gone}")


def wait_for_members(bootstrap: str, group: str, members: int, *, timeout: float = 90) -> None:
    """Until the group is stable with exactly `members` members: every one of them has
    joined and been handed its partitions."""
    wait_until(
        lambda: group_membership(bootstrap, group) == ("Stable", members),
        timeout=timeout,
        interval=0.3,
        message=f"consumer group {group} to be stable with {members} members",
    )


def wait_for_groups_to_join(bootstrap: str, groups: list[str], *, timeout: float = 90) -> None:
    """Until each group is stable with at least one member: its workers are consuming."""

    def joined(group: str) -> bool:
        state, members = group_membership(bootstrap, group)
        return state == "Stable" and members >= 1

    for group in groups:
        wait_until(
            partial(joined, group),
            timeout=timeout,
            interval=0.3,
            message=f"consumer group {group} to be joined",
        )


def ports_free(*ports: int) -> bool:
    """Whether no socket listens on, or is bound to, any of these local ports. SO_REUSEADDR as
    servers set it: a port whose last connections linger in TIME_WAIT counts as free."""
    probes = [socket.socket() for _ in ports]
    try:
        for probe, port in zip(probes, ports, strict=True):
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        for probe in probes:
            probe.close()


def free_port(count: int = 1) -> int:
    """The first of `count` consecutive free ports (replica i of a worker serves on port + i),
    below Linux's ephemeral range so outgoing connections cannot take the later ones."""
    for first in range(random.randrange(20000, 30000), 32000, count):
        if ports_free(*range(first, first + count)):
            return first
    raise RuntimeError("no run of free ports below 32000")


def scrape(port: int) -> bytes | None:
    """A worker's /metrics (EVENTMART_WORKER_METRICS_PORT), or None if nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            body: bytes = answer.read()
            return body
    except OSError:
        return None


def metric_value(text: str, prefix: str) -> float:
    """The value of the first Prometheus sample line starting with `prefix`."""
    line = next(line for line in text.splitlines() if line.startswith(prefix))
    return float(line.rsplit(" ", 1)[1])


def dead_letter_topics() -> list[str]:
    from eventmart.broker import consumer_groups

    return [f"{group}.dlq" for group in consumer_groups()]


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or [])
        ]
        ends = await consumer.end_offsets(partitions) if partitions else {}
        return {(tp.topic, tp.partition): offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


def dead_letter_marks(bootstrap: str) -> dict[tuple[str, int], int]:
    """Where every dead-letter topic ends now: what a test parks is what comes after."""
    return asyncio.run(_end_offsets(bootstrap, dead_letter_topics()))


def parked_since(bootstrap: str, marks: dict[tuple[str, int], int]) -> list[Any]:
    """Every record parked on any dead-letter topic after `marks` (dead_letter_marks)."""
    return [
        record
        for topic in dead_letter_topics()
        for record in read_topic(bootstrap, topic)
        if record.offset >= marks.get((topic, record.partition), 0)
    ]
