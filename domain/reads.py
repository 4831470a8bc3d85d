"""Reads that change nothing: an application answers them from its repository (its
aggregate cache fast-forwarded, as any read), or through `quiet_reads` where a process
installed one (the API: api.quiet_reads, kept current by the store's notifications).
What such a read returns is shared: never change it.

A save in this process forgets what it saved at once (`quiet_forget`), so a command's own
effect is never missed by the next read here, notification or not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Repository
from eventsourcing.persistence import Recording


class ReadsWithoutChanging:
    repository: Repository[UUID]
    quiet_reads: Callable[[UUID], Any | None] | None = None
    quiet_forget: Callable[[UUID], None] | None = None

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        """After a save (eventsourcing's hook): what was saved is no longer quiet."""
        forget = self.quiet_forget
        if forget is not None:
            for recording in recordings:
                forget(recording.domain_event.originator_id)
        super()._notify(recordings)  # type: ignore[misc]

    def read_only(self, aggregate_id: UUID) -> Any | None:
        """The aggregate as stored now, not a copy, or None if there is none."""
        if self.quiet_reads is not None:
            return self.quiet_reads(aggregate_id)
        try:
            return self.repository.get(aggregate_id, deepcopy_from_cache=False)
        except AggregateNotFoundError:
            return None
