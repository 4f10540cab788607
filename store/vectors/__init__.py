"""Vector indexes over user vectors: ``local`` (default; exact search, then HNSW above a size) and ``pinecone``.

Both store unit vectors (input is normalized on the way in, so scores are cosine similarities whatever the caller
passes) and check dimensions before anything is written. A failing or misconfigured index raises
``StoreUnavailable``; arguments that break the port's contract (ragged batches, zero vectors) raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ...domain.errors import StoreUnavailable


class DimensionMismatch(StoreUnavailable, ValueError):
    """A vector's length differs from the index dimension (often: the embedder changed; rebuild the index)."""


def unit_rows(vectors: Sequence[Sequence[float]] | np.ndarray, dim: int) -> np.ndarray:
    """The vectors as a float32 matrix of unit rows; raises on a wrong dimension, a zero or a non-finite vector."""
    if not isinstance(vectors, np.ndarray):
        for j, row in enumerate(vectors):  # name the first offending vector, before numpy sees a ragged list
            if len(row) != dim:
                raise DimensionMismatch(f"vector {j} has dimension {len(row)}, which does not match the index "
                                        f"dimension {dim}")
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.size == 0:
        matrix = matrix.reshape(0, dim)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        got = matrix.shape[-1] if matrix.ndim >= 1 else 0
        raise DimensionMismatch(f"vector dimension {got} does not match the index dimension {dim}")
    norms = np.linalg.norm(matrix, axis=1)
    bad = ~np.isfinite(norms) | (norms == 0.0)
    if bad.any():
        raise ValueError(f"vector {int(np.argmax(bad))} is zero or not finite; cosine needs a direction")
    unit: np.ndarray = (matrix / norms[:, None]).astype(np.float32)
    return unit


def unit_vector(vector: Sequence[float] | np.ndarray, dim: int) -> np.ndarray:
    row: np.ndarray = unit_rows(np.asarray(vector, dtype=np.float64).reshape(1, -1), dim)[0]
    return row


def check_batch(ids: Sequence[str], count: int, metadata: Sequence[dict[str, str]] | None) -> None:
    if len(ids) != count:
        raise ValueError(f"{len(ids)} ids for {count} vectors")
    if metadata is not None and len(metadata) != count:
        raise ValueError(f"{len(metadata)} metadata entries for {count} vectors")
    if len(set(ids)) != len(ids):
        raise ValueError("an id appears twice in one upsert")
    if any(not isinstance(i, str) or not i for i in ids):
        raise ValueError("ids are non-empty strings")


class IndexHoldings:
    """The personal-data port for a vector index, from its own ``fetch`` and ``delete``: a user's vector is all it
    keeps about them."""

    holder = "similarity_index"

    async def fetch(self, ids: Sequence[str]) -> dict[str, list[float]]:
        raise NotImplementedError

    async def delete(self, ids: Sequence[str]) -> None:
        raise NotImplementedError

    async def held(self, user_id: str) -> dict[str, int]:
        return {"vector": 1} if await self.fetch([user_id]) else {}

    async def export(self, user_id: str) -> dict[str, Any]:
        found = await self.fetch([user_id])
        return {"vector": found[user_id]} if found else {}

    async def erase(self, user_id: str) -> dict[str, int]:
        held = await self.held(user_id)
        await self.delete([user_id])
        return held
