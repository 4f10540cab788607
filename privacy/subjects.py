"""Data subjects are found by type: every ``UserId`` in a handler's parameters, nested models and lists included.

The gate checks the bound subject and consent for each one whatever the parameter is called, so a handler cannot
reach a person without the gate seeing who. A path says where a subject sits in the arguments: parameter and field
names, ``[]`` for every item of a list, ``{keys}`` / ``{values}`` for every key or value of a mapping.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import types
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, Field

from ..domain.limits import MAX_ID


class _Subject:
    """The mark that makes a ``str`` a data subject's id."""

    def __repr__(self) -> str:
        return "SUBJECT"


SUBJECT = _Subject()

USER_ID = re.compile(r"^[A-Za-z0-9_.:@-]+$")
UserId = Annotated[str, Field(min_length=1, max_length=MAX_ID, pattern=USER_ID.pattern,
                              description="The brand's id for the user."), SUBJECT]


def is_user_id(value: str) -> bool:
    """Whether ``value`` could be a user id at all (what ``UserId`` accepts)."""
    return 0 < len(value) <= MAX_ID and USER_ID.fullmatch(value) is not None

Path = tuple[str, ...]
ITEMS, KEYS, VALUES = "[]", "{keys}", "{values}"


def is_subject(annotation: Any) -> bool:
    return get_origin(annotation) is Annotated and any(m is SUBJECT for m in annotation.__metadata__)


def paths_in(annotation: Any, path: Path = (), seen: frozenset[type] = frozenset()) -> Iterator[Path]:
    """Where a value of this type holds subject ids."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        if is_subject(annotation):
            yield path
        else:
            yield from paths_in(args[0], path, seen)
    elif origin is Union or origin is types.UnionType:
        for arg in args:
            yield from paths_in(arg, path, seen)
    elif isinstance(origin, type) and issubclass(origin, Mapping):
        if args:
            yield from paths_in(args[0], (*path, KEYS), seen)
            yield from paths_in(args[1], (*path, VALUES), seen)
    elif isinstance(origin, type) and issubclass(origin, Collection) and not issubclass(origin, str | bytes):
        for arg in args:
            if arg is not Ellipsis:
                yield from paths_in(arg, (*path, ITEMS), seen)
    elif isinstance(annotation, type) and annotation not in seen and (
            issubclass(annotation, BaseModel) or dataclasses.is_dataclass(annotation)):
        hints = get_type_hints(annotation, include_extras=True)
        names = (annotation.model_fields if issubclass(annotation, BaseModel)
                 else [f.name for f in dataclasses.fields(annotation)])
        for name in names:
            yield from paths_in(hints[name], (*path, name), seen | {annotation})


def subject_paths(fn: Callable[..., Any], skip: int = 1) -> tuple[Path, ...]:
    """The subject paths of a handler's parameters (the first ``skip`` are supplied by the server, not the caller)."""
    hints = get_type_hints(fn, include_extras=True)
    names = list(inspect.signature(fn).parameters)[skip:]
    return tuple(dict.fromkeys(p for name in names for p in paths_in(hints.get(name, Any), (name,))))


def subjects_at(arguments: Mapping[str, Any], paths: tuple[Path, ...]) -> list[str]:
    """Every subject id the arguments hold at these paths, in order, once each. Arguments may be validated
    models or the raw JSON a client sent."""
    found: dict[str, None] = {}
    for path in paths:
        for value in _values(arguments, path):
            found[value] = None
    return list(found)


def _values(value: Any, path: Path) -> Iterator[str]:
    if not path:
        if isinstance(value, str):
            yield value
        return
    step, rest = path[0], path[1:]
    if step == ITEMS:
        items: Any = value if isinstance(value, list | tuple | set | frozenset) else ()
    elif step in (KEYS, VALUES):
        items = () if not isinstance(value, Mapping) else value.keys() if step == KEYS else value.values()
    else:
        items = (value.get(step) if isinstance(value, Mapping) else getattr(value, step, None),)
    for item in items:
        yield from _values(item, rest)
