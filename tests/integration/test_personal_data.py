"""Per-person data keys on the real PostgreSQL: a field sealed with its subject's key opens
while the key lives and reads "[erased]" once it is destroyed, for every reader at once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from domain.users import Users
from eventmart.database import make_pool
from eventmart.personal_data import (
    ERASED,
    FieldCipher,
    PostgresKeyService,
    TamperedField,
    is_sealed,
)
from eventmart.settings import Settings
from eventmart.wiring import build_application


@pytest.fixture(scope="module")
def keys(infrastructure, settings: Settings) -> Iterator[PostgresKeyService]:
    pool = make_pool(settings.context_dsn("users"), max_size=4)
    pool.open(wait=True)
    service = PostgresKeyService(pool)
    service.install()
    yield service
    pool.close()


def test_a_sealed_field_names_its_key_hides_its_text_and_opens(keys: PostgresKeyService):
    cipher, subject = FieldCipher(keys), uuid.uuid4()
    sealed = cipher.seal(subject, "ada@example.com")
    assert is_sealed(sealed) and isinstance(sealed, dict)
    assert set(sealed) == {"enc", "kid", "ct"} and sealed["enc"] == "v1"
    assert "ada" not in sealed["ct"] and str(subject) not in sealed["kid"]
    assert cipher.seal(subject, "ada@example.com") != sealed  # a fresh nonce each time
    assert cipher.open(sealed) == "ada@example.com"
    # Another process, with no state of its own, opens it too.
    assert FieldCipher(PostgresKeyService(keys.pool)).open(sealed) == "ada@example.com"
    assert cipher.open("written before sealing") == "written before sealing"


def test_a_destroyed_key_reads_erased_everywhere_and_leaves_a_record(
    keys: PostgresKeyService, settings: Settings
):
    cipher, subject, other = FieldCipher(keys), uuid.uuid4(), uuid.uuid4()
    fields = [cipher.seal(subject, text) for text in ("Ada Lovelace", "12 Analytical St")]
    theirs = cipher.seal(other, "Charles Babbage")
    assert keys.destroy(subject) is True
    assert [cipher.open(field) for field in fields] == [ERASED, ERASED]
    assert cipher.open(theirs) == "Charles Babbage"
    assert keys.key_for(subject) is None
    assert cipher.seal(subject, "after the erasure") == ERASED  # nothing new is sealed
    assert keys.destroy(subject) is False
    [record] = [e for e in keys.erasures() if e.subject_id == subject]
    assert record.destroyed_at >= record.created_at
    with psycopg.connect(settings.context_dsn("users")) as conn:
        row = conn.execute(
            "SELECT key FROM personal_data_keys WHERE subject_id = %s", (subject,)
        ).fetchone()
    assert row == (None,)


def test_a_subject_erased_before_any_key_gets_none_afterwards(keys: PostgresKeyService):
    subject = uuid.uuid4()
    assert keys.destroy(subject) is True
    assert FieldCipher(keys).seal(subject, "late") == ERASED


def test_racing_first_uses_make_one_key(keys: PostgresKeyService):
    subject = uuid.uuid4()
    with ThreadPoolExecutor(max_workers=4) as pool:
        made = list(pool.map(lambda _: keys.key_for(subject), range(8)))
    assert len({key.kid for key in made if key is not None}) == 1


def test_a_tampered_field_is_an_error_not_an_erasure(keys: PostgresKeyService):
    cipher = FieldCipher(keys)
    sealed = cipher.seal(uuid.uuid4(), "Ada")
    assert isinstance(sealed, dict)
    flipped = sealed["ct"][:-4] + ("AAAA" if not sealed["ct"].endswith("AAAA") else "BBBB")
    with pytest.raises(TamperedField):
        cipher.open({**sealed, "ct": flipped})
    other = cipher.seal(uuid.uuid4(), "Bob")
    assert isinstance(other, dict)
    with pytest.raises(TamperedField):  # a ciphertext moved under another subject's key
        cipher.open({**sealed, "kid": other["kid"]})


@pytest.mark.parametrize("sealing", [True, False])
def test_the_setting_decides_whether_stored_events_are_sealed(settings: Settings, sealing: bool):
    """EVENTMART_SEAL_PERSONAL_DATA: on (the default), the users store holds ciphertext; off
    (to measure sealing's cost), the e-mail as it came."""
    users = build_application(
        Users, settings.model_copy(update={"seal_personal_data": sealing}), pool_size=1
    )
    email = f"sealing-{uuid.uuid4().hex[:12]}@example.com"
    user_id = users.register_user(email, "hash", "Sealed Or Not", "customer")
    with psycopg.connect(settings.context_dsn("users"), autocommit=True) as conn:
        clear = conn.execute(
            "SELECT count(*) FROM users_events WHERE originator_id = %s "
            "AND position(%s::bytea in state) > 0",
            (user_id, email.encode()),
        ).fetchone()
    assert clear == ((0,) if sealing else (1,))
