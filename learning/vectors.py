"""A user's dense vector: the weight-weighted sum of the token embeddings, normalized to unit length."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


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


def shared_likes(a: Mapping[str, float], b: Mapping[str, float], limit: int = 5) -> list[str]:
    """Tokens both users like, strongest jointly first: why two users are similar, in their own terms."""
    both = [(min(a[t], b[t]), t) for t in a.keys() & b.keys() if a[t] > 0 and b[t] > 0]
    return [t for _, t in sorted(both, reverse=True)[:limit]]
