"""MCP resources and prompts (the read side). Importing this package declares them all."""

from . import profile, prompts, reference

__all__ = ["profile", "prompts", "reference"]
