"""The field catalog: every core profile field, its section, data category, value type and what it is collected for.

This table is data and the single source that the profile view, the gate, export and erasure work from; it is
published as the ``schema://profile`` resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from . import categories as cat
from .purposes import Collection

ValueKind = Literal["text", "choice", "tags", "derived"]

AGE_BANDS = ("under-18", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
CHANNELS = ("email", "sms", "push", "in_app", "none")
FREQUENCIES = ("daily", "weekly", "monthly", "rarely", "never")
STYLES = ("concise", "detailed", "playful", "formal", "warm")
ENNEAGRAM = tuple(f"type-{n}" for n in range(1, 10))
MBTI = tuple(a + b + c + d for a in "EI" for b in "SN" for c in "TF" for d in "JP")

MAX_TEXT = 500
MAX_TAGS = 50
MAX_TAG = 80


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    section: str
    category: str
    kind: ValueKind
    description: str
    collected: Collection | None  # the purposes a written value is stored for; None: derived, never written
    choices: tuple[str, ...] = field(default=())

    @property
    def direct_identifier(self) -> bool:
        return cat.is_direct_identifier(self.category)


SECTIONS = ("identity", "demographics", "location", "communication", "psychographics", "preferences", "behavior",
            "emotional")

# Why each attribute is collected. The contract covers addressing and reaching the person, their language and
# how they want to be contacted, and a delivery address (precise location, which personalization may not use);
# tailoring needs consent to personalization; psychographics are profiling.
SERVICE = Collection(("service",))
PERSONALIZATION = Collection(("personalization",))
PROFILING = Collection(("profiling",))
# A value written with source ``inferred:<model>`` was made by profiling: it needs this as well as its field's own.
INFERENCE = Collection(("profiling",))

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("display_name", "identity", cat.NAME, "text", "How the person wants to be addressed.", SERVICE),
    FieldSpec("email", "identity", cat.CONTACT + ".email", "text", "Email address.", SERVICE),
    FieldSpec("phone", "identity", cat.CONTACT + ".phone", "text", "Phone number.", SERVICE),
    FieldSpec("age_band", "demographics", cat.DEMOGRAPHIC + ".age", "choice", "Age band.", PERSONALIZATION,
              AGE_BANDS),
    FieldSpec("language", "demographics", cat.DEMOGRAPHIC + ".language", "text",
              "Preferred language as a BCP 47 tag, e.g. en-GB.", SERVICE),
    FieldSpec("cultural_background", "demographics", cat.DEMOGRAPHIC + ".cultural_background", "tags",
              "Cultural background as the person describes it.", PERSONALIZATION),
    FieldSpec("country", "location", cat.LOCATION + ".country", "text", "Country, ISO 3166-1 alpha-2.",
              PERSONALIZATION),
    FieldSpec("region", "location", cat.LOCATION + ".region", "text", "Region or state.", PERSONALIZATION),
    FieldSpec("city", "location", cat.LOCATION + ".precise", "text", "City (precise location).", SERVICE),
    FieldSpec("postal_code", "location", cat.LOCATION + ".precise", "text", "Postal code (precise location).",
              SERVICE),
    FieldSpec("preferred_channel", "communication", cat.PREFERENCE + ".communication", "choice",
              "Channel the person prefers to be reached on.", SERVICE, CHANNELS),
    FieldSpec("contact_frequency", "communication", cat.PREFERENCE + ".communication", "choice",
              "How often the person wants to hear from the brand.", SERVICE, FREQUENCIES),
    FieldSpec("interaction_style", "communication", cat.PREFERENCE + ".communication", "choice",
              "How the person likes an assistant to talk.", SERVICE, STYLES),
    FieldSpec("enneagram", "psychographics", cat.PSYCHOGRAPHIC, "choice", "Enneagram type.", PROFILING, ENNEAGRAM),
    FieldSpec("mbti", "psychographics", cat.PSYCHOGRAPHIC, "choice", "MBTI type.", PROFILING, MBTI),
    FieldSpec("values", "psychographics", cat.PSYCHOGRAPHIC, "tags", "Values the person holds, e.g. sustainability.",
              PROFILING),
    FieldSpec("interests", "psychographics", cat.PSYCHOGRAPHIC, "tags", "Interests, e.g. yoga, cooking.",
              PROFILING),
    FieldSpec("lifestyle", "psychographics", cat.PSYCHOGRAPHIC, "tags", "Lifestyle, e.g. night owl, traveller.",
              PROFILING),
    FieldSpec("likes", "preferences", cat.STATED_PREFERENCE, "tags",
              "What the person says they like: scent notes, families, moods, product types.", PERSONALIZATION),
    FieldSpec("dislikes", "preferences", cat.STATED_PREFERENCE, "tags", "What the person says they dislike.",
              PERSONALIZATION),
    # Derived from behavioural events; read-only.
    FieldSpec("behavior", "behavior", cat.BEHAVIOR, "derived",
              "Behaviour summary: event counts, purchases, active hours and weekdays, recent items.", None),
    FieldSpec("emotional", "emotional", cat.EMOTIONAL, "derived",
              "Emotional patterns from mood check-ins (sensitive).", None),
)

BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}


def in_section(section: str) -> tuple[FieldSpec, ...]:
    return tuple(f for f in FIELDS if f.section == section)


# Sections of stated attributes (the others hold one pattern derived from events).
ATTRIBUTE_SECTIONS = tuple(s for s in SECTIONS if all(f.kind != "derived" for f in in_section(s)))
assert set(SECTIONS) == {f.section for f in FIELDS}
assert all((f.collected is None) == (f.kind == "derived") for f in FIELDS)
assert all(f.collected is None or f.collected.fits(f.category) for f in FIELDS) and INFERENCE.fits(cat.INFERRED)
