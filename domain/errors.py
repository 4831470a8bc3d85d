"""Domain errors shared by every bounded context; each context names its own subclasses."""

from __future__ import annotations


class DomainError(Exception):
    """A business rule said no. `code` is the machine-readable name clients see."""

    code = "domain_error"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class InvalidInput(DomainError):
    code = "invalid_input"
