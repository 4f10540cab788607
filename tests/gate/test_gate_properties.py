"""The consent gate as properties, and its default-deny rules.

Over callers (built from settings: purposes, categories down to sub-categories, roles, the identifiers flag, a
bound subject), consent states per purpose, anonymization on and off, and every tool, resource and prompt that
reads or writes a user: nothing leaves that the caller may not see, the purpose may not use, anonymization hides
or the subject has not consented to, neither in structured content nor in any text; and each call's audit entry
names exactly what left and what was held back.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.shared.exceptions import MCPError

from mnky_profiles.domain.audit import AuditEntry
from mnky_profiles.domain.callers import Caller
from mnky_profiles.domain.fields import SECTIONS
from mnky_profiles.domain.purposes import CONSENT_PURPOSES, PURPOSE_NAMES, PURPOSES, Purpose
from mnky_profiles.privacy.surface import Handler
from mnky_profiles.server.catalog import CATALOG

from ..conftest import ERAS, FakeClock, World, open_world
from ..support.clients import call, connect, prompt_text, resource_text, tool_text
from ..support.gate import (
    CONSENT_STATES,
    EMOTIONAL_MARKER,
    MarkedUser,
    Rule,
    audit_length,
    audit_text,
    caller_from_settings,
    category_at,
    covered,
    covers,
    declared,
    is_lineage_withholding,
    lineages,
    newest_entry,
    personal_fields,
    result_model,
    result_texts,
    seed_marked_user,
    snapshot,
    values_at,
)

pytestmark = pytest.mark.anyio

GRANTS = ("*", "user.contact", "user.contact.email", "user.name", "user.demographic", "user.demographic.language",
          "user.location", "user.location.country", "user.location.region", "user.location.precise",
          "user.preference", "user.preference.communication", "user.preference.stated", "user.behavior",
          "user.psychographic", "user.emotional", "user.inferred", "user.segment", "user.consent",
          "user.consent.transparency")
ROLES = ("reader", "writer", "privacy_officer")
PROFILE_VIEWS = {"get_profile", "profile://{user_id}", "personalize"}
CONTRACT_TOOLS = {"get_profile", "update_profile", "record_event", "record_events", "check_consent", "record_consent"}
# Read tools added beside the contract that take (user_id, purpose): the same property holds for them.
OTHER_READS = sorted(
    h.name for h in CATALOG if h.kind == "tool" and h.read_only and h.name not in CONTRACT_TOOLS
    and {"user_id", "purpose"} <= set(inspect.signature(h.fn).parameters)
    and all(p.default is not p.empty for n, p in inspect.signature(h.fn).parameters.items()
            if n not in {"scope", "user_id", "purpose"}))
GATE_REFUSALS = {"error:not_permitted", "error:consent_required"}


def weighted(*choices: tuple[Any, int]) -> st.SearchStrategy[Any]:
    return st.sampled_from([value for value, weight in choices for _ in range(weight)])


def states_for(purpose: str) -> tuple[str, ...]:
    return CONSENT_STATES + (("sale_opt_out",) if PURPOSES[purpose].opted_out_by_sale_signals else ())


def relevant(purpose: str) -> list[str]:
    """The grants that reach at least one category the purpose uses."""
    uses = PURPOSES[purpose].uses
    return [g for g in GRANTS if any(covers(g, u) or covers(u, g) for u in uses)]


SPOILERS = (("none", 5), ("role", 1), ("purpose", 1), ("bound", 1), ("consent", 2), ("categories", 1))


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A caller as settings, the subject's consent per purpose, and the arguments of the calls.

    Drawn around a focus purpose: the caller holds it, may see some of what it uses and the subject granted it,
    unless one "spoiler" takes exactly one of those away. So half of the examples pass the gate's door and
    exercise its field-by-field release, and the others each exercise one refusal.
    """
    focus = draw(weighted(*((p, 2 if p in ("service", "personalization", "marketing") else 1)
                            for p in PURPOSE_NAMES)))
    spoiler = draw(weighted(*SPOILERS))
    purposes = set(draw(st.lists(st.sampled_from(PURPOSE_NAMES), unique=True))) | {focus}
    if draw(st.booleans()):
        purposes.add("service")
    if spoiler == "purpose":
        purposes.discard(focus)
        purposes.add(draw(st.sampled_from([p for p in PURPOSE_NAMES if p != focus])))
    categories = set(draw(st.lists(st.sampled_from(GRANTS), unique=True, max_size=4)))
    if draw(st.booleans()):
        categories.add("user.consent")  # so the ledger's decisions show often enough to be checked
    if spoiler == "categories":
        categories -= set(relevant(focus))
    else:
        categories |= set(draw(st.lists(st.sampled_from(relevant(focus)), min_size=1, max_size=3, unique=True)))
    roles = draw(weighted((["reader", "writer"], 3), (["reader"], 1), (list(ROLES), 1)))
    if spoiler == "role":
        roles = draw(st.sampled_from([[], ["writer"], ["writer", "privacy_officer"]]))
    if draw(weighted((True, 1), (False, 3))):
        consents = dict.fromkeys(CONSENT_PURPOSES, "none")  # never asked: the default
        if spoiler != "consent" and focus in consents:
            consents[focus] = "granted"
    else:
        consents = {p: draw(weighted(*((s, {"granted": 4, "sale_opt_out": 3}.get(s, 1)) for s in states_for(p))))
                    for p in CONSENT_PURPOSES}
        if focus in consents:
            consents[focus] = (draw(st.sampled_from([s for s in states_for(focus) if s != "granted"]))
                               if spoiler == "consent" else "granted")
    held = sorted(purposes)
    return {
        "caller": {"purposes": held, "categories": sorted(categories), "roles": roles,
                   "identifiers": draw(st.booleans()),
                   "default_purpose": focus if focus in held else draw(st.sampled_from(held))},
        "consents": consents, "focus": focus, "spoiler": spoiler,
        "bound": "other" if spoiler == "bound" else draw(weighted(("none", 2), ("self", 1))),
        "prompt_purpose": draw(weighted((focus, 3), *((p, 1) for p in PURPOSE_NAMES))),
        "asked": draw(st.sampled_from(PURPOSE_NAMES)),
        "recorded": draw(st.sampled_from(CONSENT_PURPOSES)),
        "granted": draw(st.booleans()),
        "sections": draw(st.none() | st.lists(st.sampled_from(SECTIONS), min_size=1, max_size=4, unique=True)),
    }


