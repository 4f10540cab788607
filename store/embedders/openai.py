"""Embeddings from an OpenAI-compatible ``POST /v1/embeddings`` API, each text requested once per model.

Every vector received is kept in an ``EmbeddingCache`` (the SQL store in production), keyed by the embedder's
``name`` (model and dimension) and the text, so a restart, another process or a repeated attribute never pays for
the same text again. Vectors are normalized here: the port promises unit vectors whatever the service returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...domain.errors import StoreUnavailable
from ...domain.ports import EmbeddingCache

if TYPE_CHECKING:
    from openai import AsyncOpenAI

DEFAULT_MODEL = "text-embedding-3-small"
# Native output sizes; any other model needs ``dimensions`` so the index dimension is known before the first call.
KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_BATCH = 2048  # the API's limit on inputs per request


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise StoreUnavailable(
            "the openai embedder needs the 'openai' extra: pip install 'mnky-profiles[openai]'") from exc
    return openai


def _describe(exc: Exception, base_url: str, model: str) -> str:
    """One sentence that says what failed and what to change."""
    openai = _import_openai()
    where = f"the embeddings API at {base_url}"
    if isinstance(exc, openai.AuthenticationError):
        return f"{where} rejected the API key (HTTP 401); set MNKY_OPENAI__API_KEY to a valid key"
    if isinstance(exc, openai.PermissionDeniedError):
        return f"{where} refused access to model {model!r} (HTTP 403); check the key's project and permissions"
    if isinstance(exc, openai.NotFoundError):
        return f"{where} does not know model {model!r} (HTTP 404); check MNKY_OPENAI__MODEL and base_url"
    if isinstance(exc, openai.RateLimitError):
        return f"{where} is rate limiting or out of quota (HTTP 429) after retries; try again later"
    if isinstance(exc, openai.APIStatusError):
        detail = getattr(exc, "message", "") or str(exc)
        return f"{where} failed with HTTP {exc.status_code}: {detail}"
    if isinstance(exc, openai.APITimeoutError):
        return f"{where} did not answer in time"
    if isinstance(exc, openai.APIConnectionError):
        return f"cannot reach {where}: {exc}"
    return f"{where} call failed: {type(exc).__name__}: {exc}"


class OpenAIEmbedder:
    """``Embedder`` over the OpenAI embeddings API (or any server that speaks it, via ``base_url``)."""

    def __init__(self, client: AsyncOpenAI, cache: EmbeddingCache, model: str = DEFAULT_MODEL,
                 dimensions: int | None = None, batch_size: int = 512) -> None:
        dim = dimensions or KNOWN_DIMENSIONS.get(model)
        if dim is None:
            raise StoreUnavailable(f"the output size of model {model!r} is unknown; set openai.dimensions "
                                 "(MNKY_OPENAI__DIMENSIONS) to it")
        if not 1 <= batch_size <= MAX_BATCH:
            raise StoreUnavailable(f"openai.batch_size must be between 1 and {MAX_BATCH}, got {batch_size}")
        self.client = client
        self.cache = cache
        self.model = model
        self.dimensions = dimensions
        self.batch_size = batch_size
        self.dim = dim
        self.name = f"openai:{model}:{dim}"
        self.requests = 0  # calls made to the API, for tests and diagnostics
        self._memory: dict[str, np.ndarray] = {}
        # One fetch at a time: a concurrent call waits and then finds its texts cached instead of requesting them.
        self._fetching = asyncio.Lock()

    @classmethod
    def connect(cls, cache: EmbeddingCache, *, api_key: str | None = None, base_url: str | None = None,
                model: str = DEFAULT_MODEL, dimensions: int | None = None, batch_size: int = 512,
                timeout: float = 30.0, max_retries: int = 2) -> OpenAIEmbedder:
        """Build the client too. ``api_key`` falls back to ``OPENAI_API_KEY``, as the openai package does."""
        openai = _import_openai()
        try:
            client = openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout,
                                        max_retries=max_retries)
        except openai.OpenAIError as exc:
            raise StoreUnavailable(f"cannot configure the openai embedder: {exc} "
                                 "(set MNKY_OPENAI__API_KEY)") from exc
        return cls(client, cache, model=model, dimensions=dimensions, batch_size=batch_size)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if any(not text for text in texts):
            raise ValueError("cannot embed an empty text")
        wanted = list(dict.fromkeys(texts))
        found = await self._cached(wanted)
        missing = [text for text in wanted if text not in found]
        if missing:
            async with self._fetching:
                found |= await self._cached(missing)  # what a concurrent call fetched meanwhile
                missing = [text for text in missing if text not in found]
                for i in range(0, len(missing), self.batch_size):
                    batch = missing[i:i + self.batch_size]
                    vectors = await self._request(batch)
                    await self.cache.put_many(self.name, dict(zip(batch, vectors, strict=True)))
                    self._remember(dict(zip(batch, vectors, strict=True)))
                    found.update(zip(batch, vectors, strict=True))
        return [found[text].astype(np.float64).tolist() for text in texts]

    async def close(self) -> None:
        await self.client.close()

    async def _cached(self, texts: list[str]) -> dict[str, np.ndarray]:
        found = {text: self._memory[text] for text in texts if text in self._memory}
        rest = [text for text in texts if text not in found]
        if rest:
            stored = {text: v for text, v in (await self.cache.get_many(self.name, rest)).items()
                      if len(v) == self.dim}
            self._remember(stored)
            found |= stored
        return found

    def _remember(self, vectors: dict[str, np.ndarray]) -> None:
        if len(self._memory) + len(vectors) > 100_000:  # attribute vocabularies are small; this is only a guard
            self._memory.clear()
        self._memory.update(vectors)

    async def _request(self, batch: list[str]) -> list[np.ndarray]:
        openai = _import_openai()
        extra: dict[str, Any] = {"dimensions": self.dimensions} if self.dimensions else {}
        self.requests += 1
        try:
            response = await self.client.embeddings.create(model=self.model, input=batch, **extra)
        except openai.OpenAIError as exc:
            raise StoreUnavailable(_describe(exc, str(self.client.base_url), self.model)) from exc
        data = sorted(response.data, key=lambda d: d.index)
        if [d.index for d in data] != list(range(len(batch))):
            raise StoreUnavailable(f"the embeddings API returned {len(data)} vectors for {len(batch)} inputs")
        out = []
        for d in data:
            vector = np.asarray(d.embedding, dtype=np.float64)
            if vector.shape != (self.dim,):
                raise StoreUnavailable(f"model {self.model!r} returned vectors of dimension {vector.size}, "
                                     f"expected {self.dim}; set openai.dimensions to match the model")
            norm = float(np.linalg.norm(vector))
            if not np.isfinite(norm) or norm == 0.0:
                raise StoreUnavailable(f"model {self.model!r} returned a zero or non-finite vector")
            out.append((vector / norm).astype(np.float32))
        return out
