"""The local vector index: exact cosine search with numpy, and an HNSW graph (usearch) above a size threshold.

The vectors themselves live in one float32 matrix whose row number is the vector's integer key; string ids map to
keys (freed keys are reused, so the matrix stays as large as the population, not as its history). Exact search is
one matrix-vector product over that matrix. Past ``hnsw_threshold`` live vectors an HNSW graph over the same keys
answers queries in about a millisecond at a million users; its candidates are rescored against the matrix, so
both paths report the same cosine scores. Deletes take effect in both before the call returns.

On disk, under ``directory``:

- ``snapshot.json``: format, dimension, vector space (the embedder's name), generation, whether a graph is saved;
- ``vectors-<gen>.npy`` (the matrix), ``ids-<gen>.json`` (the id of each key, null for a free key) and, when the
  graph is in use, ``hnsw-<gen>.usearch``;
- ``journal-<gen>.log``: every change since that snapshot, one JSON line per upsert or delete, written before the
  call returns and replayed on open. A torn last line (a crash mid-write) is dropped.

A snapshot is written on ``close()`` and whenever the journal outgrows a tenth of the index, under a new
generation that replaces ``snapshot.json`` atomically, so a crash leaves either the old or the new state. One
process owns a directory at a time (an advisory lock). ``rebuild(ids, vectors)`` replaces everything from
vectors the caller supplies: what to do after an embedder change, lost files or a failed open.
"""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ...domain.errors import StoreUnavailable
from . import DimensionMismatch, IndexHoldings, check_batch, unit_rows, unit_vector

log = logging.getLogger(__name__)
T = TypeVar("T")

FORMAT = 1
# Chosen with benchmarks/bench_vector_index.py on clustered user vectors: recall@10 about 0.97 and a query of about
# 1 ms at 1,000,000 users on 2 cores (a lower expansion_add builds faster but loses recall on clustered data).
DEFAULT_THRESHOLD = 20_000
DEFAULT_CONNECTIVITY = 16
DEFAULT_EXPANSION_ADD = 256
DEFAULT_EXPANSION_SEARCH = 192
# Work bigger than this runs in a worker thread, so the event loop keeps serving: a graph insert costs about a
# millisecond at a million users, a matrix write or a snapshot row next to nothing.
_OFFLOAD_GRAPH = 16
_PARALLEL_BUILD = 50_000
_OFFLOAD_ROWS = 20_000


