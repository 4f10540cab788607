"""Real server processes for the transport tests: the installed console script over stdio and streamable HTTP.

Every process gets its own settings file and data directory, binds port 0 (the server prints the port it got), and
is terminated when the test ends, whatever happened.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from mnky_profiles.server.settings import DEFAULT_CONFIG

from .clients import call

START_TIMEOUT = 60.0  # seconds; the machine may be busy
CLI_TIMEOUT = 120.0
READ_TIMEOUT = 60.0  # per MCP request: a server that stops answering fails the test instead of hanging it
_serial = count(1)

# A caller bound to one data subject: the assistant of user u1, which may reach nobody else.
COMPANION = {
    "purposes": ["service"],
    "categories": ["user.name", "user.demographic.language", "user.preference.communication", "user.consent"],
    "roles": ["reader", "writer"],
    "subject": "u1",
}

# Two people as the contract knows them (what a caller acting for service alone may store), and the taste each
# states, collected for personalization: stored only with that consent, by a caller that acts for it.
ANA = {"display_name": "Ana", "email": "ana@example.org", "language": "en-GB"}
BEN = {"display_name": "Ben", "email": "ben@example.org", "language": "pt-PT"}
LIKES = {"Ana": ["lavender"], "Ben": ["oud"]}


async def make_person(client: Client, user_id: str, person: dict[str, Any]) -> None:
    """The person's profile, their consent to personalization, and the taste they state (as a privacy officer,
    or any caller that acts for service and personalization and may see what it stores)."""
    await call(client, "update_profile", user_id=user_id, create=True, attributes=person)
    await call(client, "record_consent", user_id=user_id, purpose="personalization", granted=True,
               source="web:preferences-page")
    await call(client, "update_profile", user_id=user_id, attributes={"likes": LIKES[person["display_name"]]})


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def console_script() -> str:
    """The ``mnky-profiles`` console script installed next to this interpreter."""
    script = Path(sys.executable).with_name("mnky-profiles")
    if not script.exists():
        pytest.fail(f"the console script {script} is not installed; run pip install -e '.[test]'")
    return str(script)


def passthrough_env() -> dict[str, str]:
    """What a child started with a minimal environment still needs to import this very checkout."""
    return {"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {}


def server_env(**extra: str) -> dict[str, str]:
    """This environment without any MNKY_ setting (the tests' own settings come from their files), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MNKY_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env | extra


def write_config(directory: Path, *, tokens: dict[str, str] | None = None, digests: dict[str, str] | None = None,
                 local_caller: str | None = "support-assistant", callers: dict[str, dict[str, Any]] | None = None,
                 name: str = "mnky-profiles.yaml", **top: Any) -> Path:
    """The packaged settings with data in ``directory/data``; ``tokens`` maps a caller to its bearer token,
    ``digests`` to the SHA-256 digest of one."""
    settings = yaml.safe_load(DEFAULT_CONFIG.read_text())
    settings["data_dir"] = str(directory / "data")
    settings["local_caller"] = local_caller
    settings["callers"].update(callers or {})
    for caller, token in (tokens or {}).items():
        settings["callers"][caller]["token_sha256"] = [sha256(token)]
    for caller, digest in (digests or {}).items():
        settings["callers"][caller]["token_sha256"] = [digest]
    settings.update(top)
    path = directory / name
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def stdio_params(config: Path, env: dict[str, str] | None = None) -> StdioServerParameters:
    return StdioServerParameters(command=console_script(), args=["serve", "--config", str(config)],
                                 env=passthrough_env() | (env or {}))


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = CLI_TIMEOUT
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([console_script(), *args], capture_output=True, text=True, timeout=timeout,
                          env=server_env(**(env or {})), stdin=subprocess.DEVNULL)


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


@dataclass
class HttpServer:
    process: subprocess.Popen[bytes]
    url: str  # the MCP endpoint
    base: str
    stderr_path: Path
    stdout_path: Path

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def client(self, token: str | None = None) -> httpx2.AsyncClient:
        """A plain HTTP client, with ``Authorization: Bearer <token>`` on every request if a token is given."""
        headers = {"Authorization": f"Bearer {token}"} if token is not None else None
        return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60), trust_env=False)

    @asynccontextmanager
    async def session(self, token: str | None = None, mode: str = "legacy") -> AsyncIterator[Client]:
        """The SDK's client over streamable HTTP, sending ``token`` as its bearer token."""
        async with self.client(token) as http, \
                connect(streamable_http_client(self.url, http_client=http), mode) as client:
            yield client


def connect(target: Any, mode: str = "legacy") -> Client:
    """The SDK's ``Client`` for a URL, ``StdioServerParameters`` or transport, with a per-request timeout."""
    return Client(target, mode=mode, read_timeout_seconds=READ_TIMEOUT)


_BANNER = re.compile(r"serving MCP over streamable HTTP at (http://\S+)")


@contextmanager
def http_server(config: Path, *, host: str = "127.0.0.1", timeout: float = START_TIMEOUT) -> Iterator[HttpServer]:
    """``mnky-profiles serve --transport http`` on a free port, up and answering /health until the block ends."""
    n = next(_serial)
    stderr_path = config.parent / f"http-{n}.stderr"
    stdout_path = config.parent / f"http-{n}.stdout"
    with stderr_path.open("wb") as err, stdout_path.open("wb") as out:
        process = subprocess.Popen(
            [console_script(), "serve", "--transport", "http", "--host", host, "--port", "0", "--config",
             str(config)], stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=server_env())
    try:
        url = _wait_for_banner(process, stderr_path, timeout)
        base = url.removesuffix("/mcp")
        _wait_for_health(process, base, stderr_path, timeout)
        yield HttpServer(process, url, base, stderr_path, stdout_path)
    finally:
        stop(process)


def _wait_for_banner(process: subprocess.Popen[bytes], stderr_path: Path, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _BANNER.search(stderr_path.read_text(errors="replace"))
        if found:
            return found.group(1)
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode} before serving:\n"
                        f"{stderr_path.read_text(errors='replace')}")
        time.sleep(0.05)
    pytest.fail(f"the server did not start within {timeout:.0f}s:\n{stderr_path.read_text(errors='replace')}")


def _wait_for_health(process: subprocess.Popen[bytes], base: str, stderr_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx2.Client(timeout=5, trust_env=False) as http:
        while time.monotonic() < deadline:
            try:
                if http.get(f"{base}/health").status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            if process.poll() is not None:
                break
            time.sleep(0.05)
    pytest.fail(f"{base}/health did not answer:\n{stderr_path.read_text(errors='replace')}")


def banner_snippets(banner: str) -> dict[str, dict[str, Any]]:
    """The chat client configurations the banner prints, by transport: the JSON block under each heading."""
    found: dict[str, dict[str, Any]] = {}
    lines = banner.splitlines()
    for transport in ("HTTP", "stdio"):
        start = next(i for i, line in enumerate(lines) if line.startswith(f"  Chat client over {transport}"))
        while not lines[start].startswith("    {"):
            start += 1
        end = start
        while end < len(lines) and lines[end].startswith("    "):
            end += 1
        found[transport.lower()] = json.loads("\n".join(lines[start:end]))["mcpServers"]["mnky-profiles"]
    return found


