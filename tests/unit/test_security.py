"""Passwords, tokens and login throttling, without I/O."""

from __future__ import annotations

import uuid

import pytest

from api.security import InvalidToken, LoginThrottle, PasswordHasher, TokenIssuer
from eventmart.settings import DEV_SECRET, Settings


def test_a_password_verifies_against_its_own_hash_only():
    hasher = PasswordHasher(rounds=4)
    hashed = hasher.hash("correct horse")
    assert hashed.startswith("$2b$04$")
    assert hasher.verify("correct horse", hashed)
    assert not hasher.verify("wrong horse", hashed)
    assert not hasher.verify("correct horse", None)  # unknown e-mail: decoy check, still False


def test_tokens_carry_the_user_and_role_and_expire():
    issuer = TokenIssuer("s" * 32, ttl_seconds=60)
    user_id = uuid.uuid4()
    principal = issuer.verify(issuer.issue(user_id, "seller"))
    assert (principal.user_id, principal.role) == (user_id, "seller")
    with pytest.raises(InvalidToken):
        TokenIssuer("s" * 32, ttl_seconds=-1).verify(
            TokenIssuer("s" * 32, -1).issue(user_id, "seller")
        )
    with pytest.raises(InvalidToken):
        TokenIssuer("x" * 32, 60).verify(issuer.issue(user_id, "seller"))


def test_login_throttle_allows_n_per_minute_per_subject():
    throttle = LoginThrottle(per_minute=3)
    assert [throttle.allow("email:a", "ip:1") for _ in range(4)] == [True, True, True, False]
    assert throttle.allow("email:b", "ip:2")


def test_settings_refuse_the_dev_secret_in_production():
    with pytest.raises(ValueError, match="EVENTMART_SECRET_KEY"):
        Settings(env="prod")
    assert Settings(env="prod", secret_key="a-real-secret-" * 3).env == "prod"
    assert Settings(env="dev").secret_key == DEV_SECRET
