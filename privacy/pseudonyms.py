"""How people are named where their id may not appear: the audit log and other people in a result.

The audit log names a subject by a keyed pseudonym (HMAC-SHA256) from that subject's own key, made with their
profile and erased with it: after erasure nobody, the operator included, can tell which old audit entries were
theirs (an account made again under the same id gets a new key). An id with no profile (a call refused for an
unknown user) is named with the server's key.

Other people in a result (similar users) are named at random, afresh for every response: a stable name, even one per
caller, lets a caller follow a person from answer to answer and, by asking about everyone, tell who is who (the
user asked about is the one missing from their own neighbours).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from ..domain.ports import SubjectKey, SubjectKeys
from .subjects import is_user_id


def _mac(secret: bytes, *parts: str) -> str:
    # surrogatepass: an id that is not valid UTF-8 (a lone surrogate in a refused call) is still named.
    message = "\x1f".join(parts).encode("utf-8", "surrogatepass")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class Pseudonymizer:
    """Keys are read from the store and kept for ``ttl`` seconds (at most ``capacity`` of them): another process
    that erases a subject is followed within that time; this process's erasure drops the key at once (``erase``)."""

    holder = "pseudonym_cache"

    def __init__(self, server_key: bytes, keys: SubjectKeys, *, ttl: float = 60.0, capacity: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._server_key = server_key
        self._keys = keys
        self._ttl = ttl
        self._capacity = capacity
        self._clock = clock
        self._cache: OrderedDict[str, tuple[SubjectKey, float]] = OrderedDict()

    async def _subject_keys(self, user_ids: Sequence[str]) -> dict[str, SubjectKey]:
        now = self._clock()
        found: dict[str, SubjectKey] = {}
        for user_id in user_ids:
            cached = self._cache.get(user_id)
            if cached is not None and cached[1] > now:
                found[user_id] = cached[0]
                self._cache.move_to_end(user_id)
        # Text that could not be a user id (garbage in a refused call) has no profile: it is not looked up.
        missing = [u for u in dict.fromkeys(user_ids) if u not in found and is_user_id(u)]
        if missing:
            fetched = await self._keys.subject_keys(missing)
            for user_id, key in fetched.items():  # ids without a key are not kept: their profile may come next
                self._cache[user_id] = (key, now + self._ttl)
                self._cache.move_to_end(user_id)
            while len(self._cache) > self._capacity:
                self._cache.popitem(last=False)
            found |= fetched
        return found

    async def subject(self, user_id: str) -> str:
        """The audit log's name for a data subject."""
        key = (await self._subject_keys([user_id])).get(user_id)
        return "s_" + (_mac(key.secret, "subject") if key is not None
                       else _mac(self._server_key, "subject", user_id))[:32]

    async def names(self, user_id: str) -> tuple[str, ...]:
        """Every name the audit log knows the subject by: the current one, and one from before subject keys."""
        key = (await self._subject_keys([user_id])).get(user_id)
        return (await self.subject(user_id), *((key.legacy,) if key is not None and key.legacy else ()))

    def for_response(self, user_ids: Sequence[str]) -> dict[str, str]:
        """Names for the other people in one response: 96 random bits each, from no key and no id, so they mean
        nothing outside it."""
        return {u: "p_" + secrets.token_hex(12) for u in user_ids}

    # -- the personal-data port: a subject's key, kept in memory ------------------------------------------------
    async def held(self, user_id: str) -> dict[str, int]:
        return {"key": 1} if user_id in self._cache else {}

    async def export(self, user_id: str) -> dict[str, Any]:
        return {}  # a key is what makes the pseudonyms theirs, not data about them

    async def erase(self, user_id: str) -> dict[str, int]:
        return {"key": 1} if self._cache.pop(user_id, None) is not None else {}
