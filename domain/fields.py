"""The field catalog: every core profile field, its section, data category and value type.

This table is data and the single source that the profile view, the gate, export and erasure work from; it is
published as the ``schema://profile`` resource.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from . import categories as cat

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
    choices: tuple[str, ...] = field(default=())

    @property
    def direct_identifier(self) -> bool:
        return cat.is_direct_identifier(self.category)


SECTIONS = ("identity", "demographics", "location", "communication", "psychographics", "preferences", "behavior",
            "emotional")

FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("display_name", "identity", cat.NAME, "text", "How the person wants to be addressed."),
    FieldSpec("email", "identity", cat.CONTACT + ".email", "text", "Email address."),
    FieldSpec("phone", "identity", cat.CONTACT + ".phone", "text", "Phone number."),
    FieldSpec("age_band", "demographics", cat.DEMOGRAPHIC + ".age", "choice", "Age band.", AGE_BANDS),
    FieldSpec("language", "demographics", cat.DEMOGRAPHIC + ".language", "text",
              "Preferred language as a BCP 47 tag, e.g. en-GB."),
    FieldSpec("cultural_background", "demographics", cat.DEMOGRAPHIC + ".cultural_background", "tags",
              "Cultural background as the person describes it."),
    FieldSpec("country", "location", cat.LOCATION + ".country", "text", "Country, ISO 3166-1 alpha-2."),
    FieldSpec("region", "location", cat.LOCATION + ".region", "text", "Region or state."),
    FieldSpec("city", "location", cat.LOCATION + ".precise", "text", "City (precise location)."),
    FieldSpec("postal_code", "location", cat.LOCATION + ".precise", "text", "Postal code (precise location)."),
    FieldSpec("preferred_channel", "communication", cat.PREFERENCE + ".communication", "choice",
              "Channel the person prefers to be reached on.", CHANNELS),
    FieldSpec("contact_frequency", "communication", cat.PREFERENCE + ".communication", "choice",
              "How often the person wants to hear from the brand.", FREQUENCIES),
    FieldSpec("interaction_style", "communication", cat.PREFERENCE + ".communication", "choice",
              "How the person likes an assistant to talk.", STYLES),
    FieldSpec("enneagram", "psychographics", cat.PSYCHOGRAPHIC, "choice", "Enneagram type.", ENNEAGRAM),
    FieldSpec("mbti", "psychographics", cat.PSYCHOGRAPHIC, "choice", "MBTI type.", MBTI),
    FieldSpec("values", "psychographics", cat.PSYCHOGRAPHIC, "tags", "Values the person holds, e.g. sustainability."),
    FieldSpec("interests", "psychographics", cat.PSYCHOGRAPHIC, "tags", "Interests, e.g. yoga, cooking."),
    FieldSpec("lifestyle", "psychographics", cat.PSYCHOGRAPHIC, "tags", "Lifestyle, e.g. night owl, traveller."),
    FieldSpec("likes", "preferences", cat.STATED_PREFERENCE, "tags",
              "What the person says they like: scent notes, families, moods, product types."),
    FieldSpec("dislikes", "preferences", cat.STATED_PREFERENCE, "tags", "What the person says they dislike."),
    # Derived from behavioural events; read-only.
    FieldSpec("behavior", "behavior", cat.BEHAVIOR, "derived",
              "Behaviour summary: event counts, purchases, active hours and weekdays, recent items."),
    FieldSpec("emotional", "emotional", cat.EMOTIONAL, "derived",
              "Emotional patterns from mood check-ins (sensitive)."),
)

BY_NAME: dict[str, FieldSpec] = {f.name: f for f in FIELDS}


def in_section(section: str) -> tuple[FieldSpec, ...]:
    return tuple(f for f in FIELDS if f.section == section)


# Sections of stated attributes (the others hold one pattern derived from events).
ATTRIBUTE_SECTIONS = tuple(s for s in SECTIONS if all(f.kind != "derived" for f in in_section(s)))
assert set(SECTIONS) == {f.section for f in FIELDS}
