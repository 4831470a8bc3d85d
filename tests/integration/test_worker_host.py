"""Several consumer groups in one worker process (workers/host.py), on the real broker: a
group whose batch is slow, then keeps failing, holds up none of the others, and parks its
messages on its own dead-letter topic while they keep flowing."""

from __future__ import annotations

import threading
import uuid

from eventmart.metrics import METRICS
from eventmart.settings import Settings
from projections.tracking import Delivery
from tests.integration.consumer_support import (
    Loop,
    Recorder,
    make_topics,
    publish_events,
)
from tests.support import group_lag, read_topic, wait_until
from workers.consumer import build_app
from workers.host import WorkerHost
from workers.hosted import HostableGroup, HostedGroup

EVENTS = 5  # per round; the failing group tries each message worker_max_tries times


class Failing:
    """A batch processor whose first batch hangs until released; then every batch and every
    retry fails, as when the group's own database is down."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.threads: set[str] = set()

    def __call__(self, deliveries: list[Delivery]) -> None:
        self.threads.add(threading.current_thread().name)
        self.entered.set()
        assert self.release.wait(timeout=60), "the test never released the batch"
        raise RuntimeError("this group's store is down")


def hosted(name: str, topic: str, processor: object) -> HostableGroup:
    return HostableGroup(
        name,
        (topic,),
        lambda settings, shared: HostedGroup(process=processor),  # type: ignore[arg-type]
    )


def processed(group: str) -> float:
    return METRICS.events_processed.labels(group)._value.get()


def parked_count(group: str) -> float:
    return METRICS.events_parked.labels(group)._value.get()


def test_a_failing_group_parks_on_its_own_dlq_while_the_others_in_its_process_flow(
    settings: Settings, loop: Loop, topic: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    failing_group, flowing_group = f"test-failing-{suffix}", f"test-flowing-{suffix}"
    make_topics(settings, f"{failing_group}.dlq", f"{flowing_group}.dlq", partitions=1)
    failing, flowing = Failing(), Recorder()
    host = WorkerHost(
        build_app(f"test-host-{suffix}", settings),
        [hosted(failing_group, topic, failing), hosted(flowing_group, topic, flowing)],
        settings,
    )
    loop.services.append(host)
    loop.run(host.start())
    publish_events(settings, topic, EVENTS)

    # The failing group's first batch hangs on its thread; the other group's go through.
    assert failing.entered.wait(timeout=60), "the failing group never received a batch"
    wait_until(
        lambda: len(flowing.applied) == EVENTS,
        timeout=60,
        message="the other group to apply every event while the first one hangs",
    )
    assert not failing.release.is_set()

    # Now it fails every try; more events come meanwhile.
    failing.release.set()
    publish_events(settings, topic, EVENTS)
    wait_until(
        lambda: len(flowing.applied) == 2 * EVENTS,
        timeout=60,
        message="the other group to apply the second round",
    )
    bootstrap = settings.bootstrap_servers
    parked = wait_until(
        lambda: (
            (records := read_topic(bootstrap, f"{failing_group}.dlq"))
            and len(records) >= 2 * EVENTS
            and records
        ),
        timeout=120,
        interval=0.5,
        message=f"every event on {failing_group}.dlq",
    )
    assert len(parked) == 2 * EVENTS
    for record in parked:
        headers = dict(record.headers)
        assert headers["x-consumer-group"] == failing_group.encode()
        assert headers["x-error-type"] == b"RuntimeError"
        assert headers["x-tries"] == str(settings.worker_max_tries).encode()
    assert read_topic(bootstrap, f"{flowing_group}.dlq") == []
    # Each group committed past everything: applied, or parked.
    for group in (failing_group, flowing_group):
        wait_until(
            lambda group=group: group_lag(bootstrap, group, [topic]) == 0,
            timeout=30,
            message=f"{group} to commit everything",
        )

    # Each group kept its own series, its own thread, and shared the process's producer.
    assert parked_count(failing_group) == 2 * EVENTS and processed(failing_group) == 0
    assert processed(flowing_group) == 2 * EVENTS and parked_count(flowing_group) == 0
    assert failing.threads and all(name.startswith(failing_group) for name in failing.threads)
    assert flowing.threads and all(name.startswith(flowing_group) for name in flowing.threads)
    assert all(consumer._producer is host.dead_letters for consumer in host.consumers)
