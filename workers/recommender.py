"""The recommender as a consumer group: it counts new interactions as they arrive and
retrains the model when enough came (EVENTMART_RECOMMENDER_RETRAIN_INTERACTIONS) or when
the last model is old (EVENTMART_RECOMMENDER_RETRAIN_SECONDS) and anything came since.

Counting is the group's batch work (cheap, in memory); training is a timer's, on a thread
of its own, so a training of tens of seconds holds up no batch. A training reads the whole
log from offset zero, as `eventmart analyst train-recs --source log` does (the export
machinery, never read models), stores the model as a new version (its folder, then LATEST:
API processes switch to it by themselves) and publishes `recommender.model_trained` with
the log offsets it saw. The count lives in memory: after a restart the group's committed
offsets skip what was counted, and the schedule retrains on what comes next.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from eventmart.contracts import CONTRACTS, Envelope, event_id_for
from eventmart.contracts.recommender import model_id
from eventmart.ml import store
from eventmart.ml.event_log import TOPICS, read_events, read_export
from eventmart.ml.interactions import InvalidInteractions
from eventmart.ml.recommender import train
from eventmart.ml.serving import ServingModel
from eventmart.settings import Settings
from projections.tracking import Delivery
from workers.hosted import HostedGroup, SharedResources

log = logging.getLogger("eventmart.recommender")

# What the group counts: the events that become interactions (event_log.py). Reviews
# join when the reviews context registers its contracts. Searches and impressions on
# behavior.events are not interactions (event_log.IGNORED) and do not hasten a retraining.
INTERACTIONS = frozenset({"behavior.viewed", "order.confirmed"})
TOPICS_READ = ("behavior.events", "orders.events")
RETRY_SECONDS = 30.0  # after a failed training


class Retrainer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.every = settings.recommender_retrain_interactions
        self.after_seconds = settings.recommender_retrain_seconds
        self.directory = settings.models_dir
        self._lock = threading.Lock()
        self.new_interactions = 0
        self.last_trained = time.monotonic()
        self.retry_at = 0.0
        self.have_model = store.latest_version(self.directory) is not None
        self.nice = settings.recommender_training_nice
        self._niced: set[int] = set()  # threads already made nicer

    def count(self, deliveries: list[Delivery]) -> int:
        """The group's batch work: count the interactions among the deliveries."""
        found = sum(1 for d in deliveries if d.envelope.type in INTERACTIONS)
        with self._lock:
            self.new_interactions += found
        return found

    def due(self) -> bool:
        with self._lock:
            pending = self.new_interactions
        if pending == 0 or time.monotonic() < self.retry_at:
            return False
        stale = time.monotonic() - self.last_trained >= self.after_seconds
        return pending >= self.every or stale or not self.have_model

    def tick(self) -> int:
        """The timer: retrain if due; 1 if a model was stored."""
        if not self.due():
            return 0
        self._give_way()
        with self._lock:
            taken = self.new_interactions
        try:
            model = self.retrain()
        except Exception:
            # The broker away, or a training that fails: not again every second.
            self.retry_at = time.monotonic() + RETRY_SECONDS
            raise
        with self._lock:
            self.new_interactions -= taken
            self.last_trained = time.monotonic()
        if model is None:
            return 0
        self.have_model = True
        return 1

    def _give_way(self) -> None:
        """Lower this thread's priority (Linux sets niceness per thread): the group's timer
        thread runs nothing but this, and a training of seconds of CPU must not take them
        from the API's requests or the saga on a shared machine."""
        thread = threading.get_native_id()
        if self.nice and thread not in self._niced:
            try:
                current = os.getpriority(os.PRIO_PROCESS, thread)
                os.setpriority(os.PRIO_PROCESS, thread, max(current, self.nice))
            except OSError as error:
                log.warning("recommender: training at normal priority (%s)", error)
            self._niced.add(thread)

    def retrain(self) -> ServingModel | None:
        """Train on the whole log, store the version, announce it; None if nothing to learn."""
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="eventmart-recommender-") as directory:
            from eventmart.export import export_events

            asyncio.run(
                export_events(
                    self.settings.bootstrap_servers, list(TOPICS), Path(directory), fmt="jsonl"
                )
            )
            data = read_events(read_export(Path(directory)))
        try:
            trained = train(data.interactions, data.items, seen=data.seen)
        except InvalidInteractions as error:
            log.info("recommender: nothing to train on yet (%s)", error)
            return None
        model = trained.to_serving()
        store.save(model, self.directory)
        asyncio.run(self.announce(model))
        log.info(
            "recommender: model %s stored (%s) in %.1fs",
            model.version,
            ", ".join(f"{count} {name}" for name, count in trained.counts.items()),
            time.monotonic() - started,
        )
        return model

    async def announce(self, model: ServingModel) -> None:
        counts = model.details.get("counts", {})
        envelope = trained_envelope(model, counts)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, acks="all", enable_idempotence=True
        )
        await producer.start()
        try:
            topic = CONTRACTS[envelope.type].topic
            await producer.send_and_wait(topic, envelope.to_bytes(), key=envelope.key())
        finally:
            await producer.stop()


def trained_envelope(model: ServingModel, counts: dict[str, int]) -> Envelope:
    contract = CONTRACTS["recommender.model_trained"]
    aggregate_id = model_id(model.version)
    event_id = event_id_for(aggregate_id, 1)
    payload = contract.payload.model_validate(
        {
            "version": model.version,
            "trained_at": model.trained_at,
            "seen": model.seen,
            "interactions": int(counts.get("interactions", 0)),
            "users": int(counts.get("users", 0)),
            "items": int(counts.get("items", 0)),
        }
    )
    return Envelope(
        event_id=event_id,
        type=contract.type,
        schema_version=contract.schema_version,
        aggregate_id=aggregate_id,
        aggregate_version=1,
        occurred_at=datetime.now(UTC),
        correlation_id=event_id,
        payload=payload.model_dump(mode="json"),
    )


def build_recommender_group(settings: Settings, shared: SharedResources) -> HostedGroup:
    retrainer = Retrainer(settings)
    return HostedGroup(
        process=retrainer.count,
        wanted=INTERACTIONS,
        timers={"retrain": retrainer.tick},
        timer_interval=1.0,
    )
