"""Embedders: attribute text (``"note:lavender"``) to unit vectors.

``hashing`` (the default) needs no model and no network; ``openai`` calls an OpenAI-compatible embeddings API
and keeps every vector it receives in the SQL store, so a text is requested once per model.

Their failures (a service that fails or answers with something unusable, a setting that cannot work) are
``StoreUnavailable`` with a message that says which and why.
"""
