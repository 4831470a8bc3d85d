"""Users domain: given no events, when registering, then Registered; rules first."""

from __future__ import annotations

import pytest

from domain.errors import InvalidInput
from domain.idempotency import IdempotencyKeyReused
from domain.users import (
    EmailIndex,
    EmailTaken,
    InvalidEmail,
    UnknownRole,
    User,
    UserErased,
    Users,
)


def test_register_records_a_registered_event_with_a_normalised_email():
    user = User.register("  Ada@Example.COM ", "hash", "Ada", "seller")
    (registered,) = user.collect_events()
    assert isinstance(registered, User.Registered)
    assert registered.email == "ada@example.com"
    assert (user.email, user.role, user.display_name) == ("ada@example.com", "seller", "Ada")


@pytest.mark.parametrize(
    "email", ["", "no-at-sign", "two@@example.com", "spaces in@example.com", "a@b"]
)
def test_register_refuses_what_is_not_an_email(email: str):
    with pytest.raises(InvalidEmail):
        User.register(email, "hash", "Ada")


def test_register_refuses_unknown_roles_and_blank_names():
    with pytest.raises(UnknownRole):
        User.register("ada@example.com", "hash", "Ada", "superuser")
    with pytest.raises(InvalidInput):
        User.register("ada@example.com", "hash", "   ")


def test_the_email_index_id_is_derived_from_the_email():
    assert EmailIndex.create_id("ada@example.com") == EmailIndex.create_id("ada@example.com")
    assert EmailIndex.create_id("ada@example.com") != EmailIndex.create_id("bob@example.com")


def test_the_event_store_refuses_a_second_registration_of_an_email():
    users = Users()  # in-memory persistence: no I/O
    first = users.register_user("ada@example.com", "hash", "Ada")
    with pytest.raises(EmailTaken):
        users.register_user("ADA@example.com", "hash", "Ada Again")
    assert users.find_user_id("ada@example.com") == first
    assert users.get_user(first).display_name == "Ada"
    assert users.find_user_id("nobody@example.com") is None
    assert users.find_user_id("not an email") is None


def test_an_idempotency_key_replays_the_first_registration():
    users = Users()
    first = users.register_user(
        "ada@example.com", "h1", "Ada", idempotency_key="k", fingerprint="f"
    )
    again = users.register_user(
        "ada@example.com", "h2", "Ada", idempotency_key="k", fingerprint="f"
    )
    assert again == first
    with pytest.raises(IdempotencyKeyReused):
        users.register_user(
            "ada@example.com", "h3", "Ada", idempotency_key="k", fingerprint="other"
        )
    with pytest.raises(EmailTaken):
        users.register_user("ada@example.com", "h4", "Ada", idempotency_key="k2", fingerprint="f")


def test_an_operator_changes_a_role_disables_and_enables_a_user():
    users = Users()
    user_id = users.create_admin("root@example.com", "hash", "Root")
    assert users.get_user(user_id).role == "admin"
    assert users.change_role(user_id, "customer") is True
    assert users.change_role(user_id, "customer") is False  # already: no event
    assert users.disable_user(user_id) is True and users.disable_user(user_id) is False
    assert users.get_user(user_id).disabled
    assert users.enable_user(user_id) is True and not users.get_user(user_id).disabled
    history = [type(event).__qualname__ for event in users.events.get(user_id)]
    assert history == ["User.Registered", "User.RoleChanged", "User.Disabled", "User.Enabled"]
    changed = users.events.get(user_id, gt=1, lte=2)
    (role_changed,) = list(changed)
    assert (role_changed.role, role_changed.previous_role) == ("customer", "admin")


def test_a_role_outside_the_three_is_refused_and_changes_nothing():
    users = Users()
    user_id = users.register_user("ada@example.com", "hash", "Ada")
    with pytest.raises(UnknownRole):
        users.change_role(user_id, "superuser")
    assert users.get_user(user_id).version == 1


def test_the_roles_the_http_api_takes_are_the_domains():
    from typing import get_args

    from api.routes.ops_users import Role
    from domain.users import ROLES

    assert set(get_args(Role)) == set(ROLES)


def test_an_erased_user_is_refused_for_good_and_the_event_names_nothing_personal():
    users = Users()
    user_id = users.register_user("ada@example.com", "hash", "Ada")
    assert users.erase_user(user_id) is True
    assert users.erase_user(user_id) is False  # already: no second event
    user = users.get_user(user_id)
    assert user.erased and user.disabled
    with pytest.raises(UserErased):
        users.enable_user(user_id)
    erased = list(users.events.get(user_id))[-1]
    assert type(erased).__qualname__ == "User.Erased"
    assert set(vars(erased)) == {"originator_id", "originator_version", "timestamp"}
    assert users.get_user(user_id).version == 2
