"""The real transports: the installed console script over stdio and streamable HTTP, its bearer tokens, its
refusals and its start-up errors, driven by the SDK's own client in both protocol eras."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import uvicorn
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS

from mnky_profiles.server import cli

from ..conftest import ERAS
from ..support.clients import call, tool_text
from ..support.servers import (
    ANA,
    BEN,
    COMPANION,
    HttpServer,
    banner_snippets,
    connect,
    console_script,
    http_server,
    make_person,
    passthrough_env,
    run_cli,
    server_env,
    sha256,
    stdio_params,
    stop,
    write_config,
)

pytestmark = pytest.mark.anyio

EXPECTED_TOOLS = {"get_profile", "update_profile", "check_consent", "record_consent", "record_event"}


def assert_era(client: Client, mode: str) -> None:
    expected = HANDSHAKE_PROTOCOL_VERSIONS if mode == "legacy" else MODERN_PROTOCOL_VERSIONS
    assert client.protocol_version in expected, (mode, client.protocol_version)




def withheld(view: dict[str, Any]) -> dict[str, str]:
    return {w["field"]: w["reason"] for w in view["withheld"]}


def assert_support_view_of_ana(view: dict[str, Any], likes_held: bool = True) -> None:
    """What support-assistant may see of Ana for purpose service: name and language; not her email or tastes
    (which it could not have stored either: it does not act for personalization)."""
    assert view["purpose"] == "service"
    assert view["identity"]["display_name"]["value"] == "Ana"
    assert view["identity"]["display_name"]["source"] == "explicit"
    assert view["identity"].get("email") is None
    assert view["preferences"].get("likes") is None
    reasons = withheld(view)
    assert reasons["identity.email"] == "purpose_not_compatible"
    assert reasons.get("preferences.likes") == ("caller_not_permitted" if likes_held else None)
    assert "ana@example.org" not in json.dumps(view) and "lavender" not in json.dumps(view)


async def support_creates_ana(client: Client) -> dict[str, Any]:
    """The support assistant stores what the contract covers; Ana's taste it may not store."""
    created = await call(client, "update_profile", user_id="u1", create=True, attributes=ANA)
    refused = await client.call_tool("update_profile", {"user_id": "u1", "attributes": {"likes": ["lavender"]}})
    assert refused.is_error and "may not store attribute 'likes'" in tool_text(refused)
    return created


def assert_clean_failure(out: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr, out.stderr
    for needle in needles:
        assert needle in out.stderr, out.stderr
    assert out.stdout == ""


RunMain = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> RunMain:
    """``mnky-profiles ARGS`` in this process, for start-up refusals: serving anything instead fails the test."""
    async def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the server started instead of refusing to")

    monkeypatch.setattr(uvicorn.Server, "serve", started)
    monkeypatch.setattr(MCPServer, "run_stdio_async", started)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        code = cli.main(list(args))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, captured.out, captured.err)

    return run


# -- the command line ----------------------------------------------------------------------------------------------

def test_serve_defaults_and_arguments() -> None:
    args = cli._parser().parse_args(["serve"])
    assert (args.transport, args.host, args.port, args.config) == ("stdio", "127.0.0.1", 8765, None)
    args = cli._parser().parse_args(["serve", "--transport", "http", "--host", "0.0.0.0", "--port", "9000",
                                     "--config", "x.yaml"])
    assert (args.transport, args.host, args.port, args.config) == ("http", "0.0.0.0", 9000, Path("x.yaml"))
    assert cli.MCP_PATH == "/mcp"
    with pytest.raises(SystemExit) as exit_:
        cli._parser().parse_args(["serve", "--port", "70000"])
    assert exit_.value.code == 2


def test_token_new_prints_a_token_and_its_digest(token_new: str) -> None:
    token = re.search(r"^\s+(mnky_\S+)$", token_new, re.M)
    digest = re.search(r'token_sha256: \["([0-9a-f]{64})"\]', token_new)
    assert token and digest, token_new
    assert sha256(token.group(1)) == digest.group(1)
    assert "support-assistant:" in token_new  # the caller it is for, ready to paste under callers:


# -- stdio ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ERAS)
async def test_stdio_serves_the_sdk_client(tmp_path: Path, mode: str) -> None:
    config = write_config(tmp_path, local_caller="support-assistant")
    async with connect(stdio_params(config), mode) as client:
        assert_era(client, mode)
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools >= EXPECTED_TOOLS
        assert (await support_creates_ana(client))["created"] is True
        assert_support_view_of_ana(await call(client, "get_profile", user_id="u1", purpose="service"), False)
        refused = await client.call_tool("get_profile", {"user_id": "u1", "purpose": "wellbeing"})
        assert refused.is_error and "may not act for purpose 'wellbeing'" in tool_text(refused)


