"""Users and auth: register, log in, who am I."""

from __future__ import annotations

from datetime import datetime
from typing import Literal
from uuid import UUID

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import CurrentUser, ServicesDep, UsersDb
from api.errors import ApiError
from api.idempotency import IdempotencyKeyHeader, fingerprint
from api.security import MAX_PASSWORD_BYTES
from projections.users import find_user

router = APIRouter(prefix="/v1", tags=["users"])


class RegisterUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(max_length=254)
    password: str
    display_name: str = Field(min_length=1, max_length=100)
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

    email: str = Field(max_length=254)
    password: str = Field(max_length=1024)


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


@router.post("/users", status_code=201, response_model=UserCreated)
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


@router.post("/auth/token", response_model=AccessToken)
def issue_token(body: Credentials, request: Request, services: ServicesDep) -> AccessToken:
    """Exchange e-mail and password for a bearer token. Unknown e-mail and wrong password
    get the same answer in about the same time."""
    client = request.client.host if request.client else "unknown"
    if not services.login_throttle.allow(f"email:{body.email.strip().lower()}", f"ip:{client}"):
        raise ApiError(
            429,
            "too_many_attempts",
            "too many login attempts; wait a minute",
            {"Retry-After": "60"},
        )
    users = services.applications.users
    user_id = users.find_user_id(body.email)
    user = users.get_user(user_id) if user_id is not None else None
    if (
        not services.hasher.verify(body.password, user.password_hash if user else None)
        or user is None
    ):
        raise ApiError(401, "invalid_credentials", "e-mail or password is wrong")
    token = services.tokens.issue(user.id, user.role)
    return AccessToken(access_token=token, expires_in=services.settings.token_ttl_seconds)


@router.get("/users/me", response_model=UserView)
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
