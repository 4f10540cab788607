"""MCP tools: thin translators, one use case each. Importing this package declares them all."""

from . import consent, events, learning, profiles

__all__ = ["consent", "events", "learning", "profiles"]
