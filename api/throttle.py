"""Login throttling as OWASP advises: failures only, per account with exponential backoff,
a generous per-address limit, shared by every API process through PostgreSQL.

- **Per account**: the first `login_free_failures` wrong passwords cost nothing; after
  the n-th failure (n >= that), the account's next attempt must wait
  base * 2^(n - free failures) seconds, capped. A success resets the count; failures are
  forgotten after a quiet day. An attacker can slow a victim's logins down, never lock
  them out for longer than the cap.
- **Parallel guesses**: an attempt is counted as a failure before the password is
  checked (one atomic upsert) and the count is reset if it succeeds; so a thousand
  parallel guesses at the moment a block ends are one attempt and 999 refusals, not a
  thousand bcrypt checks.
- **Per client address**: failures only (the 11th correct login from one office NAT is
  as welcome as the first), `login_address_max_failures` per window.
- **Client address**: the TCP peer, unless it is one of `trusted_proxies`; then the
  nearest X-Forwarded-For hop that is not a trusted proxy. A header from anyone else
  changes nothing.
- **No personal data**: an account is kept as a keyed hash of its e-mail (HMAC-SHA256 with
  the stack's secret key), so the table never holds an address a customer's erasure would
  have to find.
- **Bounded**: one row per throttled subject, each with an expiry; expired rows are
  deleted at most once a minute per process. The process itself holds nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Network, IPv6Network, ip_address
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool
from starlette.requests import Request

from eventmart.settings import Settings

DDL = """
CREATE TABLE IF NOT EXISTS login_failures (
    subject text PRIMARY KEY,
    failures integer NOT NULL,
    blocked_until timestamptz,
    window_ends_at timestamptz,
    expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_expiry ON login_failures (expires_at);
-- How long an account waits after its n-th failure.
CREATE OR REPLACE FUNCTION eventmart_login_block(
    failures integer, free integer, base float8, cap float8
) RETURNS interval AS $$
    SELECT make_interval(secs => CASE WHEN failures < free THEN 0
        ELSE least(cap, base * power(2, least(40, failures - free))) END)
$$ LANGUAGE sql IMMUTABLE;
"""
INSTALL_LOCK = 7004
CLEANUP_EVERY_SECONDS = 60.0

# Count this attempt as the account's next failure, unless it is blocked now (then no
# row comes back); failures older than the memory start again from one.
CLAIM_ACCOUNT = """
INSERT INTO login_failures AS f (subject, failures, blocked_until, expires_at)
VALUES (%(subject)s, 1, now() + eventmart_login_block(1, %(free)s, %(base)s, %(cap)s),
        now() + %(memory)s)
ON CONFLICT (subject) DO UPDATE SET
    failures = (CASE WHEN f.expires_at <= now() THEN 0 ELSE f.failures END) + 1,
    blocked_until = now() + eventmart_login_block(
        (CASE WHEN f.expires_at <= now() THEN 0 ELSE f.failures END) + 1,
        %(free)s, %(base)s, %(cap)s),
    expires_at = now() + %(memory)s
WHERE f.blocked_until IS NULL OR f.blocked_until <= now() OR f.expires_at <= now()
RETURNING failures
"""
ACCOUNT_BLOCK = """
SELECT extract(epoch FROM blocked_until - now()) FROM login_failures
WHERE subject = %s AND blocked_until > now() AND expires_at > now()
"""
ADDRESS_BLOCK = """
SELECT extract(epoch FROM window_ends_at - now()) FROM login_failures
WHERE subject = %s AND failures >= %s AND window_ends_at > now()
"""
COUNT_ADDRESS_FAILURE = """
INSERT INTO login_failures AS f (subject, failures, window_ends_at, expires_at)
VALUES (%(subject)s, 1, now() + %(window)s, now() + %(window)s)
ON CONFLICT (subject) DO UPDATE SET
    failures = CASE WHEN f.window_ends_at <= now() THEN 1 ELSE f.failures + 1 END,
    window_ends_at = CASE WHEN f.window_ends_at <= now() THEN now() + %(window)s
                          ELSE f.window_ends_at END,
    expires_at = CASE WHEN f.window_ends_at <= now() THEN now() + %(window)s
                      ELSE f.window_ends_at END
"""


@dataclass(frozen=True)
class Refused:
    """The attempt was not made: wait this long (whole seconds, at least 1)."""

    retry_after: int
    reason: str


def account_subject(email: str, key: bytes) -> str:
    """The account's row: a keyed hash of the e-mail, never the e-mail itself."""
    digest = hmac.new(key, email.strip().lower().encode(), hashlib.sha256).hexdigest()
    return f"account:{digest}"


def address_subject(address: str) -> str:
    return f"address:{address}"


def client_address(request: Request, trusted: Sequence[IPv4Network | IPv6Network]) -> str:
    """The TCP peer; or, when the peer is a trusted proxy, the nearest X-Forwarded-For hop
    that is not one (the hops further left are the client's own say-so)."""
    peer = request.client.host if request.client else "unknown"
    if not in_networks(peer, trusted):
        return peer
    hops = [
        hop.strip()
        for header in request.headers.getlist("x-forwarded-for")
        for hop in header.split(",")
        if hop.strip()
    ]
    for hop in reversed(hops):
        if not in_networks(hop, trusted):
            return hop
    return hops[0] if hops else peer


def in_networks(address: str, trusted: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


class LoginThrottle:
    def __init__(self, pool: ConnectionPool, settings: Settings) -> None:
        self.pool = pool
        self.subject_key = settings.secret_key.encode()
        self.free_failures = settings.login_free_failures
        self.base_seconds = settings.login_backoff_base_seconds
        self.max_seconds = settings.login_backoff_max_seconds
        self.memory = timedelta(seconds=settings.login_failure_memory_seconds)
        self.address_max_failures = settings.login_address_max_failures
        self.address_window = timedelta(seconds=settings.login_address_window_seconds)
        self._cleaned_at = 0.0

    @staticmethod
    def install(conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (INSTALL_LOCK,))
            conn.execute(DDL)

    def admit(self, account: str, address: str) -> Refused | None:
        """None if the attempt may go ahead: it is then counted as the account's failure
        until `succeeded` says otherwise. Refused attempts count for nothing."""
        with self.pool.connection() as conn:
            over = conn.execute(
                ADDRESS_BLOCK, (address_subject(address), self.address_max_failures)
            ).fetchone()
            if over is not None:
                return Refused(_whole_seconds(over[0]), "too many failed logins from here")
            claimed = conn.execute(CLAIM_ACCOUNT, self._claim_parameters(account)).fetchone()
            if claimed is not None:
                return None
            blocked = conn.execute(
                ACCOUNT_BLOCK, (account_subject(account, self.subject_key),)
            ).fetchone()
        # The block may have ended between the two statements: then a retry right away.
        seconds = blocked[0] if blocked is not None else 1
        return Refused(_whole_seconds(seconds), "too many failed logins for this account")

    def succeeded(self, account: str) -> None:
        with self.pool.connection() as conn:
            conn.execute(
                "DELETE FROM login_failures WHERE subject = %s",
                (account_subject(account, self.subject_key),),
            )

    def failed(self, address: str) -> None:
        """The account's failure was counted by `admit`; the address's is counted here."""
        with self.pool.connection() as conn:
            conn.execute(
                COUNT_ADDRESS_FAILURE,
                {"subject": address_subject(address), "window": self.address_window},
            )
            if time.monotonic() - self._cleaned_at > CLEANUP_EVERY_SECONDS:
                self._cleaned_at = time.monotonic()
                conn.execute("DELETE FROM login_failures WHERE expires_at < now()")

    def _claim_parameters(self, account: str) -> dict[str, Any]:
        return {
            "subject": account_subject(account, self.subject_key),
            "free": self.free_failures,
            "base": self.base_seconds,
            "cap": self.max_seconds,
            "memory": self.memory,
        }


def _whole_seconds(seconds: Any) -> int:
    return max(1, math.ceil(float(seconds)))
