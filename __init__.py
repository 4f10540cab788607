"""mnky-profiles: an MCP server that gives LLM agents a user-profiling layer with privacy built in.

The public API is small: load settings, bootstrap the runtime, build the server over it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["Settings", "__version__", "bootstrap", "build_server", "load_settings"]

if TYPE_CHECKING:
    from .server.app import build_server
    from .server.runtime import bootstrap
    from .server.settings import Settings, load_settings

_LAZY = {"build_server": "server.app", "bootstrap": "server.runtime", "Settings": "server.settings",
         "load_settings": "server.settings"}


def __getattr__(name: str) -> Any:
    # Imported on first use: `mnky-profiles token new` should not pay for loading the MCP SDK.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
