"""The item catalog (products and content) whose attributes feed learning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ItemKind = Literal["product", "content"]


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    kind: ItemKind
    title: str
    # facet -> values, e.g. {"note": ["lavender", "vanilla"], "family": ["floral"], "price_band": ["mid"]}
    attributes: dict[str, list[str]] = field(default_factory=dict)

    def tokens(self) -> list[str]:
        """Attribute tokens as ``facet:value``, the unit preferences are learned on."""
        return [f"{facet}:{value}" for facet, values in sorted(self.attributes.items()) for value in values]
