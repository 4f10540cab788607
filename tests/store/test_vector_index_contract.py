"""One contract for every ``VectorIndex``: the local index on its exact path and on its HNSW path (forced with a
threshold of 0), and the Pinecone adapter against a local server that speaks Pinecone's data-plane API.

Then what only one backend has: files and reopening (local), namespaces, masking while the service catches up,
and error translation (Pinecone).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mnky_profiles.domain.errors import StoreUnavailable
from mnky_profiles.domain.ports import VectorIndex
from mnky_profiles.store.vectors import DimensionMismatch
from mnky_profiles.store.vectors.local import LocalVectorIndex
from mnky_profiles.store.vectors.pinecone import PineconeIndex, decode_id, encode_id

from ..fakes import BackgroundServer
from ..fakes.pinecone_server import FakePinecone
from ..support.clients import connect, tool_text

pytestmark = pytest.mark.anyio

DIM = 8
KINDS = ["local-exact", "local-hnsw", "pinecone"]


def unit(rows: np.ndarray) -> np.ndarray:
    normalized: np.ndarray = rows / np.linalg.norm(rows, axis=-1, keepdims=True)
    return normalized


def population(n: int = 60, seed: int = 3) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"user-{i:03d}" for i in range(n)], unit(rng.standard_normal((n, DIM)))


def exact(ids: list[str], vectors: np.ndarray, q: np.ndarray, k: int, exclude: tuple[str, ...] = ()
          ) -> list[tuple[str, float]]:
    scores = vectors @ unit(q)
    ranked = sorted((s, i) for i, s in zip(ids, scores, strict=True) if i not in exclude)
    return [(i, float(s)) for s, i in sorted(ranked, key=lambda p: -p[0])[:k]]


@pytest.fixture(scope="module")
def pinecone_fake() -> Iterator[tuple[FakePinecone, BackgroundServer]]:
    fake = FakePinecone(dimension=DIM)
    with fake.serve() as server:
        yield fake, server


async def pinecone_index(server: BackgroundServer, namespace: str | None = None, **options: Any) -> PineconeIndex:
    return await PineconeIndex.connect(dim=DIM, api_key="test-key", host=server.url,
                                       namespace=namespace or f"ns-{uuid.uuid4().hex[:8]}", **options)


@pytest.fixture(params=KINDS)
async def index(request: pytest.FixtureRequest, tmp_path: Path,
                pinecone_fake: tuple[FakePinecone, BackgroundServer]) -> AsyncIterator[Any]:
    if request.param == "pinecone":
        opened: Any = await pinecone_index(pinecone_fake[1])
    else:
        threshold = 0 if request.param == "local-hnsw" else 1_000_000
        opened = LocalVectorIndex.open(tmp_path / "vectors", DIM, hnsw_threshold=threshold)
    try:
        yield opened
    finally:
        await opened.close()


async def seeded(index: Any, n: int = 60) -> tuple[list[str], np.ndarray]:
    ids, vectors = population(n)
    await index.upsert(ids, vectors.tolist(), [{"cohort": "a"} for _ in ids])
    if isinstance(index, LocalVectorIndex):
        assert index.uses_hnsw == (index.hnsw_threshold == 0)
    return ids, vectors


def assert_same_ranking(got: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-5)


# -- the contract ------------------------------------------------------------------------------------------------


async def test_it_is_a_vector_index(index: Any) -> None:
    assert isinstance(index.dim, int) and index.dim == DIM
    for method in ("upsert", "delete", "query", "fetch", "count", "clear", "close"):
        assert callable(getattr(index, method))
    typed: VectorIndex = index  # the port, checked statically
    assert typed is index


async def test_query_ranks_by_cosine_similarity(index: Any) -> None:
    ids, vectors = await seeded(index)
    rng = np.random.default_rng(9)
    for q in rng.standard_normal((5, DIM)):
        assert_same_ranking(await index.query(q.tolist(), 5), exact(ids, vectors, q, 5))
    # A stored vector finds itself first, with similarity 1.
    first = await index.query(vectors[7].tolist(), 3)
    assert first[0][0] == ids[7] and first[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in first] == sorted((s for _, s in first), reverse=True)


async def test_it_holds_exports_and_erases_one_users_vector(index: Any) -> None:
    """The personal-data port: a user's vector is all an index keeps about them."""
    ids, vectors = await seeded(index)
    assert index.holder == "similarity_index"
    assert await index.held(ids[3]) == {"vector": 1} and await index.held("nobody") == {}
    assert (await index.export(ids[3]))["vector"] == pytest.approx(vectors[3].tolist(), abs=1e-6)
    assert await index.erase(ids[3]) == {"vector": 1}
    assert await index.held(ids[3]) == {} and await index.export(ids[3]) == {} and await index.erase(ids[3]) == {}
    assert ids[3] not in {i for i, _ in await index.query(vectors[3].tolist(), 5)}
    assert await index.held(ids[4]) == {"vector": 1}