@dataclass(frozen=True)
class Call:
    kind: str
    name: str  # tool or prompt name, or the resource's URI template
    arguments: dict[str, Any]
    uri: str = ""


async def perform(client: Client, call: Call) -> tuple[Any, str | None]:
    """The result, or the error text: a tool error, or the protocol error a resource or prompt raises."""
    try:
        if call.kind == "tool":
            result = await client.call_tool(call.name, call.arguments)
            return result, (tool_text(result) if result.is_error else None)
        if call.kind == "resource":
            return await client.read_resource(call.uri), None
        return await client.get_prompt(call.name, call.arguments), None
    except MCPError as exc:
        return None, str(exc)


@dataclass(frozen=True)
class Expected:
    """What the spec says of one call, before it is made."""

    handler: Handler
    purpose: Purpose
    rule: Rule  # which categories may leave, and why each other one may not
    passes_the_door: bool  # role, purpose, categories, bound subject, individual purpose, consent
    where: str  # the call, for failure messages

    @classmethod
    def of(cls, world: World, user: MarkedUser, call: Call) -> Expected:
        handler = declared(call.kind, call.name)
        caller = world.runtime.callers["probe"]
        purpose = PURPOSES[handler.purpose or call.arguments.get("purpose") or caller.default_purpose]
        rule = Rule(caller, purpose, user.consented(purpose.name), world.runtime.settings.user_profiling.anonymization)
        passes = (handler.role in caller.roles and purpose.name in caller.purposes
                  and (handler.purpose is not None or any(covered(caller.categories, c) or covered([c], g)
                                                          for c in purpose.uses for g in caller.categories))
                  and caller.subject in (None, user.user_id)
                  and purpose.individual and user.consented(purpose.name)
                  and may_store(caller, user, call))
        return cls(handler, purpose, rule, passes,
                   f"{handler.action} as {caller} for {purpose.name}, consents {user.consents}")


# The spec's collection rule for the writes the property makes: what each stores is collected for these purposes
# (any one will do) and is of this category. The caller must act for one the user consents to (the contract needs
# none) and may see the category.
COLLECTED = {
    "record_event": (("personalization", "profiling"), "user.behavior"),  # a view
    "update_profile": (("service",), "user.preference.communication"),  # interaction_style
}


