"""mnky-profiles: an MCP server that gives LLM agents a user-profiling layer with privacy built in.

The public API is small: build the server from settings, or load settings from a file.
"""

__version__ = "0.1.0"

from .server.app import build_server
from .server.settings import Settings, load_settings

__all__ = ["Settings", "__version__", "build_server", "load_settings"]