async def test_vectors_are_normalized_on_the_way_in(index: Any) -> None:
    await index.upsert(["a", "b"], [[3.0] + [0.0] * (DIM - 1), [1.0, 1.0] + [0.0] * (DIM - 2)])
    fetched = await index.fetch(["a"])
    assert fetched["a"] == pytest.approx([1.0] + [0.0] * (DIM - 1), abs=1e-6)
    result = await index.query([10.0] + [0.0] * (DIM - 1), 2)
    assert [i for i, _ in result] == ["a", "b"]
    assert [s for _, s in result] == pytest.approx([1.0, 2 ** -0.5], abs=1e-5)


async def test_exclude_is_honoured_and_k_results_still_come_back(index: Any) -> None:
    ids, vectors = await seeded(index)
    q = vectors[0]
    top = exact(ids, vectors, q, 3)
    skip = (top[0][0], top[1][0], "not-stored")
    result = await index.query(q.tolist(), 5, exclude=skip)
    assert len(result) == 5
    assert not {i for i, _ in result} & set(skip)
    assert_same_ranking(result, exact(ids, vectors, q, 5, skip))


async def test_k_beyond_the_population_and_k_zero(index: Any) -> None:
    ids, vectors = await seeded(index, 6)
    assert len(await index.query(vectors[0].tolist(), 50)) == 6
    assert len(await index.query(vectors[0].tolist(), 50, exclude=ids[:2])) == 4
    assert await index.query(vectors[0].tolist(), 0) == []
    assert await index.query(vectors[0].tolist(), 3, exclude=ids) == []


async def test_an_empty_index_answers_empty(index: Any) -> None:
    assert await index.count() == 0
    assert await index.query([1.0] * DIM, 5) == []
    assert await index.fetch(["nobody"]) == {}
    await index.delete(["nobody"])  # nothing to delete is not an error
    await index.clear()
    assert await index.count() == 0


async def test_a_delete_takes_effect_before_it_returns(index: Any) -> None:
    ids, vectors = await seeded(index)
    gone = ids[:3]
    await index.delete([*gone, "never-stored"])
    assert await index.count() == len(ids) - 3
    assert await index.fetch(gone) == {}
    for j in range(3):
        result = await index.query(vectors[j].tolist(), 10)
        assert not {i for i, _ in result} & set(gone)
        assert len(result) == 10
    assert_same_ranking(await index.query(vectors[0].tolist(), 5), exact(ids[3:], vectors[3:], vectors[0], 5))


async def test_fetch_returns_stored_vectors_for_known_ids_only(index: Any) -> None:
    ids, vectors = await seeded(index)
    fetched = await index.fetch([ids[4], "unknown", ids[9]])
    assert set(fetched) == {ids[4], ids[9]}
    assert fetched[ids[4]] == pytest.approx(vectors[4].tolist(), abs=1e-6)
    assert all(isinstance(x, float) for x in fetched[ids[9]])


