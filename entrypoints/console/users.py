"""The console's users page: find a user by e-mail or id, then disable, enable or change
their role. The commands are the admin routes' own (api.routes.ops_users: Users'
`disable_user`, `enable_user`, `change_role`, retried on a lost race); each action is
confirmed in the browser, needs the session's CSRF token, and is recorded as an operator
action. A change counts on the user's next request (their API token or console session)."""

from __future__ import annotations

from typing import Annotated, Any, get_args
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from api.deps import Services, ServicesDep
from api.routes.ops_users import SWITCHES, Role, RoleChange, act_on_user
from domain.errors import DomainError
from entrypoints.console.routes import (
    PAGE_HEADERS,
    fragment,
    operator_actions,
    operator_email,
    page,
)
from entrypoints.console.session import ActingOperator, CurrentOperator, Operator

ROLES = get_args(Role)
MAX_WHO = 320  # an e-mail address at most (domain.users.MAX_EMAIL_LENGTH is below it)
STATUS_OF = {"user_not_found": 404, "not_found": 404, "concurrent_update": 409}

router = APIRouter(prefix="/console/users", include_in_schema=False)


def shown(services: Services, user_id: UUID) -> dict[str, Any]:
    """The user as stored, e-mail and name opened (sealed in the store: `[erased]` once
    the user was erased)."""
    user = services.applications.users.get_user(user_id)
    email, display_name = services.cipher.open_all([user.email, user.display_name])
    return {
        "user_id": user_id,
        "email": email,
        "display_name": display_name,
        "role": user.role,
        "disabled": user.disabled,
    }


def find(services: Services, who: str) -> dict[str, Any] | None:
    """The user with this id or e-mail, as the Users event store has them now (not the
    read model, which may lag a change just made)."""
    users = services.applications.users
    try:
        user_id: UUID | None = UUID(who)
    except ValueError:
        user_id = users.find_user_id(who)
    if user_id is None:
        return None
    try:
        return shown(services, user_id)
    except DomainError:
        return None


@router.get("")
async def users_page(
    request: Request,
    operator: CurrentOperator,
    services: ServicesDep,
    who: Annotated[str | None, Query(max_length=MAX_WHO)] = None,
) -> HTMLResponse:
    who = (who or "").strip()
    user = await run_in_threadpool(find, services, who) if who else None
    return page(
        request,
        "users.html",
        status=404 if who and user is None else 200,
        operator=operator,
        section="users",
        who=who,
        user=user,
        roles=ROLES,
    )


def act_and_show(
    request: Request,
    services: Services,
    operator: Operator,
    user_id: UUID,
    action: str,
    change: Any,
) -> HTMLResponse:
    """Run the command, record it, and answer the user's panel as it now is."""
    try:
        managed = act_on_user(services, user_id, change)
    except DomainError as refused:
        body = fragment("user_refused.html", code=refused.code, message=str(refused))
        return HTMLResponse(
            body, status_code=STATUS_OF.get(refused.code, 409), headers=PAGE_HEADERS
        )
    target = f"user {user_id}"  # by id, never the e-mail: the record outlives an erasure
    outcome = (
        f"role {managed.role}, {'disabled' if managed.disabled else 'enabled'}"
        f"{'' if managed.changed else ' (already so)'}"
    )
    operator_actions(request, services).record(
        operator.user_id, operator_email(services, operator), action, target, outcome
    )
    body = fragment(
        "panels/user.html",
        user=shown(services, user_id),
        roles=ROLES,
        operator=operator,
        done={"action": action, "target": target, "outcome": outcome},
    )
    return HTMLResponse(body, headers=PAGE_HEADERS)


@router.post("/{user_id}/role")
def change_role(
    body: RoleChange,
    request: Request,
    operator: ActingOperator,
    services: ServicesDep,
    user_id: UUID,
) -> HTMLResponse:
    return act_and_show(
        request,
        services,
        operator,
        user_id,
        "user role",
        lambda users: users.change_role(user_id, body.role),
    )


# Declared after /role: Starlette tries paths in order, and "role" fits {action}.
@router.post("/{user_id}/{action}")
def switch_user(
    request: Request,
    operator: ActingOperator,
    services: ServicesDep,
    user_id: UUID,
    action: Annotated[str, PathParam(pattern="^(disable|enable)$")],
) -> HTMLResponse:
    command = SWITCHES[action][0]
    return act_and_show(
        request,
        services,
        operator,
        user_id,
        f"user {action}",
        lambda users: command(users, user_id),
    )
