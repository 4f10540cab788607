"""Bearer tokens for streamable HTTP: each token belongs to one configured caller; only digests are stored."""

from __future__ import annotations

import hashlib
import secrets

from mcp.server.auth.provider import AccessToken

from .settings import ConfigError, Settings

SCOPE = "mnky-profiles"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random token and the digest to put in the caller's ``token_sha256`` list."""
    token = "mnky_" + secrets.token_urlsafe(32)
    return token, digest(token)


class HashedTokenVerifier:
    """The SDK's ``TokenVerifier``: a token is valid when its SHA-256 digest is configured for a caller."""

    def __init__(self, settings: Settings) -> None:
        self._by_digest: dict[str, str] = {}
        for name, caller in settings.callers.items():
            for d in caller.token_sha256:
                other = self._by_digest.setdefault(d, name)
                if other != name:
                    raise ConfigError(f"callers.{name}.token_sha256: the same token is configured for {other!r}; "
                                      "a token identifies exactly one caller")
        self._subjects = {name: c.subject for name, c in settings.callers.items()}

    @property
    def configured(self) -> bool:
        return bool(self._by_digest)

    async def verify_token(self, token: str) -> AccessToken | None:
        name = self._by_digest.get(digest(token))
        if name is None:
            return None
        return AccessToken(token=token, client_id=name, scopes=[SCOPE], expires_at=None,
                           subject=self._subjects[name])