async def test_upsert_overwrites(index: Any) -> None:
    ids, vectors = await seeded(index)
    moved = unit(vectors[1] + vectors[2])
    await index.upsert([ids[0]], [moved.tolist()])
    assert await index.count() == len(ids)
    assert (await index.fetch([ids[0]]))[ids[0]] == pytest.approx(moved.tolist(), abs=1e-6)
    result = await index.query(moved.tolist(), 1)
    assert result[0][0] == ids[0] and result[0][1] == pytest.approx(1.0, abs=1e-5)
    assert ids[0] not in [i for i, _ in await index.query(vectors[0].tolist(), 1)]


async def test_clear_empties_the_index(index: Any) -> None:
    ids, vectors = await seeded(index)
    await index.clear()
    assert await index.count() == 0
    assert await index.query(vectors[0].tolist(), 5) == []
    assert await index.fetch(ids[:3]) == {}
    await index.upsert(["fresh"], [vectors[0].tolist()])
    assert [i for i, _ in await index.query(vectors[0].tolist(), 5)] == ["fresh"]
    assert await index.count() == 1


async def test_rebuild_replaces_everything(index: Any) -> None:
    ids, vectors = await seeded(index)
    await index.rebuild(ids[:5], vectors[:5])
    assert await index.count() == 5
    assert set(await index.fetch(ids)) == set(ids[:5])
    hits = await index.query(vectors[0].tolist(), 10)
    assert hits[0][0] == ids[0] and {u for u, _ in hits} <= set(ids[:5])
    await index.rebuild([], np.zeros((0, DIM), dtype=np.float32))
    assert await index.count() == 0 and await index.query(vectors[0].tolist(), 3) == []


async def test_a_dimension_mismatch_is_a_clear_error_and_writes_nothing(index: Any) -> None:
    await index.upsert(["a"], [[1.0] * DIM])
    with pytest.raises(DimensionMismatch, match=f"dimension 3, which does not match the index dimension {DIM}"):
        await index.upsert(["b", "c"], [[1.0] * DIM, [1.0, 2.0, 3.0]])
    with pytest.raises(DimensionMismatch, match="dimension"):
        await index.query([1.0] * (DIM + 1), 3)
    assert await index.count() == 1
    assert set(await index.fetch(["a", "b", "c"])) == {"a"}


async def test_malformed_batches_are_refused(index: Any) -> None:
    with pytest.raises(ValueError, match="ids for"):
        await index.upsert(["a", "b"], [[1.0] * DIM])
    with pytest.raises(ValueError, match="twice"):
        await index.upsert(["a", "a"], [[1.0] * DIM, [2.0] * DIM])
    with pytest.raises(ValueError, match="zero"):
        await index.upsert(["a"], [[0.0] * DIM])
    with pytest.raises(ValueError, match="metadata"):
        await index.upsert(["a"], [[1.0] * DIM], [])
    assert await index.count() == 0


async def test_any_user_id_round_trips(index: Any) -> None:
    odd = ["zoë", "a/b c", "50%", "user:1", "ünïcödé-✓"]
    vectors = unit(np.random.default_rng(1).standard_normal((len(odd), DIM)))
    await index.upsert(odd, vectors.tolist())
    assert set(await index.fetch(odd)) == set(odd)
    assert (await index.query(vectors[0].tolist(), 1))[0][0] == "zoë"
    await index.delete(["50%"])
    assert "50%" not in {i for i, _ in await index.query(vectors[2].tolist(), 5)}


