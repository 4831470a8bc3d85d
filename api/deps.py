"""Annotated dependencies the routes declare: the process's services, a read-model
connection, and the authenticated caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

import psycopg
from eventsourcing.persistence import IntegrityError
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool

from api.auth import UserDirectory
from api.errors import ApiError
from api.security import InvalidToken, PasswordHasher, Principal, TokenIssuer
from api.throttle import LoginThrottle
from domain.errors import ConcurrentUpdate
from domain.payments import PaymentIntents
from eventmart.personal_data import FieldCipher
from eventmart.settings import Settings
from eventmart.wiring import Applications
from projections.cursors import Cursors


@dataclass
class Services:
    """What the API process holds for its lifetime (built once in api.main)."""

    settings: Settings
    applications: Applications
    payment_intents: PaymentIntents
    pool: ConnectionPool  # the shared database (DATABASE_URL)
    hasher: PasswordHasher
    tokens: TokenIssuer
    login_throttle: LoginThrottle
    cursors: Cursors
    directory: UserDirectory
    cipher: FieldCipher  # personal fields over per-person keys (eventmart.personal_data)
    # Projection group -> the pool of its read model's database (its context's, which is
    # the shared one unless EVENTMART_<CONTEXT>_DATABASE_URL says otherwise).
    read_pools: dict[str, ConnectionPool] = field(default_factory=dict)
    # Pools of other databases the API writes or reads (the payments context's intents).
    other_pools: list[ConnectionPool] = field(default_factory=list)

    def read_pool(self, group: str) -> ConnectionPool:
        return self.read_pools.get(group, self.pool)

    def pools(self) -> list[ConnectionPool]:
        """Every database pool, each once."""
        every = [self.pool, *self.read_pools.values(), *self.other_pools]
        return list({id(pool): pool for pool in every}.values())


# Dependencies that neither block nor wait on a thread are `async def`: FastAPI runs a plain `def`
# dependency in its thread pool, a thread hop per dependency per request (14% of the API's
# time while placing orders). Whatever touches the database stays plain `def`.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_db(services: ServicesDep) -> Iterator[psycopg.Connection[Any]]:
    with services.pool.connection() as conn:
        yield conn


Db = Annotated[psycopg.Connection[Any], Depends(get_db)]


def read_model_db(group: str) -> Any:
    """A connection to the database of one projection's read model."""

    def connection(services: ServicesDep) -> Iterator[psycopg.Connection[Any]]:
        with services.read_pool(group).connection() as conn:
            yield conn

    connection.__name__ = f"{group.replace('-', '_')}_db"
    return Annotated[psycopg.Connection[Any], Depends(connection)]


OrdersDb = read_model_db("orders-projection")
UsersDb = read_model_db("users-projection")
SalesDb = read_model_db("sales-projection")
PurchasesDb = read_model_db("purchases")
RatingsDb = read_model_db("ratings-projection")

bearer = HTTPBearer(auto_error=False)


async def get_current_user(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    unauthenticated = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(
            401, "not_authenticated", "send Authorization: Bearer <token>", unauthenticated
        )
    try:
        claims = services.tokens.verify(credentials.credentials)
    except InvalidToken as error:
        raise ApiError(
            401, "invalid_token", "the token is invalid or expired", unauthenticated
        ) from error
    # Who the user is now, not what the token said then (api.auth).
    user = await services.directory.current(claims.user_id)
    if user is None or user.disabled:
        raise ApiError(
            401, "invalid_token", "the token's user is unknown or disabled", unauthenticated
        )
    return Principal(claims.user_id, user.role)


CurrentUser = Annotated[Principal, Depends(get_current_user)]


async def get_optional_user(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    """The caller if a token was sent (checked as for CurrentUser: a bad one is 401), or
    None for an anonymous visitor."""
    if credentials is None:
        return None
    return await get_current_user(services, credentials)


OptionalUser = Annotated[Principal | None, Depends(get_optional_user)]
# For the routes that take OptionalUser: the OpenAPI document says a token is optional
# (FastAPI lists the bearer scheme alone; this adds the empty requirement beside it).
OPTIONAL_TOKEN: dict[str, Any] = {"security": [{}]}


def require_role(*roles: str) -> Any:
    async def check(user: CurrentUser) -> Principal:
        if user.role not in roles:
            raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
        return user

    return Depends(check)


T = TypeVar("T")


def retry_concurrent(command: Callable[[], T], attempts: int = 3) -> T:
    """A command that lost an optimistic-concurrency race saved nothing, so run it again
    (it reloads the aggregate); after `attempts` the client gets 409 concurrent_update."""
    for attempt in range(attempts):
        try:
            return command()
        except (ConcurrentUpdate, IntegrityError) as error:
            if attempt == attempts - 1:
                raise ConcurrentUpdate("the resource changed meanwhile; retry") from error
    raise AssertionError("unreachable")
