"""A local stand-in for the OpenAI embeddings endpoint, ``POST /v1/embeddings``, as the ``openai`` client uses it.

Request: ``model``, ``input`` (a string or a list of strings), optional ``dimensions`` and ``encoding_format``
(``float``, the API's default, or ``base64``: little-endian float32, which the openai client asks for unless told
otherwise). Response: ``{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
"usage"}``; errors as ``{"error": {"message", "type", "param", "code"}}`` with the API's status codes. Vectors are
deterministic per (model, text), so a test can compare them; ``scale`` makes them non-unit to prove the client
normalizes. Every accepted request body is kept in ``requests``.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mnky_profiles.store.embedders.hashing import hashed_vector

from . import BackgroundServer

MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}
MAX_INPUTS = 2048


def expected_vector(model: str, text: str, dim: int) -> np.ndarray:
    """What this server answers for ``text`` (unit length, float64 before it is sent as float32)."""
    vector: np.ndarray = hashed_vector(f"{model}\x00{text}", dim)
    return vector


def _error(status: int, message: str, kind: str, code: str | None = None, param: str | None = None
           ) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


@dataclass
class FakeOpenAI:
    api_key: str = "sk-test"
    scale: float = 1.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0  # every call that reached the server, accepted or not
    fail_status: int | None = None  # answer every request with this status while set
    wrong_dim: int | None = None  # answer with vectors of this size, as a misconfigured model would

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/embeddings", self.embeddings, methods=["POST"])])

    def serve(self) -> BackgroundServer:
        return BackgroundServer(self.app())

    def texts_requested(self) -> list[str]:
        out: list[str] = []
        for body in self.requests:
            out += [body["input"]] if isinstance(body["input"], str) else body["input"]
        return out

    async def embeddings(self, request: Request) -> JSONResponse:
        self.attempts += 1
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided. You can find your API key at "
                               "https://platform.openai.com/account/api-keys.", "invalid_request_error",
                          "invalid_api_key")
        if self.fail_status is not None:
            return _error(self.fail_status, "The server had an error while processing your request.",
                          "server_error")
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "We could not parse the JSON body of your request.", "invalid_request_error")
        model = body.get("model")
        if model not in MODELS:
            return _error(404, f"The model `{model}` does not exist or you do not have access to it.",
                          "invalid_request_error", "model_not_found")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or len(texts) > MAX_INPUTS:
            return _error(400, f"'input' must be a string or a list of 1 to {MAX_INPUTS} strings.",
                          "invalid_request_error", param="input")
        if not all(isinstance(t, str) and t for t in texts):
            return _error(400, "'input' cannot contain an empty string.", "invalid_request_error", param="input")
        dim = body.get("dimensions") or MODELS[model]
        if body.get("dimensions") is not None and (model == "text-embedding-ada-002" or not 1 <= dim <= MODELS[model]):
            return _error(400, f"This model does not support specifying dimensions={dim}.",
                          "invalid_request_error", param="dimensions")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return _error(400, "'encoding_format' must be 'float' or 'base64'.", "invalid_request_error",
                          param="encoding_format")
        self.requests.append(body)
        data = []
        for index, text in enumerate(texts):
            vector = (expected_vector(model, text, self.wrong_dim or dim) * self.scale).astype(np.float32)
            embedding: Any = (base64.b64encode(vector.astype("<f4").tobytes()).decode() if encoding == "base64"
                              else vector.tolist())
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(len(t.split()) for t in texts)
        return JSONResponse({"object": "list", "data": data, "model": model,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
