"""Who is at the console: a signed session cookie, the role looked up on every request, and a
CSRF token bound to the session.

The cookie holds a token signed like the API's bearer tokens (api.security.TokenIssuer) but
for another audience, so neither can stand in for the other. It is HttpOnly, SameSite=Strict,
and Secure when the console is served over TLS. The role is never read from the cookie: the
user directory says who the user is now, so a disabled or demoted admin is out at the next
request. The CSRF token is an HMAC of the cookie under the secret key: every action sends it
in the X-CSRF-Token header (htmx adds it from the page), and it is useless with another session.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request

from api.deps import ServicesDep
from api.security import InvalidToken, TokenIssuer
from eventmart.settings import Settings

COOKIE = "eventmart_console"
CSRF_HEADER = "x-csrf-token"
AUDIENCE = "eventmart-console"


class LoginRequired(Exception):
    """No session, or one that is expired, forged, or of a user who is gone or disabled."""


class NotAnOperator(Exception):
    """A valid session of a customer or a seller: the console shows them nothing."""


class CsrfRefused(Exception):
    """An action without the session's CSRF token."""


@dataclass(frozen=True)
class Operator:
    user_id: UUID
    csrf_token: str


def session_issuer(settings: Settings) -> TokenIssuer:
    return TokenIssuer(
        settings.secret_key,
        settings.token_ttl_seconds,
        issuer=settings.token_issuer,
        audience=AUDIENCE,
        max_lifetime_seconds=settings.token_max_lifetime_seconds,
    )


def csrf_token(settings: Settings, session: str) -> str:
    return hmac.new(
        settings.secret_key.encode(), b"console-csrf\0" + session.encode(), hashlib.sha256
    ).hexdigest()


def cookie_options(request: Request, settings: Settings) -> dict[str, object]:
    return {
        "key": COOKIE,
        "httponly": True,
        "secure": request.url.scheme == "https",
        "samesite": "strict",
        "path": "/console",
        "max_age": settings.token_ttl_seconds,
    }


async def signed_in(request: Request, services: ServicesDep) -> tuple[UUID, str, str]:
    """The session's user, their current role and the session itself; LoginRequired if none."""
    session = request.cookies.get(COOKIE)
    if not session:
        raise LoginRequired
    try:
        claims = session_issuer(services.settings).verify(session)
    except InvalidToken as error:
        raise LoginRequired from error
    user = await services.directory.current(claims.user_id)
    if user is None or user.disabled:
        raise LoginRequired
    return claims.user_id, user.role, session


async def current_operator(
    signed: Annotated[tuple[UUID, str, str], Depends(signed_in)], services: ServicesDep
) -> Operator:
    user_id, role, session = signed
    if role != "admin":
        raise NotAnOperator
    return Operator(user_id, csrf_token(services.settings, session))


CurrentOperator = Annotated[Operator, Depends(current_operator)]


async def acting_operator(request: Request, operator: CurrentOperator) -> Operator:
    """The operator of an action: the request must carry the session's CSRF token."""
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), operator.csrf_token.encode()):
        raise CsrfRefused
    return operator


ActingOperator = Annotated[Operator, Depends(acting_operator)]
