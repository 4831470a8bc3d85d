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


class ConcurrentUpdate(Conflict):
    """Another writer saved the same aggregate first; reloading and retrying is safe."""

    code = "concurrent_update"
