"""Users and auth: register, log in, who am I, erase me."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import CurrentUser, Services, ServicesDep, UsersDb, retry_concurrent
from api.errors import ApiError, error_responses
from api.idempotency import IdempotencyKeyHeader, accept_idempotency_key, fingerprint
from api.security import MAX_PASSWORD_BYTES
from api.throttle import LoginThrottle, client_address
from domain.limits import MAX_EMAIL_LENGTH
from domain.users import User
from eventmart.contracts.bounds import DisplayName, EmailAddress, safe_text
from projections.users import find_user

MAX_LOGIN_PASSWORD_LENGTH = 1024
# Passwords are checked as bytes: no control characters (bcrypt would stop at a NUL).
Password = Annotated[
    str,
    safe_text(MAX_PASSWORD_BYTES, min_length=8),
    Field(description=f"8 to {MAX_PASSWORD_BYTES} bytes in UTF-8, no control characters"),
]

LoginPassword = Annotated[str, safe_text(MAX_LOGIN_PASSWORD_LENGTH, min_length=1)]

router = APIRouter(prefix="/v1", tags=["users"])


class RegisterUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    password: Password
    display_name: DisplayName
    role: Literal["customer", "seller"] = "customer"

    @field_validator("password")
    @classmethod
    def password_length(cls, password: str) -> str:
        size = len(password.encode())
        if not 8 <= size <= MAX_PASSWORD_BYTES:
            raise ValueError(f"must be 8 to {MAX_PASSWORD_BYTES} bytes in UTF-8, not {size}")
        return password


class UserCreated(BaseModel):
    user_id: UUID


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Annotated[str, safe_text(MAX_EMAIL_LENGTH, min_length=1)]
    password: LoginPassword


class Erasure(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: LoginPassword


class AccessToken(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class UserView(BaseModel):
    user_id: UUID
    email: str
    display_name: str
    role: str
    created_at: datetime


@router.post(
    "/users", status_code=201, response_model=UserCreated, responses=error_responses(409, 503)
)
def register(
    body: RegisterUser, services: ServicesDep, idempotency_key: IdempotencyKeyHeader = None
) -> UserCreated:
    """Register a customer or a seller; the e-mail is unique (409 `email_taken`)."""
    password_hash = services.hasher.hash(body.password)
    user_id = services.applications.users.register_user(
        body.email,
        password_hash,
        body.display_name,
        body.role,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint(services.settings.secret_key, body),
    )
    return UserCreated(user_id=user_id)


def admit(throttle: LoginThrottle, account: str, address: str) -> None:
    """429 with Retry-After while the account or the address is slowed down by failures."""
    refused = throttle.admit(account, address)
    if refused is not None:
        raise ApiError(
            429,
            "too_many_attempts",
            f"{refused.reason}; retry in {refused.retry_after}s",
            {"Retry-After": str(refused.retry_after)},
        )


def authenticate(services: Services, email: str, password: str, request: Request) -> User:
    """The account these credentials open, through the login throttle: 429 while the account
    or the address is held back, 401 for a wrong pair (unknown e-mail and wrong password get
    the same answer in about the same time) or a disabled account. The token route and the
    operations console's login both ask this."""
    throttle = services.login_throttle
    address = client_address(request, services.settings.trusted_proxies)
    admit(throttle, email, address)
    users = services.applications.users
    user_id = users.find_user_id(email)
    user = users.get_user(user_id) if user_id is not None else None
    if (
        not services.hasher.verify(password, user.password_hash if user else None)
        or user is None
        or user.disabled
    ):
        throttle.failed(address)
        raise ApiError(401, "invalid_credentials", "e-mail or password is wrong")
    throttle.succeeded(email)
    return user


@router.post("/auth/token", response_model=AccessToken, responses=error_responses(401, 429, 503))
def issue_token(body: Credentials, request: Request, services: ServicesDep) -> AccessToken:
    """Exchange e-mail and password for a bearer token. Unknown e-mail and wrong password
    get the same answer in about the same time. Failed logins slow an account down
    (exponential backoff) and a client address (a generous limit): 429 with Retry-After."""
    user = authenticate(services, body.email, body.password, request)
    token = services.tokens.issue(user.id, user.role)
    return AccessToken(access_token=token, expires_in=services.settings.token_ttl_seconds)


@router.get("/users/me", response_model=UserView, responses=error_responses(401, 503))
def me(user: CurrentUser, db: UsersDb, response: Response) -> UserView:
    """The caller's profile, from the users read model. Right after registration the
    read model may not have caught up: 503 with Retry-After, retry then."""
    found = find_user(db, str(user.user_id))
    if found is None:
        raise ApiError(
            503,
            "not_yet_visible",
            "the user is registered but the read model has not caught up; retry shortly",
            {"Retry-After": "1"},
        )
    return UserView(**found)


@router.delete(
    "/users/me",
    status_code=202,
    response_class=Response,
    responses={202: {"description": "erased"}, **error_responses(401, 429, 503)},
    dependencies=[Depends(accept_idempotency_key)],
)
def erase_me(body: Erasure, user: CurrentUser, request: Request, services: ServicesDep) -> Response:
    """Erase the caller's account, with their password (401 `invalid_credentials` if it is
    wrong; wrong passwords are throttled as logins are, 429). The data key is destroyed
    first, so every personal field sealed with it reads `[erased]` everywhere at once;
    then the user's `user.erased` event refuses their logins and tokens from the next
    request, and the read models drop their name, e-mail and addresses as it reaches
    them. A retry after a failure repeats both steps harmlessly."""
    throttle = services.login_throttle
    address = client_address(request, services.settings.trusted_proxies)
    account = f"erase:{user.user_id}"
    admit(throttle, account, address)
    users = services.applications.users
    stored = users.get_user(user.user_id)
    if not services.hasher.verify(body.password, stored.password_hash):
        throttle.failed(address)
        raise ApiError(401, "invalid_credentials", "the password is wrong")
    throttle.succeeded(account)
    services.cipher.keys.destroy(user.user_id)
    retry_concurrent(lambda: users.erase_user(user.user_id))
    return Response(status_code=202)
