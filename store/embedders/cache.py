"""Received embeddings kept in memory (tests, throwaway runs); the SQL store keeps them for good
(``store/sql/embedding_cache.py``). Both are the ``EmbeddingCache`` port."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class MemoryEmbeddingCache:
    def __init__(self) -> None:
        self._vectors: dict[tuple[str, str], np.ndarray] = {}

    async def get_many(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return {text: self._vectors[(model, text)] for text in texts if (model, text) in self._vectors}

    async def put_many(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        for text, vector in vectors.items():
            self._vectors[(model, text)] = np.asarray(vector, dtype=np.float32)
