"""Users as the console manages them (admin only): disable, enable and change a role.

The same domain commands as `eventmart ops users` (entrypoints/cli/users.py): Users'
`disable_user`, `enable_user` and `change_role`. A change counts on the user's very next
request, with the token they hold (api.auth reads the user's current state)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.deps import ServicesDep, require_role, retry_concurrent
from api.errors import error_responses
from api.idempotency import accept_idempotency_key
from api.security import Principal
from domain.users import Users

router = APIRouter(
    prefix="/v1/ops/users", tags=["ops"], dependencies=[Depends(accept_idempotency_key)]
)

Admin = Annotated[Principal, require_role("admin")]
# 404 user_not_found; 409 concurrent_update after three tries lost to other changes.
ERRORS = (401, 403, 404, 409, 503)
Role = Literal["customer", "seller", "admin"]  # domain.users.ROLES (a test keeps them equal)


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="the user's role from their next request on")


class ManagedUser(BaseModel):
    """The user as stored after the command; `changed` is false when it was so already
    (repeating a command changes nothing and answers the same)."""

    user_id: UUID
    role: Role
    disabled: bool
    changed: bool


def act_on_user(
    services: ServicesDep, user_id: UUID, change: Callable[[Users], bool]
) -> ManagedUser:
    """Run one of Users' commands (again if it lost a race) and answer the user as stored;
    the console's user actions (entrypoints/console/users.py) come through here too."""
    users = services.applications.users
    changed = retry_concurrent(lambda: change(users))
    user = users.get_user(user_id)
    return ManagedUser(user_id=user_id, role=user.role, disabled=user.disabled, changed=changed)


def _switch(action: str, command: Callable[[Users, UUID], bool], summary: str) -> None:
    """POST /v1/ops/users/{user_id}/<action>: 202 with the user as stored."""

    def switch(user_id: UUID, _: Admin, services: ServicesDep) -> ManagedUser:
        return act_on_user(services, user_id, lambda users: command(users, user_id))

    switch.__name__ = f"{action}_user"
    switch.__doc__ = summary
    router.post(
        f"/{{user_id}}/{action}",
        status_code=202,
        response_model=ManagedUser,
        responses=error_responses(*ERRORS),
    )(switch)


# POST /v1/ops/users/{user_id}/<action>: the command and the route's summary.
SWITCHES: dict[str, tuple[Callable[[Users, UUID], bool], str]] = {
    "disable": (
        Users.disable_user,
        "Refuse the user's tokens and logins from now on (their data and orders stay).",
    ),
    "enable": (
        Users.enable_user,
        "Let a disabled user in again: their tokens not yet expired work again.",
    ),
}
for _action, (_command, _summary) in SWITCHES.items():
    _switch(_action, _command, _summary)


@router.patch("/{user_id}", response_model=ManagedUser, responses=error_responses(*ERRORS))
def change_role(user_id: UUID, body: RoleChange, _: Admin, services: ServicesDep) -> ManagedUser:
    """Give the user another role; a demoted admin loses operations access on their next
    request."""
    return act_on_user(services, user_id, lambda users: users.change_role(user_id, body.role))
