"""A worker process that hosts several consumer groups, the way a Faust worker runs many
agents: `eventmart worker sagas` runs the five saga participants in one process.

Each group keeps everything that makes its effects exactly-once and observable: its own
Kafka consumer and committed offsets, its tracking, its dead-letter topic, retries, metrics
(labelled with the group) and lag; workers/consumer.py's rules hold per group, unchanged.
What the groups share is what costs a process to have many of: the event loop, one Kafka
producer (it only parks dead letters), and a database pool per database.

A slow or failing group does not hold up the others: each consumes in a task of its own
and runs its blocking batch work on a thread of its own, and its timers on another one.
They do share the interpreter's lock; the blocking work is mostly PostgreSQL round trips,
which release it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import faust
from mode import Service

from eventmart import tracing
from eventmart.groups import BACKGROUND, resolve
from eventmart.settings import Settings
from workers.consumer import DeadLetterProducer, GroupConsumer, build_app
from workers.groups import hostable
from workers.hosted import HostableGroup, SharedResources

log = logging.getLogger("eventmart.host")


class WorkerHost(Service):
    """The groups of one process: started together, each on its own; stopped together,
    each finishing and committing its batch in flight (in parallel, not one by one)."""

    def __init__(self, app: faust.App, groups: Iterable[HostableGroup], settings: Settings) -> None:
        super().__init__()
        self.shared = SharedResources()
        self.dead_letters = DeadLetterProducer(settings.bootstrap_servers, f"{app.conf.id}-dlq")
        self.consumers: list[GroupConsumer] = []
        self.timer_threads: list[ThreadPoolExecutor] = []
        for spec in groups:
            group = spec.build(settings, self.shared)
            consumer = GroupConsumer(
                None,
                spec.name,
                list(spec.topics),
                group.process,
                bootstrap=settings.bootstrap_servers,
                max_tries=settings.worker_max_tries,
                wanted=group.wanted,
                gather_ms=group.gather_ms,
                dead_letters=self.dead_letters,
            )
            self.add_dependency(consumer)  # a crash in one group stops the process
            self.consumers.append(consumer)
            if group.timers:
                thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{spec.name}-timers")
                self.timer_threads.append(thread)
                for name, timer in group.timers.items():
                    _install_timer(app, spec.name, name, timer, group.timer_interval, thread)

        async def start_with_app() -> None:
            await app.add_runtime_dependency(self)

        app.task(start_with_app)

    async def on_start(self) -> None:
        # Before the consumers (mode starts children after on_start): they may park at once.
        await self.dead_letters.start()

    async def on_stop(self) -> None:
        await asyncio.gather(*(consumer.stop() for consumer in self.consumers))
        await self.dead_letters.stop()
        for thread in self.timer_threads:
            thread.shutdown(wait=False)


def _install_timer(
    app: faust.App,
    group: str,
    name: str,
    timer: Callable[[], int],
    interval: float,
    thread: ThreadPoolExecutor,
) -> None:
    async def tick() -> None:
        try:
            done = await asyncio.get_running_loop().run_in_executor(thread, timer)
            if done:
                log.info("%s/%s: %d due", group, name, done)
        except Exception:
            log.exception("%s/%s failed; will try again", group, name)

    tick.__name__ = tick.__qualname__ = f"{group}_{name}".replace("-", "_")  # Faust logs it
    app.timer(interval=interval, on_leader=False)(tick)


def give_way(nice: int) -> None:
    """A process of background work only (the recommender) runs nicer than the rest, so the
    kernel gives the saga's and the API's processes the cores first."""
    try:
        current = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, 0, max(current, nice))
    except OSError as error:
        log.warning("background process at normal priority (%s)", error)


def build_host(names: Iterable[str], settings: Settings) -> faust.App:
    """The Faust app of a worker process hosting these groups (names of groups or sets)."""
    names = list(names)
    specs = resolve(names)
    if all(spec.kind in BACKGROUND for spec in specs):
        give_way(settings.background_process_nice)
    sys.setswitchinterval(settings.worker_switch_interval_ms / 1000)
    tracing.configure("+".join(names))
    app = build_app("+".join(names), settings)
    WorkerHost(app, [hostable(spec) for spec in specs], settings)
    return app
