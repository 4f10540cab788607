"""Data categories (in the spirit of the fideslang taxonomy).

Categories are dotted paths. A grant of ``user.location`` covers ``user.location.country`` and every other
category below it, so callers and purposes list the broadest category they may use.
"""

from __future__ import annotations

import functools

# Top-level personal-data categories.
CONTACT = "user.contact"
NAME = "user.name"
DEMOGRAPHIC = "user.demographic"
LOCATION = "user.location"
PREFERENCE = "user.preference"
BEHAVIOR = "user.behavior"
PSYCHOGRAPHIC = "user.psychographic"
EMOTIONAL = "user.emotional"  # sensitive: only the wellbeing purpose with explicit consent
INFERRED = "user.inferred"
SEGMENT = "user.segment"
CONSENT = "user.consent"  # the subject's own consent state, needed to respect it

# Below ``user.consent``: the requests the subject made to exercise their rights (access, erasure, ...).
REQUESTS = CONSENT + ".requests"

# Below ``user.preference``: what the person said, and what was learned from what they did.
STATED_PREFERENCE = PREFERENCE + ".stated"
LEARNED_PREFERENCE = PREFERENCE + ".learned"

TOP_LEVEL = (CONTACT, NAME, DEMOGRAPHIC, LOCATION, PREFERENCE, BEHAVIOR, PSYCHOGRAPHIC, EMOTIONAL, INFERRED,
             SEGMENT, CONSENT)

# Not personal data: ids the caller sent, counts, names of fields, the gate's own report.
OPERATIONAL = "system.operational"
# Published reference data (the field catalog, the purposes policy).
PUBLIC = "system.public"

# Computed over many people (co-occurrence, popularity), each at least ``privacy.min_group_size`` consenting users.
AGGREGATE = "system.aggregate"

NON_PERSONAL = (OPERATIONAL, PUBLIC, AGGREGATE)

# A field whose values each carry their own lineage (``privacy/lineage.py``): the gate decides value by value.
DERIVED = "system.derived"

# Categories whose values identify a person directly; withheld under anonymization unless allowed.
DIRECT_IDENTIFIERS = (NAME, CONTACT)


def covers(grant: str, category: str) -> bool:
    """True when ``grant`` is ``category`` or one of its ancestors (``"*"`` covers everything personal)."""
    if grant == "*":
        return category.startswith("user.")
    return category == grant or category.startswith(grant + ".")


@functools.lru_cache(maxsize=4096)
def covered_by_any(grants: tuple[str, ...] | frozenset[str], category: str) -> bool:
    # Asked for every field of every result with the same few grant sets: remember the answers.
    return any(covers(grant, category) for grant in grants)


def is_known(category: str) -> bool:
    """A category is known when it is a top-level category or lies below one."""
    if category == "*" or category in NON_PERSONAL or category == DERIVED:
        return True
    return any(covers(top, category) for top in TOP_LEVEL)


def is_direct_identifier(category: str) -> bool:
    return covered_by_any(DIRECT_IDENTIFIERS, category)
