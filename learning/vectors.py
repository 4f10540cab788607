"""A user's dense vector: the weight-weighted sum of the token embeddings, normalized to unit length."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np

from ..domain.preferences import Preference
from .preferences import effective, is_item, reference_time


def vector_weights(preferences: Iterable[Preference], half_life_days: float
                   ) -> tuple[dict[str, float], datetime] | None:
    """What a user's vector is made of: the attribute-token weights (a statement over what was inferred), as of the
    newest of them, so rebuilding it from the same stored weights gives the same vector whenever it is done."""
    attributes = [p for p in preferences if not is_item(p.token)]
    as_of = reference_time(attributes)
    if as_of is None:
        return None
    return effective(attributes, as_of, half_life_days), as_of


def user_vector(weights: Mapping[str, float], embeddings: Mapping[str, np.ndarray], dim: int) -> np.ndarray | None:
    """None when the user has no non-zero weight (a cold user has no place in the space)."""
    total = np.zeros(dim, dtype=np.float64)
    for token in sorted(weights):  # a fixed order keeps the float sum reproducible
        weight = weights[token]
        if weight:
            total += weight * embeddings[token]
    norm = float(np.linalg.norm(total))
    if norm < 1e-12:
        return None
    return (total / norm).astype(np.float32)


def shared_likes(a: Mapping[str, float], b: Mapping[str, float], limit: int) -> list[str]:
    """Up to ``limit`` tokens both users like, strongest jointly first: why two users are similar, in their own
    terms."""
    both = [(min(a[t], b[t]), t) for t in a.keys() & b.keys() if a[t] > 0 and b[t] > 0]
    return [t for _, t in sorted(both, reverse=True)[:limit]]


def encode(vector: np.ndarray) -> bytes:
    """A vector as stored: float32, little-endian."""
    return vector.astype("<f4").tobytes()


def decode(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4")
