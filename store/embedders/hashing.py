"""A deterministic embedder that needs no model: every text gets its own stable random direction.

Two different texts are nearly orthogonal (in 128 dimensions, |cos| is about 0.07 on average), so a user's vector
is a weighted mix of independent attribute directions, which is what similarity search needs when no semantic
model is configured. The same text gives the same vector in every process, on every machine and with every
numpy release: the Gaussian draws come straight from SHAKE-256 output bits (numpy's own Gaussian samplers do not
promise the same stream across releases).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

_DOMAIN = b"mnky-profiles/hashing-v1\x00"  # a new version changes this and the name together
_U53 = 2.0 ** -53


def hashed_vector(text: str, dim: int) -> np.ndarray:
    """The unit vector (float64) for ``text``."""
    raw = hashlib.shake_256(_DOMAIN + text.encode("utf-8")).digest(16 * ((dim + 1) // 2))
    words = np.frombuffer(raw, dtype="<u8")
    # Two uniforms in (0, 1) per pair of components from the top 53 bits, then Box-Muller.
    u = ((words >> np.uint64(11)).astype(np.float64) + 0.5) * _U53
    u1, u2 = u[0::2], u[1::2]
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * np.pi * u2
    gauss = np.empty(2 * len(u1))
    gauss[0::2] = radius * np.cos(angle)
    gauss[1::2] = radius * np.sin(angle)
    vector = gauss[:dim]
    return vector / np.linalg.norm(vector)


class HashingEmbedder:
    """``Embedder`` without a model: ``name`` is ``hashing-v1-<dim>``."""

    def __init__(self, dim: int = 128) -> None:
        if dim < 2:
            raise ValueError(f"hashing embedder dimension must be at least 2, got {dim}")
        self.dim = dim
        self.name = f"hashing-v1-{dim}"

    def embed_array(self, texts: Sequence[str]) -> np.ndarray:
        """The vectors as one float64 matrix, one row per text (what vectorised callers want)."""
        out = np.empty((len(texts), self.dim))
        for i, text in enumerate(texts):
            out[i] = hashed_vector(text, self.dim)
        return out

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [hashed_vector(text, self.dim).tolist() for text in texts]

    async def close(self) -> None:
        """Nothing to release; here so every embedder closes the same way."""
