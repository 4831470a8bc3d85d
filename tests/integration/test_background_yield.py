"""Background work waits on Kafka's real lag: a training step held while a saga group's
committed offsets are behind its topic's end, and let go once the group has caught up."""

from __future__ import annotations

import asyncio
import threading
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition

from eventmart.background import LagGate, kafka_lag
from eventmart.settings import Settings
from tests.integration.consumer_support import make_topics
from tests.support import publish, wait_until


def commit(bootstrap: str, group: str, topic: str, offset: int) -> None:
    async def run() -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            await consumer.commit({partition: offset})
        finally:
            await consumer.stop()

    asyncio.run(run())


def test_a_training_step_waits_while_a_saga_group_lags_and_resumes_after(
    settings: Settings, infrastructure: object
):
    topic, group = f"yield.{uuid.uuid4().hex[:8]}", f"yield-saga-{uuid.uuid4().hex[:8]}"
    make_topics(settings, topic, partitions=1)
    publish(settings.bootstrap_servers, topic, [(b"k", b"v%d" % n) for n in range(50)])
    commit(settings.bootstrap_servers, group, topic, 0)  # 50 behind
    gate = LagGate(kafka_lag(settings.bootstrap_servers, {group: [topic]}), 10, check_seconds=0.2)
    steps: list[str] = []

    def training() -> None:
        gate.wait_for_quiet()
        steps.append("epoch")

    thread = threading.Thread(target=training, daemon=True)
    thread.start()
    wait_until(lambda: gate.pauses == 1, timeout=30, message="the gate saw the saga's lag")
    assert steps == [] and thread.is_alive()  # held: the lag is still 50
    commit(settings.bootstrap_servers, group, topic, 45)  # 5 behind: under the threshold
    wait_until(lambda: steps == ["epoch"], timeout=30, message="the step went once caught up")
    thread.join(timeout=10)
    assert gate.paused_seconds > 0
