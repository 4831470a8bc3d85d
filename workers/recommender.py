"""The recommender as a consumer group: it keeps what arrives (views, orders, new products)
and updates the model incrementally once enough came (EVENTMART_RECOMMENDER_RETRAIN_INTERACTIONS)
or when the last model is old (EVENTMART_RECOMMENDER_RETRAIN_SECONDS) and anything came since.

The group's batch work is cheap: it appends what it keeps to a journal on disk (so what its
committed offsets skip after a restart is not lost) and counts the interactions. Training is
a timer's, on a thread of its own and at a lower priority, and it waits while any saga group
lags (eventmart/background.py). An update learns from the journal since the last model
(eventmart/ml/incremental.py): its cost follows what is new, not the log. A full training,
which reads the whole log from offset zero as `eventmart analyst train-recs --source log`
does, runs when there is no state yet, on a schedule (EVENTMART_RECOMMENDER_FULL_RETRAIN_SECONDS),
once updates have added a share of the data (EVENTMART_RECOMMENDER_FULL_RETRAIN_DRIFT), or when
`eventmart analyst train-recs --full` asks for one. Each model is stored as a new version (its
folder, then LATEST: API processes switch by themselves), with the state training resumes from
and the log offsets it saw, and announced as `recommender.model_trained`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from eventmart.background import LagGate, kafka_lag
from eventmart.contracts import CONTRACTS, Envelope, event_id_for
from eventmart.contracts.recommender import model_id
from eventmart.groups import group_names
from eventmart.ml import store
from eventmart.ml.event_log import TOPICS, follow_events, read_events, read_export
from eventmart.ml.incremental import IncrementalModel
from eventmart.ml.interactions import InvalidInteractions, interactions_frame
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
# What it keeps for the next update: the interactions, what makes an order's purchases, and
# new products (their content features).
KEPT = INTERACTIONS | {
    "order.placed",
    "order.rejected",
    "order.cancelled",
    "product.created",
}
TOPICS_READ = ("behavior.events", "orders.events", "catalog.events")
RETRY_SECONDS = 30.0  # after a failed training
FULL_REQUEST = store.FULL_REQUEST


class Journal:
    """What the group kept since the last model, on disk: one JSON line per record, in
    segments; an update takes the closed ones and removes them once its state is saved."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.stem.split("-")[1]) for p in directory.glob("segment-*.jsonl")]
        self.number = max(numbers, default=0) + 1

    def segments(self) -> list[Path]:
        return sorted(self.directory.glob("segment-*.jsonl"), key=lambda p: int(p.stem[8:]))

    def append(self, records: list[dict[str, Any]]) -> None:
        with (self.directory / f"segment-{self.number}.jsonl").open("a") as segment:
            segment.writelines(json.dumps(record, default=str) + "\n" for record in records)

    def close_segment(self) -> list[Path]:
        """The segments up to now (the next append starts another)."""
        closed = self.segments()
        self.number += 1
        return closed

    @staticmethod
    def read(segments: list[Path]) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for segment in segments:
            with segment.open() as lines:
                records.extend(json.loads(line) for line in lines if line.strip())
        return records


def record_of(delivery: Delivery) -> dict[str, Any]:
    """A delivery as event_log reads records: the envelope with its topic and offset."""
    return {
        **delivery.envelope.model_dump(mode="json"),
        "topic": delivery.topic,
        "partition": delivery.partition,
        "offset": delivery.offset,
    }


