"""The composition root: every process builds its applications, pools and clients here,
and the tests call the same builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from domain.users import Users
from eventmart.database import eventsourcing_env
from eventmart.settings import Settings

# Which Kafka topic each application's notification log is relayed to.
APPLICATION_TOPICS: dict[type[Application], str] = {
    Users: "users.events",
}


@dataclass
class Applications:
    users: Users

    def all(self) -> list[Application]:
        return [self.users]


def build_application(cls: type[Application], settings: Settings, *, pool_size: int = 5) -> Any:
    return cls(env=eventsourcing_env(settings.dsn, pool_size=pool_size))


def build_applications(settings: Settings, *, pool_size: int = 5) -> Applications:
    return Applications(users=build_application(Users, settings, pool_size=pool_size))


def events_table(application: Application) -> str:
    """eventsourcing names an application's table after the application."""
    return f"{application.name.lower()}_events"