def may_store(caller: Caller, user: MarkedUser, call: Call) -> bool:
    if call.name == "record_consent":  # a grant only for a purpose the caller acts for, or by a privacy officer
        return (not call.arguments["granted"] or call.arguments["purpose"] in caller.purposes
                or "privacy_officer" in caller.roles)
    if call.name not in COLLECTED:
        return True
    purposes, category = COLLECTED[call.name]
    return covered(caller.categories, category) and any(p in caller.purposes and user.consented(p) for p in purposes)


async def check_call(world: World, client: Client, user: MarkedUser, call: Call,
                     sections: list[str] | None = None) -> None:
    """One call against the spec: audited once, then either refused cleanly or released exactly as allowed."""
    expected = Expected.of(world, user, call)
    result, error, entry = await audited(world, client, user, call, expected)
    if not expected.passes_the_door or error is not None:
        check_refusal(user, expected, error, entry)
        return
    shown = "\n".join(result_texts(result))
    if expected.handler.name == "recommend":
        # Marked items are in the catalog too: listed as a recommendation it is the catalog, not the user's
        # behaviour. Whether behaviour shaped the list is what each item's lineage says (checked below).
        for someone in SEEDED:
            shown = re.sub(r'"item_id":\s*"' + re.escape(someone.behavior_item) + '"', '"item_id": "(catalog)"',
                           shown)
    check_nothing_leaks(user, expected, shown, entry)
    if call.kind == "prompt":
        for w in entry.withheld:  # a prompt is text: the withheld fields are named in it
            assert f"{w.field} ({w.reason})" in shown, (w, shown)
    else:
        data = result.structured_content if call.kind == "tool" else json.loads(resource_text(result))
        check_output_matches_audit(user, expected, data, entry)
    if expected.handler.name in PROFILE_VIEWS:
        check_nothing_over_withheld(user, expected, sections, shown, entry)
    if expected.handler.name == "consent://{user_id}" and expected.rule.allows("user.consent"):
        assert all(m in shown for m in user.stored_consent_markers())


async def audited(world: World, client: Client, user: MarkedUser, call: Call, expected: Expected
                  ) -> tuple[Any, str | None, AuditEntry]:
    """Make the call; it appends exactly one audit entry, naming the subject by pseudonym and holding no value."""
    runtime = world.runtime
    before = await audit_length(runtime)
    result, error = await perform(client, call)
    assert await audit_length(runtime) == before + 1, expected.where
    entry = await newest_entry(runtime)
    assert entry.action == expected.handler.action and entry.caller == "probe"
    assert entry.subject == await runtime.pseudonyms.subject(user.user_id)
    logged = audit_text(entry)
    assert user.user_id not in logged and not [m for m in user.markers if m in logged], logged
    return result, error, entry


def check_refusal(user: MarkedUser, expected: Expected, error: str | None, entry: AuditEntry) -> None:
    """Refused: an error naming no value, nothing released or withheld, the gate's outcome when the gate refused."""
    assert error is not None, f"expected a refusal: {expected.where}"
    assert not entry.released and not entry.withheld
    assert not [m for m in user.markers if m in error], error
    if expected.passes_the_door:  # past the gate; a tool added later may still refuse these arguments itself
        assert expected.handler.name in OTHER_READS and entry.outcome not in GATE_REFUSALS, expected.where
    else:
        assert entry.outcome in GATE_REFUSALS, (entry.outcome, expected.where)


def check_nothing_leaks(user: MarkedUser, expected: Expected, shown: str, entry: AuditEntry) -> None:
    """No marker of a category the rule forbids appears anywhere; the audit releases only allowed categories and
    gives each withheld field a reason the rule has for it."""
    rule, model = expected.rule, result_model(expected.handler)
    assert entry.outcome == "ok" and entry.purpose == expected.purpose.name
    leaked = [m for m, category in user.markers.items() if not rule.allows(category) and m in shown]
    assert not leaked, f"{expected.where}: {leaked}"
    # Other people: nothing of theirs, in any category, and not their ids (a neighbour is a pseudonym).
    others = [o for o in SEEDED if o.user_id != user.user_id]
    theirs = [m for o in others for m in (*o.markers, o.user_id) if m != EMOTIONAL_MARKER and m in shown]
    assert not theirs, f"{expected.where}: {theirs}"
    assert len(entry.released) == len(set(entry.released))
    for path in entry.released:
        assert rule.allows(category_at(model, path)), (path, expected.where)
    for w in entry.withheld:
        if not is_lineage_withholding(w.field):
            assert w.category == category_at(model, w.field), w
        assert w.reason in rule.reasons(w.category), (w, expected.where)


