"""Public events of the behaviour stream, on `behavior.events` (key: the visitor).

Views, recommendation impressions and catalogue searches are not aggregate state: the API produces them
straight to Kafka (api/behavior.py), not through an event store and the relay. Their
envelope's `aggregate_id` is the visitor (the user's id, or a uuid5 of the anonymous
session id), so one visitor's events keep their order on one partition, and
`aggregate_version` is 0: no aggregate history stands behind them. A click on a
recommendation is a view whose `source` is "recommendation" or "similar".

A search (`behavior.searched`) may come from nobody in particular: a visitor who is
neither signed in nor names a session. Its envelope's `aggregate_id` is then the event's
own id, so anonymous searches spread over the partitions instead of piling on one.
The recommender does not train on searches (eventmart/ml/event_log.py says why).
"""

from __future__ import annotations

from typing import Annotated, Literal
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import Field, StrictInt, StringConstraints, model_validator

from eventmart.contracts.bounds import ZERO_FRACTION, Category, safe_text
from eventmart.contracts.envelope import EventContract, Payload, register

TOPIC = "behavior.events"
SESSION_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:session")
MAX_SESSION_ID_LENGTH = 128
MAX_SHOWN = 50
MAX_QUERY_LENGTH = 200  # the `q` of GET /v1/products
MAX_PAGE_ITEMS = 100  # the largest `limit` of a page

SessionId = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=MAX_SESSION_ID_LENGTH, pattern=r"^[A-Za-z0-9._:-]+$"
    ),
    Field(description="an anonymous visitor's session: letters, digits and . _ : -"),
]
ViewSource = Literal["search", "category", "recommendation", "similar", "direct"]
Surface = Literal["recommendations", "similar", "popular"]
ModelVersion = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
]

USER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
PRODUCT_ID = "3f2b8c1e-5a4d-4e6f-8b7a-9c0d1e2f3a4b"
OTHER_PRODUCT_ID = "5d2e6c1a-0b4f-4a8e-9c3d-7e1f2a3b4c5d"


def visitor_id(user_id: UUID | None, session_id: str | None) -> UUID:
    """The key of a visitor's behaviour events: the user, or their anonymous session."""
    if user_id is not None:
        return user_id
    if session_id is None:
        raise ValueError("a visitor is a user or a session")
    return uuid5(SESSION_NAMESPACE, session_id)


class _Visitor(Payload):
    user_id: UUID | None = None
    session_id: SessionId | None = None

    @model_validator(mode="after")
    def someone(self) -> _Visitor:
        if self.user_id is None and self.session_id is None:
            raise ValueError("a signed-in user_id or an anonymous session_id is required")
        return self


class ProductViewed(_Visitor):
    product_id: UUID
    source: ViewSource = "direct"


class RecommendationsShown(_Visitor):
    """What a recommendation answer showed, in its order: the impressions click-through is
    measured against (clicks are views with source recommendation or similar)."""

    surface: Surface
    product_ids: list[UUID] = Field(max_length=MAX_SHOWN)
    anchor_product_id: UUID | None = Field(
        None, description="the product of a similar-items answer"
    )
    model_version: ModelVersion | None = None


class Searched(Payload):
    """A catalogue search's first page as answered: what was asked (the words, the category
    filter) and how many products the page held. Page turns are not new searches. The
    visitor is the signed-in user, the anonymous `session_id` given, or neither."""

    query: Annotated[str, safe_text(MAX_QUERY_LENGTH, min_length=1)]
    category: Category | None = None
    result_count: Annotated[
        StrictInt,
        Field(ge=0, le=MAX_PAGE_ITEMS, description="products on the first page answered"),
        ZERO_FRACTION,
    ]
    user_id: UUID | None = None
    session_id: SessionId | None = None


def _example(type_name: str, event_id: str, payload: dict[str, object]) -> dict[str, object]:
    return {
        "event_id": event_id,
        "type": type_name,
        "schema_version": 1,
        "aggregate_id": USER_ID,
        "aggregate_version": 0,
        "occurred_at": "2026-12-06T10:00:00+00:00",
        "correlation_id": event_id,
        "causation_id": None,
        "payload": payload,
    }


register(
    EventContract(
        type="behavior.viewed",
        topic=TOPIC,
        schema_version=1,
        payload=ProductViewed,
        example=_example(
            "behavior.viewed",
            "0b6f3c2a-1d4e-4f5a-8b6c-7d8e9f0a1b2c",
            {"product_id": PRODUCT_ID, "user_id": USER_ID, "session_id": None, "source": "search"},
        ),
    )
)

register(
    EventContract(
        type="behavior.recommendations_shown",
        topic=TOPIC,
        schema_version=1,
        payload=RecommendationsShown,
        example=_example(
            "behavior.recommendations_shown",
            "0b6f3c2a-1d4e-4f5a-8b6c-7d8e9f0a1b2d",
            {
                "user_id": USER_ID,
                "session_id": None,
                "surface": "recommendations",
                "product_ids": [PRODUCT_ID, OTHER_PRODUCT_ID],
                "anchor_product_id": None,
                "model_version": "20261206T100000Z-3f2b8c1e5a4d",
            },
        ),
    )
)

register(
    EventContract(
        type="behavior.searched",
        topic=TOPIC,
        schema_version=1,
        payload=Searched,
        example=_example(
            "behavior.searched",
            "0b6f3c2a-1d4e-4f5a-8b6c-7d8e9f0a1b2e",
            {
                "query": "green tea",
                "category": "tea",
                "result_count": 12,
                "user_id": USER_ID,
                "session_id": None,
            },
        ),
    )
)
