"""Per-person data keys (crypto-shredding): the ground floor of issue 26's erasure.

A personal field (an e-mail, a name, an address line) is sealed with its subject's own key
into an envelope `{"enc": "v1", "kid": ..., "ct": ...}` (AES-256-GCM; `ct` is the nonce
and the ciphertext in URL-safe base64; the key id is the associated data, so an envelope
cannot be replayed under another key). The keys live outside the event log, behind
`KeyService`, which a KMS could implement; `PostgresKeyService` keeps them in the users
context's database (`personal_data_keys`). Destroying a subject's key erases every field
sealed with it wherever it was copied (topics, stores, exports): opening one then reads
`ERASED`, never an error. The row stays, with no key and no personal data, as the record
that the subject was erased and when.

Sealing happens where events are stored (eventmart.sealing); opening where a reader needs
the text (`open_payload`). See docs/security.md ("Crypto-shredding").
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg_pool import ConnectionPool

ENVELOPE_VERSION = "v1"
ERASED = "[erased]"
KEY_BYTES = 32
NONCE_BYTES = 12
INSTALL_LOCK = 7026

KEYS_DDL = """
CREATE TABLE IF NOT EXISTS personal_data_keys (
    subject_id uuid PRIMARY KEY,
    kid text NOT NULL UNIQUE,
    key bytea,
    created_at timestamptz NOT NULL DEFAULT now(),
    destroyed_at timestamptz,
    CHECK ((key IS NULL) = (destroyed_at IS NOT NULL))
)
"""


class TamperedField(ValueError):
    """An envelope whose key exists but whose ciphertext does not open with it."""


@dataclass(frozen=True)
class DataKey:
    kid: str
    key: bytes


@dataclass(frozen=True)
class Erasure:
    """What stays of an erased subject: who (an id, not personal) and when."""

    subject_id: UUID
    kid: str
    created_at: datetime
    destroyed_at: datetime


class KeyService(Protocol):
    """Where per-person keys live. A KMS-backed one implements these four."""

    def key_for(self, subject_id: UUID) -> DataKey | None:
        """The subject's key, made on first use; None once it was destroyed."""

    def find(self, kid: str) -> bytes | None:
        """The key named `kid`, or None if there never was one or it was destroyed."""

    def destroy(self, subject_id: UUID) -> bool:
        """Destroy the subject's key for good; False if it was destroyed already."""

    def erasures(self) -> list[Erasure]:
        """Every subject whose key was destroyed, oldest first."""


