"""Embedders: attribute text (``"note:lavender"``) to unit vectors.

``hashing`` (the default) needs no model and no network; ``openai`` calls an OpenAI-compatible embeddings API
and keeps every vector it receives in the SQL store, so a text is requested once per model.
"""

from __future__ import annotations


class EmbeddingError(Exception):
    """The embedding service failed or answered with something unusable; the message says which and why."""
