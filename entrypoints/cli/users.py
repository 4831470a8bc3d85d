"""`eventmart ops users`: make an admin, change a user's role, disable and enable a user.

These act on the Users event store directly, as the API does: a change counts for the
user's very next request (tokens are checked against the user's current state)."""

from __future__ import annotations

import json
from typing import Annotated, Any
from uuid import UUID

import typer

from entrypoints.cli.shared import console
from eventmart.settings import get_settings

app = typer.Typer(
    help="Users as operators manage them: create admins, change roles, disable and enable. "
    "USER is a user id or an e-mail address.",
    no_args_is_help=True,
)

UserArgument = Annotated[str, typer.Argument(help="A user id or an e-mail address.")]


def _users() -> Any:
    from domain.users import Users
    from eventmart.wiring import build_application

    return build_application(Users, get_settings(), pool_size=1)


def _user_id(users: Any, who: str) -> UUID:
    try:
        return UUID(who)
    except ValueError:
        found = users.find_user_id(who)
        if found is None:
            console.print(f"[red]no user with the e-mail {who!r}[/]")
            raise typer.Exit(1) from None
        return found  # type: ignore[no-any-return]


def _report(**fields: Any) -> None:
    print(json.dumps(fields, default=str))


def _acting_on_user(change: str, who: str, *args: Any) -> None:
    """Run Users.<change>(user_id, *args); unknown users and refused values exit 1."""
    from domain.errors import DomainError

    users = _users()
    try:
        user_id = _user_id(users, who)
        changed = getattr(users, change)(user_id, *args)
        user = users.get_user(user_id)
        cipher = getattr(users.mapper, "fields_cipher", None)  # the e-mail is sealed
        email = user.email if cipher is None else cipher.open(user.email)
    except DomainError as error:
        console.print(f"[red]{error.code}: {error}[/]")
        raise typer.Exit(1) from error
    finally:
        users.close()
    _report(user_id=user_id, email=email, role=user.role, disabled=user.disabled, changed=changed)


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Argument(help="The admin's e-mail (their login).")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="EVENTMART_ADMIN_PASSWORD",
            help="Asked for when not given (or read from EVENTMART_ADMIN_PASSWORD).",
        ),
    ],
    display_name: Annotated[str, typer.Option(help="The name shown for them.")] = "Admin",
) -> None:
    """Register an admin: the only way one comes to be (the API registers customers and
    sellers only)."""
    from api.security import MAX_PASSWORD_BYTES, PasswordHasher
    from domain.errors import DomainError

    size = len(password.encode())
    if not 8 <= size <= MAX_PASSWORD_BYTES:
        console.print(f"[red]the password must be 8 to {MAX_PASSWORD_BYTES} bytes, not {size}[/]")
        raise typer.Exit(2)
    password_hash = PasswordHasher(get_settings().bcrypt_rounds).hash(password)
    users = _users()
    try:
        user_id = users.create_admin(email, password_hash, display_name)
    except DomainError as error:
        console.print(f"[red]{error.code}: {error}[/]")
        raise typer.Exit(1) from error
    finally:
        users.close()
    _report(user_id=user_id, email=email.strip().lower(), role="admin")


@app.command("set-role")
def set_role(
    user: UserArgument,
    role: Annotated[str, typer.Argument(help="customer, seller or admin.")],
) -> None:
    """Give a user another role. A demoted admin loses operations access on their next
    request, with the token they hold."""
    _acting_on_user("change_role", user, role)


@app.command("disable")
def disable(user: UserArgument) -> None:
    """Refuse the user's tokens and logins from now on (their data stays)."""
    _acting_on_user("disable_user", user)


@app.command("enable")
def enable(user: UserArgument) -> None:
    """Let a disabled user in again."""
    _acting_on_user("enable_user", user)
