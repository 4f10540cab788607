"""The ``embedding_cache`` table: embeddings received from a remote model, kept so each text is requested once per
model. The text itself is not kept; its SHA-256 finds it again."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import sqlalchemy as sa

from . import schema as t
from .database import Database
from .repositories import IN_LIST, chunks, insert_for


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class SQLEmbeddingCache:
    """``EmbeddingCache`` on SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_many(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        by_digest = {text_digest(text): text for text in texts}
        found: dict[str, np.ndarray] = {}
        async with self.db.read() as conn:
            for chunk in chunks(by_digest):
                stmt = (sa.select(t.embedding_cache.c.text_sha256, t.embedding_cache.c.dim,
                                  t.embedding_cache.c.vector)
                        .where(t.embedding_cache.c.model == model, t.embedding_cache.c.text_sha256.in_(chunk)))
                for digest, dim, blob in (await conn.execute(stmt)).all():
                    vector = np.frombuffer(bytes(blob), dtype="<f4")
                    if len(vector) == dim:  # a torn or foreign row is a miss, not a wrong vector
                        found[by_digest[digest]] = vector.astype(np.float32)
        return found

    async def put_many(self, model: str, vectors: Mapping[str, np.ndarray]) -> None:
        rows = [{"model": model, "text_sha256": text_digest(text), "dim": len(vector),
                 "vector": np.asarray(vector, dtype="<f4").tobytes()} for text, vector in vectors.items()]
        async with self.db.write() as conn:
            # Another process may have stored the same text meanwhile: same model, same vector, keep theirs.
            stmt = insert_for(conn.dialect, t.embedding_cache).on_conflict_do_nothing(
                index_elements=["model", "text_sha256"])
            for i in range(0, len(rows), IN_LIST):  # multi-row inserts of the same bounded size
                await conn.execute(stmt, rows[i:i + IN_LIST])