def test_stdio_stdout_carries_only_the_protocol(tmp_path: Path) -> None:
    """Every stdout line is a JSON-RPC message; the server's logs (here the schema migration) go to stderr."""
    config = write_config(tmp_path)
    requests: list[dict[str, Any]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "get_profile", "arguments": {
            "user_id": "nobody", "purpose": "service"}}},
    ]
    process = subprocess.Popen([console_script(), "serve", "--config", str(config)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=server_env())
    watchdog = threading.Timer(60, process.kill)
    watchdog.start()
    assert process.stdin is not None and process.stdout is not None
    lines: list[bytes] = []
    try:
        for request in requests:
            process.stdin.write(json.dumps(request).encode() + b"\n")
            process.stdin.flush()
            if "id" in request:
                lines.append(process.stdout.readline())  # answered before the next request goes out
        stdout, stderr = process.communicate(timeout=60)  # closes stdin: the server ends on end of input
    finally:
        watchdog.cancel()
        stop(process)
    stdout = b"".join(lines) + stdout
    assert process.returncode == 0, stderr.decode()
    messages = [json.loads(line) for line in stdout.decode().splitlines()]
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    assert [m.get("id") for m in messages] == [1, 2, 3]
    assert messages[0]["result"]["serverInfo"]["name"] == "mnky-profiles"
    assert messages[2]["result"]["isError"] is True
    err = stderr.decode()
    assert "alembic" in err and "Running upgrade" in err  # a fresh database logs its migration, on stderr
    assert "Traceback" not in err


# -- streamable HTTP with bearer tokens ----------------------------------------------------------------------------

TOKENS = {
    "shopping-assistant": "mnky_test_shopping",
    "privacy-officer": "mnky_test_officer",
    "ana-companion": "mnky_test_companion",
}


@pytest.fixture(scope="module")
def token_new() -> str:
    """What ``mnky-profiles token new support-assistant`` prints."""
    out = run_cli("token", "new", "support-assistant")
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture(scope="module")
def minted(token_new: str) -> str:
    """The support-assistant token that ``token new`` made."""
    found = re.search(r"^\s+(mnky_\S+)$", token_new, re.M)
    assert found, token_new
    return found.group(1)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory, token_new: str) -> Iterator[HttpServer]:
    """One HTTP server for the token tests; support-assistant is configured with the digest ``token new`` printed."""
    printed = re.search(r'token_sha256: \["([0-9a-f]{64})"\]', token_new)
    assert printed, token_new
    directory = tmp_path_factory.mktemp("http-tokens")
    config = write_config(directory, tokens=TOKENS, digests={"support-assistant": printed.group(1)},
                          callers={"ana-companion": COMPANION})
    with http_server(config) as server:
        yield server


async def seed(server: HttpServer) -> None:
    async with server.session(TOKENS["privacy-officer"], mode="legacy") as client:
        await make_person(client, "u1", ANA)
        await make_person(client, "u2", BEN)


