"""User vectors in a Pinecone serverless index (dense, cosine), through the ``pinecone`` client's asyncio API.

One namespace of the index holds this deployment's users; ids are user ids. The same code talks to the service
and to a local stand-in: both are reached by the index's data-plane host (``https://<index>-<project>.svc...``,
or ``http://127.0.0.1:<port>`` for a local one; the client sends plain HTTP only to loopback and private
addresses), and a name alone is resolved to its host once through the control plane.

The port promises that a delete takes effect before it returns, while the service applies writes within seconds
(it is eventually consistent). So this adapter remembers, for ``consistency_window`` seconds, what it deleted (and
when it cleared the namespace) and keeps those vectors out of query and fetch results meanwhile: a user who
withdraws consent never shows up in this process's answers again. ``count`` is the service's own, eventually
consistent figure.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

import numpy as np

from ...domain.errors import StoreUnavailable
from . import DimensionMismatch, IndexHoldings, check_batch, unit_rows, unit_vector

if TYPE_CHECKING:
    from pinecone.async_client.async_index import AsyncIndex

DEFAULT_NAMESPACE = "users"
MAX_TOP_K = 10_000  # the service's cap on top_k
MAX_IDS = 1_000  # ids per delete request
FETCH_IDS = 100  # ids per fetch request (they travel in the URL)
REQUEST_BYTES = 1_500_000  # under the service's 2 MB request limit, with room for JSON overhead
# Pinecone ids are printable ASCII; anything else (and "%") is percent-encoded, which is reversible and leaves
# ordinary ids as they are.
_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def encode_id(user_id: str) -> str:
    return quote(user_id, safe=_SAFE)


def decode_id(stored: str) -> str:
    return unquote(stored)


def _import_pinecone() -> Any:
    try:
        import pinecone
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise StoreUnavailable(
            "the pinecone vector store needs the 'pinecone' extra: pip install 'mnky-profiles[pinecone]'") from exc
    return pinecone


def _errors() -> Any:
    _import_pinecone()
    from pinecone.errors import exceptions

    return exceptions


def _describe(exc: Exception, action: str, host: str) -> str:
    errors = _errors()
    if isinstance(exc, errors.UnauthorizedError):
        return f"Pinecone at {host} rejected the API key (HTTP 401); set MNKY_PINECONE__API_KEY"
    if isinstance(exc, errors.ForbiddenError):
        return f"Pinecone at {host} refused to {action} (HTTP 403); check the key's project and permissions"
    if isinstance(exc, errors.ApiError):
        return f"Pinecone could not {action} (HTTP {exc.status_code}): {exc.message}"
    if isinstance(exc, errors.PineconeTimeoutError):
        return f"Pinecone at {host} did not answer in time to {action}"
    if isinstance(exc, errors.PineconeConnectionError):
        return f"cannot reach Pinecone at {host} to {action}: {exc.message}"
    return f"Pinecone could not {action}: {exc}"


@asynccontextmanager
async def _translated(action: str, host: str, missing_ok: bool = False) -> AsyncIterator[None]:
    """Client errors become ``StoreUnavailable`` (raised from the original) that say what to change."""
    errors = _errors()
    try:
        yield
    except errors.NotFoundError as exc:
        if not missing_ok:  # a delete in a namespace that does not exist yet has nothing to do
            raise StoreUnavailable(_describe(exc, action, host)) from exc
    except errors.PineconeError as exc:
        raise StoreUnavailable(_describe(exc, action, host)) from exc


class PineconeIndex(IndexHoldings):
    """``VectorIndex`` on one namespace of a Pinecone index. Build it with ``connect``."""

    def __init__(self, index: AsyncIndex, dim: int, namespace: str = DEFAULT_NAMESPACE,
                 consistency_window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._index = index
        self.dim = dim
        self.namespace = namespace
        self.host = index.host
        self.consistency_window = consistency_window
        self._clock = clock
        self._deleted: dict[str, float] = {}  # id -> when its mask lapses
        self._cleared_until = 0.0
        self._since_clear: set[str] = set()  # upserted after the last clear, while its mask holds
        self._batch = max(1, min(1000, REQUEST_BYTES // (dim * 21 + 200)))  # ~21 bytes per float in JSON

    @classmethod
    async def connect(cls, *, dim: int, api_key: str | None = None, host: str | None = None,
                      index_name: str | None = None, namespace: str = DEFAULT_NAMESPACE, timeout: float = 30.0,
                      consistency_window: float = 60.0) -> PineconeIndex:
        """Open the index by ``host`` (no control-plane call) or by ``index_name``, and check its dimension."""
        pinecone = _import_pinecone()
        if not host and not index_name:
            raise StoreUnavailable("set pinecone.host (the index host) or pinecone.index_name")
        if not api_key and not os.environ.get("PINECONE_API_KEY"):
            raise StoreUnavailable("no Pinecone API key: set MNKY_PINECONE__API_KEY (or PINECONE_API_KEY)")
        where = host or f"index {index_name!r}"
        async with _translated("open the index", where):
            if host:
                index = pinecone.AsyncIndex(host=host, api_key=api_key, timeout=timeout)
            else:
                async with pinecone.AsyncPinecone(api_key=api_key, timeout=timeout) as control:
                    index = await control.index(name=index_name)
        adapter = cls(index, dim, namespace, consistency_window)
        try:
            await adapter._check_index()
        except BaseException:
            await index.close()
            raise
        return adapter

    async def _check_index(self) -> None:
        async with _translated("describe the index", self.host):
            stats = await self._index.describe_index_stats()
        if stats.dimension is not None and stats.dimension != self.dim:
            raise DimensionMismatch(f"the Pinecone index at {self.host} has dimension {stats.dimension}, the "
                                    f"embedder gives {self.dim}; use an index of dimension {self.dim}")
        if stats.metric is not None and stats.metric != "cosine":
            raise StoreUnavailable(f"the Pinecone index at {self.host} uses the {stats.metric} metric; user "
                                   "similarity needs an index created with metric 'cosine'")

    # -- the port --------------------------------------------------------------------------------------------
    async def upsert(self, ids: Sequence[str], vectors: Sequence[Sequence[float]],
                     metadata: Sequence[dict[str, str]] | None = None) -> None:
        ids = list(ids)
        check_batch(ids, len(vectors), metadata)
        matrix = unit_rows(vectors, self.dim)
        records: list[dict[str, Any]] = []
        for j, user_id in enumerate(ids):
            record: dict[str, Any] = {"id": encode_id(user_id), "values": matrix[j].tolist()}
            if metadata is not None and metadata[j]:
                record["metadata"] = dict(metadata[j])
            records.append(record)
        for start in range(0, len(records), self._batch):
            async with _translated("upsert vectors", self.host):
                await self._index.upsert(vectors=records[start:start + self._batch], namespace=self.namespace)
        now = self._clock()
        for user_id in ids:
            self._deleted.pop(user_id, None)
        if now < self._cleared_until:
            self._since_clear.update(ids)

    async def delete(self, ids: Sequence[str]) -> None:
        unique = list(dict.fromkeys(ids))
        if not unique:
            return
        # Masked first: from here on this process never returns them, whatever the service still shows.
        lapse = self._clock() + self.consistency_window
        self._deleted.update(dict.fromkeys(unique, lapse))
        self._since_clear.difference_update(unique)
        for start in range(0, len(unique), MAX_IDS):
            chunk = [encode_id(i) for i in unique[start:start + MAX_IDS]]
            async with _translated("delete vectors", self.host, missing_ok=True):
                await self._index.delete(ids=chunk, namespace=self.namespace)
        self._prune()

    async def query(self, vector: Sequence[float], k: int, exclude: Sequence[str] = ()
                    ) -> list[tuple[str, float]]:
        q = unit_vector(vector, self.dim)
        if k <= 0:
            return []
        visible = self._visibility()
        skip = set(exclude)
        extra = MAX_TOP_K if self._clock() < self._cleared_until else len(skip) + len(self._deleted)
        async with _translated("query", self.host):
            response = await self._index.query(top_k=min(MAX_TOP_K, k + extra), vector=q.tolist(),
                                               namespace=self.namespace, include_values=False,
                                               include_metadata=False)
        found = []
        for match in response.matches:
            user_id = decode_id(match.id)
            if user_id not in skip and visible(user_id):
                found.append((user_id, float(match.score)))
                if len(found) == k:
                    break
        return found

    async def fetch(self, ids: Sequence[str]) -> dict[str, list[float]]:
        visible = self._visibility()
        wanted = [i for i in dict.fromkeys(ids) if visible(i)]
        out: dict[str, list[float]] = {}
        for start in range(0, len(wanted), FETCH_IDS):
            chunk = [encode_id(i) for i in wanted[start:start + FETCH_IDS]]
            async with _translated("fetch vectors", self.host):
                response = await self._index.fetch(ids=chunk, namespace=self.namespace)
            for stored, vector in response.vectors.items():
                out[decode_id(stored)] = np.asarray(vector.values, dtype=np.float64).tolist()
        return out

    async def count(self) -> int:
        async with _translated("describe the index", self.host):
            stats = await self._index.describe_index_stats()
        summary = stats.namespaces.get(self.namespace or "__default__") or stats.namespaces.get(self.namespace)
        return 0 if summary is None else int(summary.vector_count)

    async def clear(self) -> None:
        self._cleared_until = self._clock() + self.consistency_window
        self._since_clear = set()
        self._deleted.clear()  # the clear mask covers them
        async with _translated("delete the namespace's vectors", self.host, missing_ok=True):
            await self._index.delete(delete_all=True, namespace=self.namespace)

    async def rebuild(self, ids: Sequence[str], vectors: Sequence[Sequence[float]] | np.ndarray) -> None:
        """Replace the namespace's contents with these vectors."""
        await self.clear()
        rows = vectors.tolist() if isinstance(vectors, np.ndarray) else list(vectors)
        for start in range(0, len(ids), 1000):
            await self.upsert(list(ids[start:start + 1000]), rows[start:start + 1000])

    async def close(self) -> None:
        await self._index.close()

    # -- masking what the service may still show --------------------------------------------------------------
    def _visibility(self) -> Callable[[str], bool]:
        now = self._clock()
        clearing = now < self._cleared_until

        def visible(user_id: str) -> bool:
            lapse = self._deleted.get(user_id)
            if lapse is not None and lapse > now:
                return False
            return not clearing or user_id in self._since_clear
        return visible

    def _prune(self) -> None:
        now = self._clock()
        self._deleted = {i: lapse for i, lapse in self._deleted.items() if lapse > now}