def check_output_matches_audit(user: MarkedUser, expected: Expected, data: dict[str, Any],
                               entry: AuditEntry) -> None:
    """The fields that hold values are exactly those the audit released; the withheld report is the audit's, and
    every withheld field is empty. Consent decisions follow the spec in every state."""
    assert sorted(entry.released) == sorted(personal_fields(result_model(expected.handler), data)), expected.where
    assert [(w["field"], w["category"], w["reason"]) for w in data["withheld"]] == [
        (w.field, w.category, w.reason) for w in entry.withheld]
    for w in entry.withheld:
        if not is_lineage_withholding(w.field):  # a derived value withheld is gone from its list, not null
            assert all(v is None for v in values_at(data, w.field)), w
    for lineage in lineages(data):  # derived values: every category they were computed from may leave
        assert all(expected.rule.allows(c) for c in lineage), (lineage, expected.where)
    decisions = [data] if expected.handler.name == "check_consent" else data.get("decisions", [])
    for d in decisions:
        if d.get("allowed") is not None:
            assert (d["allowed"], d["reason"]) == user.decision(d["purpose"]), (d, user.consents)


def check_nothing_over_withheld(user: MarkedUser, expected: Expected, sections: list[str] | None, shown: str,
                                entry: AuditEntry) -> None:
    """A profile view releases and shows everything the rule allows in the sections asked for."""
    rule = expected.rule
    wanted = set(sections or SECTIONS) if expected.handler.name == "get_profile" else set(SECTIONS)
    released = {p for p, c in user.attributes.items() if p.split(".")[0] in wanted and rule.allows(c)}
    released |= {s for s in ("behavior", "emotional") if s in wanted and rule.allows(f"user.{s}")}
    assert set(entry.released) == released, expected.where
    missing = [m for m, c in user.markers.items() if user.sections[m] in wanted and rule.allows(c) and m not in shown]
    assert not missing, f"{expected.where}: {missing}"


# Every user seeded in this test's worlds: no output about one of them may show anything of another.
SEEDED: list[MarkedUser] = []


@pytest.fixture
async def worlds(backend: str, tmp_path: Path) -> AsyncIterator[dict[bool, World]]:
    """Two runtimes, anonymization on and off, each serving a caller named ``probe``, on each database.

    The runtime reads its callers on every call, so each example installs the caller it drew, built from
    settings exactly as the server builds it at start.
    """
    clock = FakeClock()
    SEEDED.clear()
    probe = {"probe": {"purposes": ["service"], "categories": [], "roles": []}}
    async with open_world(backend, tmp_path / "anonymized", clock, callers=probe, local_caller="probe",
                          user_profiling={"anonymization": True}) as anonymized, \
            open_world(backend, tmp_path / "plain", clock, callers=probe, local_caller="probe",
                       user_profiling={"anonymization": False}) as plain:
        yield {True: anonymized, False: plain}


