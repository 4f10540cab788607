"""The declared surface: every tool, resource and prompt the server exposes is declared here.

Declaring a handler records what the gate needs (role, purpose, how to render); the server registers only
declared handlers, each through the consent gate, so a new handler is gated without gate code of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from ..domain.callers import Role

Kind = Literal["tool", "resource", "prompt"]


@dataclass(frozen=True, slots=True)
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

    def subjects(self, arguments: dict[str, Any]) -> list[str]:
        """The data subjects a call is about: its ``user_id``, or each event's in a batch."""
        found = [arguments["user_id"]] if isinstance(arguments.get("user_id"), str) else []
        for event in arguments.get("events") or ():
            user_id = getattr(event, "user_id", None)
            if isinstance(user_id, str) and user_id not in found:
                found.append(user_id)
        return found

    @property
    def action(self) -> str:
        return f"{self.kind}:{self.name}"


HANDLERS: list[Handler] = []


def _declare(handler: Handler) -> None:
    if any(h.kind == handler.kind and h.name == handler.name for h in HANDLERS):
        raise ValueError(f"{handler.action} is declared twice")
    HANDLERS.append(handler)


def _doc(fn: Callable[..., Any]) -> str:
    return " ".join((fn.__doc__ or "").split())


def tool(*, title: str, role: Role = "reader", purpose: str | None = None, read_only: bool = True,
         destructive: bool = False, idempotent: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        _declare(Handler("tool", fn.__name__, fn, title, _doc(fn), role, purpose, read_only, destructive,
                         idempotent or read_only))
        return fn
    return declare


def resource(uri: str, *, title: str, role: Role = "reader", purpose: str | None = None
             ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        _declare(Handler("resource", uri, fn, title, _doc(fn), role, purpose))
        return fn
    return declare


def prompt(*, title: str, render: Callable[[Any], str], role: Role = "reader", purpose: str | None = None
           ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def declare(fn: Callable[..., Any]) -> Callable[..., Any]:
        _declare(Handler("prompt", fn.__name__, fn, title, _doc(fn), role, purpose, render=render))
        return fn
    return declare
