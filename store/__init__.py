"""Adapters: SQL storage (SQLite by default, PostgreSQL), vector indexes, embedders and migrations."""