# -- local: files, reopening, the two search paths --------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0, 1_000_000], ids=["hnsw", "exact"])
async def test_local_index_persists_and_reopens(tmp_path: Path, threshold: int) -> None:
    ids, vectors = population()
    index = LocalVectorIndex.open(tmp_path, DIM, hnsw_threshold=threshold, space="hashing-v1-8")
    await index.upsert(ids, vectors.tolist())
    await index.delete(ids[:2])
    await index.upsert([ids[5]], [vectors[6].tolist()])
    before = await index.query(vectors[10].tolist(), 5, exclude=[ids[10]])
    await index.close()

    again = LocalVectorIndex.open(tmp_path, DIM, hnsw_threshold=threshold, space="hashing-v1-8")
    try:
        assert again.uses_hnsw == (threshold == 0)
        assert await again.count() == len(ids) - 2
        assert await again.query(vectors[10].tolist(), 5, exclude=[ids[10]]) == before
        assert await again.fetch(ids[:2]) == {}
        assert (await again.fetch([ids[5]]))[ids[5]] == pytest.approx(vectors[6].tolist(), abs=1e-6)
        # Keys freed by the deletes are reused, and the id mapping survives that.
        await again.upsert(["late-1", "late-2"], vectors[:2].tolist())
        assert (await again.query(vectors[0].tolist(), 1))[0][0] == "late-1"
    finally:
        await again.close()
    reopened = LocalVectorIndex.open(tmp_path, DIM, hnsw_threshold=threshold, space="hashing-v1-8")
    assert (await reopened.query(vectors[1].tolist(), 1))[0][0] == "late-2"
    await reopened.close()


CRASHING_WRITER = """
import asyncio, os, sys
import numpy as np
from mnky_profiles.store.vectors.local import LocalVectorIndex

async def main():
    index = LocalVectorIndex.open(__import__("pathlib").Path(sys.argv[1]), 8, hnsw_threshold=int(sys.argv[2]))
    vectors = np.eye(8)
    await index.upsert([f"u{i}" for i in range(8)], vectors)
    await index.delete(["u3"])
    await index.upsert(["u4"], [vectors[5]])
    os._exit(0)  # no close(): the journal alone must carry these changes

asyncio.run(main())
"""


@pytest.mark.parametrize("threshold", [0, 1_000_000], ids=["hnsw", "exact"])
async def test_local_changes_survive_a_crash_through_the_journal(tmp_path: Path, threshold: int) -> None:
    done = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(tmp_path), str(threshold)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    with open(next(tmp_path.glob("journal-*.log")), "ab") as journal:
        journal.write(b'{"op":"del","ids":["u0"')  # a write torn by the crash: never acknowledged
    index = LocalVectorIndex.open(tmp_path, DIM, hnsw_threshold=threshold)
    try:
        assert await index.count() == 7
        assert await index.fetch(["u3"]) == {}
        assert "u0" in await index.fetch(["u0"])
        assert [i for i, _ in await index.query(np.eye(DIM)[5].tolist(), 2)] in (["u4", "u5"], ["u5", "u4"])
        await index.upsert(["u9"], [np.eye(DIM)[3].tolist()])  # the journal is writable after the torn tail
    finally:
        await index.close()


async def test_local_index_refuses_another_dimension_or_space(tmp_path: Path) -> None:
    index = LocalVectorIndex.open(tmp_path, DIM, space="hashing-v1-8")
    await index.upsert(["a"], [[1.0] * DIM])
    await index.close()
    with pytest.raises(DimensionMismatch, match="rebuild"):
        LocalVectorIndex.open(tmp_path, DIM + 1, space="hashing-v1-8")
    with pytest.raises(StoreUnavailable, match="openai"):
        LocalVectorIndex.open(tmp_path, DIM, space="openai:text-embedding-3-small:8")
    reset = LocalVectorIndex.open(tmp_path, DIM + 1, space="hashing-v1-9", discard_mismatched=True)
    assert reset.was_reset and await reset.count() == 0
    await reset.close()
    assert not list(tmp_path.glob("vectors-*.npy"))  # the old vectors are gone, not merely ignored


async def test_one_process_owns_a_local_index_directory(tmp_path: Path) -> None:
    index = LocalVectorIndex.open(tmp_path, DIM)
    with pytest.raises(StoreUnavailable, match="another process"):
        LocalVectorIndex.open(tmp_path, DIM)
    await index.close()
    await LocalVectorIndex.open(tmp_path, DIM).close()  # free again once closed


