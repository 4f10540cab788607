"""The server that benchmarks/bench_core.py measures: the product's MCP server plus one no-op tool.

``add_noop`` is used by both transports of the benchmark: in-process it is added to the server the benchmark
builds; over stdio this file is the server process:

    .venv/bin/python benchmarks/bench_core_server.py CONFIG.yaml [--caller shopping-assistant]

It bootstraps the runtime from the settings file, builds the server and runs its learning upkeep as
``mnky-profiles serve`` does, adds the no-op and serves MCP over stdio. Logs go to stderr.
"""

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

from mnky_profiles.server.app import build_server
from mnky_profiles.server.gating import _current
from mnky_profiles.server.runtime import bootstrap
from mnky_profiles.server.settings import load_settings
from mnky_profiles.tools.arguments import Purpose, UserId

NOOP = "noop"


class NoopResult(BaseModel):
    ok: bool


async def noop(user_id: UserId, purpose: Purpose) -> NoopResult:
    """Does nothing: the baseline cost of a tool call on this server."""
    # The server's fail-closed middleware (server/gating.py) refuses, and audits as "error:ungated", every
    # tools/call result that no gated handler produced. The baseline must be a real successful call that does
    # no work, so the no-op marks its call as accounted for, as a gated handler does after writing its audit
    # entry, but writes no entry. The gated tools measured against it pay for their audit entry; that is part
    # of what the benchmark measures.
    call = _current.get()
    if call is None:
        raise RuntimeError("the gate's middleware did not run for this call")
    call.audited = True
    return NoopResult(ok=True)


def add_noop(server: MCPServer[Any]) -> None:
    """Register the no-op like the gated tools: async, same argument types, structured output, annotations."""
    server.add_tool(noop, name=NOOP, title="No-op", description="Does nothing (benchmark baseline).",
                    structured_output=True, annotations=ToolAnnotations(
                        title="No-op", read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                        open_world_hint=False))


async def serve(config: Path, caller: str | None) -> None:
    """What ``mnky-profiles serve`` does over stdio, with the no-op added."""
    settings = load_settings(config)
    runtime = await bootstrap(settings)
    try:
        server = build_server(runtime, caller_from="local", local_caller=caller)
        add_noop(server)
        # The learning upkeep runs beside the server, as in ``serve``; with a fitted model it first waits a
        # full refit interval.
        upkeep = asyncio.get_running_loop().create_task(runtime.usecases.learner.maintain(
            settings.learning.refit_minutes))
        try:
            await server.run_stdio_async()
        finally:
            upkeep.cancel()
    finally:
        await runtime.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="settings file (YAML, as for mnky-profiles serve --config)")
    parser.add_argument("--caller", help="the local caller (default: the settings' local_caller)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("mcp").setLevel(logging.WARNING)
    anyio.run(serve, args.config, args.caller)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
