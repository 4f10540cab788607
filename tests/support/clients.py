"""MCP clients for the tests: in-process and without the response cache, a call that must succeed, its text."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp import Client
from mcp.types import CallToolResult, GetPromptResult, ReadResourceResult, TextContent, TextResourceContents


@asynccontextmanager
async def connect(server: Any, mode: str = "legacy") -> AsyncIterator[Client]:
    """An in-process client without the response cache, so every read reaches the server (and its audit)."""
    async with Client(server, mode=mode, cache=None) as client:
        yield client


def tool_text(result: CallToolResult) -> str:
    """Every text block of a tool result (an error's message is its only one)."""
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def resource_text(result: ReadResourceResult) -> str:
    """The text of a resource read (one text block)."""
    return "\n".join(c.text for c in result.contents if isinstance(c, TextResourceContents))


def prompt_text(result: GetPromptResult) -> str:
    """The text of a prompt's messages."""
    return "\n".join(m.content.text for m in result.messages if isinstance(m.content, TextContent))


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    """Call ``tool``; it must succeed. Its structured result."""
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, tool_text(result)
    data: dict[str, Any] | None = result.structured_content
    assert data is not None
    return data
