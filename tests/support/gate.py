"""Support for the gate, audit, surface and bad-input tests.

Callers built from settings, users whose every field holds a marker (so a leak is a string search), the spec's
rule for what may leave, snapshots of every stored table, and walks over result models and their output.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

import sqlalchemy as sa
from pydantic import BaseModel

from mnky_profiles.domain.audit import AuditEntry
from mnky_profiles.domain.callers import Caller
from mnky_profiles.domain.catalog import Item
from mnky_profiles.domain.consent import ConsentRecord
from mnky_profiles.domain.events import Event
from mnky_profiles.domain.fields import FIELDS
from mnky_profiles.domain.profiles import Attribute
from mnky_profiles.domain.purposes import PURPOSES, Purpose
from mnky_profiles.privacy.disclosure import category_of
from mnky_profiles.privacy.surface import Handler
from mnky_profiles.server.catalog import CATALOG
from mnky_profiles.server.runtime import Runtime, callers_from
from mnky_profiles.server.settings import load_settings
from mnky_profiles.store.sql import schema
from mnky_profiles.store.sql.repositories import SQLRepositories

AUDIT_TABLES = ("audit_log", "audit_head")
# The spec's direct identifiers (display name, email, phone), written out here rather than read from the code.
DIRECT_IDENTIFIERS = ("user.name", "user.contact")
CONSENT_STATES = ("none", "granted", "denied", "withdrawn", "expired")
EMOTIONAL_MARKER = "irritable"  # moods are a closed set; no other output of these tests carries this word


def caller_from_settings(name: str, **settings: Any) -> Caller:
    """A caller exactly as the server builds it from a settings file's ``callers:`` entry."""
    return callers_from(load_settings(None, callers={name: settings}, local_caller=name))[name]


# -- what may leave ---------------------------------------------------------------------------------------------
def covers(grant: str, category: str) -> bool:
    if grant == "*":
        return category.startswith("user.")
    return category == grant or category.startswith(grant + ".")


def covered(grants: Any, category: str) -> bool:
    return any(covers(g, category) for g in grants)


@dataclass(frozen=True)
class Rule:
    """The spec's rule for one call: which categories may leave, and every reason one may not."""

    caller: Caller
    purpose: Purpose
    consented: bool
    anonymization: bool

    def reasons(self, category: str) -> set[str]:
        if category == "unclassified":
            return {"unclassified"}
        if category.startswith("system."):  # operational, public, aggregate, or values that carry their lineage
            return set()
        found = set()
        if not covered(self.caller.categories, category):
            found.add("caller_not_permitted")
        if not covered(self.purpose.uses, category):
            found.add("purpose_not_compatible")
        if self.anonymization and covered(DIRECT_IDENTIFIERS, category) and not (
                self.caller.identifiers and self.purpose.needs_identifiers):
            found.add("anonymized")
        if self.purpose.needs_consent and not self.consented:
            found.add("consent_missing")
        return found

    def allows(self, category: str) -> bool:
        return not self.reasons(category)


# -- a user whose every value is a marker ------------------------------------------------------------------------
@dataclass
class MarkedUser:
    user_id: str
    token: str
    consents: dict[str, str]
    markers: dict[str, str] = field(default_factory=dict)  # marker text -> data category
    sections: dict[str, str] = field(default_factory=dict)  # marker text -> profile section ("consent": ledger)
    attributes: dict[str, str] = field(default_factory=dict)  # "section.field" path -> data category
    behavior_item: str = ""

    def consented(self, purpose: str) -> bool:
        return self.decision(purpose)[0]

    def decision(self, purpose: str) -> tuple[bool, str]:
        """(allowed, reason) as the spec decides them for the seeded ledger."""
        if not PURPOSES[purpose].needs_consent:
            return True, "contract"
        state = self.consents.get(purpose, "none")
        return state == "granted", {"none": "no_record"}.get(state, state)

    def stored_consent_markers(self) -> list[str]:
        """The consent markers the ledger holds: every record has the source, every grant the evidence."""
        states = set(self.consents.values())
        held = [marker_for("user.consent", "source", self.token)] if states - {"none"} else []
        if states & {"granted", "withdrawn", "expired", "sale_opt_out"}:
            held.append(marker_for("user.consent", "evidence", self.token))
        return held


def marker_for(category: str, name: str, token: str) -> str:
    return f"{category}-{name}-{token}"


