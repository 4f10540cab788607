"""Per-user resources. They carry no purpose argument: they are read for the caller's default purpose."""

from __future__ import annotations

from ..privacy.subjects import UserId
from ..privacy.surface import resource
from ..usecases.app import Scope
from ..usecases.views import ConsentLedgerView, ProfileView


@resource("profile://{user_id}", title="Profile")
async def profile(scope: Scope, user_id: UserId) -> ProfileView:
    """The user's profile as this caller may see it for its default purpose."""
    return await scope.app.profiles.view(scope.access, user_id, None)


@resource("consent://{user_id}", title="Consent ledger", purpose="service")
async def consent(scope: Scope, user_id: UserId) -> ConsentLedgerView:
    """The user's consent decision for every purpose now, and the full history of records."""
    return await scope.app.consents.ledger(scope.access, user_id)
