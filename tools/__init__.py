"""MCP tools: thin translators, one use case each. ``server/catalog.py`` lists the ones the server serves."""
