"""Page cursors: opaque to clients, signed by the deployment, checked before any query.

A cursor is `<payload>.<signature>`, both base64url: the payload is the JSON list
`[kind, *position]` (the list it belongs to, e.g. `products:price`, and the last row's sort
key and id), the signature an HMAC-SHA256 of the payload's text under a key derived from
the deployment secret. Nothing a client edits survives the signature, and a cursor of
another list or another sort order fails on its kind; the position is still checked
against its list's types and bounds, so even a cursor signed by mistake (a leaked key, a
bug) can only fail with `invalid_cursor`, never reach SQL as something unexpected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any
from uuid import UUID

import orjson
from pydantic import AwareDatetime, Field, TypeAdapter, ValidationError

from domain.errors import InvalidInput

SIGNATURE_BYTES = 16
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,400}\.[A-Za-z0-9_-]{22}")
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"
MAX_CURSOR_LENGTH = 512

BigInt = Annotated[int, Field(ge=0, le=2**63 - 1)]
Rating = Annotated[Decimal, Field(ge=-1, le=5, allow_inf_nan=False, max_digits=40)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
Stars = Annotated[int, Field(ge=1, le=5)]


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"


# kind -> the types of the position that follows it
POSITIONS: dict[str, TypeAdapter[Any]] = {
    "products:price": TypeAdapter(tuple[BigInt, UUID]),
    "products:-price": TypeAdapter(tuple[BigInt, UUID]),
    "products:rating": TypeAdapter(tuple[Rating, UUID]),
    "products:newest": TypeAdapter(tuple[AwareDatetime, UUID]),
    "orders": TypeAdapter(tuple[AwareDatetime, UUID]),
    "sales": TypeAdapter(tuple[AwareDatetime, UUID, UUID]),
    # a product's reviews: the sort key, the review, and the product the list is of
    "reviews:newest": TypeAdapter(tuple[AwareDatetime, UUID, UUID]),
    "reviews:helpful": TypeAdapter(tuple[Count, UUID, UUID]),
    "reviews:rating": TypeAdapter(tuple[Stars, UUID, UUID]),
    "reviews:-rating": TypeAdapter(tuple[Stars, UUID, UUID]),
    "promotions": TypeAdapter(tuple[AwareDatetime, UUID]),
    "sagas": TypeAdapter(tuple[AwareDatetime, UUID]),
}


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


class Cursors:
    """Encodes and checks the cursors of every list, with one deployment's key."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), b"eventmart:page-cursor", hashlib.sha256).digest()

    def _sign(self, payload: str) -> str:
        digest = hmac.new(self._key, payload.encode(), hashlib.sha256).digest()
        return _b64encode(digest[:SIGNATURE_BYTES])

    def encode(self, kind: str, position: Sequence[Any]) -> str:
        if kind not in POSITIONS:
            raise ValueError(f"no cursor kind {kind!r}")
        payload = _b64encode(orjson.dumps([kind, *position], default=_plain))
        return f"{payload}.{self._sign(payload)}"

    def decode(self, cursor: str, kind: str) -> tuple[Any, ...]:
        """The position a cursor of list `kind` holds; InvalidCursor for anything else."""
        refused = InvalidCursor("the cursor is not one this list handed out")
        if not TOKEN.fullmatch(cursor):
            raise refused
        payload, signature = cursor.split(".")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise refused
        try:
            data = orjson.loads(_b64decode(payload))
        except (binascii.Error, ValueError) as error:
            raise refused from error
        if not isinstance(data, list) or not data or data[0] != kind:
            raise refused
        try:
            position: tuple[Any, ...] = POSITIONS[kind].validate_python(tuple(data[1:]))
        except ValidationError as error:
            raise refused from error
        return position
