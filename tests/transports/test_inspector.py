"""The MCP Inspector CLI (npm, pinned) as an independent client of the real server, over stdio and over
streamable HTTP with a bearer token, in both protocol eras; and the Inspector commands the server's banner prints."""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from ..support.node import INSPECTOR_SPEC, INSPECTOR_VERSION, Inspector, install_inspector
from ..support.servers import (
    ANA,
    HttpServer,
    connect,
    console_script,
    http_server,
    make_person,
    passthrough_env,
    stdio_params,
    write_config,
)

pytestmark = pytest.mark.external

EXPECTED_TOOLS = {"get_profile", "update_profile", "check_consent", "record_consent", "record_event"}
SUPPORT_TOKEN = "mnky_inspector_support"
OFFICER_TOKEN = "mnky_inspector_officer"


@pytest.fixture(scope="session")
def inspector(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Inspector:
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider
    name = f"mcp-inspector-{INSPECTOR_VERSION}"
    prefix = cache.mkdir(name) if cache is not None else tmp_path_factory.mktemp(name)
    return install_inspector(Path(prefix))


def stdio_target(config: Path) -> list[str]:
    """The server command for the Inspector; after ``--`` so that its ``--config`` is not the Inspector's own."""
    env = [f"{k}={v}" for k, v in passthrough_env().items()]
    return [*(a for pair in env for a in ("-e", pair)), "--", console_script(), "serve", "--config", str(config)]


def http_target(server: HttpServer, token: str | None) -> list[str]:
    header = ["--header", f"Authorization: Bearer {token}"] if token else []
    return [server.url, "--transport", "http", *header]


def structured(output: dict[str, Any]) -> dict[str, Any]:
    result = output["result"]
    assert result.get("isError") is not True, result
    return dict(result["structuredContent"])


def assert_support_view_of_ana(view: dict[str, Any]) -> None:
    assert view["purpose"] == "service"
    assert view["identity"]["display_name"]["value"] == "Ana"
    assert view["identity"].get("email") is None
    reasons = {w["field"]: w["reason"] for w in view["withheld"]}
    assert reasons["identity.email"] == "purpose_not_compatible"
    assert reasons["preferences.likes"] == "caller_not_permitted"
    assert "ana@example.org" not in json.dumps(view)


def assert_tools(output: dict[str, Any]) -> None:
    tools = {t["name"]: t for t in output["result"]["tools"]}
    assert set(tools) >= EXPECTED_TOOLS
    get_profile = tools["get_profile"]
    assert get_profile["annotations"]["readOnlyHint"] is True
    assert set(get_profile["inputSchema"]["required"]) == {"user_id", "purpose"}
    assert "outputSchema" in get_profile


# -- stdio ---------------------------------------------------------------------------------------------------------

def test_inspector_lists_tools_over_stdio(inspector: Inspector, tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert_tools(inspector.json("--method", "tools/list", *stdio_target(config)))


def test_inspector_calls_get_profile_over_stdio(inspector: Inspector, tmp_path: Path) -> None:
    config = write_config(tmp_path, local_caller="support-assistant")
    # Ana's taste is stored by a caller that acts for personalization, over stdio on the same data.
    officer = write_config(tmp_path, local_caller="privacy-officer", name="officer.yaml")

    async def seed() -> None:  # the SDK's client waits for its server to exit, which frees the data for the next
        async with connect(stdio_params(officer)) as client:
            await make_person(client, "u1", ANA)

    anyio.run(seed)
    view = inspector.json("--method", "tools/call", "--tool-name", "get_profile",
                          "--tool-arg", "user_id=u1", "purpose=service", *stdio_target(config))
    assert_support_view_of_ana(structured(view))


# -- streamable HTTP with a token ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, inspector: Inspector) -> Iterator[HttpServer]:
    directory = tmp_path_factory.mktemp("inspector-http")
    config = write_config(directory, tokens={"support-assistant": SUPPORT_TOKEN, "privacy-officer": OFFICER_TOKEN})
    with http_server(config) as running:
        created = inspector.json("--method", "tools/call", "--tool-name", "update_profile", "--tool-args-json",
                                 json.dumps({"user_id": "u1", "create": True, "attributes": ANA}),
                                 *http_target(running, OFFICER_TOKEN))
        assert structured(created)["created"] is True
        for tool, arguments in (("record_consent", {"user_id": "u1", "purpose": "personalization",
                                                    "granted": True, "source": "web:preferences-page"}),
                                ("update_profile", {"user_id": "u1", "attributes": {"likes": ["lavender"]}})):
            structured(inspector.json("--method", "tools/call", "--tool-name", tool, "--tool-args-json",
                                      json.dumps(arguments), *http_target(running, OFFICER_TOKEN)))
        yield running


def test_inspector_lists_tools_over_http_with_a_token(inspector: Inspector, server: HttpServer) -> None:
    assert_tools(inspector.json("--method", "tools/list", *http_target(server, SUPPORT_TOKEN)))


def test_inspector_without_a_token_is_refused(inspector: Inspector, server: HttpServer) -> None:
    out = inspector.run("-q", "--format", "json", "--method", "tools/list", "--stored-auth-only",
                        *http_target(server, None))
    assert out.returncode != 0
    assert "get_profile" not in out.stdout
    envelopes = [json.loads(line) for line in out.stderr.splitlines() if line.startswith('{"error"')]
    assert envelopes, out.stderr
    assert envelopes[-1]["error"]["code"] == "auth_required", out.stderr


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_inspector_calls_get_profile_over_http(inspector: Inspector, server: HttpServer, era: str) -> None:
    view = inspector.json("--method", "tools/call", "--tool-name", "get_profile", "--tool-arg", "user_id=u1",
                          "purpose=service", "--protocol-era", era, *http_target(server, SUPPORT_TOKEN))
    assert_support_view_of_ana(structured(view))
    refused = inspector.json("--method", "tools/call", "--tool-name", "get_profile", "--tool-arg", "user_id=u1",
                             "purpose=wellbeing", "--protocol-era", era, *http_target(server, SUPPORT_TOKEN), ok=False)
    assert refused["result"]["isError"] is True
    assert "'support-assistant' may not act" in refused["result"]["content"][0]["text"]


# -- the banner's Inspector commands -------------------------------------------------------------------------------

def banner_command(server: HttpServer, label: str) -> list[str]:
    line = next(line for line in server.stderr().splitlines() if line.strip().startswith(label))
    return shlex.split(line.split(":", 1)[1])


def test_the_banner_cli_check_runs_as_printed(inspector: Inspector, server: HttpServer) -> None:
    command = banner_command(server, "CLI check:")
    assert command[:4] == ["npx", "-y", INSPECTOR_SPEC, "--cli"]
    args = [a.replace("<token>", SUPPORT_TOKEN) for a in command[4:]]
    out = inspector.run(*args)
    assert out.returncode == 0, out.stderr
    assert '"get_profile"' in out.stdout


def test_the_banner_web_command_uses_real_options(inspector: Inspector, server: HttpServer) -> None:
    command = banner_command(server, "Inspector:")
    assert command[:3] == ["npx", "-y", INSPECTOR_SPEC]
    assert command[command.index("--server-url") + 1] == server.url
    assert command[command.index("--header") + 1] == "Authorization: Bearer <token>"
    web_help = inspector.run("--help", mode="--web")
    assert web_help.returncode == 0, web_help.stderr
    for option in (a for a in command[3:] if a.startswith("--")):
        assert option in web_help.stdout, (option, web_help.stdout)
