"""The basis of every write: each event type and attribute is collected for purposes (``schema://profile``).

A value is stored only when the caller acts for one of its collection purposes and may see its data category,
and the user consents to that same purpose now (or it rests on the contract). Otherwise the whole call is refused
and nothing is stored: ``permitted`` checks the caller before anything is read, ``require_consent`` the users
inside the write's own transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..domain.errors import ConsentRequired, NotPermitted
from ..domain.ports import Repositories
from ..domain.purposes import PURPOSES, Collection
from ..privacy.gate import Access


@dataclass(frozen=True, slots=True)
class Need:
    """One kind of data a write stores: what it is (in words, for the agent), its collection and its category."""

    what: str
    collected: Collection
    category: str


@dataclass(frozen=True, slots=True)
class Write:
    """One value of a write: whose it is, what it needs, where it sits in the call (``events[3]: `` or empty),
    and the collection purposes the caller may store it for."""

    user_id: str
    need: Need
    where: str
    purposes: tuple[str, ...]


def permitted(access: Access, user_id: str, need: Need, where: str = "") -> Write:
    """The write, with the collection purposes this caller acts for; refused when it may not see the data or acts
    for none of them (the caller writes only what it could be given back)."""
    caller = access.caller
    if not caller.may_see(need.category):
        raise NotPermitted(
            f"{where}Caller {caller.name!r} may not store {need.what}: it is {need.category} data, which the caller "
            "is not configured to see. Nothing was stored.",
            "Leave it out, or have a caller that may see it store it.")
    mine = tuple(p for p in need.collected.purposes if p in caller.purposes)
    if not mine:
        raise NotPermitted(
            f"{where}Caller {caller.name!r} may not store {need.what}: it is collected for "
            f"{_either(need.collected.purposes)}, and the caller acts for none of them. Nothing was stored.",
            "Leave it out, or have a caller that acts for that purpose store it (see schema://profile).")
    return Write(user_id, need, where, mine)


async def require_consent(repo: Repositories, access: Access, writes: Sequence[Write]) -> None:
    """Refuse the whole write unless each value's user consents now to a purpose the caller may store it for."""
    asked = sorted({p for w in writes for p in w.purposes if PURPOSES[p].needs_consent})
    users = sorted({w.user_id for w in writes})
    granted = {p: set(await repo.consenting(p, access.now, users)) for p in asked}
    for w in writes:
        if any(not PURPOSES[p].needs_consent or w.user_id in granted[p] for p in w.purposes):
            continue
        purpose = w.purposes[0]
        evidence = PURPOSES[purpose].basis == "explicit_consent"
        raise ConsentRequired(
            f"{w.where}User {w.user_id!r} has not consented to {_either(w.purposes)}, which {w.need.what} is "
            "collected for. Nothing was stored.",
            f"Ask the user; if they agree, call record_consent(user_id={w.user_id!r}, purpose={purpose!r}, "
            "granted=true, source=..." + (", evidence=...)" if evidence else ")")
            + (f" ({purpose!r} needs explicit consent: evidence is what the user was shown and said)."
               if evidence else "."))


def _either(purposes: Sequence[str]) -> str:
    return " or ".join(repr(p) for p in purposes)
