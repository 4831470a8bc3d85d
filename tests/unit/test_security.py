"""Passwords, tokens, the signing key and client addresses, without I/O."""

from __future__ import annotations

import os
import stat
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from starlette.requests import Request

from api.security import InvalidToken, PasswordHasher, TokenIssuer
from api.throttle import client_address
from eventmart.settings import SECRET_KEY_FILE, Settings, state_secret_key

KEY = "k" * 32


def test_a_password_verifies_against_its_own_hash_only():
    hasher = PasswordHasher(rounds=4)
    hashed = hasher.hash("correct horse")
    assert hashed.startswith("$2b$04$")
    assert hasher.verify("correct horse", hashed)
    assert not hasher.verify("wrong horse", hashed)
    assert not hasher.verify("correct horse", None)  # unknown e-mail: decoy check, still False


def test_a_password_over_72_bytes_never_matches_even_its_first_72_bytes():
    hasher = PasswordHasher(rounds=4)
    first_72 = "p" * 72
    hashed = hasher.hash(first_72)
    assert hasher.verify(first_72, hashed)
    assert not hasher.verify(first_72 + "anything", hashed)  # bcrypt alone would say yes


def test_tokens_name_the_user_and_expire():
    issuer = TokenIssuer(KEY, ttl_seconds=60)
    user_id = uuid.uuid4()
    claims = issuer.verify(issuer.issue(user_id, "seller"))
    assert claims.user_id == user_id
    with pytest.raises(InvalidToken):
        issuer.verify(TokenIssuer(KEY, -1).issue(user_id, "seller"))
    with pytest.raises(InvalidToken):
        TokenIssuer("x" * 32, 60).verify(issuer.issue(user_id, "seller"))


def forge(key: str = KEY, drop: tuple[str, ...] = (), **claims: object) -> str:
    """A token signed with the key, with these claims changed and those left out."""
    now = datetime.now(UTC)
    payload = {
        "sub": str(uuid.uuid4()),
        "iss": "eventmart",
        "aud": "eventmart-api",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        **claims,
    }
    for name in drop:
        del payload[name]
    return jwt.encode(payload, key, algorithm="HS256")


@pytest.mark.parametrize(
    "claims, drop",
    [
        ({"iss": "someone-else"}, ()),
        ({"aud": "another-api"}, ()),
        ({}, ("iss",)),
        ({}, ("aud",)),
        ({}, ("iat",)),
        ({"exp": datetime.now(UTC) + timedelta(days=3650)}, ()),  # a ten-year token
    ],
    ids=["issuer", "audience", "no-issuer", "no-audience", "no-iat", "ten-years"],
)
def test_tokens_for_another_issuer_audience_or_too_long_a_life_are_refused(claims, drop):
    issuer = TokenIssuer(KEY, ttl_seconds=60, max_lifetime_seconds=3600)
    assert issuer.verify(forge()).user_id  # the untouched forgery passes: the key is right
    with pytest.raises(InvalidToken):
        issuer.verify(forge(drop=drop, **claims))


def test_an_unsigned_token_is_refused():
    unsigned = jwt.encode({"sub": str(uuid.uuid4())}, None, algorithm="none")
    with pytest.raises(InvalidToken):
        TokenIssuer(KEY, 60).verify(unsigned)


def test_prod_needs_a_key_of_32_bytes_or_more(tmp_path: Path):
    with pytest.raises(ValueError, match="EVENTMART_SECRET_KEY must be set"):
        Settings(env="prod", state_dir=tmp_path)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        Settings(env="prod", state_dir=tmp_path, secret_key="x" * 31)
    assert Settings(env="prod", state_dir=tmp_path, secret_key="x" * 32).secret_key == "x" * 32
    assert not (tmp_path / SECRET_KEY_FILE).exists()  # prod never invents a key


def test_without_a_key_one_is_generated_once_per_state_directory(tmp_path: Path):
    first = Settings(env="dev", state_dir=tmp_path / "a")
    again = Settings(env="test", state_dir=tmp_path / "a")
    other = Settings(env="dev", state_dir=tmp_path / "b")
    assert first.secret_key == again.secret_key != other.secret_key
    assert len(first.secret_key) >= 43  # 32 random bytes, base64
    mode = stat.S_IMODE(os.stat(tmp_path / "a" / SECRET_KEY_FILE).st_mode)
    assert mode == 0o600
    assert Settings(env="dev", state_dir=tmp_path / "a", secret_key=KEY).secret_key == KEY


def test_processes_generating_the_key_together_all_get_the_same_one(tmp_path: Path):
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: state_secret_key(tmp_path), range(32)))
    assert len(keys) == 1
    assert [path.name for path in tmp_path.iterdir()] == [SECRET_KEY_FILE]  # no drafts left


def test_no_default_key_is_left_in_the_code():
    import eventmart.settings as settings_module

    assert not hasattr(settings_module, "DEV_SECRET")


def request_from(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 4000), "headers": headers})


def test_x_forwarded_for_counts_only_from_a_trusted_proxy():
    proxies = Settings(env="test", secret_key=KEY, trusted_proxies="10.0.0.0/8").trusted_proxies
    assert client_address(request_from("203.0.113.9", "198.51.100.1"), proxies) == "203.0.113.9"
    assert client_address(request_from("203.0.113.9", "198.51.100.1"), []) == "203.0.113.9"
    assert client_address(request_from("10.0.0.2", "198.51.100.1"), proxies) == "198.51.100.1"
    # A client's own X-Forwarded-For is to the left of what the trusted proxies appended.
    spoofed = request_from("10.0.0.2", "1.2.3.4, 198.51.100.1, 10.0.0.7")
    assert client_address(spoofed, proxies) == "198.51.100.1"
    assert client_address(request_from("10.0.0.2"), proxies) == "10.0.0.2"


def test_prod_refuses_personal_data_in_clear(tmp_path: Path):
    with pytest.raises(ValueError, match="EVENTMART_SEAL_PERSONAL_DATA must stay on"):
        Settings(env="prod", state_dir=tmp_path, secret_key="x" * 32, seal_personal_data=False)
    off = Settings(env="dev", state_dir=tmp_path, seal_personal_data=False)
    assert off.seal_personal_data is False
