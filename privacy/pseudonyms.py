"""Keyed pseudonyms (HMAC-SHA256). The audit log names subjects by one; each caller sees others by its own."""

from __future__ import annotations

import hashlib
import hmac


class Pseudonymizer:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, *parts: str) -> str:
        # surrogatepass: an id that is not valid UTF-8 (a lone surrogate in a refused call) is still named.
        message = "\x1f".join(parts).encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def subject(self, user_id: str) -> str:
        """The audit log's name for a data subject."""
        return "s_" + self._mac("subject", user_id)[:32]

    def for_caller(self, caller: str, user_id: str) -> str:
        """How ``caller`` sees another person: stable for that caller, unlinkable across callers."""
        return "p_" + self._mac("caller", caller, user_id)[:24]
