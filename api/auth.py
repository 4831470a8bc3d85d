"""Who a token's subject is now: every authenticated request reads the user's events.

A token says only who it was issued to. Whether that user exists, is enabled, and which
role they hold comes from the Users event store at the moment of the request, so a
disabled user or a demoted admin is refused on their very next call, by any API process,
whoever made the change (the API, or `eventmart ops users` on another machine).

Each process keeps the users it has seen in memory with the version it knows. A trigger on
the Users event store announces every new event of a user on a PostgreSQL channel
(`USERS_CHANNEL`, delivered when the writing transaction commits), and the process drops
that user from memory as it hears it (api.notified_cache: a lookup racing a change is not
kept, and everything is forgotten while the listener is down). So a request is answered
from memory as long as nothing happened to its user, and a change counts on the next
request after the commit's notification arrived (about a millisecond); a user not in
memory costs one indexed query for events past the version known. Answered per request
from the database, this check was 39% of the API's CPU on the order-placement path
(docs/benchmarks.md). The read model is not used: it lags the event store by a trip
through Kafka.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import Mapper, StoredEvent
from psycopg_pool import PoolTimeout

from api.notified_cache import NotifiedCache
from api.quiet_reads import announce_changes
from domain.users import User
from eventmart.database import make_async_pool
from projections.users import newer_user_events

log = logging.getLogger("eventmart.api.auth")

USERS_CHANNEL = "users_events"  # announced by api.quiet_reads.announce_changes


@dataclass(frozen=True)
class CurrentUser:
    role: str
    disabled: bool


class UserDirectory:
    """The current state of users, read through from the Users event store and kept while
    the store announces no change of theirs."""

    def __init__(
        self, dsn: str, mapper: Mapper[Any], *, wait_seconds: float, max_users: int = 10_000
    ) -> None:
        self.mapper = mapper
        self.dsn = dsn
        self.max_users = max_users
        self.pool = make_async_pool(dsn, min_size=1, max_size=8, timeout=wait_seconds)
        self._users: OrderedDict[UUID, User] = OrderedDict()  # least recently used first
        self.unchanged: NotifiedCache[CurrentUser] = NotifiedCache(
            dsn, (USERS_CHANNEL,), max_entries=max_users, name="user directory"
        )

    async def open(self) -> None:
        await self.pool.open(wait=True, timeout=30)
        await announce_changes(self.dsn, USERS_CHANNEL)
        await self.unchanged.start()

    async def close(self) -> None:
        await self.unchanged.stop()
        await self.pool.close()

    async def current(self, user_id: UUID) -> CurrentUser | None:
        """The user as stored now, or None if there is no such user."""
        key = str(user_id)
        found = self.unchanged.get(key)
        if found is not None:
            return found
        ticket = self.unchanged.ticket()
        known = self._users.get(user_id)
        rows = await self._newer_events(user_id, known.version if known else 0)
        user = known
        for version, topic, state in rows:
            if user is not None and version <= user.version:
                continue  # a concurrent request applied it already
            event = self.mapper.to_domain_event(StoredEvent(user_id, version, topic, bytes(state)))
            user = event.mutate(user)  # type: ignore[attr-defined]
        if not isinstance(user, User):
            return None
        self._remember(user_id, user)
        found = CurrentUser(role=user.role, disabled=user.disabled)
        self.unchanged.put(key, found, ticket)
        return found

    def _remember(self, user_id: UUID, user: User) -> None:
        known = self._users.get(user_id)
        if known is None or known.version < user.version:
            self._users[user_id] = user
        self._users.move_to_end(user_id)
        while len(self._users) > self.max_users:
            self._users.popitem(last=False)

    async def _newer_events(self, user_id: UUID, after: int) -> list[tuple[int, str, bytes]]:
        """A read, so one that failed on a connection PostgreSQL had closed (and that the
        pool's check did not catch yet) is retried once, after the pool drops every such
        one; no connection at all within the wait is not retried (PostgreSQL is away)."""
        for attempt in (1, 2):
            try:
                async with self.pool.connection() as conn:
                    return await newer_user_events(conn, user_id, after)
            except PoolTimeout:
                raise
            except psycopg.OperationalError as error:
                if attempt == 2:
                    raise
                log.info("users lookup on a lost connection (%s); retrying once", error)
                await self.pool.check()
        raise AssertionError("unreachable")