class PostgresKeyService:
    """Keys in the users context's database. Nothing is cached: a key destroyed by any
    process is gone for every reader's next field."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def install(self) -> None:
        with self.pool.connection() as conn, conn.transaction():
            # Processes starting together must not race on CREATE TABLE.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK,))
            conn.execute(KEYS_DDL)

    def key_for(self, subject_id: UUID) -> DataKey | None:
        with self.pool.connection() as conn:
            # A racing first use makes one key: the other insert does nothing.
            conn.execute(
                "INSERT INTO personal_data_keys (subject_id, kid, key) VALUES (%s, %s, %s)"
                " ON CONFLICT (subject_id) DO NOTHING",
                (subject_id, uuid.uuid4().hex, os.urandom(KEY_BYTES)),
            )
            row = conn.execute(
                "SELECT kid, key FROM personal_data_keys WHERE subject_id = %s", (subject_id,)
            ).fetchone()
        if row is None or row[1] is None:
            return None
        return DataKey(kid=row[0], key=bytes(row[1]))

    def find(self, kid: str) -> bytes | None:
        with self.pool.connection() as conn:
            row = conn.execute(
                "SELECT key FROM personal_data_keys WHERE kid = %s", (kid,)
            ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def destroy(self, subject_id: UUID) -> bool:
        """Keeps the row without its key (the erasure's record); a subject with no key
        yet gets a destroyed one, so nothing is sealed for them afterwards."""
        with self.pool.connection() as conn:
            destroyed = conn.execute(
                "INSERT INTO personal_data_keys (subject_id, kid, key, destroyed_at)"
                " VALUES (%s, %s, NULL, now())"
                " ON CONFLICT (subject_id) DO UPDATE SET key = NULL, destroyed_at = now()"
                " WHERE personal_data_keys.key IS NOT NULL",
                (subject_id, uuid.uuid4().hex),
            )
            return destroyed.rowcount == 1

    def erasures(self) -> list[Erasure]:
        with self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT subject_id, kid, created_at, destroyed_at FROM personal_data_keys"
                " WHERE destroyed_at IS NOT NULL ORDER BY destroyed_at, subject_id"
            ).fetchall()
        return [Erasure(*row) for row in rows]


def is_sealed(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and value.get("enc") == ENVELOPE_VERSION
        and isinstance(value.get("kid"), str)
        and isinstance(value.get("ct"), str)
    )


class FieldCipher:
    """Seals and opens personal fields through a KeyService."""

    def __init__(self, keys: KeyService) -> None:
        self.keys = keys

    def seal(self, subject_id: UUID, value: str) -> dict[str, str] | str:
        """The envelope of `value` under the subject's key; ERASED if the subject was
        erased already (nothing personal is written after an erasure)."""
        return _sealed(self.keys.key_for(subject_id), value)

    def seal_all(
        self, subject_id: UUID, values: Mapping[str, str]
    ) -> dict[str, dict[str, str] | str]:
        """Several fields of one subject, with one look-up of their key."""
        key = self.keys.key_for(subject_id)
        return {name: _sealed(key, value) for name, value in values.items()}

    def open_all(self, values: Iterable[Any]) -> list[Any]:
        """`open` of each value, with one look-up per key named."""
        found: dict[str, bytes | None] = {}
        opened = []
        for value in values:
            if is_sealed(value):
                kid = value["kid"]
                if kid not in found:
                    found[kid] = self.keys.find(kid)
                opened.append(_opened(found[kid], value))
            else:
                opened.append(value)
        return opened

    def open(self, value: Any) -> Any:
        """The plaintext of an envelope (ERASED when its key is gone); any other value
        as it is (plaintext written before fields were sealed)."""
        if not is_sealed(value):
            return value
        return _opened(self.keys.find(value["kid"]), value)


def _sealed(key: DataKey | None, value: str) -> dict[str, str] | str:
    if key is None:
        return ERASED
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key.key).encrypt(nonce, value.encode(), key.kid.encode())
    text = base64.urlsafe_b64encode(nonce + sealed).decode()
    return {"enc": ENVELOPE_VERSION, "kid": key.kid, "ct": text}


def _opened(key: bytes | None, value: Mapping[str, str]) -> str:
    if key is None:
        return ERASED
    try:
        raw = base64.urlsafe_b64decode(value["ct"].encode())
        plain = AESGCM(key).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], value["kid"].encode())
    except (InvalidTag, ValueError) as error:
        raise TamperedField(f"the field sealed under {value['kid']} does not open") from error
    return plain.decode()


def open_payload(
    payload: Mapping[str, Any], fields: Iterable[str], cipher: FieldCipher
) -> dict[str, Any]:
    """The payload with its personal `fields` opened (a field that is an object, such as an
    address, has each of its sealed values opened); ERASED where the key is gone."""
    opened = dict(payload)
    places: list[tuple[dict[str, Any], str]] = []
    for name in fields:
        value = opened.get(name)
        if isinstance(value, Mapping) and not is_sealed(value):
            inner = dict(value)
            opened[name] = inner
            places.extend((inner, key) for key in inner)
        elif value is not None:
            places.append((opened, name))
    sealed = [(where, key) for where, key in places if is_sealed(where[key])]
    for (where, key), text in zip(sealed, cipher.open_all(w[k] for w, k in sealed), strict=True):
        where[key] = text
    return opened
