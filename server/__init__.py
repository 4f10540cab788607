"""The composition root: settings, bootstrap, auth, the MCP app and the command line."""