async def test_health_answers_without_a_token(token_server: HttpServer) -> None:
    async with token_server.client() as http:
        response = await http.get(f"{token_server.base}/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_mcp_without_a_token_is_401(token_server: HttpServer) -> None:
    async with token_server.client() as http:
        response = await http.post(token_server.url, json=INITIALIZE, headers=MCP_HEADERS)
        assert response.status_code == 401
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        metadata_url = re.search(r'resource_metadata="([^"]+)"', challenge)
        assert metadata_url
        metadata = await http.get(metadata_url.group(1))
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == token_server.url


@pytest.mark.parametrize("token", ["not-a-token", "mnky_" + "x" * 43, sha256(TOKENS["privacy-officer"])],
                         ids=["garbage", "unknown", "the-digest-itself"])
async def test_a_wrong_token_is_401(token_server: HttpServer, token: str) -> None:
    async with token_server.client(token) as http:
        response = await http.post(token_server.url, json=INITIALIZE, headers=MCP_HEADERS)
    assert response.status_code == 401
    assert "invalid_token" in response.headers["www-authenticate"]


@pytest.mark.parametrize("mode", ERAS)
async def test_a_token_acts_as_its_caller(token_server: HttpServer, minted: str, mode: str) -> None:
    await seed(token_server)
    async with token_server.session(minted, mode=mode) as support:
        assert_era(support, mode)
        assert {t.name for t in (await support.list_tools()).tools} >= EXPECTED_TOOLS
        assert_support_view_of_ana(await call(support, "get_profile", user_id="u1", purpose="service"))
        # A purpose this caller does not have is a tool error the agent can read.
        refused = await support.call_tool("get_profile", {"user_id": "u1", "purpose": "wellbeing"})
        assert refused.is_error
        assert "'support-assistant' may not act for purpose 'wellbeing'" in tool_text(refused)
        # An argument cannot change who is calling.
        spoofed = await call(support, "get_profile", user_id="u1", purpose="service", caller="privacy-officer")
        assert spoofed["identity"].get("email") is None
    # The same request with another caller's token is answered for that caller.
    async with token_server.session(TOKENS["shopping-assistant"], mode=mode) as shopping:
        refused = await shopping.call_tool("get_profile", {"user_id": "u1", "purpose": "wellbeing"})
        assert refused.is_error and "'shopping-assistant' may not act" in tool_text(refused)
        view = await call(shopping, "get_profile", user_id="u1", purpose="service")
        assert view["identity"].get("display_name") is None  # a direct identifier it may not see
        assert "identity.display_name" in withheld(view)


@pytest.mark.parametrize("mode", ERAS)
async def test_a_subject_bound_token_reaches_only_its_subject(token_server: HttpServer, mode: str) -> None:
    await seed(token_server)
    async with token_server.session(TOKENS["ana-companion"], mode=mode) as companion:
        view = await call(companion, "get_profile", user_id="u1", purpose="service")
        assert view["user_id"] == "u1" and view["demographics"]["language"]["value"] == "en-GB"
        attempts: list[tuple[str, dict[str, Any]]] = [
            ("get_profile", {"user_id": "u2", "purpose": "service"}),
            ("check_consent", {"user_id": "u2", "purpose": "service"}),
            ("update_profile", {"user_id": "u2", "attributes": {"language": "en-GB"}}),
        ]
        for tool, arguments in attempts:
            refused = await companion.call_tool(tool, arguments)
            assert refused.is_error, tool
            assert "bound to one data subject" in tool_text(refused)
            assert "Ben" not in tool_text(refused)


# -- streamable HTTP without tokens ----------------------------------------------------------------------------

async def test_without_tokens_http_serves_the_local_caller_on_loopback(tmp_path: Path) -> None:
    config = write_config(tmp_path, local_caller="support-assistant")
    with http_server(config) as server:
        for mode in ERAS:
            async with connect(server.url, mode) as client:  # a bare URL: no token, no headers
                assert_era(client, mode)
                await support_creates_ana(client)
                assert_support_view_of_ana(await call(client, "get_profile", user_id="u1", purpose="service"),
                                           False)
        banner = server.stderr()
    assert "every request acts as support-assistant" in banner
    assert "--header" not in banner
    # Stopped with SIGTERM, it shut down cleanly: stores closed, exit status 0.
    assert server.process.returncode == 0
    assert "Traceback" not in server.stderr()


def test_without_tokens_http_refuses_a_non_loopback_host(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = run_cli("serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0", "--config", str(config))
    assert_clean_failure(out, "refusing to serve on 0.0.0.0", "token")
    assert "serving MCP" not in out.stderr
    assert not (tmp_path / "data").exists()  # refused before touching any storage


@pytest.mark.parametrize("host", ["192.0.2.10", "::", "example.org"])
def test_without_tokens_http_refuses_other_hosts(tmp_path: Path, host: str, run_main: RunMain) -> None:
    config = write_config(tmp_path)
    out = run_main("serve", "--transport", "http", "--host", host, "--port", "0", "--config", str(config))
    assert_clean_failure(out, f"refusing to serve on {host}")
    assert not (tmp_path / "data").exists()


async def test_tokens_allow_a_wildcard_bind(tmp_path: Path) -> None:
    config = write_config(tmp_path, tokens={"privacy-officer": TOKENS["privacy-officer"]})
    with http_server(config, host="0.0.0.0") as server:
        assert server.url.startswith("http://127.0.0.1:")
        async with server.client() as http:
            assert (await http.post(server.url, json=INITIALIZE, headers=MCP_HEADERS)).status_code == 401
        async with server.session(TOKENS["privacy-officer"], mode="legacy") as client:
            await make_person(client, "u1", ANA)


# -- start-up errors -----------------------------------------------------------------------------------------------
# The console script for the cases the issue names; the others through the same ``main`` in this process.

def test_a_wrong_value_in_the_file_names_the_key(tmp_path: Path) -> None:
    config = write_config(tmp_path, user_profiling={"storage": "mongo"})
    out = run_cli("serve", "--config", str(config))
    assert_clean_failure(out, "user_profiling.storage", str(config))


def test_a_wrong_value_in_the_environment_names_the_variable(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    out = run_cli("serve", "--config", str(config), env={"MNKY_USER_PROFILING__RETENTION_DAYS": "-3"})
    assert_clean_failure(out, "user_profiling.retention_days", "MNKY_USER_PROFILING__RETENTION_DAYS")


def test_an_unparsable_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            run_main: RunMain) -> None:
    config = write_config(tmp_path)
    monkeypatch.setenv("MNKY_USER_PROFILING", "mongo")
    assert_clean_failure(run_main("serve", "--config", str(config)), "user_profiling", "MNKY_USER_PROFILING")


def test_a_token_shared_by_two_callers_is_refused(tmp_path: Path, run_main: RunMain) -> None:
    config = write_config(tmp_path, tokens={"support-assistant": "same", "privacy-officer": "same"})
    out = run_main("serve", "--transport", "http", "--port", "0", "--config", str(config))
    assert_clean_failure(out, "token_sha256", "support-assistant")


def test_no_local_caller_and_no_tokens_is_refused(tmp_path: Path, run_main: RunMain) -> None:
    config = write_config(tmp_path, local_caller=None)
    for transport in ("stdio", "http"):
        out = run_main("serve", "--transport", transport, "--port", "0", "--config", str(config))
        assert_clean_failure(out, "local_caller is not set")


def test_a_busy_port_is_a_clear_error(tmp_path: Path, run_main: RunMain) -> None:
    config = write_config(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run_main("serve", "--transport", "http", "--port", str(port), "--config", str(config))
    assert_clean_failure(out, f"cannot listen on 127.0.0.1:{port}")
    assert "serving MCP" not in out.stderr


# -- the banner ----------------------------------------------------------------------------------------------------

async def test_the_banner_shows_how_to_attach(tmp_path: Path) -> None:
    support = "mnky_test_support"
    config = write_config(tmp_path, tokens={"support-assistant": support,
                                            "privacy-officer": TOKENS["privacy-officer"]})
    with http_server(config) as server:
        banner = server.stderr()
        url = server.url
        inspector = "npx -y @modelcontextprotocol/inspector@2.12.0"
        header = '--header "Authorization: Bearer <token>"'
        assert f"{inspector} --transport http --server-url {url} {header}" in banner
        assert f"{inspector} --cli {url} --transport http --method tools/list {header}" in banner
        assert f"curl {server.base}/health" in banner
        assert "serving MCP" not in server.stdout()  # HTTP mode prints to stderr only
        snippets = banner_snippets(banner)
        # The HTTP snippet attaches to this server while it runs.
        remote = snippets["http"]
        assert remote["type"] == "http" and remote["url"] == url
        headers = {k: v.replace("<token>", support) for k, v in remote["headers"].items()}
        await seed(server)
        async with httpx2.AsyncClient(headers=headers, trust_env=False) as http, \
                connect(streamable_http_client(remote["url"], http_client=http)) as client:
            assert_support_view_of_ana(await call(client, "get_profile", user_id="u1", purpose="service"))
        # The stdio snippet needs the data to itself: while this server runs it refuses, without a traceback.
        stdio = snippets["stdio"]
        clash = run_cli(*stdio["args"], env=stdio["env"])
        assert clash.returncode == 1 and "Traceback" not in clash.stderr, clash.stderr
        assert clash.stderr.startswith("mnky-profiles: ") or "\nmnky-profiles: " in clash.stderr, clash.stderr
    # Once it is stopped, the stdio snippet starts a server of its own on the same settings and data.
    assert Path(stdio["command"]).name == "mnky-profiles"
    assert stdio["args"] == ["serve", "--config", str(config.resolve())]
    params = StdioServerParameters(command=stdio["command"], args=stdio["args"],
                                   env=stdio.get("env", {}) | passthrough_env())
    async with connect(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} >= EXPECTED_TOOLS
        assert_support_view_of_ana(await call(client, "get_profile", user_id="u1", purpose="service"))