async def test_local_rebuild_replaces_everything(tmp_path: Path) -> None:
    index = LocalVectorIndex.open(tmp_path, DIM, hnsw_threshold=30)
    ids, vectors = population()
    await index.upsert(["stale"], [vectors[0].tolist()])
    await index.rebuild(ids, vectors)
    assert index.uses_hnsw and await index.count() == len(ids)
    assert await index.fetch(["stale"]) == {}
    await index.close()
    again = LocalVectorIndex.open(tmp_path, DIM, hnsw_threshold=30)
    assert again.uses_hnsw and await again.count() == len(ids)
    await again.close()


async def test_local_index_switches_between_exact_and_hnsw(tmp_path: Path) -> None:
    index = LocalVectorIndex(DIM, hnsw_threshold=40)
    ids, vectors = population(60)
    await index.upsert(ids[:40], vectors[:40].tolist())
    assert not index.uses_hnsw
    await index.upsert(ids[40:], vectors[40:].tolist())
    assert index.uses_hnsw
    assert_same_ranking(await index.query(vectors[3].tolist(), 5), exact(ids, vectors, vectors[3], 5))
    await index.delete(ids[:45])  # 15 left: under half the threshold, the graph goes
    assert not index.uses_hnsw
    assert_same_ranking(await index.query(vectors[50].tolist(), 5),
                        exact(ids[45:], vectors[45:], vectors[50], 5))


async def test_local_snapshots_as_the_journal_grows(tmp_path: Path) -> None:
    index = LocalVectorIndex.open(tmp_path, DIM)
    vectors = unit(np.random.default_rng(2).standard_normal((1_100, DIM)))
    for j in range(1_100):  # one journal record each: past 1,000 a snapshot supersedes the journal
        await index.upsert([f"u{j}"], [vectors[j]])
    assert (tmp_path / "snapshot.json").exists()
    with open(next(tmp_path.glob("journal-*.log")), "rb") as journal:
        assert sum(1 for _ in journal) < 1_000
    await index.close()
    again = LocalVectorIndex.open(tmp_path, DIM)
    assert await again.count() == 1_100
    await again.close()


# -- pinecone: namespaces, masking, errors ------------------------------------------------------------------------


async def test_pinecone_namespaces_are_isolated(pinecone_fake: tuple[FakePinecone, BackgroundServer]) -> None:
    _, server = pinecone_fake
    a = await pinecone_index(server)
    b = await pinecone_index(server)
    try:
        ids, vectors = await seeded(a, 10)
        await b.upsert(["b-only"], [vectors[0].tolist()])
        assert await a.count() == 10 and await b.count() == 1
        assert [i for i, _ in await b.query(vectors[0].tolist(), 5)] == ["b-only"]
        assert await b.fetch(ids) == {}
        await b.clear()
        assert await a.count() == 10
        await b.delete(ids)  # another namespace's ids: nothing happens to them
        assert await a.count() == 10
    finally:
        await a.close()
        await b.close()


async def test_pinecone_batches_large_writes(pinecone_fake: tuple[FakePinecone, BackgroundServer]) -> None:
    fake, server = pinecone_fake
    index = await pinecone_index(server)
    try:
        ids = [f"u{i}" for i in range(2_500)]
        vectors = unit(np.random.default_rng(4).standard_normal((2_500, DIM)))
        before = len(fake.requests)
        await index.upsert(ids, vectors.tolist())
        assert fake.requests[before:].count(("POST", "/vectors/upsert")) == 3  # the service takes 1,000 at most
        assert await index.count() == 2_500
        await index.delete(ids)
        assert await index.count() == 0
        assert fake.api_versions == {"2026-07"}
    finally:
        await index.close()


