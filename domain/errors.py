"""Errors an agent can act on (each says what went wrong and what to do next), and the one backend failure."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the model can act on; ``code`` is stable, the message is for the agent."""

    code = "error"

    def __init__(self, message: str, next_step: str | None = None) -> None:
        self.message = message
        self.next_step = next_step
        super().__init__(message if not next_step else f"{message} {next_step}")


class InvalidArgument(DomainError):
    code = "invalid_argument"


class UnknownUser(DomainError):
    code = "unknown_user"

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"No profile exists for user_id {user_id!r}.",
            "Check the id, or create the profile with update_profile(user_id, attributes, create=true).",
        )


class NothingHeld(DomainError):
    """An access or erasure request for an id the server keeps nothing about."""

    code = "unknown_user"

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"Nothing is held about user_id {user_id!r}: no profile, events, vectors or model history.",
            "Check the id (ids are case-sensitive). A user erased before stays unknown: the receipt of that "
            "erasure is its record.",
        )


class UnknownItem(DomainError):
    code = "unknown_item"


class NotPermitted(DomainError):
    """The caller acts outside its roles, purposes, categories or bound subject."""

    code = "not_permitted"


class ConsentRequired(DomainError):
    """The subject has not (or no longer) consented to the purpose."""

    code = "consent_required"


class Conflict(DomainError):
    code = "conflict"


class StoreUnavailable(Exception):
    """A backend (the database, a vector index, the embedding service) failed or cannot be used as configured.

    Adapters raise it ``from`` the driver's error, with a message for the operator that says what failed and what
    to change. The rest of the server sees only this type; an agent is told the store is unavailable, to retry.
    """
