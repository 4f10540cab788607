"""A local stand-in for one Pinecone serverless index: the data-plane REST API the ``pinecone`` client speaks.

Endpoints and JSON shapes follow the API reference (version 2026-07): ``POST /vectors/upsert``, ``POST /query``,
``GET /vectors/fetch?ids=..&namespace=..``, ``POST /vectors/delete`` and ``POST /describe_index_stats``, with an
``Api-Key`` header check, camelCase fields, ``{"code", "message", "details"}`` error bodies, the default namespace
reported as ``__default__``, and 404 for a delete in a namespace that does not exist (as the service answers).
Search is exact cosine over the namespace.

What the real service does and this does not: metadata filters (rejected with 400), sparse vectors, and eventual
consistency, which a test can imitate with ``defer_deletes`` (deletes wait until ``apply_deferred()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import BackgroundServer

MAX_UPSERT = 1000  # vectors per request, as the service limits
MAX_DELETE = 1000
MAX_TOP_K = 10_000
DEFAULT_NAMESPACE = "__default__"


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message, "details": []}, status_code=status)


@dataclass
class _Record:
    values: list[float]
    metadata: dict[str, Any] | None
    version: int = 0  # a deferred delete removes the record only if no later upsert replaced it


@dataclass
class FakePinecone:
    dimension: int
    api_key: str = "test-key"
    namespaces: dict[str, dict[str, _Record]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path) of every authorised call
    api_versions: set[str] = field(default_factory=set)
    defer_deletes: bool = False
    deferred: list[tuple[str, list[tuple[str, int]]]] = field(default_factory=list)
    _writes: int = 0
    fail_status: int | None = None  # answer every call with this status while set

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/vectors/upsert", self._guard(self.upsert), methods=["POST"]),
            Route("/query", self._guard(self.query), methods=["POST"]),
            Route("/vectors/fetch", self._guard(self.fetch), methods=["GET"]),
            Route("/vectors/delete", self._guard(self.delete), methods=["POST"]),
            Route("/describe_index_stats", self._guard(self.stats), methods=["POST", "GET"]),
        ])

    def serve(self) -> BackgroundServer:
        return BackgroundServer(self.app())

    def apply_deferred(self) -> None:
        """Apply the lagging deletes, in order, as of when they were asked for."""
        for namespace, targets in self.deferred:
            records = self.namespaces.get(namespace, {})
            for vid, version in targets:
                if vid in records and records[vid].version == version:
                    del records[vid]
        self.deferred.clear()

    # -- plumbing --------------------------------------------------------------------------------------------
    def _guard(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            if request.headers.get("api-key") != self.api_key:
                return _error(401, 16, "Invalid API Key")
            self.requests.append((request.method, request.url.path))
            self.api_versions.add(request.headers.get("x-pinecone-api-version", ""))
            if self.fail_status is not None:
                return _error(self.fail_status, 13, "Internal error")
            body: dict[str, Any] = {}
            if request.method == "POST":
                raw = await request.body()
                if raw:
                    try:
                        body = await request.json()
                    except ValueError:
                        return _error(400, 3, "Request body is not valid JSON")
            result: JSONResponse = await handler(request, body)
            return result
        return endpoint

    def _check_values(self, values: Any) -> str | None:
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            return "values must be a list of numbers"
        if len(values) != self.dimension:
            return f"Vector dimension {len(values)} does not match the dimension of the index {self.dimension}"
        return None

    def _delete_now(self, namespace: str, ids: list[str] | None) -> None:
        records = self.namespaces.get(namespace)
        if records is None:
            return
        if ids is None:
            records.clear()  # the namespace itself stays, as with the service
        else:
            for vid in ids:
                records.pop(vid, None)

    # -- endpoints -------------------------------------------------------------------------------------------
    async def upsert(self, request: Request, body: dict[str, Any]) -> JSONResponse:
        vectors = body.get("vectors")
        if not isinstance(vectors, list) or not vectors:
            return _error(400, 3, "vectors: at least one vector is required")
        if len(vectors) > MAX_UPSERT:
            return _error(400, 3, f"Upsert request can contain at most {MAX_UPSERT} vectors")
        staged = {}
        for v in vectors:
            vid = v.get("id")
            if not isinstance(vid, str) or not vid:
                return _error(400, 3, "Vector ID must be a non-empty string")
            problem = self._check_values(v.get("values"))
            if problem:
                return _error(400, 3, problem)
            metadata = v.get("metadata")
            if metadata is not None and (not isinstance(metadata, dict)
                                         or any(value is None for value in metadata.values())):
                return _error(400, 3, "Metadata values must be strings, numbers, booleans or lists of strings")
            self._writes += 1
            staged[vid] = _Record(list(v["values"]), metadata, self._writes)
        self.namespaces.setdefault(body.get("namespace") or "", {}).update(staged)
        return JSONResponse({"upsertedCount": len(staged)})

    async def query(self, request: Request, body: dict[str, Any]) -> JSONResponse:
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
            return _error(400, 3, f"topK must be between 1 and {MAX_TOP_K}")
        if body.get("filter"):
            return _error(400, 3, "this local index does not evaluate metadata filters")
        namespace = body.get("namespace") or ""
        records = self.namespaces.get(namespace, {})
        vector: Any
        if "id" in body:
            stored = records.get(body["id"])
            if stored is None:
                return JSONResponse({"matches": [], "namespace": namespace, "usage": {"readUnits": 1}})
            vector = stored.values
        else:
            vector = body.get("vector")
            problem = self._check_values(vector)
            if problem:
                return _error(400, 3, problem)
        matches = []
        if records:
            ids = list(records)
            matrix = np.asarray([records[i].values for i in ids], dtype=np.float64)
            q = np.asarray(vector, dtype=np.float64)
            norms = np.linalg.norm(matrix, axis=1) * np.linalg.norm(q)
            scores = (matrix @ q) / np.where(norms == 0, 1.0, norms)
            order = sorted(range(len(ids)), key=lambda j: (-scores[j], ids[j]))[:top_k]
            for j in order:
                match: dict[str, Any] = {"id": ids[j], "score": float(scores[j]),
                                         "values": records[ids[j]].values if body.get("includeValues") else []}
                if body.get("includeMetadata") and records[ids[j]].metadata is not None:
                    match["metadata"] = records[ids[j]].metadata
                matches.append(match)
        return JSONResponse({"results": [], "matches": matches, "namespace": namespace,
                             "usage": {"readUnits": max(1, len(records) // 1000)}})

    async def fetch(self, request: Request, body: dict[str, Any]) -> JSONResponse:
        ids = request.query_params.getlist("ids")
        if not ids:
            return _error(400, 3, "ids: at least one id is required")
        namespace = request.query_params.get("namespace", "")
        records = self.namespaces.get(namespace, {})
        found = {}
        for vid in ids:
            if vid in records:
                entry: dict[str, Any] = {"id": vid, "values": records[vid].values}
                if records[vid].metadata is not None:
                    entry["metadata"] = records[vid].metadata
                found[vid] = entry
        return JSONResponse({"vectors": found, "namespace": namespace, "usage": {"readUnits": 1}})

    async def delete(self, request: Request, body: dict[str, Any]) -> JSONResponse:
        namespace = body.get("namespace") or ""
        if body.get("filter"):
            return _error(400, 3, "this local index does not evaluate metadata filters")
        ids = body.get("ids")
        delete_all = bool(body.get("deleteAll"))
        if delete_all == (ids is not None):
            return _error(400, 3, "Exactly one of ids or deleteAll is required")
        if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_DELETE):
            return _error(400, 3, f"ids must be a list of at most {MAX_DELETE} ids")
        if namespace not in self.namespaces:
            return _error(404, 5, "Namespace not found")
        target = None if delete_all else list(ids or [])
        if self.defer_deletes:
            records = self.namespaces[namespace]
            chosen = list(records) if target is None else [i for i in target if i in records]
            self.deferred.append((namespace, [(i, records[i].version) for i in chosen]))
        else:
            self._delete_now(namespace, target)
        return JSONResponse({})

    async def stats(self, request: Request, body: dict[str, Any]) -> JSONResponse:
        if body.get("filter"):
            return _error(400, 3, "Serverless and starter indexes do not support describing index stats "
                                  "with metadata filtering.")
        namespaces = {(name or DEFAULT_NAMESPACE): {"vectorCount": len(records)}
                      for name, records in self.namespaces.items()}
        total = sum(len(records) for records in self.namespaces.values())
        return JSONResponse({"namespaces": namespaces, "dimension": self.dimension, "indexFullness": 0.0,
                             "totalVectorCount": total, "metric": "cosine", "vectorType": "dense"})
