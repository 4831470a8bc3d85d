"""Passwords (bcrypt) and bearer tokens (signed JWT)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import bcrypt
import jwt

from eventmart.settings import Settings

MAX_PASSWORD_BYTES = 72  # bcrypt's limit; longer passwords are refused, never truncated


class InvalidToken(Exception):
    """A bearer token that is missing, forged, expired, or not meant for this API."""


class PasswordHasher:
    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        # Unknown e-mails are checked against this, so they cost what a wrong password costs.
        self._decoy = bcrypt.hashpw(b"decoy-password", bcrypt.gensalt(rounds))

    def hash(self, password: str) -> str:
        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(self.rounds)).decode()

    def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether the password is the one hashed. A password over bcrypt's 72 bytes never
        is (registration refuses them; bcrypt would compare only their first 72 bytes), and
        costs the same check as any other."""
        candidate = password.encode()
        if password_hash is None or len(candidate) > MAX_PASSWORD_BYTES:
            bcrypt.checkpw(candidate[:MAX_PASSWORD_BYTES], self._decoy)
            return False
        return bcrypt.checkpw(candidate, password_hash.encode())


@dataclass(frozen=True)
class Principal:
    """The caller, as the user is now (not as the token says it was)."""

    user_id: UUID
    role: str


@dataclass(frozen=True)
class TokenClaims:
    """What a verified token asserts: only who it was issued to. The role is looked up."""

    user_id: UUID
    issued_at: datetime


class TokenIssuer:
    algorithm = "HS256"

    def __init__(
        self,
        secret: str,
        ttl_seconds: int,
        *,
        issuer: str = "eventmart",
        audience: str = "eventmart-api",
        max_lifetime_seconds: int = 86400,
    ) -> None:
        self.secret = secret
        self.ttl_seconds = ttl_seconds
        self.issuer = issuer
        self.audience = audience
        self.max_lifetime_seconds = max_lifetime_seconds

    def issue(self, user_id: UUID, role: str) -> str:
        """The role travels for clients' convenience; the API never trusts it."""
        now = datetime.now(UTC)
        claims = {
            "sub": str(user_id),
            "role": role,
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": now + timedelta(seconds=self.ttl_seconds),
        }
        return jwt.encode(claims, self.secret, algorithm=self.algorithm)

    def verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self.secret,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["sub", "exp", "iat", "iss", "aud"]},
            )
            lifetime = claims["exp"] - claims["iat"]
            if not isinstance(lifetime, int | float) or lifetime > self.max_lifetime_seconds:
                raise InvalidToken(
                    f"a token may live {self.max_lifetime_seconds}s at most, this one {lifetime}s"
                )
            return TokenClaims(UUID(claims["sub"]), datetime.fromtimestamp(claims["iat"], UTC))
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError) as error:
            raise InvalidToken(str(error)) from error

    @classmethod
    def for_settings(cls, settings: Settings) -> TokenIssuer:
        return cls(
            settings.secret_key,
            settings.token_ttl_seconds,
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            max_lifetime_seconds=settings.token_max_lifetime_seconds,
        )
