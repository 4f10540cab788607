"""The data subject's rights: access (export) and erasure. For the privacy officer only."""

from __future__ import annotations

from ..privacy.subjects import UserId
from ..privacy.surface import tool
from ..usecases.app import Scope
from ..usecases.views import ErasureReceipt, ExportView


@tool(title="Export user data", role="privacy_officer", purpose="service")
async def export_user_data(scope: Scope, user_id: UserId) -> ExportView:
    """Everything held about the user, from every store, as one versioned JSON document (schema://export):
    attributes with provenance, events, stated and learned preferences and the vector, consent history, and who
    accessed the user's data for which purposes. For a subject access or portability request."""
    return await scope.app.rights.export(scope.access, user_id)


@tool(title="Erase user", role="privacy_officer", purpose="service", read_only=False, destructive=True,
      idempotent=False)
async def erase_user(scope: Scope, user_id: UserId, request_id: int | None = None) -> ErasureReceipt:
    """Erase the user from every store: profile, events, consent history, preferences, vectors in the similarity
    index, the shared model (their history taken out, as a refit without them would), queued signals and cached
    keys. Old audit entries stay but nothing links them to the person any more. Cannot be undone. Returns a receipt
    without personal data: per store what was removed and a re-check that finds nothing left. With request_id (a
    verified deletion request of this user), the request is completed and keeps the receipt, which get_request
    shows."""
    return await scope.app.rights.erase(scope.access, user_id, request_id)
