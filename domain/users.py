"""Users: registration with a unique e-mail, and the credentials login checks."""

from __future__ import annotations

import re
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from domain.errors import Conflict, InvalidInput, NotFound
from domain.idempotency import claim_key, save_with_key

ROLES = ("customer", "seller", "admin")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
EMAIL_NAMESPACE = uuid5(NAMESPACE_URL, "eventmart:email")


class EmailTaken(Conflict):
    code = "email_taken"


class InvalidEmail(InvalidInput):
    code = "invalid_email"


class UnknownRole(InvalidInput):
    code = "unknown_role"


class UserNotFound(NotFound):
    code = "user_not_found"


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 254 or not EMAIL_PATTERN.match(email):
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

    @staticmethod
    def register(email: str, password_hash: str, display_name: str, role: str = "customer") -> User:
        email = normalise_email(email)
        if role not in ROLES:
            raise UnknownRole(f"role must be one of {', '.join(ROLES)}")
        display_name = display_name.strip()
        if not display_name:
            raise InvalidInput("display_name must not be blank")
        return User(email=email, password_hash=password_hash, display_name=display_name, role=role)


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
