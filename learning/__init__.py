"""Preference learning, vectors, similarity, recommendation, clustering and prediction (pure, numpy)."""
