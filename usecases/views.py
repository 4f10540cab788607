"""Result models. Each field declares its data category; the gate withholds field by field.

The profile sections are built from the field catalog, so the catalog stays the single source of categories.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, create_model

from ..domain import categories as cat
from ..domain.fields import ATTRIBUTE_SECTIONS, SECTIONS, in_section
from ..privacy.disclosure import Derived, GatedResult, derived, disclosed, operational, public


class AttributeView(BaseModel):
    value: str | list[str] = Field(description="The value.")
    source: str = Field(description="explicit, implicit, external:<system> or inferred:<model>.")
    confidence: float = Field(description="0 to 1.")
    observed_at: datetime = Field(description="When it was observed or stated.")


class BehaviorView(BaseModel):
    event_counts: dict[str, int] = Field(description="Events by type, all time.")
    purchases: int
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    active_hours_utc: list[int] = Field(description="Most active hours (UTC), most active first.")
    active_weekdays: list[str]
    recent_items: list[str] = Field(description="Items interacted with recently, newest first.")


class EmotionalView(BaseModel):
    check_ins: int
    mood_counts: dict[str, int]
    last_mood: str | None = None
    average_intensity: float | None = None


def _section_model(section: str) -> type[BaseModel]:
    fields: dict[str, Any] = {f.name: (AttributeView | None, disclosed(f.category, f.description))
                              for f in in_section(section)}
    return create_model(f"{section.title()}Section", **fields)


SECTION_MODELS: dict[str, type[BaseModel]] = {s: _section_model(s) for s in ATTRIBUTE_SECTIONS}
IdentitySection = SECTION_MODELS["identity"]
DemographicsSection = SECTION_MODELS["demographics"]
LocationSection = SECTION_MODELS["location"]
CommunicationSection = SECTION_MODELS["communication"]
PsychographicsSection = SECTION_MODELS["psychographics"]
PreferencesSection = SECTION_MODELS["preferences"]

Section = Literal[SECTIONS]  # type: ignore[valid-type]


class ProfileView(GatedResult):
    user_id: str = operational("The user the profile is about.")
    purpose: str = operational("The purpose the profile was read for.")
    identity: IdentitySection | None = None  # type: ignore[valid-type]
    demographics: DemographicsSection | None = None  # type: ignore[valid-type]
    location: LocationSection | None = None  # type: ignore[valid-type]
    communication: CommunicationSection | None = None  # type: ignore[valid-type]
    psychographics: PsychographicsSection | None = None  # type: ignore[valid-type]
    preferences: PreferencesSection | None = None  # type: ignore[valid-type]
    behavior: BehaviorView | None = disclosed(cat.BEHAVIOR, "Behaviour summary derived from events.")
    emotional: EmotionalView | None = disclosed(cat.EMOTIONAL, "Emotional patterns from mood check-ins.")


# The view names every section (it is the output schema); it names them in the catalog's order.
assert [n for n in ProfileView.model_fields if n in SECTIONS] == list(SECTIONS)


class ProfileUpdate(GatedResult):
    user_id: str = operational("The user updated.")
    created: bool = operational("True when this call created the profile.")
    updated: list[str] = operational("Attributes written.")
    source: str = operational("The provenance recorded with them.")


class EventsRecorded(GatedResult):
    recorded: int = operational("How many events were stored.")
    event_ids: list[int] = operational("Their ids, in the order given.")
    learning: Literal["applied", "queued", "none"] = operational(
        "Whether preferences were updated within the call (realtime) or queued for the next learning run (batch).")


class ConsentView(GatedResult):
    user_id: str = operational("The user.")
    purpose: str = operational("The purpose asked about.")
    basis: str = public("The purpose's legal basis: contract, consent or explicit_consent.")
    allowed: bool | None = disclosed(cat.CONSENT, "Whether the purpose may be used for this user now.")
    reason: str | None = disclosed(
        cat.CONSENT, "contract, granted, no_record, denied, withdrawn, expired, restricted, objected or sale_opt_out.")
    explanation: str | None = disclosed(cat.CONSENT, "The decision in plain words.")
    source: str | None = disclosed(cat.CONSENT, "Where the deciding record came from.")
    recorded_at: datetime | None = disclosed(cat.CONSENT, "When the deciding record was made.")
    expires_at: datetime | None = disclosed(cat.CONSENT, "When a grant lapses, if it does.")


class ConsentEntry(BaseModel):
    purpose: str
    state: str
    source: str
    recorded_at: datetime
    expires_at: datetime | None = None
    evidence: str | None = None


class StandingRecordView(GatedResult):
    user_id: str = operational("The user.")
    record: str = operational("What was recorded: global_privacy_control, do_not_sell_or_share, restriction or "
                              "objection.")
    lifted: bool = operational("True when this record lifted an earlier one of the same kind.")
    decisions: list[ConsentView] = Field(default_factory=list,
                                         description="The decision now for every purpose the record covers.")


class ConsentLedgerView(GatedResult):
    user_id: str = operational("The user.")
    decisions: list[ConsentView] = Field(default_factory=list, description="The decision for every purpose now.")
    history: list[ConsentEntry] | None = disclosed(cat.CONSENT, "Every consent record, oldest first.")


class RequestView(GatedResult):
    request_id: int = operational("The request's id, for get_request and update_request.")
    user_id: str | None = disclosed(cat.REQUESTS, "The subject; absent once they were erased.")
    subject: str | None = disclosed(cat.REQUESTS, "The audit log's pseudonym for the subject.")
    kind: str | None = disclosed(
        cat.REQUESTS, "access, deletion, correction, restriction, objection or opt_out_sale.")
    regime: str | None = disclosed(cat.REQUESTS, "gdpr (due in one month) or ccpa (due in 45 days).")
    requested_by: str | None = disclosed(cat.REQUESTS, "The caller that made or relayed the request.")
    verification: str | None = disclosed(cat.REQUESTS, "How the subject was verified, or 'unverified'.")
    status: str | None = disclosed(cat.REQUESTS, "received, verified, in_progress, completed or denied.")
    reason: str | None = disclosed(cat.REQUESTS, "Why it was denied.")
    details: str | None = disclosed(cat.REQUESTS, "What the subject asked, in their words.")
    created_at: datetime | None = disclosed(cat.REQUESTS, "When it was received.")
    updated_at: datetime | None = disclosed(cat.REQUESTS, "When its status last changed.")
    due_at: datetime | None = disclosed(cat.REQUESTS, "When the answer is legally due.")
    overdue: bool | None = disclosed(cat.REQUESTS, "Still open past its due date.")
    receipt: dict[str, Any] | None = disclosed(cat.REQUESTS, "For an erasure: what was removed, per store.")


class RequestListView(GatedResult):
    requests: list[RequestView] = Field(default_factory=list, description="Matching requests, oldest first.")


class CollectionView(BaseModel):
    purposes: list[str] = Field(description="Any one of them is a basis: the caller acts for it, the user "
                                "consents to it (or it rests on the contract).")
    basis: str = Field(description="Their legal basis: contract, consent or explicit_consent.")


class FieldView(BaseModel):
    name: str
    section: str
    category: str
    kind: str
    description: str
    choices: list[str] = Field(default_factory=list)
    direct_identifier: bool
    collected: CollectionView | None = Field(None, description="What a written value is stored for; absent for "
                                             "fields derived from events, which are never written.")


class EventTypeView(BaseModel):
    name: str
    description: str
    category: str
    collected: CollectionView = Field(description="What the event is stored for.")
    learned: CollectionView | None = Field(None, description="What preferences are learned from it for; absent "
                                           "when it gives no preference signal.")


class FieldCatalogView(GatedResult):
    fields: list[FieldView] = public("Every profile field with its section, data category, value type and what it "
                                     "is collected for.")
    events: list[EventTypeView] = public("Every event type with its data category and what it is collected and "
                                         "learned from for.")
    inferred: CollectionView = public("What a value written with source inferred:<model> needs as well as its "
                                      "field's own collection.")
    categories: list[str] = public("The data categories; a grant of one covers those below it.")


class PurposeView(BaseModel):
    name: str
    basis: str
    description: str
    uses: list[str]
    needs_identifiers: bool
    individual: bool


class PurposesView(GatedResult):
    purposes: list[PurposeView] = public("The closed set of purposes with what each may use.")


class HeldSection(BaseModel):
    section: str
    category: str
    fields: list[str] = Field(description="Fields that hold a value; the values are not shown here.")


class PrivacySummaryView(GatedResult):
    user_id: str = operational("The user.")
    held: list[HeldSection] | None = disclosed(
        cat.CONSENT + ".transparency", "What kinds of data are held about the user (not the values).")
    decisions: list[ConsentView] = Field(default_factory=list, description="The consent decision per purpose.")


class PreferenceItem(Derived):
    token: str = Field(description="facet:value, e.g. note:lavender.")
    facet: str
    value: str
    weight: float = Field(description="Positive likes, negative dislikes; implicit weights decay with time.")
    confidence: float = Field(description="0 to 1; grows with evidence; 1 for what the user stated.")
    source: Literal["explicit", "implicit"]
    evidence_count: int = Field(description="How many signals stand behind the weight.")
    evidence_event_ids: list[int] = Field(description="The most recent events behind it.")
    last_update: datetime


class PreferencesView(GatedResult):
    user_id: str = operational("The user.")
    purpose: str = operational("The purpose they were read for.")
    preferences: list[PreferenceItem] | None = derived(
        "Learned (user.preference.learned) and stated (user.preference.stated, source explicit) preferences, "
        "strongest first; each leaves only when its category may.")


class SimilarUser(Derived):
    pseudonym: str = Field(description=(
        "A name for this neighbour within this response only, to tell its neighbours apart: random, made fresh for "
        "every response, derived from neither the user id nor any key. It is not stable: the same person has a "
        "different name in every response, for every caller, so the name itself cannot be followed across calls, "
        "matched between callers or with the audit log, or tied to a user id (what the entry shows besides the "
        "name can still be paired: see neighbours)."))
    similarity: float = Field(description=(
        "Cosine similarity of the two users' preference vectors, -1 to 1, rounded to the nearest 0.05."))
    shared_preferences: list[str] = Field(description=(
        "At most three tokens both like, strongest jointly first; only from this user's preferences the caller may "
        "see (its lineage names which: user.preference.stated, user.preference.learned)."))


class SimilarUsersView(GatedResult):
    user_id: str = operational("The user the search started from.")
    min_similarity: float = operational("Neighbours whose similarity as shown (rounded) is below this were left out.")
    neighbours: list[SimilarUser] | None = disclosed(
        cat.INFERRED + ".similar_users",
        "Users with similar preferences who consent to profiling, most similar first. What an entry shows is "
        "coarsened (similarity rounded to 0.05, at most three shared preferences) so that it matches fewer people, "
        "but it is not guaranteed to match only one: similarity and shared preferences are symmetric (B in A's "
        "list shows what A shows in B's), so a caller that may ask about both can still pair two entries when "
        "what they show is unique to them.")
    note: str | None = operational("Why the list is short or empty, when it is.", default=None)


class Reason(Derived):
    text: str = Field(description="Why, in plain words.")


class RecommendedItem(Derived):
    item_id: str
    title: str
    kind: str
    score: float = Field(description="Relative relevance; higher is better.")
    reasons: list[Reason] = Field(description="Why, each with the categories of the data it cites.")


class RecommendationsView(GatedResult):
    user_id: str = operational("The user.")
    purpose: str = operational("The purpose they were made for.")
    items: list[RecommendedItem] | None = disclosed(
        cat.PREFERENCE + ".recommendations",
        "Recommended items, best first, with reasons. Each item's lineage names the categories its ranking was "
        "computed from; data the caller may not see or the purpose may not use is not used at all (it is listed "
        "as an input: entry in withheld).")
    fallback: str | None = operational(
        "Set when we know too little about the user: the list is the named fallback (popularity), not "
        "personal.", default=None)


# -- access and erasure (usecases/rights.py) ---------------------------------------------------------------------
EXPORT_FORMAT = "mnky-profiles/export"
EXPORT_VERSION = 1  # raised when a field is renamed or removed; fields are only ever added within a version

# Profile attributes in the export, grouped by the data category each group holds (every stored field is in one).
ATTRIBUTE_GROUPS = {
    "name": cat.NAME,
    "contact": cat.CONTACT,
    "demographic": cat.DEMOGRAPHIC,
    "location": cat.LOCATION,
    "communication": cat.PREFERENCE + ".communication",
    "psychographic": cat.PSYCHOGRAPHIC,
    "stated_preferences": cat.STATED_PREFERENCE,
}


class ExportedAttribute(BaseModel):
    field: str = Field(description="The profile field (schema://profile).")
    value: Any = Field(description="The value as stored.")
    source: str = Field(description="Provenance: explicit, implicit, external:<system> or inferred:<model>.")
    confidence: float
    observed_at: datetime


class ExportedAttributes(BaseModel):
    name: list[ExportedAttribute] | None = disclosed(cat.NAME, "Display name.")
    contact: list[ExportedAttribute] | None = disclosed(cat.CONTACT, "Email and phone.")
    demographic: list[ExportedAttribute] | None = disclosed(cat.DEMOGRAPHIC, "Age band, language, background.")
    location: list[ExportedAttribute] | None = disclosed(cat.LOCATION, "Country, region, city, postal code.")
    communication: list[ExportedAttribute] | None = disclosed(cat.PREFERENCE + ".communication",
                                                              "How and how often to reach the user.")
    psychographic: list[ExportedAttribute] | None = disclosed(cat.PSYCHOGRAPHIC, "Types, values, interests.")
    stated_preferences: list[ExportedAttribute] | None = disclosed(cat.STATED_PREFERENCE, "Likes and dislikes.")


assert set(ExportedAttributes.model_fields) == set(ATTRIBUTE_GROUPS)


class ExportedEvent(BaseModel):
    id: int
    event_type: str
    item_id: str | None = None
    properties: dict[str, Any]
    occurred_at: datetime
    recorded_at: datetime


class ExportedPreference(BaseModel):
    token: str = Field(description="What the preference is for, e.g. note:lavender.")
    source: str = Field(description="explicit (stated) or implicit (learned from events).")
    weight: float
    ref_at: datetime = Field(description="The time the weight is as of (it decays from there).")
    evidence_count: int
    evidence: Any = Field(description="The events or statements it was learned from.")
    updated_at: datetime


class ExportedVector(BaseModel):
    model: str = Field(description="The embedder that made it.")
    as_of: datetime
    values: list[float]


class ExportedConsent(BaseModel):
    id: int
    purpose: str
    state: str
    source: str
    evidence: str | None = None
    recorded_at: datetime
    expires_at: datetime | None = None


class ExportedRequest(BaseModel):
    id: int
    kind: str
    regime: str
    requested_by: str
    verification: str
    status: str
    reason: str | None = None
    details: str | None = None
    created_at: datetime
    updated_at: datetime
    due_at: datetime


class ExportedWithholding(BaseModel):
    field: str
    category: str
    reason: str


class ExportedAccess(BaseModel):
    seq: int = Field(description="The entry's place in the audit chain.")
    at: datetime
    caller: str = Field(description="Who asked.")
    action: str = Field(description="What they called, e.g. tool:get_profile.")
    purpose: str | None = None
    outcome: str
    released: list[str] = Field(description="The fields that left (names, not values).")
    withheld: list[ExportedWithholding]


class ExportView(GatedResult):
    """Everything held about one user, from every holder of personal data (``Runtime.holders``)."""

    format: str = public("Always mnky-profiles/export.")
    version: int = public("The export format's version; its JSON Schema is schema://export.")
    user_id: str = operational("The user.")
    exported_at: datetime = operational("When the export was made.")
    holders: dict[str, dict[str, int]] = operational(
        "Each holder that keeps something about the user (database, similarity_index, audit_log, pseudonym_cache, "
        "shared_model), with how many records of each kind.")
    created_at: datetime | None = disclosed(cat.BEHAVIOR, "When the profile was made.")
    updated_at: datetime | None = disclosed(cat.BEHAVIOR, "When it last changed.")
    attributes: ExportedAttributes | None = Field(None, description="Profile attributes with provenance, by "
                                                  "category; an attribute may have a value from several sources.")
    events: list[ExportedEvent] | None = disclosed(cat.BEHAVIOR, "Behavioural events, oldest first.")
    emotional_events: list[ExportedEvent] | None = disclosed(cat.EMOTIONAL, "Mood check-ins.")
    pending_events: list[int] | None = disclosed(cat.BEHAVIOR, "Ids of events queued for batch learning.")
    stated_preferences: list[ExportedPreference] | None = disclosed(cat.STATED_PREFERENCE,
                                                                    "Preference weights from what the user said.")
    learned_preferences: list[ExportedPreference] | None = disclosed(
        cat.LEARNED_PREFERENCE, "Preference weights learned from behaviour, with their evidence.")
    vector: ExportedVector | None = disclosed(cat.LEARNED_PREFERENCE, "The preference vector as stored.")
    similarity_index: list[float] | None = disclosed(
        cat.LEARNED_PREFERENCE, "The vector as the similarity index holds it (only with consent to profiling).")
    consent_history: list[ExportedConsent] | None = disclosed(cat.CONSENT, "Every consent record, oldest first.")
    requests: list[ExportedRequest] | None = disclosed(
        cat.CONSENT + ".requests", "The user's data subject requests, open and past, oldest first.")
    accesses: list[ExportedAccess] | None = disclosed(
        cat.CONSENT, "From the audit log: each call about the user, by whom, for which purpose, with what outcome "
        "and which fields left (never their values).")


class HolderReceipt(BaseModel):
    holder: str
    removed: dict[str, int] = Field(description="What was removed (or, for the audit log, made unlinkable), "
                                    "by kind.")
    remaining: dict[str, int] = Field(description="What the holder keeps about the user when asked again after "
                                      "the erasure; empty when nothing is left.")


class ErasureReceipt(GatedResult):
    receipt_id: str = operational("Names this erasure; holds nothing about the person.")
    erased_at: datetime = operational("When.")
    audit_pseudonym: str = operational(
        "The name the audit log gave the user before erasure: their old entries stay under it, tied to nobody.")
    holders: list[HolderReceipt] = operational("Per holder of personal data, in the order they were erased.")
    complete: bool = operational("True when every holder, asked again, keeps nothing about the user.")
    request_id: int | None = operational("The deletion request this erasure carried out, when it carried one out.",
                                         default=None)


class ExportSchemaView(GatedResult):
    json_schema: dict[str, Any] = public("The JSON Schema of export_user_data's result (mnky-profiles/export).")