class LocalVectorIndex(IndexHoldings):
    """``VectorIndex`` in this process: in memory as constructed, kept on disk when made with ``open``."""

    def __init__(self, dim: int, *, space: str = "",
                 hnsw_threshold: int = DEFAULT_THRESHOLD, connectivity: int = DEFAULT_CONNECTIVITY,
                 expansion_add: int = DEFAULT_EXPANSION_ADD, expansion_search: int = DEFAULT_EXPANSION_SEARCH,
                 fsync: bool = False) -> None:
        """An empty in-memory index. ``space`` names the embedder, so a stored index of another is refused."""
        if dim < 1:
            raise ValueError(f"index dimension must be positive, got {dim}")
        self.dim = dim
        self.directory: Path | None = None
        self.space = space
        self.hnsw_threshold = hnsw_threshold
        self.connectivity = connectivity
        self.expansion_add = expansion_add
        self.expansion_search = expansion_search
        self.fsync = fsync
        self.was_reset = False  # set by open() when it discarded files it could not use
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._ids: list[str | None] = []
        self._keys: dict[str, int] = {}
        self._free: set[int] = set()
        self._retired: set[int] = set()
        self._hnsw: Any = None
        self._generation = 0
        self._journal: Any = None
        self._journal_records = 0
        self._lock_file: Any = None
        self._lock = asyncio.Lock()

    # -- opening and closing ---------------------------------------------------------------------------------
    @classmethod
    def open(cls, directory: Path, dim: int, *, discard_mismatched: bool = False, **options: Any
             ) -> LocalVectorIndex:
        """Load the index kept in ``directory`` (created when missing).

        A snapshot of another dimension or space raises ``DimensionMismatch`` / ``StoreUnavailable``, unless
        ``discard_mismatched``: then its files are removed, the index opens empty and ``was_reset`` is True, so the
        caller knows to ``rebuild``.
        """
        index = cls(dim, **options)
        index.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        index._take_lock()
        try:
            index._load(discard_mismatched)
            index._open_journal()
        except BaseException:
            index._release_lock()
            raise
        return index

    async def close(self) -> None:
        async with self._lock:
            if self._journal is not None:
                if self._journal_records:
                    await self._run(len(self._keys) > _OFFLOAD_ROWS, self._write_snapshot)
                self._journal.close()
                self._journal = None
                self._release_lock()

    # -- the port --------------------------------------------------------------------------------------------
    async def upsert(self, ids: Sequence[str], vectors: Sequence[Sequence[float]],
                     metadata: Sequence[dict[str, str]] | None = None) -> None:
        """Insert or overwrite. Metadata is accepted for the port's sake and not kept: nothing here reads it."""
        ids = list(ids)
        check_batch(ids, len(vectors), metadata)
        matrix = unit_rows(vectors, self.dim)
        if not ids:
            return
        async with self._lock:
            heavy = len(ids) > (_OFFLOAD_GRAPH if self._hnsw is not None else _OFFLOAD_ROWS)
            keys = await self._run(heavy, self._apply_upsert, ids, matrix)
            self._log({"op": "put", "ids": ids, "keys": keys,
                       "v": base64.b64encode(matrix.astype("<f4").tobytes()).decode()})
            if self._hnsw is None and len(self._keys) > self.hnsw_threshold:
                await self._run(True, self._build_hnsw)
            await self._maybe_snapshot()

    async def delete(self, ids: Sequence[str]) -> None:
        async with self._lock:
            present = [i for i in dict.fromkeys(ids) if i in self._keys]
            if present:
                self._apply_delete(present)
                self._log({"op": "del", "ids": present})
                await self._maybe_snapshot()

    async def query(self, vector: Sequence[float], k: int, exclude: Sequence[str] = ()
                    ) -> list[tuple[str, float]]:
        q = unit_vector(vector, self.dim)
        if k <= 0:
            return []
        async with self._lock:
            excluded = {self._keys[i] for i in exclude if i in self._keys}
            want = min(k, len(self._keys) - len(excluded))
            if want <= 0:
                return []
            keys = self._search_hnsw(q, want, excluded) if self._hnsw is not None else None
            if keys is None:
                keys = self._search_exact(q, want, excluded)
            scores = self._matrix[keys] @ q  # exact scores for either path
            order = np.argsort(-scores, kind="stable")
            return [(self._keyed_id(int(keys[j])), float(scores[j])) for j in order]

    async def fetch(self, ids: Sequence[str]) -> dict[str, list[float]]:
        async with self._lock:
            return {i: self._matrix[self._keys[i]].astype(np.float64).tolist() for i in ids if i in self._keys}

    async def count(self) -> int:
        async with self._lock:
            return len(self._keys)

    async def clear(self) -> None:
        async with self._lock:
            self._reset_memory()
            if self._journal is not None:
                self._write_snapshot()  # an empty snapshot supersedes the journal at once

    # -- beyond the port -------------------------------------------------------------------------------------
    async def rebuild(self, ids: Sequence[str], vectors: Sequence[Sequence[float]] | np.ndarray) -> None:
        """Replace the whole content with these vectors (built in a worker thread, then saved)."""
        ids = list(ids)
        check_batch(ids, len(vectors), None)
        matrix = unit_rows(vectors, self.dim)

        def build() -> None:
            self._reset_memory()
            if ids:
                self._apply_upsert(ids, matrix)
            if len(self._keys) > self.hnsw_threshold:
                self._build_hnsw()
            if self._journal is not None:
                self._write_snapshot()

        async with self._lock:
            await asyncio.to_thread(build)

    async def save(self) -> None:
        """Write a snapshot now (it also happens on close and as the journal grows)."""
        async with self._lock:
            if self._journal is not None:
                await self._run(len(self._keys) > _OFFLOAD_ROWS, self._write_snapshot)

    async def erase(self, user_id: str) -> dict[str, int]:
        """Delete the user's vector, then snapshot: until a snapshot replaces it, the journal still names them."""
        held = await super().erase(user_id)
        if held:
            await self.save()
        return held

    @property
    def uses_hnsw(self) -> bool:
        return self._hnsw is not None

    # -- in-memory state -------------------------------------------------------------------------------------
    # A key is live (it has an id), free (no id, not in the graph: reusable) or retired (no id, still a node of
    # the graph). Retired nodes leave the graph in batches: in usearch the first insert after a removal costs
    # time proportional to the graph (about 50 ms at a million), so removing one node per update would make
    # every realtime update pay it. Searches skip retired nodes, so a delete still takes effect at once.
    def _reset_memory(self) -> None:
        self._matrix = np.zeros((0, self.dim), dtype=np.float32)
        self._ids, self._keys, self._free, self._retired = [], {}, set(), set()
        self._hnsw = None

    def _apply_upsert(self, ids: list[str], matrix: np.ndarray, keys: list[int] | None = None) -> list[int]:
        """Place the rows and return their keys (on replay ``keys`` come from the journal).

        Without a graph an id keeps its key and its row is overwritten. With one, a changed vector takes a new
        key and the old node is retired, so no node is ever removed and re-added one at a time.
        """
        replaying = keys is not None
        if keys is None:
            keys, next_key = [], len(self._ids)
            for i in ids:
                key = self._keys.get(i) if self._hnsw is None else None
                if key is None:
                    if self._free:
                        key = self._free.pop()
                    else:
                        key, next_key = next_key, next_key + 1
                keys.append(key)
        high = max(keys) + 1
        if high > len(self._ids):
            self._ids.extend([None] * (high - len(self._ids)))
        if high > len(self._matrix):
            grown = np.zeros((max(high, len(self._matrix) * 3 // 2 + 16), self.dim), dtype=np.float32)
            grown[:len(self._matrix)] = self._matrix
            self._matrix = grown
        for i, k in zip(ids, keys, strict=True):
            old = self._keys.get(i)
            if old is not None and old != k:
                self._ids[old] = None
                self._retire([old])
            self._free.discard(k)
            self._retired.discard(k)
            self._ids[k] = i
            self._keys[i] = k
        key_array = np.asarray(keys, dtype=np.int64)
        self._matrix[key_array] = matrix
        if self._hnsw is not None:
            if replaying:  # a journal written without the graph may reuse keys that are nodes here
                taken = key_array[np.asarray(self._hnsw.contains(key_array.astype(np.uint64)), dtype=bool)]
                if len(taken):
                    self._hnsw.remove(taken.astype(np.uint64))
            self._hnsw_add(key_array, matrix)
        return keys

    def _apply_delete(self, ids: list[str]) -> None:
        keys = [self._keys.pop(i) for i in ids if i in self._keys]
        for k in keys:
            self._ids[k] = None
        self._retire(keys)
        if self._hnsw is not None and len(self._keys) < self.hnsw_threshold // 2:
            self._hnsw = None  # small again: exact search is as fast and the graph's memory comes back
            self._free |= self._retired
            self._retired = set()

    def _retire(self, keys: list[int]) -> None:
        """Keys that lost their id: zero rows, and either free or (with a graph) retired until the next purge."""
        if not keys:
            return
        self._matrix[np.asarray(keys, dtype=np.int64)] = 0.0
        if self._hnsw is None:
            self._free.update(keys)
            return
        self._retired.update(keys)
        if len(self._retired) >= max(1_024, len(self._keys) // 100):
            self._purge_retired()

    def _purge_retired(self) -> None:
        if self._hnsw is not None and self._retired:
            self._hnsw.remove(np.fromiter(self._retired, dtype=np.uint64, count=len(self._retired)))
        self._free |= self._retired
        self._retired = set()

    def _keyed_id(self, key: int) -> str:
        found = self._ids[key]
        assert found is not None  # searches only return live keys
        return found

    # -- search ----------------------------------------------------------------------------------------------
    def _search_exact(self, q: np.ndarray, want: int, excluded: set[int]) -> np.ndarray:
        n = len(self._ids)
        scores = self._matrix[:n] @ q
        for unused in (self._free, self._retired, excluded):  # zero rows and excluded ones go below every score
            if unused:
                scores[np.fromiter(unused, dtype=np.int64, count=len(unused))] = -np.inf
        top = np.argpartition(-scores, want - 1)[:want] if want < n else np.arange(n)
        found: np.ndarray = top[np.isfinite(scores[top])]
        return found

    def _search_hnsw(self, q: np.ndarray, want: int, excluded: set[int]) -> np.ndarray | None:
        """Keys from the graph, or None when it cannot produce ``want`` of them (then exact search answers)."""
        # Room for the excluded and the retired nodes among the nearest, so k results still come back.
        count = want + len(excluded) + (want if self._retired else 0)
        nodes = len(self._keys) + len(self._retired)
        while True:
            matches = self._hnsw.search(q, count, threads=1)
            ids = self._ids
            keys = [k for k in matches.keys.tolist() if ids[k] is not None and k not in excluded]
            if len(keys) >= want:
                return np.asarray(keys[:want], dtype=np.int64)
            if count >= nodes:
                return None
            count = min(count * 2, nodes)  # too many of the nearest were skipped: widen

    # -- HNSW ------------------------------------------------------------------------------------------------
    def _new_hnsw(self) -> Any:
        from usearch.index import Index

        return Index(ndim=self.dim, metric="cos", dtype="f32", connectivity=self.connectivity,
                     expansion_add=self.expansion_add, expansion_search=self.expansion_search)

    def _build_hnsw(self) -> None:
        log.info("building the HNSW graph over %d vectors", len(self._keys))
        graph = self._new_hnsw()
        keys = np.sort(np.fromiter(self._keys.values(), dtype=np.int64, count=len(self._keys)))
        # Every core for a large build (it runs off the loop); one thread for a small one, where it costs little and
        # the graph comes out the same every time (a concurrent build once left a node unreachable in a 60-node test).
        threads = 0 if len(keys) >= _PARALLEL_BUILD else 1
        graph.add(keys.astype(np.uint64), self._matrix[keys], threads=threads)
        self._hnsw = graph

    def _hnsw_add(self, keys: np.ndarray, matrix: np.ndarray) -> None:
        threads = 0 if len(keys) > _OFFLOAD_GRAPH else 1  # a batch in a worker thread may use every core
        self._hnsw.add(keys.astype(np.uint64), matrix, threads=threads)

    # -- persistence -----------------------------------------------------------------------------------------
    def _path(self, name: str) -> Path:
        assert self.directory is not None
        return self.directory / name

    def _take_lock(self) -> None:
        self._lock_file = open(self._path("LOCK"), "a+")  # noqa: SIM115 - held until close
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            self._lock_file = None
            raise StoreUnavailable(f"another process has the vector index in {self.directory} open") from None

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _load(self, discard_mismatched: bool) -> None:
        meta_path = self._path("snapshot.json")
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            problem = self._mismatch(meta)
            if problem is not None:
                if not discard_mismatched:
                    raise problem
                log.warning("discarding the vector index in %s: %s", self.directory, problem)
                meta_path.unlink()
                self._remove_generations(keep=None)
                self.was_reset = True
                return
            gen = self._generation = meta["generation"]
            self._ids = json.loads(self._path(f"ids-{gen}.json").read_text())
            self._matrix = np.ascontiguousarray(np.load(self._path(f"vectors-{gen}.npy")), dtype=np.float32)
            self._keys = {i: k for k, i in enumerate(self._ids) if i is not None}
            self._free = {k for k, i in enumerate(self._ids) if i is None}  # a snapshot holds no retired nodes
            if meta["hnsw"]:
                self._hnsw = self._new_hnsw()
                self._hnsw.load(str(self._path(f"hnsw-{gen}.usearch")))
                self._hnsw.expansion_search = self.expansion_search  # a search setting may change between runs
        self._replay()
        if self._hnsw is None and len(self._keys) > self.hnsw_threshold:
            self._build_hnsw()  # the threshold was lowered since the snapshot, or the journal grew past it

    def _mismatch(self, meta: dict[str, Any]) -> StoreUnavailable | None:
        if meta.get("format") != FORMAT:
            return StoreUnavailable(f"{self.directory} holds index format {meta.get('format')}, this version "
                                    f"reads {FORMAT}; rebuild it")
        if meta["dim"] != self.dim:
            return DimensionMismatch(f"the index in {self.directory} has dimension {meta['dim']}, the embedder "
                                     f"gives {self.dim}; rebuild it from the current vectors")
        if meta["space"] != self.space:
            return StoreUnavailable(f"the index in {self.directory} holds vectors of {meta['space']!r}, not "
                                    f"{self.space!r}; rebuild it from the current vectors")
        return None

    def _replay(self) -> None:
        path = self._path(f"journal-{self._generation}.log")
        if not path.exists():
            return
        good = 0
        with open(path, "rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break  # torn by a crash while writing: that call never returned, so nothing is lost
                record = json.loads(line)
                if record["op"] == "put":
                    raw = np.frombuffer(base64.b64decode(record["v"]), dtype="<f4")
                    self._apply_upsert(record["ids"], raw.reshape(-1, self.dim).astype(np.float32), record["keys"])
                else:
                    self._apply_delete(record["ids"])
                good += len(line)
                self._journal_records += 1
        if good < path.stat().st_size:
            with open(path, "r+b") as f:
                f.truncate(good)

    def _open_journal(self) -> None:
        self._journal = open(self._path(f"journal-{self._generation}.log"), "ab")  # noqa: SIM115

    def _log(self, record: dict[str, Any]) -> None:
        if self._journal is None:
            return
        self._journal.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._journal.flush()  # in the OS before the call returns: a crashed process loses nothing
        if self.fsync:
            os.fsync(self._journal.fileno())  # and on the disk: a power cut loses nothing either
        self._journal_records += 1

    async def _maybe_snapshot(self) -> None:
        if self._journal is not None and self._journal_records > max(1_000, len(self._keys) // 10):
            await self._run(len(self._keys) > _OFFLOAD_ROWS, self._write_snapshot)

    def _write_snapshot(self) -> None:
        self._purge_retired()  # the saved graph then holds live nodes only
        gen = self._generation + 1
        n = len(self._ids)
        self._atomic_write(f"ids-{gen}.json", lambda f: f.write(json.dumps(self._ids).encode()))
        self._atomic_write(f"vectors-{gen}.npy", lambda f: np.save(f, self._matrix[:n]))
        if self._hnsw is not None:
            tmp = self._path(f"hnsw-{gen}.usearch.tmp")
            self._hnsw.save(str(tmp))
            os.replace(tmp, self._path(f"hnsw-{gen}.usearch"))
        meta = {"format": FORMAT, "dim": self.dim, "space": self.space, "generation": gen,
                "count": len(self._keys), "hnsw": self._hnsw is not None}
        self._atomic_write("snapshot.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))
        # The new generation is in force from here; the old files and journal can go.
        if self._journal is not None:
            self._journal.close()
        self._generation = gen
        self._journal_records = 0
        self._open_journal()
        self._remove_generations(keep=gen)

    def _atomic_write(self, name: str, write: Callable[[Any], Any]) -> None:
        tmp = self._path(name + ".tmp")
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # a snapshot replaces the journal, so it must be on disk first
        os.replace(tmp, self._path(name))

    def _remove_generations(self, keep: int | None) -> None:
        assert self.directory is not None
        kept = set() if keep is None else {f"ids-{keep}.json", f"vectors-{keep}.npy", f"hnsw-{keep}.usearch",
                                           f"journal-{keep}.log"}
        for pattern in ("ids-*.json", "vectors-*.npy", "hnsw-*.usearch", "journal-*.log", "*.tmp"):
            for path in self.directory.glob(pattern):
                if path.name not in kept:
                    path.unlink(missing_ok=True)

    async def _run(self, heavy: bool, fn: Callable[..., T], *args: Any) -> T:
        """Heavy work in a worker thread (the caller holds the lock, so nothing else touches the index)."""
        if heavy:
            return await asyncio.to_thread(fn, *args)
        return fn(*args)
