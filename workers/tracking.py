"""Saga participants record the events they cause and the tracking of the event that
caused them in one transaction (eventsourcing's process recorder).

Tracking is by event identity: application_name is the aggregate id and
notification_id the aggregate version. Per-aggregate order holds on a topic,
so "a tracking record >= this version exists" means "this event, or a later one
of the same aggregate, was already applied" — a copy is dropped, whatever its offset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import ProcessRecorder, Tracking

from eventmart.contracts import Envelope

CURRENT_TRACKING: ContextVar[Tracking | None] = ContextVar("current_tracking", default=None)

A = TypeVar("A", bound=Application)


class TrackedMixin:
    """Makes an Application's saves carry the tracking of the event being processed."""

    factory: Any

    def construct_recorder(self) -> ProcessRecorder:
        recorder: ProcessRecorder = self.factory.process_recorder()
        return recorder

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        tracking = CURRENT_TRACKING.get()
        if tracking is None:
            return super().save(*objs, **kwargs)  # type: ignore[misc]
        CURRENT_TRACKING.set(None)  # one consumed event, one transaction
        processing_event: ProcessingEvent[Any] = ProcessingEvent(tracking)
        processing_event.collect_events(*objs, **kwargs)
        recordings = self._record(processing_event)  # type: ignore[attr-defined]
        self._take_snapshots(processing_event)  # type: ignore[attr-defined]
        self._notify(recordings)  # type: ignore[attr-defined]
        return recordings


def tracked(application_class: type[A]) -> type[A]:
    """The same application (same tables) with a process recorder."""
    return type(f"Tracked{application_class.__name__}", (TrackedMixin, application_class),
                {"name": application_class.name})


def tracking_for(envelope: Envelope) -> Tracking:
    return Tracking(application_name=str(envelope.aggregate_id),
                    notification_id=envelope.aggregate_version)


def already_applied(application: Application, tracking: Tracking) -> bool:
    recorder: ProcessRecorder = application.recorder  # type: ignore[assignment]
    return recorder.has_tracking_id(tracking.application_name, tracking.notification_id)


@contextmanager
def tracking_context(tracking: Tracking) -> Iterator[None]:
    token = CURRENT_TRACKING.set(tracking)
    try:
        yield
    finally:
        CURRENT_TRACKING.reset(token)
