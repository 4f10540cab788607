"""Governance: the audit log leaves as JSON Lines that anyone holding the audit key can check against the chain
(the whole log, one subject's entries, or those from a time on); every rights tool refuses a caller without the
privacy_officer role; a caller bound to one subject is refused every tool, resource and prompt on another."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from mnky_profiles.domain.purposes import PURPOSE_NAMES
from mnky_profiles.privacy.audit import GENESIS
from mnky_profiles.server.catalog import CATALOG
from mnky_profiles.server.cli import main

from ..conftest import FakeClock, World, open_world
from ..gate.test_audit import config_file
from ..support.clients import call, connect, tool_text

pytestmark = pytest.mark.anyio

ANA, BEN = "ana-gov-1", "ben-gov-2"
CALLERS: dict[str, Any] = {
    "privacy-officer": {"purposes": list(PURPOSE_NAMES), "categories": ["*"],
                        "roles": ["reader", "writer", "privacy_officer"], "identifiers": True},
    "support-assistant": {"purposes": ["service"], "categories": ["user.name", "user.consent"],
                          "roles": ["reader", "writer"]},
    "shopping-assistant": {"purposes": ["service", "personalization", "recommendation"], "categories": ["*"],
                           "roles": ["reader", "writer"]},
    # Ana's own assistant with every role, purpose and category: only the binding stands between it and Ben.
    "ana-companion": {"purposes": list(PURPOSE_NAMES), "categories": ["*"],
                      "roles": ["reader", "writer", "privacy_officer"], "identifiers": True, "subject": ANA},
}
# The tools a privacy officer exercises rights with; get_request and list_requests also serve a bound caller its
# own subject's requests.
SUBJECT_READS = {"get_request", "list_requests"}
RIGHTS = sorted({h.name for h in CATALOG if h.kind == "tool" and h.role == "privacy_officer"} | SUBJECT_READS)


@pytest.fixture
async def world(backend: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    async with open_world(backend, tmp_path, clock, callers=CALLERS, local_caller="privacy-officer") as w:
        async with connect(w.server("privacy-officer")) as c:
            for user_id, name in ((ANA, "Ana"), (BEN, "Ben")):
                await call(c, "update_profile", user_id=user_id, create=True, attributes={"display_name": name})
                await call(c, "record_consent", user_id=user_id, purpose="personalization", granted=True,
                           source="test")
                await call(c, "get_profile", user_id=user_id, purpose="service")
        yield w


def arguments(user_id: str, request_id: int) -> dict[str, dict[str, Any]]:
    """Valid arguments for every tool, all about ``user_id`` (or its request ``request_id``)."""
    event = {"user_id": user_id, "event_type": "purchase", "item_id": "candle-lavender"}
    return {
        "get_profile": {"user_id": user_id, "purpose": "service"},
        "update_profile": {"user_id": user_id, "attributes": {"display_name": "Someone else"}},
        "record_event": event,
        "record_events": {"events": [event]},
        "check_consent": {"user_id": user_id, "purpose": "service"},
        "record_consent": {"user_id": user_id, "purpose": "personalization", "granted": False, "source": "test"},
        "get_preferences": {"user_id": user_id, "purpose": "personalization"},
        "find_similar_users": {"user_id": user_id, "purpose": "personalization"},
        "recommend": {"user_id": user_id, "purpose": "recommendation"},
        "submit_request": {"user_id": user_id, "kind": "deletion"},
        "update_request": {"request_id": request_id, "status": "denied", "reason": "not them"},
        "get_request": {"request_id": request_id},
        "list_requests": {"user_id": user_id},
        "record_privacy_signal": {"user_id": user_id, "signal": "global_privacy_control", "source": "web:test"},
        "restrict_processing": {"user_id": user_id, "source": "chat:test"},
        "object_to_profiling": {"user_id": user_id, "source": "chat:test"},
        "export_user_data": {"user_id": user_id},
        "erase_user": {"user_id": user_id},
    }


async def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await anyio.to_thread.run_sync(main, args)
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def recompute(secret: bytes, line: dict[str, Any]) -> str:
    """An entry's hash from its exported line alone, as the chain defines it: HMAC-SHA256 under the audit key of
    the previous hash and the entry's fields (with the key id) as sorted, compact JSON."""
    fields = {k: line[k] for k in ("seq", "at", "caller", "action", "subject", "purpose", "released", "outcome",
                                   "key_id")}
    fields["withheld"] = [[w["field"], w["category"], w["reason"]] for w in line["withheld"]]
    message = line["prev_hash"].encode() + b"\n" + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


