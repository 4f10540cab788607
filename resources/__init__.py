"""MCP resources and prompts (the read side). ``server/catalog.py`` lists the ones the server serves."""
