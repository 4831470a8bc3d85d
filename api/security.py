"""Passwords (bcrypt), bearer tokens (signed JWT) and login throttling."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import bcrypt
import jwt

MAX_PASSWORD_BYTES = 72  # bcrypt's limit; longer passwords are refused, never truncated


class InvalidToken(Exception):
    """A bearer token that is missing, forged or expired."""


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        # Unknown e-mails are checked against this, so they cost what a wrong password costs.
        self._decoy = bcrypt.hashpw(b"decoy-password", bcrypt.gensalt(rounds))

    def hash(self, password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(self.rounds)).decode()

    def verify(self, password: str, password_hash: str | None) -> bool:
        candidate = password.encode()[:MAX_PASSWORD_BYTES]
        if password_hash is None:
            bcrypt.checkpw(candidate, self._decoy)
            return False
        return bcrypt.checkpw(candidate, password_hash.encode())


@dataclass(frozen=True)
class Principal:
    user_id: UUID
    role: str


class TokenIssuer:
    algorithm = "HS256"

    def __init__(self, secret: str, ttl_seconds: int) -> None:
        self.secret = secret
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: UUID, role: str) -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "role": role,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_seconds),
        }
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                options={"require": ["sub", "exp", "role"]},
            )
            return Principal(UUID(claims["sub"]), claims["role"])
        except (jwt.PyJWTError, ValueError) as error:
            raise InvalidToken(str(error)) from error


class LoginThrottle:
    """At most `per_minute` attempts per e-mail and per client address in a sliding minute."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._attempts: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, *subjects: str) -> bool:
        now = time.monotonic()
        with self._lock:
            windows = [self._attempts[subject] for subject in subjects]
            for window in windows:
                while window and now - window[0] > 60:
                    window.popleft()
            if any(len(window) >= self.per_minute for window in windows):
                return False
            for window in windows:
                window.append(now)
            return True