async def test_pinecone_masks_deletes_the_service_has_not_applied_yet(
        pinecone_fake: tuple[FakePinecone, BackgroundServer]) -> None:
    fake, server = pinecone_fake
    now = [1000.0]
    namespace = f"ns-{uuid.uuid4().hex[:8]}"
    index = await pinecone_index(server, namespace)
    index._clock = lambda: now[0]
    try:
        ids, vectors = await seeded(index, 20)
        fake.defer_deletes = True  # the service lags, as it may for a few seconds
        await index.delete([ids[0]])
        assert ids[0] in fake.namespaces[namespace]
        assert ids[0] not in {i for i, _ in await index.query(vectors[0].tolist(), 5)}
        assert len(await index.query(vectors[0].tolist(), 5)) == 5
        assert await index.fetch([ids[0]]) == {}
        await index.clear()
        assert await index.query(vectors[1].tolist(), 5) == []
        await index.upsert(["after-clear"], [vectors[1].tolist()])
        assert [i for i, _ in await index.query(vectors[1].tolist(), 5)] == ["after-clear"]
        fake.defer_deletes = False
        fake.apply_deferred()
        now[0] += index.consistency_window + 1  # the masks lapse; the service has caught up
        assert [i for i, _ in await index.query(vectors[1].tolist(), 5)] == ["after-clear"]
    finally:
        fake.defer_deletes = False
        fake.apply_deferred()
        await index.close()


async def test_pinecone_errors_are_translated(pinecone_fake: tuple[FakePinecone, BackgroundServer]) -> None:
    from pinecone.errors.exceptions import ApiError, UnauthorizedError

    fake, server = pinecone_fake
    with pytest.raises(StoreUnavailable, match="API key") as bad_key:
        await PineconeIndex.connect(dim=DIM, api_key="wrong", host=server.url)
    assert isinstance(bad_key.value.__cause__, UnauthorizedError)
    with pytest.raises(DimensionMismatch, match=f"dimension {DIM}"):
        await PineconeIndex.connect(dim=DIM * 2, api_key="test-key", host=server.url)
    with pytest.raises(StoreUnavailable, match="host"):
        await PineconeIndex.connect(dim=DIM, api_key="test-key")
    with pytest.MonkeyPatch.context() as env:
        env.delenv("PINECONE_API_KEY", raising=False)
        with pytest.raises(StoreUnavailable, match="MNKY_PINECONE__API_KEY"):
            await PineconeIndex.connect(dim=DIM, host=server.url)
    index = await pinecone_index(server)
    try:
        fake.fail_status = 400
        with pytest.raises(StoreUnavailable, match="HTTP 400") as failed:
            await index.query([1.0] * DIM, 3)
        assert isinstance(failed.value.__cause__, ApiError)
    finally:
        fake.fail_status = None
        await index.close()


async def test_pinecone_unreachable_is_a_clear_error() -> None:
    from pinecone.errors.exceptions import PineconeError

    with BackgroundServer(FakePinecone(DIM).app()) as server:
        url = server.url  # a port that was just ours and is closed now
    with pytest.raises(StoreUnavailable, match="cannot reach Pinecone") as failed:
        await PineconeIndex.connect(dim=DIM, api_key="test-key", host=url, timeout=2)
    assert isinstance(failed.value.__cause__, PineconeError)


def test_pinecone_ids_encode_reversibly() -> None:
    for user_id in ["plain-id_1.x", "zoë", "50%", "%41", "a b/c?d#e", "✓" * 5]:
        stored = encode_id(user_id)
        assert stored.isascii() and decode_id(stored) == user_id
    assert encode_id("plain-id_1.x") == "plain-id_1.x"  # ordinary ids are stored as they are



def test_the_settings_defaults_are_the_benchmarked_parameters() -> None:
    from mnky_profiles.server.settings import LocalIndexSettings
    from mnky_profiles.store.vectors import local

    defaults = LocalIndexSettings()
    assert (defaults.hnsw_threshold, defaults.connectivity, defaults.expansion_add, defaults.expansion_search) == (
        local.DEFAULT_THRESHOLD, local.DEFAULT_CONNECTIVITY, local.DEFAULT_EXPANSION_ADD,
        local.DEFAULT_EXPANSION_SEARCH)


