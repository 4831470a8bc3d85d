"""Public events of the recommender, on `recommender.events` (key: the model version's id).

The recommender worker (workers/recommender.py) publishes `recommender.model_trained`
after it stored a new model version: what it saw of the log (the next offset of each
"topic:partition") and its size. API processes switch to the newest stored version on
their own (they poll the model store); the event is the record others may act on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import Field, StrictInt, StringConstraints

from eventmart.contracts.behavior import ModelVersion
from eventmart.contracts.bounds import ZERO_FRACTION
from eventmart.contracts.envelope import EventContract, Payload, register

TOPIC = "recommender.events"
MODEL_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:recommender-model")
MAX_OFFSET = 2**63 - 1
MAX_PARTITIONS_SEEN = 1000

Offset = Annotated[StrictInt, Field(ge=0, le=MAX_OFFSET), ZERO_FRACTION]
Count = Annotated[StrictInt, Field(ge=0, le=MAX_OFFSET), ZERO_FRACTION]
Position = Annotated[
    str, StringConstraints(max_length=300, pattern=r"^[A-Za-z0-9._-]+:[0-9]{1,9}$")
]


def model_id(version: str) -> UUID:
    """The envelope's aggregate id of a model version (the message key)."""
    return uuid5(MODEL_NAMESPACE, version)


class ModelTrained(Payload):
    version: ModelVersion
    trained_at: datetime
    seen: dict[Position, Offset] = Field(max_length=MAX_PARTITIONS_SEEN)
    interactions: Count
    users: Count
    items: Count


VERSION = "20261206T100000Z-3f2b8c1e"
register(
    EventContract(
        type="recommender.model_trained",
        topic=TOPIC,
        schema_version=1,
        payload=ModelTrained,
        example={
            "event_id": "6a0e1f2b-3c4d-5e6f-8a7b-9c0d1e2f3a4b",
            "type": "recommender.model_trained",
            "schema_version": 1,
            "aggregate_id": str(model_id(VERSION)),
            "aggregate_version": 1,
            "occurred_at": "2026-12-06T10:00:05+00:00",
            "correlation_id": "6a0e1f2b-3c4d-5e6f-8a7b-9c0d1e2f3a4b",
            "causation_id": None,
            "payload": {
                "version": VERSION,
                "trained_at": "2026-12-06T10:00:00Z",
                "seen": {"behavior.events:0": 1200, "orders.events:3": 88},
                "interactions": 4211,
                "users": 310,
                "items": 120,
            },
        },
    )
)
