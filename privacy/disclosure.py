"""How result models declare what they disclose, and how a result is walked field by field.

Every field of a result model carries a data category in its JSON schema (``x-data-category``), or is a nested
result model that is walked in turn. A field without either is withheld as unclassified: new code fails closed.
Fields that hold personal data are optional, so a result with fields withheld still validates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

from ..domain import categories as cat
from ..domain.audit import Withholding

CATEGORY_KEY = "x-data-category"


def disclosed(category: str, description: str, **kwargs: Any) -> Any:
    """A field holding personal data of ``category``; optional so the gate can withhold it."""
    if not cat.is_known(category) or category in cat.NON_PERSONAL:
        raise ValueError(f"{category!r} is not a personal-data category")
    return Field(None, description=description, json_schema_extra={CATEGORY_KEY: category}, **kwargs)


def operational(description: str, default: Any = ..., **kwargs: Any) -> Any:
    """A field holding no personal data: ids the caller sent, counts, field names, the gate's report."""
    return Field(default, description=description, json_schema_extra={CATEGORY_KEY: cat.OPERATIONAL}, **kwargs)


def public(description: str, default: Any = ..., **kwargs: Any) -> Any:
    """A field of published reference data."""
    return Field(default, description=description, json_schema_extra={CATEGORY_KEY: cat.PUBLIC}, **kwargs)


def derived(description: str, **kwargs: Any) -> Any:
    """A list of ``Derived`` values: each is released or withheld by its own lineage (``privacy/lineage.py``)."""
    return Field(None, description=description, json_schema_extra={CATEGORY_KEY: cat.DERIVED}, **kwargs)


def category_of(model: type[BaseModel], name: str) -> str | None:
    extra = model.model_fields[name].json_schema_extra
    return extra.get(CATEGORY_KEY) if isinstance(extra, dict) else None  # type: ignore[return-value]


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def walk(model: BaseModel, reason_for: Callable[[str], str | None], path: str = ""
         ) -> tuple[BaseModel, list[str], list[Withholding]]:
    """Withhold every field whose category ``reason_for`` names a reason for; return what was released."""
    released: list[str] = []
    withheld: list[Withholding] = []
    updates: dict[str, Any] = {}
    cls = type(model)
    for name in cls.model_fields:
        value = getattr(model, name)
        where = f"{path}.{name}" if path else name
        category = category_of(cls, name)
        if category is None:
            if isinstance(value, BaseModel):
                updates[name], r, w = walk(value, reason_for, where)
                released += r
                withheld += w
            elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
                items = []
                for item in value:
                    sub, r, w = walk(item, reason_for, where + "[]")
                    items.append(sub)
                    released += [x for x in r if x not in released]
                    withheld += [x for x in w if x not in withheld]
                updates[name] = items
            elif not _empty(value):
                updates[name] = None
                withheld.append(Withholding(where, "unclassified", "unclassified"))
            continue
        if category in cat.NON_PERSONAL or value is None:
            continue  # an empty list or mapping still tells something about its category: it is gated too
        reason = None if category == cat.DERIVED else reason_for(category)
        if reason is None:
            released.append(where)
            kept = _prune(value, reason_for, where, withheld)  # derived values inside answer for their lineage
            if kept is not value:
                updates[name] = kept
        else:
            updates[name] = None
            withheld.append(Withholding(where, category, reason))
    return (model.model_copy(update=updates) if updates else model), released, withheld


_GONE = object()


def _prune(value: Any, reason_for: Callable[[str], str | None], where: str, withheld: list[Withholding]) -> Any:
    """``value`` without the derived values whose lineage may not be released (``_GONE`` if it is one of them)."""
    if isinstance(value, Derived):
        for category in value.lineage:
            reason = None if category in cat.NON_PERSONAL else reason_for(category)
            if reason is not None:
                found = Withholding(where, category, reason)
                if found not in withheld:
                    withheld.append(found)
                return _GONE
    if isinstance(value, BaseModel):
        updates = {}
        for name in type(value).model_fields:
            inner = getattr(value, name)
            kept = _prune(inner, reason_for, f"{where}.{name}", withheld)
            if kept is not inner:
                updates[name] = None if kept is _GONE else kept
        return value.model_copy(update=updates) if updates else value
    if isinstance(value, list) and any(isinstance(v, BaseModel) for v in value):
        kept_items = [_prune(v, reason_for, where + "[]", withheld) for v in value]
        if all(k is v for k, v in zip(kept_items, value, strict=True)):
            return value
        return [k for k in kept_items if k is not _GONE]
    return value


def check_model(model: type[BaseModel], path: str = "") -> list[str]:
    """Problems that would make a result model leak or break: unclassified or required personal fields."""
    problems: list[str] = []
    for name, info in model.model_fields.items():
        where = f"{model.__name__}.{name}"
        category = category_of(model, name)
        if category is None:
            nested = _nested_model(info.annotation)
            if nested is None:
                problems.append(f"{where} has no data category")
            else:
                problems += check_model(nested)
        elif category not in cat.NON_PERSONAL and info.is_required():
            problems.append(f"{where} holds personal data but is required, so it cannot be withheld")
        elif category == cat.DERIVED:
            nested = _nested_model(info.annotation)
            if nested is None or not issubclass(nested, Derived):
                problems.append(f"{where} is declared derived but does not hold Derived values")
    return problems


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


class WithheldField(BaseModel):
    field: str = operational("Path of the withheld field in this result.")
    category: str = operational("Its data category.")
    reason: str = operational(
        "caller_not_permitted, purpose_not_compatible, anonymized, consent_missing or unclassified.")
    detail: str = operational("What the reason means and what would release the field.")


class Derived(BaseModel):
    """A value computed from other data; the gate releases it only when all of its lineage may be released."""

    lineage: list[str] = operational(
        "The data categories this value was derived from; it is released only when every one of them may be.",
        default_factory=list)


class GatedResult(BaseModel):
    """Base of every result: the gate fills ``withheld`` with what it held back and why."""

    withheld: list[WithheldField] = operational("Fields held back by the consent gate, with reasons.",
                                                default_factory=list)