CHURNING_WRITER = """
import asyncio, os, sys
import numpy as np
from pathlib import Path
from mnky_profiles.store.vectors.local import LocalVectorIndex

async def main():
    rng = np.random.default_rng(5)
    index = LocalVectorIndex.open(Path(sys.argv[1]), 8, hnsw_threshold=150)
    vectors = rng.standard_normal((200, 8))
    await index.upsert([f"u{i}" for i in range(100)], vectors[:100])  # exact search: rows overwritten in place
    await index.upsert([f"u{i}" for i in range(100, 200)], vectors[100:])  # past the threshold: the graph
    for step in range(1_500):  # more changes than one purge of retired nodes takes
        j = int(rng.integers(200))
        vectors[j] = rng.standard_normal(8)
        await index.upsert([f"u{j}"], [vectors[j]])
    await index.delete([f"u{i}" for i in range(0, 200, 10)])
    np.save(sys.argv[1] + ".expected.npy", vectors)
    os._exit(0)  # no close(): the journal carries all of it, across the switch to the graph

asyncio.run(main())
"""


async def test_local_graph_stays_right_through_churn_and_replay(tmp_path: Path) -> None:
    directory = tmp_path / "index"
    done = subprocess.run([sys.executable, "-c", CHURNING_WRITER, str(directory)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    vectors = unit(np.load(str(directory) + ".expected.npy"))
    ids = [f"u{i}" for i in range(200)]
    alive = [j for j in range(200) if j % 10]
    index = LocalVectorIndex.open(directory, DIM, hnsw_threshold=150)
    try:
        assert index.uses_hnsw and await index.count() == len(alive)
        live_ids, live_vectors = [ids[j] for j in alive], vectors[alive]
        for j in (1, 55, 123, 199):
            assert_same_ranking(await index.query(vectors[j].tolist(), 8),
                                exact(live_ids, live_vectors, vectors[j], 8))
        assert (await index.fetch([ids[77]]))[ids[77]] == pytest.approx(vectors[77].tolist(), abs=1e-6)
    finally:
        await index.close()


# -- the server on Pinecone: the same path a user runs ---------------------------------------------------------


async def test_the_server_finds_similar_users_on_pinecone_and_a_failing_service_is_retryable(
        pinecone_fake: tuple[FakePinecone, BackgroundServer], tmp_path: Path) -> None:
    from ..conftest import FakeClock, open_world
    from ..support.gate import newest_entry, snapshot

    fake, server = pinecone_fake
    settings = {"user_profiling": {"vector_store": "pinecone"}, "hashing": {"dim": DIM},
                "pinecone": {"host": server.url, "api_key": "test-key", "namespace": f"ns-{uuid.uuid4().hex[:8]}"}}
    async with open_world("sqlite", tmp_path, FakeClock(), **settings) as world, \
            connect(world.server("privacy-officer")) as c:
        for user in ("fan-1", "fan-2"):
            await c.call_tool("update_profile", {"user_id": user, "create": True,
                                                 "attributes": {"language": "en"}})
            await c.call_tool("record_consent", {"user_id": user, "purpose": "profiling", "granted": True,
                                                 "source": "test"})
            await c.call_tool("record_event", {"user_id": user, "event_type": "purchase",
                                               "item_id": "candle-lavender"})
        found = await c.call_tool("find_similar_users", {"user_id": "fan-1", "purpose": "profiling"})
        assert not found.is_error and len(found.structured_content["neighbours"]) == 1
        before = await snapshot(world.runtime)
        fake.fail_status = 503
        try:
            failed = await c.call_tool("find_similar_users", {"user_id": "fan-1", "purpose": "profiling"})
        finally:
            fake.fail_status = None
        assert failed.is_error and "retry shortly" in tool_text(failed)
        assert "503" not in tool_text(failed)  # the backend's detail is for the log, not the agent
        assert (await newest_entry(world.runtime)).outcome == "error:storage"
        assert await snapshot(world.runtime) == before
