"""Use cases: what the tools, resources and prompts do, already inside the gate's access."""