async def seed_marked_user(runtime: Runtime, user_id: str, token: str, consents: Mapping[str, str],
                           now: datetime) -> MarkedUser:
    """Every text field holds ``<category>-<field>-<token>``, tags the same, choice fields their last choice; a
    behaviour item, a mood check-in and consent records whose source and evidence are markers too."""
    user = MarkedUser(user_id, token, dict(consents))
    attributes = []
    for spec in FIELDS:
        if spec.kind == "derived":
            continue
        if spec.kind == "choice":
            value: Any = spec.choices[-1]
        else:
            value = marker_for(spec.category, spec.name, token)
            user.markers[value] = spec.category
            user.sections[value] = spec.section
            value = [value] if spec.kind == "tags" else value
        attributes.append(Attribute(spec.name, value, "explicit", 1.0, now - timedelta(hours=3)))
        user.attributes[f"{spec.section}.{spec.name}"] = spec.category
    user.behavior_item = marker_for("user.behavior", "item", token)
    user.markers[user.behavior_item] = "user.behavior"
    user.markers[EMOTIONAL_MARKER] = "user.emotional"
    source = marker_for("user.consent", "source", token)
    evidence = marker_for("user.consent", "evidence", token)
    user.markers[source] = user.markers[evidence] = "user.consent"
    user.sections |= {user.behavior_item: "behavior", EMOTIONAL_MARKER: "emotional", source: "consent",
                      evidence: "consent"}

    def record(purpose: str, state: str, hours: float, src: str = source, expires: datetime | None = None
               ) -> ConsentRecord:
        return ConsentRecord(user_id, purpose, state, src, now - timedelta(hours=hours),  # type: ignore[arg-type]
                             evidence if state == "granted" else None, expires)

    records: list[ConsentRecord] = []
    for purpose, state in consents.items():
        match state:
            case "granted":
                records.append(record(purpose, "granted", 1))
            case "denied":
                records.append(record(purpose, "denied", 1))
            case "withdrawn":
                records += [record(purpose, "granted", 2), record(purpose, "withdrawn", 1)]
            case "expired":
                records.append(record(purpose, "granted", 2, expires=now - timedelta(minutes=1)))
            case "sale_opt_out":
                records += [record(purpose, "granted", 2), record(purpose, "denied", 1, src="do_not_sell_or_share")]
    records.sort(key=lambda r: r.recorded_at)
    async with runtime.store.write() as repo:
        await repo.put_items([Item(user.behavior_item, "product", "Marked item", {"note": ["marked"]})])
        await repo.create_profile(user_id, now - timedelta(days=1))
        await repo.put_attributes(user_id, attributes)
        await repo.add_events([
            Event(user_id, "view", now - timedelta(hours=2), user.behavior_item),
            Event(user_id, "purchase", now - timedelta(hours=2), user.behavior_item, {"quantity": 1}),
            Event(user_id, "mood_check_in", now - timedelta(hours=1), None, {"mood": EMOTIONAL_MARKER}),
        ], now)
        for r in records:
            await repo.add_consent(r)
    return user


# -- result models and their output ------------------------------------------------------------------------------
def declared(kind: str, name: str) -> Handler:
    return next(h for h in CATALOG if h.kind == kind and h.name == name)


def result_model(handler: Handler) -> type[BaseModel]:
    model = inspect.signature(handler.fn, eval_str=True).return_annotation
    assert isinstance(model, type) and issubclass(model, BaseModel), handler.action
    return model


def nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = nested_model(arg)
        if found is not None:
            return found
    return None


DERIVED = "system.derived"  # a field whose values each carry a lineage


def is_personal(category: str) -> bool:
    return not category.startswith("system.")


def personal_fields(model: type[BaseModel], data: Any, path: str = "") -> dict[str, str]:
    """Every personal field that holds a value (not null, not absent) in serialized output: path -> category.

    A field that carries no category and is no nested model is reported as ``unclassified`` when it holds data.
    """
    found: dict[str, str] = {}
    if not isinstance(data, dict):
        return found
    for name, info in model.model_fields.items():
        where = f"{path}.{name}" if path else name
        value = data.get(name)
        category = category_of(model, name)
        if category is None:
            nested = nested_model(info.annotation)
            if nested is not None and isinstance(value, dict):
                found |= personal_fields(nested, value, where)
            elif nested is not None and isinstance(value, list):
                for item in value:
                    found |= personal_fields(nested, item, where + "[]")
            elif value not in (None, [], {}):
                found[where] = "unclassified"
        elif (is_personal(category) or category == DERIVED) and value is not None:
            found[where] = category
    return found


