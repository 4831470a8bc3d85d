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
from domain.shipping import Shipping
from domain.users import Users
from eventmart.database import eventsourcing_env
from eventmart.settings import Settings

# Which Kafka topic each application's notification log is relayed to.
APPLICATION_TOPICS: dict[type[Application[Any]], str] = {
    Users: "users.events",
    Catalog: "catalog.events",
    Inventory: "inventory.events",
    Orders: "orders.events",
    Payments: "payments.events",
    Shipping: "shipping.events",
}


@dataclass
class Applications:
    users: Users
    catalog: Catalog
    inventory: Inventory
    orders: Orders
    payments: Payments
    shipping: Shipping

    def all(self) -> list[Application[Any]]:
        return [self.users, self.catalog, self.inventory, self.orders, self.payments, self.shipping]


def build_application(
    cls: type[Application[Any]],
    settings: Settings,
    *,
    pool_size: int = 5,
    prompt_seconds: int | None = None,
) -> Any:
    """`prompt_seconds`: for callers that must answer someone (see eventsourcing_env)."""
    return cls(
        env=eventsourcing_env(settings.dsn, pool_size=pool_size, prompt_seconds=prompt_seconds)
    )


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
    )


def events_table(application: Application[Any]) -> str:
    """eventsourcing names an application's table after the application."""
    return f"{application.name.lower()}_events"


SAGA_PARTICIPANTS = ["inventory-saga", "payments-saga", "orders-saga", "shipping-saga"]


def worker_names() -> list[str]:
    """Every worker the stack runs: saga participants and projections, one group each."""
    from projections.registry import READ_MODELS

    return [*SAGA_PARTICIPANTS, *READ_MODELS]


def build_worker(name: str, settings: Settings) -> Any:
    """The Faust app of one worker (its consumer group is its name)."""
    if name in SAGA_PARTICIPANTS:
        import importlib

        from workers.saga import build_participant_worker

        module = importlib.import_module(f"workers.{name.removesuffix('-saga')}")
        return build_participant_worker(module.PARTICIPANT, settings)
    from workers.projection import build_projection_worker

    return build_projection_worker(name, settings)
