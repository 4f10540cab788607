"""The data subject's rights of access and erasure, over every holder of personal data (``Runtime.holders``).

Export gathers what each holder hands over into one versioned document (``ExportView``, published as
``schema://export``). Erasure runs every holder's ``erase`` in the bootstrap's order, then asks each again what it
holds: the receipt says what went and that nothing is left, and names the subject only by the audit pseudonym they
had, which nothing links to them once their key is gone.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Sequence

import numpy as np

from ..domain import categories as cat
from ..domain.errors import NothingHeld
from ..domain.events import EVENT_TYPES
from ..domain.fields import FIELDS
from ..domain.ports import PersonalData
from ..privacy.gate import Access
from ..privacy.pseudonyms import Pseudonymizer
from .requests import Requests
from .views import (
    ATTRIBUTE_GROUPS,
    EXPORT_FORMAT,
    EXPORT_VERSION,
    ErasureReceipt,
    ExportedAccess,
    ExportedAttribute,
    ExportedAttributes,
    ExportedConsent,
    ExportedEvent,
    ExportedPreference,
    ExportedRequest,
    ExportedVector,
    ExportView,
    HolderReceipt,
)

# The database tables export places, by name; any other table of a subject is an error here (and in the inventory
# test), so a new table is exported on purpose, under a category, or not at all.
PLACED_TABLES = {"profiles", "attributes", "events", "consents", "preferences", "user_vectors", "pending_events",
                 "requests"}
_FIELD_CATEGORY = {spec.name: spec.category for spec in FIELDS}


class Rights:
    def __init__(self, holders: Sequence[PersonalData], pseudonyms: Pseudonymizer, requests: Requests) -> None:
        self.holders = tuple(holders)
        self.pseudonyms = pseudonyms
        self.requests = requests

    async def _known(self, user_id: str) -> dict[str, dict[str, int]]:
        """What each holder keeps about the subject; an unknown subject is an error. The audit alone does not
        make one known: a refused call about any id leaves an entry."""
        held = {h.holder: await h.held(user_id) for h in self.holders}
        if not any(counts for holder, counts in held.items() if holder != "audit_log"):
            raise NothingHeld(user_id)
        return held

    async def export(self, access: Access, user_id: str) -> ExportView:
        held = await self._known(user_id)
        parts = {h.holder: await h.export(user_id) for h in self.holders}
        database = dict(parts.get("database", {}))
        unplaced = sorted(set(database) - PLACED_TABLES)
        if unplaced:
            raise RuntimeError(f"tables {unplaced} hold subject data and have no place in the export")
        profile = (database.get("profiles") or [{}])[0]
        attributes: dict[str, list[ExportedAttribute]] = {}
        for row in database.get("attributes", []):
            attributes.setdefault(_group_of(row["field"]), []).append(ExportedAttribute(**row))
        events: list[ExportedEvent] = []
        emotional: list[ExportedEvent] = []
        for row in database.get("events", []):
            spec = EVENT_TYPES.get(row["event_type"])
            (emotional if spec is not None and spec.category == cat.EMOTIONAL else events).append(ExportedEvent(**row))
        preferences = [ExportedPreference(**row) for row in database.get("preferences", [])]
        vectors = [ExportedVector(model=row["model"], as_of=row["as_of"], values=_floats(row["vector"]))
                   for row in database.get("user_vectors", [])]
        indexed = parts.get("similarity_index", {}).get("vector")
        return ExportView(
            format=EXPORT_FORMAT, version=EXPORT_VERSION, user_id=user_id, exported_at=access.now,
            holders={name: counts for name, counts in held.items() if counts},
            created_at=profile.get("created_at"), updated_at=profile.get("updated_at"),
            attributes=ExportedAttributes(**attributes) if attributes else None,
            events=events, emotional_events=emotional,
            pending_events=[row["event_id"] for row in database.get("pending_events", [])],
            stated_preferences=[p for p in preferences if p.source == "explicit"],
            learned_preferences=[p for p in preferences if p.source != "explicit"],
            vector=vectors[0] if vectors else None,
            similarity_index=[float(x) for x in indexed] if indexed is not None else None,
            consent_history=[ExportedConsent(**row) for row in database.get("consents", [])],
            requests=[ExportedRequest(**row) for row in database.get("requests", [])],
            accesses=[ExportedAccess(**entry) for entry in parts.get("audit_log", {}).get("entries", [])],
        )

    async def erase(self, access: Access, user_id: str, request_id: int | None = None) -> ErasureReceipt:
        """Erase the subject everywhere; with ``request_id``, carry out that verified deletion request and keep the
        receipt with it (``get_request`` reads it back)."""
        request = None if request_id is None else await self.requests.deletion(access, request_id, user_id)
        await self._known(user_id)
        # Computed while the subject's key still exists: the name their audit entries keep, tied to nobody after.
        pseudonym = await self.pseudonyms.subject(user_id)
        removed = [(h, await h.erase(user_id)) for h in self.holders]
        receipts = [HolderReceipt(holder=h.holder, removed=counts, remaining=await h.held(user_id))
                    for h, counts in removed]
        receipt = ErasureReceipt(
            receipt_id=secrets.token_hex(8), erased_at=access.now, audit_pseudonym=pseudonym,
            holders=receipts, complete=not any(r.remaining for r in receipts), request_id=request_id)
        if request is not None:
            await self.requests.close(access, request, receipt.model_dump(mode="json", exclude={"withheld"}))
        return receipt


def _group_of(field: str) -> str:
    category = _FIELD_CATEGORY.get(field)
    for group, covering in ATTRIBUTE_GROUPS.items():
        if category is not None and cat.covers(covering, category):
            return group
    raise RuntimeError(f"attribute {field!r} has no place in the export")


def _floats(encoded: str) -> list[float]:
    """A stored vector (float32, little-endian, base64 in the database's export) as numbers."""
    return [float(x) for x in np.frombuffer(base64.b64decode(encoded), dtype="<f4")]