_numbers = itertools.count()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios(), anonymization=st.booleans(), mode=st.sampled_from(ERAS))
async def test_nothing_leaves_that_the_gate_does_not_allow(
        worlds: dict[bool, World], scenario: dict[str, Any], anonymization: bool, mode: str) -> None:
    world = worlds[anonymization]
    n = next(_numbers)
    user_id, token = f"subject-{n:05d}", f"tk{n:05d}q"
    user = await seed_marked_user(world.runtime, user_id, token, scenario["consents"], world.clock.now())
    SEEDED.append(user)
    # Learn from everyone seeded so far: other people are then in the similarity index and the shared model, and
    # so may turn up in this user's neighbours and reasons, where nothing of theirs but a fresh name may show.
    await world.runtime.usecases.learning.relearn()
    await world.runtime.usecases.model.fit()
    subject = {"none": None, "self": user_id, "other": "subject-elsewhere"}[scenario["bound"]]
    world.runtime.callers["probe"] = caller_from_settings("probe", **scenario["caller"], subject=subject)
    sections = scenario["sections"]

    calls = [
        *(Call("tool", "get_profile", {"user_id": user_id, "purpose": purpose}
               | ({"sections": sections} if sections else {})) for purpose in PURPOSE_NAMES),
        Call("tool", "check_consent", {"user_id": user_id, "purpose": scenario["asked"]}),
        *(Call("tool", name, {"user_id": user_id, "purpose": scenario["focus"]}) for name in OTHER_READS),
        Call("resource", "profile://{user_id}", {"user_id": user_id}, f"profile://{user_id}"),
        Call("resource", "consent://{user_id}", {"user_id": user_id}, f"consent://{user_id}"),
        Call("prompt", "personalize", {"user_id": user_id, "purpose": scenario["prompt_purpose"]}),
        Call("prompt", "privacy_summary", {"user_id": user_id}),
        # Writes last: they change what the reads above would see.
        Call("tool", "record_event", {"user_id": user_id, "event_type": "view", "item_id": user.behavior_item}),
        Call("tool", "update_profile", {"user_id": user_id, "attributes": {"interaction_style": "concise"}}),
        Call("tool", "record_consent", {"user_id": user_id, "purpose": scenario["recorded"],
                                        "granted": scenario["granted"], "source": "chat:probe",
                                        "evidence": "The user agreed in chat."}),
    ]
    async with connect(world.server("probe"), mode) as client:
        for call in calls:
            await check_call(world, client, user, call, sections)


# -- default deny ------------------------------------------------------------------------------------------------


async def seed(world: World, user_id: str = "u1", consent: tuple[str, ...] = ()) -> None:
    """The contract's data, grants of ``consent``, and with personalization among them what it collects."""
    async with connect(world.server("privacy-officer")) as c:
        await call(c, "update_profile", user_id=user_id, create=True, attributes={
            "display_name": "Ana Marker", "email": "ana@example.org", "language": "pt-PT"})
        for purpose in consent:
            await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test",
                          evidence="said yes in chat")
        if "personalization" in consent:
            await call(c, "update_profile", user_id=user_id, attributes={
                "likes": ["lavender-marker"], "country": "PT", "age_band": "25-34"})


async def test_no_consent_record_means_no_consent_for_every_consent_purpose(world: World) -> None:
    await seed(world)
    async with connect(world.server("privacy-officer")) as c:
        for purpose in CONSENT_PURPOSES:
            decision = await call(c, "check_consent", user_id="u1", purpose=purpose)
            assert (decision["allowed"], decision["reason"]) == (False, "no_record"), purpose
            if not PURPOSES[purpose].individual:
                continue
            before = await audit_length(world.runtime)
            result = await c.call_tool("get_profile", {"user_id": "u1", "purpose": purpose})
            assert result.is_error and "no consent record" in tool_text(result), purpose
            assert "lavender-marker" not in tool_text(result)
            assert await audit_length(world.runtime) == before + 1
            assert (await newest_entry(world.runtime)).outcome == "error:consent_required"
        # The contract purpose needs no record.
        assert (await call(c, "check_consent", user_id="u1", purpose="service"))["allowed"] is True
        assert (await call(c, "get_profile", user_id="u1", purpose="service"))["identity"]["display_name"]


