"""Core profile attributes with provenance."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .consent import ConsentRecord
from .errors import InvalidArgument
from .events import Event
from .fields import BY_NAME, MAX_TAG, MAX_TAGS, MAX_TEXT, FieldSpec
from .text import is_storable

Value = str | int | list[str]

_SOURCE = re.compile(r"^(explicit|implicit|external:[a-z0-9_.-]{1,40}|inferred:[a-z0-9_.-]{1,40})$")
_RANK = {"explicit": 3, "external": 2, "implicit": 1, "inferred": 0}


def source_rank(source: str) -> int:
    """Explicit input outranks external data, which outranks implicit signals, which outrank inference."""
    return _RANK[source.split(":", 1)[0]]


def check_source(source: str) -> str:
    if not _SOURCE.fullmatch(source):
        raise InvalidArgument(
            f"source {source!r} is not valid.",
            "Use 'explicit' (the person said it), 'implicit', 'external:<system>' or 'inferred:<model>'.",
        )
    return source


@dataclass(frozen=True, slots=True)
class Attribute:
    field: str
    value: Value
    source: str
    confidence: float
    observed_at: datetime


@dataclass(frozen=True, slots=True)
class NewSubject:
    """A data subject with a history, as a bulk load brings them (the demo, an import)."""

    user_id: str
    created_at: datetime
    attributes: Sequence[Attribute] = ()
    events: Sequence[Event] = ()
    consents: Sequence[ConsentRecord] = ()  # oldest first: the order the ledger reads them in


def winning(attributes: list[Attribute]) -> dict[str, Attribute]:
    """The value shown per field: the highest-ranked source, then the most recent observation."""
    best: dict[str, Attribute] = {}
    for a in attributes:
        current = best.get(a.field)
        if current is None or (source_rank(a.source), a.observed_at) > (source_rank(current.source),
                                                                          current.observed_at):
            best[a.field] = a
    return best


def coerce_value(name: str, raw: Any) -> Value:
    """Validate one attribute value against the field catalog."""
    spec: FieldSpec | None = BY_NAME.get(name)
    if spec is None:
        known = ", ".join(sorted(BY_NAME))
        raise InvalidArgument(f"Unknown attribute {name!r}.", f"Known attributes: {known}. See schema://profile.")
    match spec.kind:
        case "text":
            if not isinstance(raw, str) or not raw.strip():
                raise InvalidArgument(f"Attribute {name!r} takes a non-empty string.")
            if not is_storable(raw):
                raise InvalidArgument(f"Attribute {name!r} holds a NUL character or an unpaired surrogate.")
            if len(raw) > MAX_TEXT:
                raise InvalidArgument(f"Attribute {name!r} is longer than {MAX_TEXT} characters.")
            return raw.strip()
        case "choice":
            if raw not in spec.choices:
                raise InvalidArgument(f"Attribute {name!r} takes one of: {', '.join(spec.choices)}.")
            return str(raw)
        case "tags":
            if isinstance(raw, str):
                raw = [raw]
            if not isinstance(raw, list) or not all(isinstance(t, str) and t.strip() for t in raw):
                raise InvalidArgument(f"Attribute {name!r} takes a list of non-empty strings.")
            if not all(is_storable(t) for t in raw):
                raise InvalidArgument(f"Attribute {name!r} holds a NUL character or an unpaired surrogate.")
            if len(raw) > MAX_TAGS or any(len(t) > MAX_TAG for t in raw):
                raise InvalidArgument(
                    f"Attribute {name!r} takes at most {MAX_TAGS} tags of at most {MAX_TAG} characters each.")
            return sorted({t.strip().lower() for t in raw})
        case _:
            raise InvalidArgument(f"Attribute {name!r} is derived from behaviour and cannot be written.")
