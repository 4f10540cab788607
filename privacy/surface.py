"""How a tool, resource or prompt is declared: what the gate needs to know about it.

``@tool``, ``@resource`` and ``@prompt`` turn a use-case function into a ``Handler`` (role, purpose, hints, where
its data subjects are); nothing is registered as a side effect. The server serves exactly the handlers listed in
``server/catalog.py``, each through the consent gate, so a new handler is gated without gate code of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from ..domain.callers import Role
from .subjects import Path, subject_paths, subjects_at

Kind = Literal["tool", "resource", "prompt"]


@dataclass(frozen=True, slots=True, eq=False)
class Handler:
    kind: Kind
    name: str  # tool or prompt name, or resource URI (template)
    fn: Callable[..., Any]
    title: str
    description: str
    role: Role
    # The processing purpose. None: the call's ``purpose`` argument, or for resources the caller's default.
    purpose: str | None
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = False
    render: Callable[[BaseModel], str] | None = None  # prompts: the gated model as the prompt's text
    paths: tuple[Path, ...] = field(init=False)  # where its arguments hold data subjects (every ``UserId``)

    def __post_init__(self) -> None:
        object.__setattr__(self, "paths", subject_paths(self.fn))

    def subjects(self, arguments: Mapping[str, Any]) -> list[str]:
        """The data subjects a call is about: every ``UserId`` in its arguments, once each."""
        return subjects_at(arguments, self.paths)

    @property
    def action(self) -> str:
        return f"{self.kind}:{self.name}"


def _doc(fn: Callable[..., Any]) -> str:
    return " ".join((fn.__doc__ or "").split())


def tool(*, title: str, role: Role = "reader", purpose: str | None = None, read_only: bool = True,
         destructive: bool = False, idempotent: bool = False) -> Callable[[Callable[..., Any]], Handler]:
    def declare(fn: Callable[..., Any]) -> Handler:
        return Handler("tool", fn.__name__, fn, title, _doc(fn), role, purpose, read_only, destructive,
                       idempotent or read_only)
    return declare


def resource(uri: str, *, title: str, role: Role = "reader", purpose: str | None = None
             ) -> Callable[[Callable[..., Any]], Handler]:
    def declare(fn: Callable[..., Any]) -> Handler:
        return Handler("resource", uri, fn, title, _doc(fn), role, purpose)
    return declare


def prompt(*, title: str, render: Callable[[Any], str], role: Role = "reader", purpose: str | None = None
           ) -> Callable[[Callable[..., Any]], Handler]:
    def declare(fn: Callable[..., Any]) -> Handler:
        return Handler("prompt", fn.__name__, fn, title, _doc(fn), role, purpose, render=render)
    return declare