class Retrainer:
    def __init__(self, settings: Settings, gate: LagGate | None = None) -> None:
        self.settings = settings
        self.every = settings.recommender_retrain_interactions
        self.after_seconds = settings.recommender_retrain_seconds
        self.directory = settings.models_dir
        self.gate = gate
        self._lock = threading.Lock()
        self.new_interactions = 0
        self.last_trained = time.monotonic()
        self.retry_at = 0.0
        self.have_model = store.latest_version(self.directory) is not None
        self.nice = settings.recommender_training_nice
        self._niced: set[int] = set()  # threads already made nicer
        self.journal = Journal(self.directory / "journal")
        self.model: IncrementalModel | None = None
        self._state_loaded = False
        self._drop_after_save: list[Path] = []  # journal segments the saved state holds

    def count(self, deliveries: list[Delivery]) -> int:
        """The group's batch work: keep what the next update needs, count the interactions."""
        found = sum(1 for d in deliveries if d.envelope.type in INTERACTIONS)
        kept = [record_of(d) for d in deliveries if d.envelope.type in KEPT]
        with self._lock:
            if kept:
                self.journal.append(kept)
            self.new_interactions += found
        return found

    def full_due(self) -> bool:
        model = self.model
        if model is None or (self.directory / FULL_REQUEST).exists():
            return True
        age = (datetime.now(UTC) - model.full_trained_at).total_seconds()
        drifted = model.drift >= self.settings.recommender_full_retrain_drift
        return age >= self.settings.recommender_full_retrain_seconds or drifted

    def due(self) -> bool:
        with self._lock:
            pending = self.new_interactions
        if time.monotonic() < self.retry_at:
            return False
        if (self.directory / FULL_REQUEST).exists():
            return True
        if pending == 0:
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

    def _wait_for_quiet(self) -> None:
        if self.gate is not None:
            self.gate.wait_for_quiet()

    def retrain(self) -> ServingModel | None:
        """An update from the journal, or a full training when one is due; the model stored
        and announced, or None if there is nothing to learn yet."""
        on_disk = store.state_version(self.directory)
        if not self._state_loaded or (self.model and on_disk and on_disk != self.model.version):
            # First tick, or `train-recs` stored a full training: go on from that one.
            self.model = store.load_state(self.directory)
            self._state_loaded = True
        started = time.monotonic()
        if self.full_due():
            kind, model = "full training", self._train_fully()
        else:
            kind, model = "update", self._update()
        if model is None:
            return None
        serving = model.to_serving()
        store.save(serving, self.directory)
        store.save_state(model, self.directory)
        for segment in self._drop_after_save:
            segment.unlink(missing_ok=True)
        self._drop_after_save = []
        store.prune(self.directory)
        asyncio.run(self.announce(serving))
        log.info(
            "recommender: model %s stored (%s, %d interactions) in %.1fs",
            serving.version,
            kind,
            model.interactions,
            time.monotonic() - started,
        )
        return serving

    def _update(self) -> IncrementalModel | None:
        model = self.model
        assert model is not None
        with self._lock:
            segments = self.journal.close_segment()
        records = Journal.read(segments)
        interactions, items = follow_events(records, model.seen, model.pending_orders)
        learnt = model.update(
            interactions_frame(interactions), items, before_epoch=self._wait_for_quiet
        )
        # The state is saved (by the caller) before the segments go; a crash in between
        # reads them again, and what is before the state's offsets is skipped.
        self._drop_after_save = segments
        return model if learnt or interactions else None

    def _train_fully(self) -> IncrementalModel | None:
        request = self.directory / FULL_REQUEST
        requested = request.exists()
        with tempfile.TemporaryDirectory(prefix="eventmart-recommender-") as directory:
            from eventmart.export import export_events

            asyncio.run(
                export_events(
                    self.settings.bootstrap_servers, list(TOPICS), Path(directory), fmt="jsonl"
                )
            )
            data = read_events(read_export(Path(directory)))
        try:
            trained = train(
                data.interactions,
                data.items,
                seen=data.seen,
                on_epoch=lambda done, total: self._wait_for_quiet(),
            )
        except InvalidInteractions as error:
            log.info("recommender: nothing to train on yet (%s)", error)
            return None
        self.model = IncrementalModel.from_trained(trained, pending_orders=data.pending_orders)
        if requested:
            request.unlink(missing_ok=True)
        return self.model

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


def saga_gate(settings: Settings) -> LagGate:
    """Training waits while any saga group lags (their topics as their code declares them)."""
    from workers.groups import consumed_topics

    topics = consumed_topics()
    sagas = {name: topics[name] for name in group_names("sagas")}
    return LagGate(
        kafka_lag(settings.bootstrap_servers, sagas),
        settings.background_yield_lag,
        max_pause_seconds=settings.background_max_pause_seconds,
    )


def build_recommender_group(settings: Settings, shared: SharedResources) -> HostedGroup:
    retrainer = Retrainer(settings, saga_gate(settings))
    return HostedGroup(
        process=retrainer.count,
        wanted=KEPT,
        timers={"retrain": retrainer.tick},
        timer_interval=1.0,
    )