@pytest.fixture
def config(world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [k for k in os.environ if k.startswith("MNKY_")]:
        monkeypatch.delenv(name)  # the file alone configures the command
    return config_file(world.runtime.settings, tmp_path / "config.yaml")


async def test_the_audit_export_recomputes_to_the_chain(world: World, config: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = await cli(["audit", "export", "--config", str(config)], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == len([e async for e in world.runtime.audit.entries()]) >= 6
    secret = bytes.fromhex((world.runtime.settings.data_dir / "audit.key").read_text().strip())
    key_id = hashlib.sha256(secret).hexdigest()[:16]
    prev = GENESIS
    for seq, line in enumerate(lines, start=1):
        assert set(line) == {"seq", "at", "caller", "action", "subject", "purpose", "released", "withheld",
                             "outcome", "prev_hash", "hash", "key_id"}
        assert line["seq"] == seq and line["prev_hash"] == prev and line["key_id"] == key_id
        assert line["hash"] == recompute(secret, line)
        prev = line["hash"]
    assert (seq, prev) == await world.runtime.audit.head()
    assert ANA not in out and BEN not in out and "Ana" not in out  # pseudonyms only, as in the log
    # A changed line no longer recomputes: the export is checked, not trusted.
    forged = lines[2] | {"caller": "someone-else"}
    assert recompute(secret, forged) != forged["hash"]


async def test_the_audit_export_of_one_subject_and_since_a_time(world: World, config: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    secret = bytes.fromhex((world.runtime.settings.data_dir / "audit.key").read_text().strip())
    code, out, _ = await cli(["audit", "export", "--subject", ANA, "--config", str(config)], capsys)
    lines = [json.loads(line) for line in out.splitlines()]
    anas = [e.seq async for e in world.runtime.audit.entries(ANA)]
    assert code == 0 and [line["seq"] for line in lines] == anas and len(anas) >= 3
    assert {line["subject"] for line in lines} == {await world.runtime.pseudonyms.subject(ANA)}
    assert all(line["hash"] == recompute(secret, line) for line in lines)  # each checks against its place
    code, out, _ = await cli(["audit", "export", "--subject", BEN, "--config", str(config)], capsys)
    assert not {json.loads(line)["seq"] for line in out.splitlines()} & set(anas)

    world.clock.advance(days=1)
    since = world.clock.now()
    async with connect(world.server("privacy-officer")) as c:
        await call(c, "get_profile", user_id=ANA, purpose="service")
        await call(c, "get_profile", user_id=BEN, purpose="service")
    code, out, _ = await cli(["audit", "export", "--since", since.isoformat(), "--config", str(config)], capsys)
    assert code == 0 and [(json.loads(line)["action"]) for line in out.splitlines()] == ["tool:get_profile"] * 2
    code, out, _ = await cli(["audit", "export", "--subject", ANA, "--since", since.isoformat(),
                              "--config", str(config)], capsys)
    assert code == 0 and len(out.splitlines()) == 1
    code, _, err = await cli(["audit", "export", "--since", "yesterday", "--config", str(config)], capsys)
    assert code == 2 and "--since 'yesterday' is not an ISO 8601 timestamp" in err


async def test_every_rights_tool_refuses_a_caller_without_the_role(world: World) -> None:
    async with connect(world.server("privacy-officer")) as officer:
        rid = (await call(officer, "submit_request", user_id=ANA, kind="access"))["request_id"]
    calls = arguments(ANA, rid)
    assert {"update_request", "get_request", "list_requests"} <= set(RIGHTS) <= set(calls), RIGHTS
    for caller in ("support-assistant", "shopping-assistant"):
        async with connect(world.server(caller)) as c:
            for tool in RIGHTS:
                result = await c.call_tool(tool, calls[tool])
                assert result.is_error and "'privacy_officer' role" in tool_text(result), (caller, tool)
            everyone = await c.call_tool("list_requests", {})
            assert everyone.is_error and "'privacy_officer' role" in tool_text(everyone), caller
    async with connect(world.server("privacy-officer")) as officer:
        assert (await call(officer, "get_request", request_id=rid))["status"] == "received"  # nothing changed


async def attempt(client: Client, kind: str, name: str, args: dict[str, Any]) -> str | None:
    """The refusal's text, or None when the call succeeded."""
    try:
        if kind == "tool":
            result = await client.call_tool(name, args)
            return tool_text(result) if result.is_error else None
        if kind == "resource":
            await client.read_resource(re.sub(r"\{user_id\}", args["user_id"], name))
        else:
            await client.get_prompt(name, {k: str(v) for k, v in args.items()})
    except MCPError as exc:
        return str(exc)
    return None


async def test_a_bound_caller_is_refused_everything_about_another_subject(world: World) -> None:
    async with connect(world.server("privacy-officer")) as officer:
        bens = (await call(officer, "submit_request", user_id=BEN, kind="access"))["request_id"]
        anas = (await call(officer, "submit_request", user_id=ANA, kind="access"))["request_id"]
    database = next(h for h in world.runtime.holders if h.holder == "database")
    before = await database.export(BEN)
    on_ben, on_ana = arguments(BEN, bens), arguments(ANA, anas)
    tools = {h.name for h in CATALOG if h.kind == "tool"}
    assert tools <= set(on_ben), f"give arguments for {sorted(tools - set(on_ben))}"
    targets = [("tool", name, on_ben[name]) for name in sorted(tools)]
    targets += [(h.kind, h.name, {"user_id": BEN, "purpose": "service"} if h.name == "personalize"
                 else {"user_id": BEN}) for h in CATALOG if h.kind in ("resource", "prompt") and h.paths]
    assert {t[1] for t in targets} >= {"profile://{user_id}", "consent://{user_id}", "privacy_summary"}
    async with connect(world.server("ana-companion")) as ana:
        for kind, name, args in targets:
            refusal = await attempt(ana, kind, name, args)
            assert refusal is not None and "bound to one data subject" in refusal, (kind, name, refusal)
        # The same calls about Ana pass the binding: the refusals above are the binding's, not the role's.
        for tool in ("get_profile", "get_request", "list_requests", "check_consent"):
            assert await attempt(ana, "tool", tool, on_ana[tool]) is None, tool
    assert await database.export(BEN) == before  # nothing about Ben was written or changed
    refused = [e.entry async for e in world.runtime.audit.entries() if e.entry.caller == "ana-companion"
               and e.entry.outcome == "error:not_permitted"]
    assert len(refused) == len(targets)
