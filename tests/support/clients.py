"""MCP clients for the tests: in-process and without the response cache, a call that must succeed, its text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client


@asynccontextmanager
async def connect(server: Any, mode: str = "legacy") -> AsyncIterator[Client]:
    """An in-process client without the response cache, so every read reaches the server (and its audit)."""
    async with Client(server, mode=mode, cache=None) as client:  # type: ignore[arg-type]
        yield client


def tool_text(result: Any) -> str:
    """Every text block of a tool result (an error's message is its only one)."""
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call ``tool``; it must succeed. Its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, tool_text(result)
    assert result.structured_content is not None
    return result.structured_content
