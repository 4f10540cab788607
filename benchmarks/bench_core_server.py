"""The server that benchmarks/bench_core.py measures: the product's MCP server plus two baseline tools.

``add_baselines`` is used by both transports of the benchmark: in-process it adds the tools to the server the
benchmark builds; over stdio this file is the server process:

    .venv/bin/python benchmarks/bench_core_server.py CONFIG.yaml [--caller shopping-assistant]

It bootstraps the runtime from the settings file, builds the server and runs its learning upkeep as
``mnky-profiles serve`` does, adds the baselines and serves MCP over stdio. Logs go to stderr.

The baselines, registered after ``build_server`` with ``server.add_tool`` and so taking the same SDK path as the
gated tools (argument validation, result conversion, the client's output-schema check, the gate's middleware):

- ``noop`` does nothing and returns ``{"ok": true}``: the cost of a tool call on this server.
- ``profile_replay`` returns, every time, the result of one real ``get_profile`` call made the first time it
  is called: the cost of carrying a result of that size and output schema through the SDK and the client,
  without the product's work.
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

from mnky_profiles.privacy.subjects import UserId
from mnky_profiles.server.app import build_server
from mnky_profiles.server.gating import GatedSurface, _Call, _current
from mnky_profiles.server.runtime import Runtime, bootstrap, settle
from mnky_profiles.server.settings import load_settings
from mnky_profiles.tools.arguments import Purpose
from mnky_profiles.tools.profiles import get_profile as get_profile_handler
from mnky_profiles.usecases.views import ProfileView

NOOP = "noop"
REPLAY = "profile_replay"


class NoopResult(BaseModel):
    ok: bool


def _accounted_for() -> _Call:
    """Mark this tool call as accounted for.

    The server's fail-closed middleware (server/gating.py) refuses, and audits as "error:ungated", every
    tools/call result that no gated handler produced. A baseline must be a real successful call, so it marks
    its call the way a gated handler does after writing its audit entry, but writes no entry. The gated tools
    measured against the baselines pay for their audit entry; that is part of what the benchmark measures.
    """
    call = _current.get()
    if call is None:
        raise RuntimeError("the gate's middleware did not run for this call")
    call.audited = True
    return call


async def noop(user_id: UserId, purpose: Purpose) -> NoopResult:
    """Does nothing: the baseline cost of a tool call on this server."""
    _accounted_for()
    return NoopResult(ok=True)


def _annotations(title: str) -> ToolAnnotations:
    return ToolAnnotations(title=title, read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                           open_world_hint=False)


def add_baselines(server: MCPServer[Any], runtime: Runtime, caller: str | None) -> None:
    """Register both baselines like the gated tools: async, the same argument types, structured output."""
    server.add_tool(noop, name=NOOP, title="No-op", description="Does nothing (benchmark baseline).",
                    structured_output=True, annotations=_annotations("No-op"))

    # The gated tool, as build_server wraps it.
    get_profile = GatedSurface(runtime, "local", caller).wrap(get_profile_handler)
    recorded: list[Any] = []

    async def profile_replay(user_id: UserId, purpose: Purpose) -> ProfileView:
        """Returns one recorded get_profile result (benchmark baseline)."""
        if not recorded:  # the first call reads for real, through the gate, and audits once
            recorded.append(await get_profile(user_id=user_id, purpose=purpose))
        _accounted_for()
        return recorded[0]  # type: ignore[no-any-return]

    server.add_tool(profile_replay, name=REPLAY, title="Profile replay",
                    description="Returns one recorded get_profile result (benchmark baseline).",
                    structured_output=True, annotations=_annotations("Profile replay"))


async def serve(config: Path, caller: str | None) -> None:
    """What ``mnky-profiles serve`` does over stdio, with the baselines added."""
    settings = load_settings(config)
    runtime = await bootstrap(settings)
    try:
        server = build_server(runtime, caller_from="local", local_caller=caller)
        add_baselines(server, runtime, caller)
        settle()  # as `mnky-profiles serve` does after start-up
        # The learning upkeep runs beside the server, as in ``serve``; with a fitted model it first waits a
        # full refit interval.
        upkeep = asyncio.get_running_loop().create_task(runtime.usecases.learning.maintain(
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
