"""`POST /v1/events/view`, the most frequent command, answered without going through
FastAPI when it is the ordinary case: a JSON body the route's model accepts, a token that
is valid for a known, enabled user (or none, with a `session_id`), a product this process
already knows, and a well-formed Idempotency-Key if any. The view is published exactly as
the route publishes it (api.routes.behavior: the same envelope, 202 only once Kafka
acknowledged it, 503 if it could not).

Anything else goes on to the route, with the body replayed, and the route owns the
answer: its errors (401, 422) and the first view of a product this process has not seen.
The request still counts in the latency metrics under the route's template.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.behavior import BehaviorPublisher, KnownProducts, RecordView, publish_view
from api.boundary import send_json
from api.deps import Services
from api.idempotency import KEY_PATTERN
from api.outages import unavailable
from api.security import InvalidToken
from domain.idempotency import MAX_KEY_LENGTH, IdempotencyKeyReused

VIEW_PATH = "/v1/events/view"
IDEMPOTENCY_KEY = re.compile(KEY_PATTERN)


class ViewFastPath:
    def __init__(self, app: ASGIApp, route: BaseRoute, state: Any) -> None:
        self.app = app
        self.route = route
        self.state = state
        self.answered = 0  # views answered here (the rest went on to the route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != VIEW_PATH:
            await self.app(scope, receive, send)
            return
        body, received = await _read_body(receive)
        if body is not None and await self._answered(scope, body, send):
            return
        await self.app(scope, _replaying(received, receive), send)

    async def _answered(self, scope: Scope, body: bytes, send: Send) -> bool:
        """True if the view was answered here; False (nothing published, nothing sent) for
        the route to answer."""
        publisher: BehaviorPublisher | None = getattr(self.state, "behavior", None)
        if publisher is None:
            return False
        try:
            view = RecordView.model_validate_json(body)
        except ValidationError:
            return False
        token, idempotency_key = _headers(scope)
        user_id = None
        if token is not None:
            services: Services = self.state.services
            try:
                claims = services.tokens.verify(token)
            except InvalidToken:
                return False
            user = await services.directory.current(claims.user_id)
            if user is None or user.disabled:
                return False
            user_id = claims.user_id
        elif view.session_id is None:
            return False
        if idempotency_key is not None and not _well_formed(idempotency_key):
            return False
        known: KnownProducts = self.state.known_products
        category = known.get(view.product_id)
        if category is None:
            return False
        scope["route"] = self.route  # the latency metric's label
        try:
            envelope = await publish_view(self.state, view, category, user_id, idempotency_key)
        except IdempotencyKeyReused:
            return False  # nothing was published: the route refuses it
        except KafkaError as error:
            retry_after = self.state.services.settings.unavailable_retry_after_seconds
            answer = unavailable("POST", VIEW_PATH, error, retry_after)
            if answer is None:
                raise
            await answer(scope, _no_body, send)
            return True
        await send_json(send, 202, orjson.dumps({"event_id": str(envelope.event_id)}))
        self.answered += 1
        return True


async def _read_body(receive: Receive) -> tuple[bytes | None, list[Message]]:
    """The whole body (None if the client went away first) and the messages it came in."""
    received: list[Message] = []
    chunks: list[bytes] = []
    while True:
        message = await receive()
        received.append(message)
        if message["type"] != "http.request":
            return None, received
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), received


def _replaying(received: list[Message], receive: Receive) -> Receive:
    """A receive that hands out what was already read, then goes on reading."""
    pending = list(received)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def _headers(scope: Scope) -> tuple[str | None, str | None]:
    """(the bearer token, the Idempotency-Key), as FastAPI's HTTPBearer and Header read them.
    A malformed Authorization header is passed on as an empty token, so the route decides."""
    token = idempotency_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            token = credentials if scheme.lower() == "bearer" and credentials else ""
        elif name == b"idempotency-key":
            idempotency_key = value.decode("latin-1")
    return token, idempotency_key


def _well_formed(idempotency_key: str) -> bool:
    return len(idempotency_key) <= MAX_KEY_LENGTH and bool(
        IDEMPOTENCY_KEY.fullmatch(idempotency_key)
    )
