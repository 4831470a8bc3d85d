"""Background work gives way to the saga: a training (or any long job done in steps) asks
`LagGate.wait_for_quiet()` before each step, and waits there while any saga group's lag,
committed offsets against end offsets, is above a threshold.

    gate = LagGate(kafka_lag(bootstrap, saga_topics), threshold=200)
    for epoch in range(epochs):
        gate.wait_for_quiet()
        train_one_epoch()

The lag is asked for at most every `check_seconds` (each ask is a few Kafka requests), and a
pause ends after `max_pause_seconds` at the latest, one step goes, then it waits again: a
saga that never catches up still bounds the background's share, and starves nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence

from aiokafka.errors import KafkaError

log = logging.getLogger("eventmart.background")

Lag = Callable[[], int]


def kafka_lag(bootstrap: str, groups: Mapping[str, Sequence[str]]) -> Lag:
    """The largest lag of any of the groups (messages, summed over its partitions)."""

    def lag() -> int:
        from eventmart.operations import consumer_group_lag

        rows = asyncio.run(
            consumer_group_lag(bootstrap, {group: list(topics) for group, topics in groups.items()})
        )
        by_group: dict[str, int] = {}
        for row in rows:
            by_group[row["group"]] = by_group.get(row["group"], 0) + int(row["lag"])
        return max(by_group.values(), default=0)

    return lag


class LagGate:
    def __init__(
        self,
        lag: Lag,
        threshold: int,
        *,
        check_seconds: float = 2.0,
        max_pause_seconds: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lag, self.threshold = lag, threshold
        self.check_seconds, self.max_pause_seconds = check_seconds, max_pause_seconds
        self.clock = clock
        self.stopping = threading.Event()  # set to end a pause at once (shutdown)
        self._last_lag = 0
        self._checked_at: float | None = None
        self.paused_seconds = 0.0  # in total, for logs and tests
        self.pauses = 0

    def _current(self) -> int:
        now = self.clock()
        if self._checked_at is None or now - self._checked_at >= self.check_seconds:
            try:
                self._last_lag = self.lag()
            except (OSError, KafkaError, TimeoutError) as error:  # the broker away: go on
                log.warning("background: saga lag unknown (%s); going on", error)
                self._last_lag = 0
            self._checked_at = now
        return self._last_lag

    def wait_for_quiet(self) -> float:
        """Return once no saga group lags more than the threshold (or the pause is at its
        longest); the seconds waited."""
        started = self.clock()
        lag = self._current()
        if lag <= self.threshold:
            return 0.0
        self.pauses += 1
        log.info("background: pausing, a saga group lags %d > %d", lag, self.threshold)
        while lag > self.threshold and not self.stopping.is_set():
            if self.clock() - started >= self.max_pause_seconds:
                log.warning(
                    "background: saga lag still %d after %.0fs; one step",
                    lag,
                    self.max_pause_seconds,
                )
                break
            self.stopping.wait(min(self.check_seconds, 0.5))
            lag = self._current()
        waited = self.clock() - started
        self.paused_seconds += waited
        log.info("background: resuming after %.1fs (lag %d)", waited, lag)
        return waited
