"""Data subject requests through an MCP client, on both databases: submitted for the subject by any caller acting
for them, moved through received -> verified -> in_progress -> completed (or denied, with a reason) by the privacy
officer only, due one month (GDPR) or 45 days (CCPA) after receipt, flagged when overdue; a caller bound to one
subject reaches that subject's requests only; an erasure keeps the request, unlinked from the person."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from mnky_profiles.domain.purposes import PURPOSE_NAMES
from mnky_profiles.server.cli import main

from ..conftest import FakeClock, World, open_world
from ..gate.test_audit import config_file
from ..support.clients import call, connect, tool_text

pytestmark = pytest.mark.anyio

ANA, BEN = "ana-rq-1", "ben-rq-2"
JAN_31 = datetime(2026, 1, 31, 10, 0, tzinfo=UTC)
CALLERS: dict[str, Any] = {
    "privacy-officer": {"purposes": list(PURPOSE_NAMES), "categories": ["*"],
                        "roles": ["reader", "writer", "privacy_officer"], "identifiers": True},
    "support-assistant": {"purposes": ["service"], "categories": ["user.name", "user.consent"],
                          "roles": ["reader", "writer"]},
    "insights-agent": {"purposes": ["profiling"], "categories": ["user.preference"], "roles": ["reader"],
                       "default_purpose": "profiling"},
    # Ana's own assistant: every role and category, but bound to her.
    "ana-companion": {"purposes": ["service"], "categories": ["*"],
                      "roles": ["reader", "writer", "privacy_officer"], "subject": ANA},
}


@pytest.fixture
async def world(backend: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    clock.current = JAN_31
    async with open_world(backend, tmp_path, clock, callers=CALLERS, local_caller="privacy-officer") as w:
        async with connect(w.server("privacy-officer")) as c:
            for user_id, name in ((ANA, "Ana"), (BEN, "Ben")):
                await call(c, "update_profile", user_id=user_id, create=True, attributes={"display_name": name})
        yield w


async def refused(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, (tool, result.structured_content)
    return tool_text(result)


async def test_a_request_moves_through_its_lifecycle(world: World) -> None:
    async with connect(world.server("support-assistant")) as support:
        made = await call(support, "submit_request", user_id=ANA, kind="deletion", details="Please delete me",
                          verification="logged-in session")
    # A support assistant's word does not verify the subject: the request waits for the privacy officer.
    assert made["status"] == "received" and made["verification"] == "logged-in session"
    assert made["requested_by"] == "support-assistant" and made["user_id"] == ANA and made["regime"] == "gdpr"
    assert made["created_at"] == made["updated_at"] == "2026-01-31T10:00:00Z"
    rid = made["request_id"]
    async with connect(world.server("privacy-officer")) as officer:
        assert "cannot become 'in_progress'" in await refused(officer, "update_request", request_id=rid,
                                                               status="in_progress")
        assert "denial needs a reason" in await refused(officer, "update_request", request_id=rid, status="denied")
        assert "for denials only" in await refused(officer, "update_request", request_id=rid, status="verified",
                                                  reason="because")
        assert (await call(officer, "get_request", request_id=rid))["status"] == "received"  # nothing changed

        world.clock.advance(days=2)
        step = await call(officer, "update_request", request_id=rid, status="verified", verification="email link")
        assert step["status"] == "verified" and step["verification"] == "email link"
        assert step["updated_at"] == "2026-02-02T10:00:00Z" and step["created_at"] == "2026-01-31T10:00:00Z"
        assert (await call(officer, "update_request", request_id=rid, status="in_progress"))["status"] == "in_progress"
        done = await call(officer, "update_request", request_id=rid, status="completed")
        assert done["status"] == "completed" and "reason" not in done
        assert "It is closed" in await refused(officer, "update_request", request_id=rid, status="denied",
                                               reason="late")

        # A privacy officer who says how the subject was verified starts a verified request.
        other = await call(officer, "submit_request", user_id=BEN, kind="access", verification="signed letter")
        assert other["status"] == "verified"
        denied = await call(officer, "update_request", request_id=other["request_id"], status="denied",
                            reason="The letter's signature does not match.")
        assert denied["status"] == "denied" and denied["reason"] == "The letter's signature does not match."
        unverified = await call(officer, "submit_request", user_id=BEN, kind="objection")
        assert unverified["status"] == "received" and unverified["verification"] == "unverified"
        assert "Say how the subject was verified" in await refused(
            officer, "update_request", request_id=unverified["request_id"], status="verified")

        listed = await call(officer, "list_requests")
        assert [(r["request_id"], r["status"]) for r in listed["requests"]] == [
            (rid, "completed"), (other["request_id"], "denied"), (unverified["request_id"], "received")]
        assert [r["request_id"] for r in (await call(officer, "list_requests", user_id=BEN))["requests"]] == [
            other["request_id"], unverified["request_id"]]
        assert [r["request_id"] for r in (await call(officer, "list_requests", status="denied"))["requests"]] == [
            other["request_id"]]
        assert "No request 999 exists" in await refused(officer, "get_request", request_id=999)
    # A request id is not a user id, yet the audit names whom each call on a request was about.
    named = {(e.entry.action, e.entry.subject) async for e in world.runtime.audit.entries(ANA)}
    ana = await world.runtime.pseudonyms.subject(ANA)
    assert {("tool:get_request", ana), ("tool:update_request", ana), ("tool:submit_request", ana)} <= named


async def test_bad_requests_are_refused_and_nothing_is_written(world: World) -> None:
    async with connect(world.server("privacy-officer")) as officer:
        assert "No profile exists" in await refused(officer, "submit_request", user_id="nobody-rq", kind="access")
        assert await refused(officer, "submit_request", user_id=ANA, kind="forget_me")
        assert await refused(officer, "submit_request", user_id=ANA, kind="access", regime="pipeda")
        assert "verification must be" in await refused(officer, "submit_request", user_id=ANA, kind="access",
                                                       verification="  ")
        assert "details must be" in await refused(officer, "submit_request", user_id=ANA, kind="access",
                                                  details="a\x00b")
        assert (await call(officer, "list_requests"))["requests"] == []


async def test_due_dates_follow_the_regime_and_overdue_requests_are_flagged(world: World) -> None:
    async with connect(world.server("privacy-officer")) as officer:
        gdpr = await call(officer, "submit_request", user_id=ANA, kind="access")
        ccpa = await call(officer, "submit_request", user_id=ANA, kind="opt_out_sale", regime="ccpa")
        closed = await call(officer, "submit_request", user_id=BEN, kind="access", verification="email link")
        await call(officer, "update_request", request_id=closed["request_id"], status="completed")
        # One month from 31 January is the last day of February; 45 days is 17 March.
        assert gdpr["due_at"] == "2026-02-28T10:00:00Z" and ccpa["due_at"] == "2026-03-17T10:00:00Z"
        assert not gdpr["overdue"] and not ccpa["overdue"]

        world.clock.current = datetime(2026, 2, 28, 10, 0, tzinfo=UTC)  # due now: not yet late
        assert (await call(officer, "list_requests", overdue=True))["requests"] == []
        world.clock.advance(seconds=1)
        late = (await call(officer, "list_requests", overdue=True))["requests"]
        assert [r["request_id"] for r in late] == [gdpr["request_id"]] and late[0]["overdue"] is True
        assert (await call(officer, "get_request", request_id=closed["request_id"]))["overdue"] is False

        world.clock.current = datetime(2026, 3, 17, 10, 0, 1, tzinfo=UTC)
        late = (await call(officer, "list_requests", overdue=True))["requests"]
        assert [r["request_id"] for r in late] == [gdpr["request_id"], ccpa["request_id"]]
        await call(officer, "update_request", request_id=gdpr["request_id"], status="verified",
                   verification="email link")
        assert (await call(officer, "get_request", request_id=gdpr["request_id"]))["overdue"] is True  # still open
        await call(officer, "update_request", request_id=gdpr["request_id"], status="completed")
        late = (await call(officer, "list_requests", overdue=True))["requests"]
        assert [r["request_id"] for r in late] == [ccpa["request_id"]]


async def test_only_the_privacy_officer_answers_and_reads_requests(world: World) -> None:
    async with connect(world.server("support-assistant")) as support:
        rid = (await call(support, "submit_request", user_id=ANA, kind="deletion"))["request_id"]
        assert "'privacy_officer' role" in await refused(support, "update_request", request_id=rid,
                                                         status="denied", reason="no")
        assert "'privacy_officer' role" in await refused(support, "get_request", request_id=rid)
        assert "'privacy_officer' role" in await refused(support, "list_requests")
        assert "'privacy_officer' role" in await refused(support, "list_requests", user_id=ANA)
    async with connect(world.server("insights-agent")) as insights:
        assert "'writer' role" in await refused(insights, "submit_request", user_id=ANA, kind="access")
        assert "purpose 'service'" in await refused(insights, "get_request", request_id=rid)
    async with connect(world.server("privacy-officer")) as officer:
        assert (await call(officer, "get_request", request_id=rid))["status"] == "received"


async def test_a_bound_caller_reaches_its_own_subjects_requests_only(world: World) -> None:
    async with connect(world.server("privacy-officer")) as officer:
        bens = (await call(officer, "submit_request", user_id=BEN, kind="access"))["request_id"]
    async with connect(world.server("ana-companion")) as ana:
        mine = await call(ana, "submit_request", user_id=ANA, kind="access", details="What do you hold?")
        assert mine["requested_by"] == "ana-companion"
        assert "bound to one data subject" in await refused(ana, "submit_request", user_id=BEN, kind="deletion")
        assert (await call(ana, "get_request", request_id=mine["request_id"]))["details"] == "What do you hold?"
        assert "request " + str(bens) + " is about another" in await refused(ana, "get_request", request_id=bens)
        assert "is about another" in await refused(ana, "update_request", request_id=bens, status="denied",
                                                   reason="no")
    tried = [e.entry async for e in world.runtime.audit.entries(BEN) if e.entry.caller == "ana-companion"]
    assert {(e.action, e.outcome) for e in tried} == {("tool:submit_request", "error:not_permitted"),
                                                      ("tool:get_request", "error:not_permitted"),
                                                      ("tool:update_request", "error:not_permitted")}
    async with connect(world.server("ana-companion")) as ana:
        assert [r["request_id"] for r in (await call(ana, "list_requests"))["requests"]] == [mine["request_id"]]
        assert "bound to one data subject" in await refused(ana, "list_requests", user_id=BEN)
    async with connect(world.server("privacy-officer")) as officer:
        bens_now = await call(officer, "get_request", request_id=bens)
        assert bens_now["status"] == "received" and bens_now["updated_at"] == bens_now["created_at"]
        assert len((await call(officer, "list_requests"))["requests"]) == 2  # the refused submission made none


async def test_an_erased_subjects_request_stays_unlinked(world: World) -> None:
    async with connect(world.server("support-assistant")) as support:
        rid = (await call(support, "submit_request", user_id=ANA, kind="deletion",
                          details="Ana Marker wants out"))["request_id"]
    pseudonym = await world.runtime.pseudonyms.subject(ANA)
    database = next(h for h in world.runtime.holders if h.holder == "database")
    exported = await database.export(ANA)
    assert [(r["id"], r["kind"], r["details"]) for r in exported["requests"]] == [(rid, "deletion",
                                                                                  "Ana Marker wants out")]
    removed = await database.erase(ANA)
    assert removed["requests"] == 1
    assert await database.held(ANA) == {}
    async with connect(world.server("privacy-officer")) as officer:
        kept = await call(officer, "get_request", request_id=rid)
        # The record that the erasure was asked for stays, named by the pseudonym its audit entries carry.
        assert "user_id" not in kept and "details" not in kept
        assert kept["subject"] == pseudonym and kept["kind"] == "deletion"
        assert (await call(officer, "list_requests", user_id=ANA))["requests"] == []


async def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = await anyio.to_thread.run_sync(main, args)
    printed = capsys.readouterr()
    return code, printed.out + printed.err


async def test_the_cli_lists_requests_with_overdue_ones_flagged(
        world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("MNKY_")]:
        monkeypatch.delenv(name)
    # The command line uses the real clock: a request received 50 days ago under GDPR is overdue now.
    world.clock.current = datetime.now(UTC).replace(microsecond=0) - timedelta(days=50)
    async with connect(world.server("privacy-officer")) as officer:
        late = (await call(officer, "submit_request", user_id=ANA, kind="deletion"))["request_id"]
        world.clock.current += timedelta(days=49)
        fresh = (await call(officer, "submit_request", user_id=BEN, kind="access", regime="ccpa"))["request_id"]
    config = config_file(world.runtime.settings, tmp_path / "config.yaml")
    code, out = await cli(["requests", "--config", str(config)], capsys)
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2, out
    assert lines[0].startswith(f"#{late} deletion (gdpr) received") and "OVERDUE" in lines[0] and ANA in lines[0]
    assert lines[1].startswith(f"#{fresh} access (ccpa) received") and "OVERDUE" not in lines[1]
    code, out = await cli(["requests", "--overdue", "--config", str(config)], capsys)
    assert code == 0 and [line.split()[0] for line in out.strip().splitlines()] == [f"#{late}"], out
    code, out = await cli(["requests", "--status", "completed", "--config", str(config)], capsys)
    assert code == 0 and out.strip() == "no requests with status completed", out


async def test_an_erasure_carries_out_a_verified_deletion_request_and_keeps_its_receipt(world: World) -> None:
    async with connect(world.server("privacy-officer")) as officer:
        made = await call(officer, "submit_request", user_id=ANA, kind="deletion")
        access = await call(officer, "submit_request", user_id=ANA, kind="access", verification="logged-in session")
        # Unverified, or not a deletion, or someone else's: refused, and nothing is erased.
        assert "only a verified request" in await refused(officer, "erase_user", user_id=ANA,
                                                          request_id=made["request_id"])
        assert "not a deletion request" in await refused(officer, "erase_user", user_id=ANA,
                                                         request_id=access["request_id"])
        assert "not a deletion request" in await refused(officer, "erase_user", user_id=BEN,
                                                         request_id=made["request_id"])
        assert (await call(officer, "export_user_data", user_id=ANA))["requests"][0]["kind"] == "deletion"
        await call(officer, "update_request", request_id=made["request_id"], status="verified",
                   verification="email link")
        receipt = await call(officer, "erase_user", user_id=ANA, request_id=made["request_id"])
        assert receipt["complete"] and receipt["request_id"] == made["request_id"]
        kept = await call(officer, "get_request", request_id=made["request_id"])
    assert kept["status"] == "completed"
    assert kept["receipt"]["receipt_id"] == receipt["receipt_id"]
    assert kept["receipt"]["holders"] == receipt["holders"]
    assert ANA not in str(kept["receipt"])
