"""Page cursors: a cursor round-trips, and every way of tampering with one is refused as
`invalid_cursor` (the HTTP side of the same is in tests/integration/test_hostile_input.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import uuid4

import orjson
import pytest

from projections.cursors import SIGNATURE_BYTES, Cursors, InvalidCursor

CURSORS = Cursors("the deployment secret")
ROW = uuid4()
AT = datetime(2026, 11, 25, 10, 0, 0, 123456, tzinfo=UTC)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def signed(payload: object, secret: str = "the deployment secret") -> str:
    """A cursor signed as the deployment signs, around any payload: what someone holding
    the key (or a bug) could produce."""
    key = hmac.new(secret.encode(), b"eventmart:page-cursor", hashlib.sha256).digest()
    text = b64(json.dumps(payload, separators=(",", ":")).encode())
    signature = hmac.new(key, text.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]
    return f"{text}.{b64(signature)}"


@pytest.mark.parametrize(
    ("kind", "position"),
    [
        ("products:price", (2**63 - 1, ROW)),
        ("products:-price", (1, ROW)),
        ("products:rating", (Decimal("4.3333333333333333"), ROW)),
        ("products:rating", (Decimal(-1), ROW)),
        ("products:newest", (AT, ROW)),
        ("orders", (AT, ROW)),
        ("sales", (AT, ROW, uuid4())),
    ],
)
def test_a_cursor_gives_back_its_position(kind: str, position: tuple):
    cursor = CURSORS.encode(kind, position)
    assert CURSORS.decode(cursor, kind) == position
    assert signed([kind, *orjson.loads(orjson.dumps(position, default=str))]) == cursor


def tampered() -> dict[str, str]:
    good = CURSORS.encode("products:price", (1250, ROW))
    payload, signature = good.split(".")
    return {
        "bad base64": "!!!not-base64!!!." + signature,
        "truncated": good[: len(good) // 2],
        "wrong signature": f"{payload}.{signature[::-1]}",
        "signed with another key": signed(["products:price", 1250, str(ROW)], "another secret"),
        "wrong fields": signed(["products:price", "cheap", str(ROW)]),
        "wrong types": signed({"sort": "price", "key": 1250, "id": str(ROW)}),
        "too few fields": signed(["products:price", 1250]),
        "another sort order": CURSORS.encode("products:newest", (AT, ROW)),
        "another endpoint": CURSORS.encode("orders", (AT, ROW)),
        "huge number": signed(["products:price", 10**30, str(ROW)]),
        "nul byte": payload + "\x00." + signature,
        "nul inside": signed(["products:price", 1250, f"{ROW}\x00"]),
        "empty": "",
        "old unsigned format": b64(
            json.dumps({"sort": "price", "key": 1, "id": str(ROW)}).encode()
        ),
    }


@pytest.mark.parametrize("name", sorted(tampered()))
def test_a_tampered_cursor_is_refused(name: str):
    with pytest.raises(InvalidCursor) as refused:
        CURSORS.decode(tampered()[name], "products:price")
    assert refused.value.code == "invalid_cursor"


def test_a_cursor_holds_no_time_without_a_zone():
    with pytest.raises(InvalidCursor):
        CURSORS.decode(signed(["orders", "2026-11-25T10:00:00", str(ROW)]), "orders")
