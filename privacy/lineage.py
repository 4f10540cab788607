"""Lineage: a derived value carries the data categories of what it was derived from.

A use case reads its inputs as ``Sourced`` values, each labelled once, where it is read, with the category of the
data it holds (a stated like is ``user.preference.stated``, a purchase ``user.behavior``, other people's choices
``system.aggregate``). What it derives from them is a ``Derived`` model made through ``derive``, which takes the
inputs and gives the result their categories: no derived value is labelled by hand.

Two rules of the gate follow (``privacy/gate.py``, ``privacy/disclosure.py``):
- an input whose category the caller may not see, the purpose may not use or the subject has not consented to is
  left out before anything is computed from it (``Access.admit``), and named in the result's withheld list;
- a derived value leaves only when every category of its lineage may be released; otherwise it is withheld (taken
  out of its list, or the item it explains with it) and the withheld list says which category and why.
Segments and predictions are derived values too, and go through the same two rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from ..domain import categories as cat
from .disclosure import Derived

T = TypeVar("T")
D = TypeVar("D", bound=Derived)


@dataclass(frozen=True, slots=True)
class Sourced(Generic[T]):
    """An input of a derivation and the categories of the data it holds (empty once it is left out)."""

    value: T
    categories: frozenset[str]

    @property
    def used(self) -> bool:
        return bool(self.categories)


def sourced(value: T, *categories: str) -> Sourced[T]:
    unknown = [c for c in categories if not cat.is_known(c) or c == cat.DERIVED]
    if unknown:
        raise ValueError(f"unknown categories {unknown}")
    return Sourced(value, frozenset(categories))


def lineage_of(inputs: Iterable[Sourced[Any] | Derived]) -> list[str]:
    found: set[str] = set()
    for part in inputs:
        found |= part.categories if isinstance(part, Sourced) else set(part.lineage)
    return sorted(found)


def derive(model: type[D], inputs: Iterable[Sourced[Any] | Derived], **values: Any) -> D:
    """``model`` made from ``values``, with the lineage of the ``inputs`` it was computed from."""
    return model(lineage=lineage_of(inputs), **values)
