"""Embedders: the hashing embedder's stability, and the openai embedder against a local server that speaks the
embeddings API, with its cache in the SQL store on both databases."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnky_profiles.domain.errors import StoreUnavailable
from mnky_profiles.domain.ports import Embedder
from mnky_profiles.store.embedders.cache import MemoryEmbeddingCache
from mnky_profiles.store.embedders.hashing import HashingEmbedder, hashed_vector
from mnky_profiles.store.embedders.openai import OpenAIEmbedder
from mnky_profiles.store.sql.store import SQLStore

from ..conftest import PG_URL, pg_schema
from ..fakes import BackgroundServer
from ..fakes.openai_server import FakeOpenAI, expected_vector

pytestmark = pytest.mark.anyio

MODEL = "text-embedding-3-small"
TOKENS = ["note:lavender", "family:woody", "mood:calm", "note:oud", "type:candle"]


# -- hashing -----------------------------------------------------------------------------------------------------


async def test_hashing_vectors_are_stable_unit_vectors() -> None:
    embedder: Embedder = HashingEmbedder()
    assert (embedder.name, embedder.dim) == ("hashing-v1-128", 128)
    vectors = np.asarray(await embedder.embed([*TOKENS, "note:lavender"]))
    assert vectors.shape == (6, 128)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(6))
    assert vectors[0].tolist() == vectors[5].tolist()
    # Pinned values: a change here moves every stored user vector, so it needs a new name (hashing-v2).
    pinned = [-0.061344525431, 0.171381084993, -0.102963435836, 0.002296808780]
    assert vectors[0][:4] == pytest.approx(pinned, abs=1e-11)


async def test_different_texts_point_in_nearly_independent_directions() -> None:
    vectors = HashingEmbedder(128).embed_array([f"note:n{i}" for i in range(200)])
    gram = vectors @ vectors.T
    np.fill_diagonal(gram, 0.0)
    assert np.abs(gram).mean() < 0.1 and np.abs(gram).max() < 0.5


def test_hashing_is_the_same_in_another_process() -> None:
    code = ("from mnky_profiles.store.embedders.hashing import hashed_vector; "
            "print(repr(hashed_vector('family:woody', 64).tolist()))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=True)
    assert eval(done.stdout) == hashed_vector("family:woody", 64).tolist()


def test_hashing_dimension_is_configurable() -> None:
    for dim in (8, 17, 256):
        embedder = HashingEmbedder(dim)
        assert embedder.name == f"hashing-v1-{dim}"
        assert embedder.embed_array(["x"]).shape == (1, dim)
    # A prefix of a longer vector is not the shorter vector's direction: each size is its own space.
    prefix = hashed_vector("x", 16)[:8]
    assert hashed_vector("x", 8).tolist() != (prefix / np.linalg.norm(prefix)).tolist()
    with pytest.raises(ValueError, match="at least 2"):
        HashingEmbedder(1)


# -- openai ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openai_fake() -> Iterator[tuple[FakeOpenAI, BackgroundServer]]:
    fake = FakeOpenAI()
    with fake.serve() as server:
        yield fake, server


@pytest.fixture
def fake(openai_fake: tuple[FakeOpenAI, BackgroundServer]) -> Iterator[FakeOpenAI]:
    api, _ = openai_fake
    api.requests.clear()
    api.attempts, api.scale, api.fail_status, api.wrong_dim = 0, 1.0, None, None
    yield api


@pytest.fixture
def base_url(openai_fake: tuple[FakeOpenAI, BackgroundServer]) -> str:
    return openai_fake[1].url + "/v1"


@asynccontextmanager
async def embedder(base_url: str, cache: Any = None, **options: Any) -> AsyncIterator[OpenAIEmbedder]:
    options = {"api_key": "sk-test", "model": MODEL, "dimensions": 64, "max_retries": 0, **options}
    made = OpenAIEmbedder.connect(cache or MemoryEmbeddingCache(), base_url=base_url, **options)
    try:
        yield made
    finally:
        await made.close()


@asynccontextmanager
async def sql_store(backend: str, path: Path, schema: str | None) -> AsyncIterator[SQLStore]:
    store = SQLStore.postgresql(PG_URL, schema) if backend == "postgresql" else SQLStore.sqlite(path / "cache.db")
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


async def test_vectors_come_back_in_input_order_and_unit_length(fake: FakeOpenAI, base_url: str) -> None:
    async with embedder(base_url) as e:
        assert (e.name, e.dim) == (f"openai:{MODEL}:64", 64)
        vectors = await e.embed(TOKENS)
    assert len(vectors) == len(TOKENS)
    for text, vector in zip(TOKENS, vectors, strict=True):
        assert vector == pytest.approx(expected_vector(MODEL, text, 64).tolist(), abs=1e-6)
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    (body,) = fake.requests
    assert body["input"] == TOKENS and body["model"] == MODEL and body["dimensions"] == 64
    # The openai client asks for base64 unless told otherwise; the fake answers in kind and the client decodes.
    assert body["encoding_format"] == "base64"


async def test_vectors_are_normalized_when_the_service_does_not(fake: FakeOpenAI, base_url: str) -> None:
    fake.scale = 3.5
    async with embedder(base_url) as e:
        (vector,) = await e.embed(["note:amber"])
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    assert vector == pytest.approx(expected_vector(MODEL, "note:amber", 64).tolist(), abs=1e-6)


async def test_a_text_is_requested_once(fake: FakeOpenAI, base_url: str) -> None:
    async with embedder(base_url, batch_size=2) as e:
        first = await e.embed(["a", "b", "a", "c", "d", "e"])
        assert len(fake.requests) == 3  # five distinct texts, two per request
        assert sorted(fake.texts_requested()) == ["a", "b", "c", "d", "e"]
        again = await e.embed(["e", "a", "x"])
        assert fake.texts_requested()[-1:] == ["x"] and len(fake.requests) == 4
        assert again[0] == first[5] and again[1] == first[0] and first[0] == first[2]
        await asyncio.gather(e.embed(["p", "q"]), e.embed(["q", "p", "r"]))
    assert sorted(fake.texts_requested()).count("q") == 1 and sorted(fake.texts_requested()).count("p") == 1


async def test_another_dimension_is_another_cache_entry(fake: FakeOpenAI, base_url: str) -> None:
    cache = MemoryEmbeddingCache()
    async with embedder(base_url, cache, dimensions=64) as e64, embedder(base_url, cache, dimensions=32) as e32:
        await e64.embed(["note:rose"])
        (short,) = await e32.embed(["note:rose"])
    assert len(short) == 32 and len(fake.requests) == 2


async def test_the_cache_persists_in_the_sql_store(fake: FakeOpenAI, base_url: str, tmp_path: Path,
                                                   backend: str) -> None:
    async with pg_schema() if backend == "postgresql" else _no_schema() as schema:
        async with sql_store(backend, tmp_path, schema) as store, embedder(base_url, store.embedding_cache()) as e:
            first = await e.embed(TOKENS)
        assert len(fake.requests) == 1
        # A new process: a new store connection, a new client, an empty memory.
        async with sql_store(backend, tmp_path, schema) as store, embedder(base_url, store.embedding_cache()) as e:
            again = await e.embed([*reversed(TOKENS), "note:new"])
        assert len(fake.requests) == 2 and fake.requests[-1]["input"] == ["note:new"]
        assert again[:5] == list(reversed(first))


@asynccontextmanager
async def _no_schema() -> AsyncIterator[None]:
    yield None


async def test_a_rejected_key_is_a_clear_error(fake: FakeOpenAI, base_url: str) -> None:
    import openai

    async with embedder(base_url, api_key="sk-wrong") as e:
        with pytest.raises(StoreUnavailable, match=r"rejected the API key .*MNKY_OPENAI__API_KEY") as failed:
            await e.embed(["note:vanilla"])
    assert isinstance(failed.value.__cause__, openai.AuthenticationError)


async def test_a_server_error_is_a_clear_error_after_the_retries(fake: FakeOpenAI, base_url: str) -> None:
    import openai

    fake.fail_status = 500
    async with embedder(base_url, max_retries=1) as e:
        with pytest.raises(StoreUnavailable, match="HTTP 500") as failed:
            await e.embed(["note:vanilla"])
    assert isinstance(failed.value.__cause__, openai.InternalServerError)
    assert fake.attempts == 2  # the client retried once, as configured
    fake.fail_status = None
    async with embedder(base_url) as e:
        (vector,) = await e.embed(["note:vanilla"])
    assert len(vector) == 64 and len(fake.requests) == 1  # nothing was cached from the failure


async def test_an_unknown_model_and_a_wrong_size_are_clear_errors(fake: FakeOpenAI, base_url: str) -> None:
    async with embedder(base_url, model="text-embedding-9") as e:
        with pytest.raises(StoreUnavailable, match="does not know model 'text-embedding-9'"):
            await e.embed(["x"])
    with pytest.raises(StoreUnavailable, match=r"set openai\.dimensions"):
        OpenAIEmbedder.connect(MemoryEmbeddingCache(), api_key="k", base_url=base_url, model="some-local-model")
    fake.wrong_dim = 10
    async with embedder(base_url) as e:
        with pytest.raises(StoreUnavailable, match="dimension 10, expected 64"):
            await e.embed(["x"])


async def test_unreachable_service_and_empty_text(fake: FakeOpenAI) -> None:
    with BackgroundServer(FakeOpenAI().app()) as gone:
        url = gone.url + "/v1"  # a port that was just ours and is closed now
    async with embedder(url, timeout=2) as e:
        with pytest.raises(StoreUnavailable, match="cannot reach"):
            await e.embed(["x"])
        with pytest.raises(ValueError, match="empty text"):
            await e.embed(["ok", ""])


def test_a_missing_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(StoreUnavailable, match="MNKY_OPENAI__API_KEY"):
        OpenAIEmbedder.connect(MemoryEmbeddingCache())