async def test_an_unconfigured_category_is_withheld(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    callers = {
        "privacy-officer": {"purposes": list(PURPOSE_NAMES), "categories": ["*"],
                            "roles": ["reader", "writer", "privacy_officer"], "identifiers": True},
        "narrow": {"purposes": ["service", "personalization"], "categories": ["user.preference"],
                   "roles": ["reader"]},
    }
    async with open_world(backend, tmp_path, clock, callers=callers, local_caller="narrow") as world:
        await seed(world, consent=("personalization",))
        async with connect(world.server("narrow")) as c:
            view = await call(c, "get_profile", user_id="u1", purpose="personalization")
    assert view["preferences"]["likes"]["value"] == ["lavender-marker"]
    reasons = {w["field"]: w["reason"] for w in view["withheld"]}
    # Personalization may use demographics and the country; this caller is not configured for them.
    assert reasons["demographics.language"] == "caller_not_permitted"
    assert reasons["demographics.age_band"] == "caller_not_permitted"
    assert reasons["location.country"] == "caller_not_permitted"
    assert view["demographics"].get("language") is None and view["location"].get("country") is None
    assert "pt-PT" not in json.dumps(view) and "25-34" not in json.dumps(view)


async def test_a_caller_without_the_purpose_gets_an_audited_tool_error(world: World) -> None:
    await seed(world, consent=("marketing",))
    async with connect(world.server("shopping-assistant")) as c:
        before = await audit_length(world.runtime)
        result = await c.call_tool("get_profile", {"user_id": "u1", "purpose": "marketing"})
    assert result.is_error
    text = tool_text(result)
    assert "may not act for purpose 'marketing'" in text and "ana@example.org" not in text
    assert await audit_length(world.runtime) == before + 1
    entry = await newest_entry(world.runtime)
    assert (entry.action, entry.caller, entry.outcome) == ("tool:get_profile", "shopping-assistant",
                                                           "error:not_permitted")
    assert entry.subject == await world.runtime.pseudonyms.subject("u1") and not entry.released


async def test_a_caller_without_the_role_gets_an_audited_tool_error(world: World) -> None:
    await seed(world)
    before = await snapshot(world.runtime)
    async with connect(world.server("insights-agent")) as c:
        result = await c.call_tool("update_profile", {"user_id": "u1", "attributes": {"likes": ["oud"]}})
    assert result.is_error and "lacks the 'writer' role" in tool_text(result)
    assert await snapshot(world.runtime) == before
    entry = await newest_entry(world.runtime)
    assert (entry.action, entry.outcome) == ("tool:update_profile", "error:not_permitted")


async def test_analytics_refuses_individual_level_reads(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    callers = {
        "privacy-officer": {"purposes": list(PURPOSE_NAMES), "categories": ["*"],
                            "roles": ["reader", "writer", "privacy_officer"], "identifiers": True},
        "analyst": {"purposes": ["analytics"], "default_purpose": "analytics", "categories": ["*"],
                    "roles": ["reader"]},
    }
    async with open_world(backend, tmp_path, clock, callers=callers, local_caller="analyst") as world:
        await seed(world, consent=("analytics",))
        async with connect(world.server("privacy-officer")) as c:
            result = await c.call_tool("get_profile", {"user_id": "u1", "purpose": "analytics"})
            assert result.is_error and "aggregates only" in tool_text(result)
            with pytest.raises(MCPError, match="aggregates only"):
                await c.get_prompt("personalize", {"user_id": "u1", "purpose": "analytics"})
        async with connect(world.server("analyst")) as c:
            with pytest.raises(MCPError, match="aggregates only"):
                await c.read_resource("profile://u1")
        outcomes = [e.entry.outcome async for e in world.runtime.audit.entries()][-3:]
    assert outcomes == ["error:not_permitted"] * 3


async def test_an_empty_value_is_gated_like_any_other(backend: str, tmp_path: Path, clock: FakeClock) -> None:
    """An empty consent history or an empty list of held data still tells something about the user."""
    callers = {
        "privacy-officer": {"purposes": list(PURPOSE_NAMES), "categories": ["*"],
                            "roles": ["reader", "writer", "privacy_officer"], "identifiers": True},
        "blind": {"purposes": ["service"], "categories": ["user.name"], "roles": ["reader"]},
    }
    async with open_world(backend, tmp_path, clock, callers=callers, local_caller="blind") as world:
        async with world.runtime.store.write() as repo:
            await repo.create_profile("u1", clock.now())  # an account with nothing held yet
        async with connect(world.server("privacy-officer")) as c:
            assert "nothing beyond the account" in prompt_text(await c.get_prompt(
                "privacy_summary", {"user_id": "u1"}))
            ledger = json.loads(resource_text(await c.read_resource("consent://u1")))
            assert ledger["history"] == []  # the officer may see that the ledger is empty
        async with connect(world.server("blind")) as c:
            ledger = json.loads(resource_text(await c.read_resource("consent://u1")))
            summary = prompt_text(await c.get_prompt("privacy_summary", {"user_id": "u1"}))
    assert "history" not in ledger
    assert ("history", "caller_not_permitted") in {(w["field"], w["reason"]) for w in ledger["withheld"]}
    assert "held (caller_not_permitted)" in summary and "nothing beyond the account" not in summary
