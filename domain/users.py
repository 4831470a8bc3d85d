"""Users: registration with a unique e-mail, the credentials login checks, and what
operators change later (a user's role; disabling and enabling a user), and a user's own
erasure (GDPR art. 17): an erased user is disabled for good. Every authenticated request
reads the user's current state, so a change counts at once."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import Conflict, InvalidInput, NotFound
from domain.idempotency import claim_key, save_with_key
from domain.limits import (
    CONTROL_CHARACTERS,
    MAX_DISPLAY_NAME_LENGTH,
    MAX_EMAIL_LENGTH,
    check_text,
)

ROLES = ("customer", "seller", "admin")
_EMAIL_PART = f"[^@\\s{CONTROL_CHARACTERS}\ud800-\udfff]+"
EMAIL_PATTERN = re.compile(f"^{_EMAIL_PART}@{_EMAIL_PART}\\.{_EMAIL_PART}$")
EMAIL_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:email")


class EmailTaken(Conflict):
    code = "email_taken"


class InvalidEmail(InvalidInput):
    code = "invalid_email"


class UnknownRole(InvalidInput):
    code = "unknown_role"


class UserNotFound(NotFound):
    code = "user_not_found"


class UserErased(Conflict):
    code = "user_erased"


def normalise_email(email: str) -> str:
    email = email.strip().lower() if isinstance(email, str) else ""
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL_PATTERN.fullmatch(email):
        raise InvalidEmail(f"not an e-mail address: {email!r}")
    return email


class User(Aggregate):
    """A person who buys or sells. The password hash never leaves the write side."""

    @event("Registered")
    def __init__(self, email: str, password_hash: str, display_name: str, role: str) -> None:
        self.email = email
        self.password_hash = password_hash
        self.display_name = display_name
        self.role = role
        self.disabled = False
        self.erased = False

    @staticmethod
    def register(email: str, password_hash: str, display_name: str, role: str = "customer") -> User:
        email = normalise_email(email)
        if role not in ROLES:
            raise UnknownRole(f"role must be one of {', '.join(ROLES)}")
        display_name = check_text("display_name", display_name, MAX_DISPLAY_NAME_LENGTH)
        return User(email=email, password_hash=password_hash, display_name=display_name, role=role)

    def change_role(self, role: str) -> bool:
        """To another role (False, and no event, if it is the role already)."""
        if role not in ROLES:
            raise UnknownRole(f"role must be one of {', '.join(ROLES)}")
        if role == self.role:
            return False
        self._role_changed(role=role, previous_role=self.role)
        return True

    @event("RoleChanged")
    def _role_changed(self, role: str, previous_role: str) -> None:
        self.role = role

    def disable(self) -> bool:
        """Tokens stop working and logins are refused until enabled again."""
        if self.disabled:
            return False
        self._disabled()
        return True

    @event("Disabled")
    def _disabled(self) -> None:
        self.disabled = True

    def enable(self) -> bool:
        if self.erased:
            raise UserErased(f"user {self.id} was erased and cannot be enabled")
        if not self.disabled:
            return False
        self._enabled()
        return True

    @event("Enabled")
    def _enabled(self) -> None:
        self.disabled = False

    def erase(self) -> bool:
        """Refused for good from now on (False, and no event, if erased already). The event
        names no personal data: it is the operator's record that the erasure happened;
        the personal fields themselves become unreadable when the user's data key is
        destroyed (eventmart.personal_data)."""
        if self.erased:
            return False
        self._erased()
        return True

    @event("Erased")
    def _erased(self) -> None:
        self.erased = True
        self.disabled = True


class EmailIndex(Aggregate):
    """Makes e-mails unique in the event store: its id is derived from the e-mail,
    so a second registration of it collides on (originator_id, version)."""

    @staticmethod
    def create_id(email: str, **_: Any) -> UUID:
        return uuid5(EMAIL_NAMESPACE, email)

    @event("Claimed")
    def __init__(self, email: str, user_id: UUID) -> None:
        self.email = email
        self.user_id = user_id


class Users(Application[UUID]):
    """Command entry point for the users context (tables `users_events`)."""

    name = "Users"

    def register_user(
        self,
        email: str,
        password_hash: str,
        display_name: str,
        role: str = "customer",
        *,
        idempotency_key: str | None = None,
        fingerprint: str = "",
    ) -> UUID:
        """Register, or with a known Idempotency-Key return the first registration's user."""
        user = User.register(email, password_hash, display_name, role)
        index = EmailIndex(email=user.email, user_id=user.id)
        claim = claim_key("register", idempotency_key, fingerprint, user)
        try:
            earlier = save_with_key(self, claim, user, index)
        except IntegrityError as error:
            raise EmailTaken(f"{user.email} is already registered") from error
        return user.id if earlier is None else earlier.replay(fingerprint)

    def create_admin(self, email: str, password_hash: str, display_name: str) -> UUID:
        """The one way an admin comes to be (the public API registers customers and
        sellers only): an operator's command on the machine."""
        return self.register_user(email, password_hash, display_name, "admin")

    def change_role(self, user_id: UUID, role: str) -> bool:
        """True if the role changed."""
        return self._changed(user_id, lambda user: user.change_role(role))

    def disable_user(self, user_id: UUID) -> bool:
        return self._changed(user_id, User.disable)

    def enable_user(self, user_id: UUID) -> bool:
        return self._changed(user_id, User.enable)

    def erase_user(self, user_id: UUID) -> bool:
        """True if this call erased the user (False: erased before)."""
        return self._changed(user_id, User.erase)

    def _changed(self, user_id: UUID, change: Callable[[User], bool]) -> bool:
        """Load, change, save with the version read: a racing change of the same user
        fails instead of being overwritten."""
        user = self.get_user(user_id)
        changed = change(user)
        self.save(user)
        return changed

    def find_user_id(self, email: str) -> UUID | None:
        try:
            email = normalise_email(email)
        except InvalidEmail:
            return None
        try:
            index: EmailIndex = self.repository.get(EmailIndex.create_id(email))
        except AggregateNotFoundError:
            return None
        return index.user_id

    def get_user(self, user_id: UUID) -> User:
        try:
            user: User = self.repository.get(user_id)
        except AggregateNotFoundError as error:
            raise UserNotFound(str(user_id)) from error
        return user