def is_lineage_withholding(field_path: str) -> bool:
    """A withheld input of a derived value (``input:<name>``), or a derived value taken out of its list."""
    return field_path.startswith("input:") or field_path.endswith("[]")


def lineages(data: Any) -> list[list[str]]:
    """The lineage of every derived value in serialized output, however deep."""
    found: list[list[str]] = []
    if isinstance(data, dict):
        if isinstance(data.get("lineage"), list):
            found.append(data["lineage"])
        for value in data.values():
            found += lineages(value)
    elif isinstance(data, list):
        for value in data:
            found += lineages(value)
    return found


def category_at(model: type[BaseModel], path: str) -> str:
    """The declared category of a field path such as ``identity.email`` or ``decisions[].allowed``."""
    *parents, last = path.replace("[]", "").split(".")
    for name in parents:
        nested = nested_model(model.model_fields[name].annotation)
        assert nested is not None, path
        model = nested
    category = category_of(model, last)
    assert category is not None, path
    return category


def values_at(data: Any, path: str) -> list[Any]:
    """The values at a field path in serialized output (absent counts as null)."""
    current = [data]
    for part in path.split("."):
        many = part.endswith("[]")
        name = part.removesuffix("[]")
        nxt = []
        for item in current:
            value = item.get(name) if isinstance(item, dict) else None
            if many and isinstance(value, list):
                nxt += value
            else:
                nxt.append(value)
        current = nxt
    return current


def audit_text(entry: AuditEntry) -> str:
    return json.dumps([entry.caller, entry.action, entry.subject, entry.purpose, list(entry.released),
                       [[w.field, w.category, w.reason] for w in entry.withheld], entry.outcome])


def result_texts(result: Any) -> list[str]:
    """Everything a tool result, resource read or prompt shows: structured content and every text."""
    texts = []
    structured = getattr(result, "structured_content", None)
    if structured is not None:
        texts.append(json.dumps(structured))
    for block in getattr(result, "content", None) or ():
        texts.append(getattr(block, "text", "") or "")
    for block in getattr(result, "contents", None) or ():
        texts.append(getattr(block, "text", "") or "")
    for message in getattr(result, "messages", None) or ():
        texts.append(getattr(message.content, "text", "") or "")
    if getattr(result, "description", None):
        texts.append(result.description)
    return texts


# -- tool input schemas ----------------------------------------------------------------------------------------
def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def sample(schema: dict[str, Any], name: str, node: dict[str, Any], user_id: str) -> Any:
    """A value the schema accepts: enough to get past argument validation, not necessarily a useful call."""
    node = resolve(schema, node)
    if name == "user_id":
        return user_id
    if name == "purpose":
        return "service"
    if "const" in node:
        return node["const"]
    if "enum" in node:
        return node["enum"][0]
    if "anyOf" in node:
        options = [o for o in node["anyOf"] if resolve(schema, o).get("type") != "null"]
        return sample(schema, name, options[0], user_id)
    return {"string": "x", "integer": node.get("minimum", 1), "number": node.get("minimum", 0),
            "boolean": False, "array": [], "object": {}}[node["type"]]


def required_arguments(schema: dict[str, Any], user_id: str) -> dict[str, Any]:
    """The required arguments of a tool, from its input schema alone (so tools added later are covered)."""
    return {name: sample(schema, name, node, user_id) for name, node in schema.get("properties", {}).items()
            if name in schema.get("required", [])}


# -- the stored data ---------------------------------------------------------------------------------------------
async def snapshot(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but the audit log, in key order: two equal snapshots mean nothing was written."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    async with runtime.store.read() as repo:
        for table in schema.metadata.sorted_tables:
            if table.name in AUDIT_TABLES:
                continue
            query = sa.select(table).order_by(*(table.primary_key.columns or table.columns))
            rows = (await cast(SQLRepositories, repo).conn.execute(query)).all()  # the SQL store's own view
            tables[table.name] = [tuple(row) for row in rows]
    return tables


async def audit_length(runtime: Runtime) -> int:
    head = await runtime.audit.head()
    return 0 if head is None else head[0]


async def newest_entry(runtime: Runtime) -> AuditEntry:
    last = await runtime.audit.last()
    assert last is not None
    return last.entry
