"""The composition root: every process builds its applications, pools and clients here,
and the tests call the same builders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eventsourcing.application import Application

from domain.catalog import Catalog
from domain.inventory import Inventory
from domain.orders import Orders
from domain.payments import Payments
from domain.pricing_context import Pricing
from domain.reviews import Reviews
from domain.shipping import Shipping
from domain.users import Users
from eventmart.database import eventsourcing_env, make_pool
from eventmart.groups import group_names
from eventmart.personal_data import FieldCipher, PostgresKeyService
from eventmart.sealing import SealingMapper
from eventmart.settings import Settings

# Which Kafka topic each application's notification log is relayed to.
APPLICATION_TOPICS: dict[type[Application[Any]], str] = {
    Users: "users.events",
    Catalog: "catalog.events",
    Inventory: "inventory.events",
    Orders: "orders.events",
    Payments: "payments.events",
    Shipping: "shipping.events",
    Reviews: "reviews.events",
    Pricing: "pricing.events",
}


@dataclass
class Applications:
    users: Users
    catalog: Catalog
    inventory: Inventory
    orders: Orders
    payments: Payments
    shipping: Shipping
    reviews: Reviews
    pricing: Pricing

    def all(self) -> list[Application[Any]]:
        return [
            self.users,
            self.catalog,
            self.inventory,
            self.orders,
            self.payments,
            self.shipping,
            self.reviews,
            self.pricing,
        ]


def context_of(cls: type[Application[Any]]) -> str:
    """The bounded context an application is: its topic's prefix (orders.events -> orders).
    A subclass (a tracked one, workers.tracking) is the context of the class it extends."""
    for klass in cls.__mro__:
        if klass in APPLICATION_TOPICS:
            return APPLICATION_TOPICS[klass].removesuffix(".events")
    raise KeyError(f"{cls.__name__} is no context's application")


def application_dsn(cls: type[Application[Any]], settings: Settings) -> str:
    """Where an application's event store (and outbox) lives: its context's database."""
    return settings.context_dsn(context_of(cls))


def build_application(
    cls: type[Application[Any]],
    settings: Settings,
    *,
    pool_size: int = 5,
    prompt_seconds: int | None = None,
) -> Any:
    """`prompt_seconds`: for callers that must answer someone (see eventsourcing_env)."""
    application = cls(
        env=eventsourcing_env(
            application_dsn(cls, settings), pool_size=pool_size, prompt_seconds=prompt_seconds
        )
    )
    if (
        settings.seal_personal_data
        and cls in SEALING_APPLICATIONS
        and isinstance(application.mapper, SealingMapper)
    ):
        application.mapper.fields_cipher = field_cipher(settings)
    return application


# The applications that store personal fields (eventmart.sealing.SEALED).
SEALING_APPLICATIONS = (Users, Orders, Reviews)
_CIPHERS: dict[str, FieldCipher] = {}


def field_cipher(settings: Settings) -> FieldCipher:
    """The process's cipher over the per-person keys in the users' database (one pool,
    made on first use, shared by every application and reader of the process)."""
    dsn = settings.context_dsn("users")
    if dsn not in _CIPHERS:
        keys = PostgresKeyService(make_pool(dsn, min_size=1, max_size=4, autocommit=True))
        keys.install()
        _CIPHERS[dsn] = FieldCipher(keys)
    return _CIPHERS[dsn]


def build_applications(
    settings: Settings, *, pool_size: int = 5, prompt_seconds: int | None = None
) -> Applications:
    def build(cls: type[Application[Any]]) -> Any:
        return build_application(cls, settings, pool_size=pool_size, prompt_seconds=prompt_seconds)

    return Applications(
        users=build(Users),
        catalog=build(Catalog),
        inventory=build(Inventory),
        orders=build(Orders),
        payments=build(Payments),
        shipping=build(Shipping),
        reviews=build(Reviews),
        pricing=build(Pricing),
    )


def events_table(application: Application[Any]) -> str:
    """eventsourcing names an application's table after the application."""
    return f"{application.name.lower()}_events"


SAGA_PARTICIPANTS = group_names("sagas")


def worker_names() -> list[str]:
    """Every consumer group a worker can host: saga participants and projections."""
    return group_names()
