"""The item catalog as learning sees it: tokens per item, a value -> tokens vocabulary, the item space."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from ..domain.catalog import Item
from .recommender import ItemSpace


@dataclass
class Catalog:
    items: dict[str, Item]
    item_tokens: dict[str, list[str]]
    vocabulary: dict[str, list[str]]  # a value ("lavender") -> the tokens that carry it (["note:lavender"])
    space: ItemSpace

    @classmethod
    def build(cls, items: Iterable[Item]) -> Catalog:
        by_id = {i.item_id: i for i in items}
        item_tokens = {i.item_id: i.tokens() for i in by_id.values()}
        vocabulary: dict[str, list[str]] = defaultdict(list)
        for tokens in item_tokens.values():
            for token in tokens:
                value = token.split(":", 1)[1]
                if token not in vocabulary[value]:
                    vocabulary[value].append(token)
        space = ItemSpace.build((i.item_id, i.kind, item_tokens[i.item_id]) for i in by_id.values())
        return cls(by_id, item_tokens, dict(vocabulary), space)

    def covers(self, item_ids: Iterable[str | None]) -> bool:
        return all(i is None or i in self.items for i in item_ids)
