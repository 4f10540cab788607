"""The MCP surface keeps its contract, and nothing on it escapes the consent gate.

The catalog lists every declared handler; every registered tool is described, titled, hinted and typed; every
result model classifies its fields; every registered tool, resource and prompt is proven gated by calling it as a
caller that lacks permission; a tool declared later is gated without gate code of its own, its data subjects
found by type wherever they sit in its arguments; a handler registered around the gate is refused.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from typing import Annotated, Any, get_args, get_origin, get_type_hints

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, ResourceTemplateReference
from pydantic import BaseModel, Field

import mnky_profiles.resources
import mnky_profiles.tools
from mnky_profiles.domain import categories as cat
from mnky_profiles.domain.purposes import PURPOSE_NAMES
from mnky_profiles.privacy.disclosure import CATEGORY_KEY, GatedResult, check_model, disclosed, operational
from mnky_profiles.privacy.subjects import UserId, paths_in
from mnky_profiles.privacy.surface import Handler, tool
from mnky_profiles.server.app import build_server
from mnky_profiles.server.catalog import CATALOG
from mnky_profiles.tools.arguments import Purpose
from mnky_profiles.usecases.app import Scope

from ..conftest import FakeClock, World, open_world
from ..support.clients import connect, tool_text
from ..support.gate import (
    audit_length,
    audit_text,
    newest_entry,
    required_arguments,
    resolve,
    result_model,
    result_texts,
    snapshot,
)

pytestmark = pytest.mark.anyio

TOOLS = {"get_profile", "update_profile", "record_event", "record_events", "check_consent", "record_consent"}
RESOURCES = {"profile://{user_id}", "consent://{user_id}", "schema://profile", "policy://purposes"}
PROMPTS = {"personalize", "privacy_summary"}
READ_ONLY = {"get_profile", "check_consent"}
WRITES = {"update_profile", "record_event", "record_events", "record_consent"}

OFFICER = {"purposes": list(PURPOSE_NAMES), "categories": ["*"], "roles": ["reader", "writer", "privacy_officer"],
           "identifiers": True}
CALLERS = {
    "privacy-officer": OFFICER,
    "shopping-assistant": {"purposes": ["service", "personalization", "recommendation"],
                           "categories": ["user.name", "user.demographic", "user.location", "user.preference",
                                          "user.behavior", "user.segment", "user.consent"],
                           "roles": ["reader", "writer"]},
    "nobody": {"purposes": ["service"], "categories": [], "roles": []},
    "bound": {"purposes": ["service", "personalization"], "categories": ["*"], "roles": ["reader"],
              "subject": "ana"},
    "writer-only": {"purposes": ["service"], "categories": ["*"], "roles": ["writer"]},
}


@pytest.fixture
async def surface(tmp_path: Any, clock: FakeClock) -> Any:
    async with open_world("sqlite", tmp_path, clock, callers=CALLERS, local_caller="privacy-officer") as world:
        async with connect(world.server("privacy-officer")) as c:
            for user_id in ("ana", "andre", "bob"):
                result = await c.call_tool("update_profile", {"user_id": user_id, "create": True,
                                                              "attributes": {"display_name": user_id.title()}})
                assert not result.is_error
        yield world


def personal_required(schema: dict[str, Any], node: dict[str, Any] | None = None, where: str = "") -> list[str]:
    """Output-schema properties that carry a personal category yet are required (the gate could not null them)."""
    node = resolve(schema, node if node is not None else schema)
    found = []
    for name, prop in (node.get("properties") or {}).items():
        category = prop.get(CATEGORY_KEY)
        if category is not None and category not in cat.NON_PERSONAL and name in node.get("required", []):
            found.append(f"{where}{name}")
        for option in [prop, *prop.get("anyOf", []), prop.get("items") or {}]:
            option = resolve(schema, option)
            if option.get("type") == "object" or "properties" in option:
                found += personal_required(schema, option, f"{where}{name}.")
            if isinstance(option.get("items"), dict):
                found += personal_required(schema, resolve(schema, option["items"]), f"{where}{name}[].")
    return found


async def all_targets(client: Client) -> list[tuple[str, str, dict[str, Any]]]:
    """Every registered tool, resource (static and template) and prompt, with arguments it accepts."""
    targets = [("tool", t.name, required_arguments(t.input_schema, "ana")) for t in (await client.list_tools()).tools]
    targets += [("resource", str(r.uri), {}) for r in (await client.list_resources()).resources]
    targets += [("resource", t.uri_template, {}) for t in (await client.list_resource_templates()).resource_templates]
    for p in (await client.list_prompts()).prompts:
        args = {a.name: {"user_id": "ana", "purpose": "service"}.get(a.name, "x") for a in p.arguments or ()}
        targets.append(("prompt", p.name, args))
    return targets


async def invoke(client: Client, kind: str, name: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    """(succeeded, every text shown)."""
    try:
        if kind == "tool":
            result = await client.call_tool(name, arguments)
            return not result.is_error, "\n".join(result_texts(result))
        if kind == "resource":
            uri = re.sub(r"\{(\w+)\}", lambda m: "ana" if m.group(1) == "user_id" else "x", name)
            return True, "\n".join(result_texts(await client.read_resource(uri)))
        return True, "\n".join(result_texts(await client.get_prompt(name, arguments)))
    except MCPError as exc:
        return False, str(exc)


async def test_the_public_contract_is_registered(surface: World) -> None:
    async with connect(surface.server("privacy-officer")) as c:
        tools = {t.name for t in (await c.list_tools()).tools}
        resources = {str(r.uri) for r in (await c.list_resources()).resources}
        resources |= {t.uri_template for t in (await c.list_resource_templates()).resource_templates}
        prompts = {p.name for p in (await c.list_prompts()).prompts}
    assert TOOLS.issubset(tools) and RESOURCES.issubset(resources) and PROMPTS.issubset(prompts)
    # What is registered is exactly what is declared: nothing reached the server beside the declared surface.
    assert tools == {h.name for h in CATALOG if h.kind == "tool"}
    assert resources == {h.name for h in CATALOG if h.kind == "resource"}
    assert prompts == {h.name for h in CATALOG if h.kind == "prompt"}


async def test_every_tool_is_described_titled_hinted_and_typed(surface: World) -> None:
    declared = {h.name: h for h in CATALOG if h.kind == "tool"}
    async with connect(surface.server("privacy-officer")) as c:
        listed = (await c.list_tools()).tools
    for t in listed:
        assert t.description and t.description.strip(), t.name
        assert t.title and t.annotations is not None and t.annotations.title, t.name
        hints = t.annotations
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint,
                            hints.open_world_hint), t.name
        if declared[t.name].role == "writer":
            assert hints.read_only_hint is False, t.name
        if hints.read_only_hint:
            assert hints.destructive_hint is False, t.name
        schema = t.input_schema
        assert schema["type"] == "object", t.name
        for name, prop in schema.get("properties", {}).items():
            node = resolve(schema, prop)
            assert {"type", "anyOf", "enum", "const"} & node.keys(), (t.name, name)
        assert t.output_schema is not None and t.output_schema.get("properties"), t.name
        assert personal_required(t.output_schema) == [], t.name
    by_name = {t.name: t.annotations for t in listed if t.annotations is not None}
    assert all(by_name[n].read_only_hint is True for n in READ_ONLY)
    assert all(by_name[n].read_only_hint is False for n in WRITES)
    assert by_name["record_consent"].idempotent_hint is True


async def test_read_only_tools_write_nothing(surface: World) -> None:
    calls = {"get_profile": {"user_id": "ana", "purpose": "service"},
             "check_consent": {"user_id": "ana", "purpose": "marketing"}}
    async with connect(surface.server("privacy-officer")) as c:
        listed = (await c.list_tools()).tools
        for t in listed:
            if not t.annotations or not t.annotations.read_only_hint:
                continue
            before = await snapshot(surface.runtime)
            result = await c.call_tool(t.name, calls.get(t.name) or required_arguments(t.input_schema, "ana"))
            assert t.name not in calls or not result.is_error, tool_text(result)
            assert await snapshot(surface.runtime) == before, t.name


def test_every_result_model_classifies_every_field() -> None:
    assert (TOOLS | PROMPTS).issubset(h.name for h in CATALOG)
    for handler in CATALOG:
        assert check_model(result_model(handler)) == [], handler.action


async def test_every_registered_handler_is_behind_the_gate(surface: World) -> None:
    """Each one, called as a caller with no role, is refused by the gate and audited; the same call as a
    permitted caller gets through the gate, so the refusal is the gate's and not the arguments'."""
    runtime = surface.runtime
    async with connect(surface.server("nobody")) as nobody, connect(surface.server("privacy-officer")) as officer:
        targets = await all_targets(officer)
        assert len(targets) >= len(TOOLS | RESOURCES | PROMPTS)
        for kind, name, arguments in targets:
            before = await audit_length(runtime)
            ok, shown = await invoke(nobody, kind, name, arguments)
            assert not ok and "role" in shown, (kind, name, shown)
            assert await audit_length(runtime) == before + 1
            entry = await newest_entry(runtime)
            assert (entry.action, entry.caller, entry.outcome) == (f"{kind}:{name}", "nobody",
                                                                   "error:not_permitted")
            await invoke(officer, kind, name, arguments)
            entry = await newest_entry(runtime)
            assert entry.action == f"{kind}:{name}" and entry.caller == "privacy-officer"
            assert entry.outcome not in ("error:not_permitted", "error:rejected"), (kind, name, entry.outcome)


async def test_a_writer_without_the_reader_role_reads_nothing(surface: World) -> None:
    async with connect(surface.server("writer-only")) as c:
        result = await c.call_tool("get_profile", {"user_id": "ana", "purpose": "service"})
        assert result.is_error and "'reader' role" in tool_text(result)
        assert not (await c.call_tool("update_profile", {"user_id": "ana",
                                                         "attributes": {"language": "pt-PT"}})).is_error


# -- a tool declared later is gated without gate code -----------------------------------------------------------
class ProbeView(GatedResult):
    user_id: str = operational("The user.")
    country: str | None = disclosed("user.location.country", "Country.")
    city: str | None = disclosed("user.location.precise", "City.")
    email: str | None = disclosed("user.contact.email", "Email address.")
    note: str | None = Field(None, description="Declares no category.")


async def probe_whereabouts(scope: Scope, user_id: UserId, purpose: Purpose) -> ProbeView:
    """Where the user is (declared by a test)."""
    return ProbeView(user_id=user_id, country="country-marker", city="city-marker", email="email-marker",
                     note="note-marker")


async def test_a_new_tool_is_gated_without_gate_code(tmp_path: Any, clock: FakeClock) -> None:
    probe = tool(title="Probe whereabouts")(probe_whereabouts)
    assert check_model(ProbeView) == ["ProbeView.note has no data category"]
    async with open_world("sqlite", tmp_path, clock, callers=CALLERS, local_caller="privacy-officer") as world:
        async with connect(world.server("privacy-officer")) as c:
            await c.call_tool("update_profile", {"user_id": "ana", "create": True,
                                                 "attributes": {"display_name": "Ana"}})
            await c.call_tool("record_consent", {"user_id": "ana", "purpose": "personalization",
                                                 "granted": True, "source": "test"})
        server = build_server(world.runtime, local_caller="shopping-assistant", handlers=(*CATALOG, probe))
        async with connect(server) as c:
            listed = {t.name: t for t in (await c.list_tools()).tools}
            assert listed["probe_whereabouts"].output_schema is not None
            result = await c.call_tool("probe_whereabouts", {"user_id": "ana", "purpose": "personalization"})
            refused = await c.call_tool("probe_whereabouts", {"user_id": "ana", "purpose": "marketing"})
        entries = [e.entry async for e in world.runtime.audit.entries()][-2:]
    assert not result.is_error
    view = result.structured_content
    assert view["country"] == "country-marker"
    assert view.get("city") is None and view.get("email") is None and view.get("note") is None
    assert {(w["field"], w["reason"]) for w in view["withheld"]} == {
        ("city", "purpose_not_compatible"), ("email", "caller_not_permitted"), ("note", "unclassified")}
    shown = "\n".join(result_texts(result))
    assert not [m for m in ("city-marker", "email-marker", "note-marker") if m in shown]
    ok, no = entries
    assert (ok.action, ok.outcome, ok.released) == ("tool:probe_whereabouts", "ok", ("country",))
    assert {(w.field, w.reason) for w in ok.withheld} == {(w["field"], w["reason"]) for w in view["withheld"]}
    assert refused.is_error and "may not act for purpose 'marketing'" in tool_text(refused)
    assert (no.action, no.outcome) == ("tool:probe_whereabouts", "error:not_permitted")
    assert "probe_whereabouts" not in {h.name for h in CATALOG}


# -- data subjects are found by type ------------------------------------------------------------------------------
class Order(BaseModel):
    customer: UserId
    gift_for: UserId | None = None


class OrdersView(GatedResult):
    orders: int = operational("How many orders were given.")


async def probe_orders(scope: Scope, purpose: Purpose, orders: list[Order],
                       referred_by: Annotated[UserId | None, Field(description="Who referred them.")] = None,
                       tags: dict[str, list[UserId]] | None = None) -> OrdersView:
    """Orders of several customers (declared by a test): no argument is called user_id."""
    return OrdersView(orders=len(orders))


def test_subject_paths_follow_models_lists_and_mappings() -> None:
    probe = tool(title="Probe orders")(probe_orders)
    assert probe.paths == (("orders", "[]", "customer"), ("orders", "[]", "gift_for"), ("referred_by",),
                           ("tags", "{values}", "[]"))
    assert list(paths_in(dict[UserId, int], ("x",))) == [("x", "{keys}")]
    arguments = {"orders": [Order(customer="ana", gift_for="bob"), {"customer": "andre"}],
                 "referred_by": "bob", "tags": {"vip": ["cleo", "ana"]}}
    assert probe.subjects(arguments) == ["ana", "andre", "bob", "cleo"]
    assert probe.subjects({"orders": "not a list", "tags": None}) == []


async def test_subjects_named_otherwise_are_bound_and_consent_checked(surface: World) -> None:
    probe = tool(title="Probe orders")(probe_orders)
    runtime = surface.runtime
    async with connect(surface.server("privacy-officer")) as c:
        await c.call_tool("record_consent", {"user_id": "ana", "purpose": "personalization", "granted": True,
                                             "source": "test"})
    bound = build_server(runtime, local_caller="bound", handlers=(*CATALOG, probe))
    officer = build_server(runtime, local_caller="privacy-officer", handlers=(*CATALOG, probe))
    async with connect(bound) as c:
        for arguments in ({"orders": [{"customer": "ana"}, {"customer": "bob"}]},
                          {"orders": [{"customer": "ana", "gift_for": "bob"}]},
                          {"orders": [{"customer": "ana"}], "referred_by": "bob"},
                          {"orders": [{"customer": "ana"}], "tags": {"x": ["bob"]}}):
            refused = await c.call_tool("probe_orders", {"purpose": "service", **arguments})
            assert refused.is_error and "bound to one data subject" in tool_text(refused), arguments
        assert not (await c.call_tool("probe_orders", {"purpose": "service",
                                                       "orders": [{"customer": "ana"}]})).is_error
    assert (await newest_entry(runtime)).subject == await runtime.pseudonyms.subject("ana")
    async with connect(officer) as c:
        refused = await c.call_tool("probe_orders", {"purpose": "personalization",
                                                     "orders": [{"customer": "ana"}, {"customer": "bob"}]})
        assert refused.is_error and "'bob' has no consent record" in tool_text(refused)
        entry = await newest_entry(runtime)
        assert (entry.outcome, entry.subject) == ("error:consent_required", None)  # two subjects: none named
        unknown = await c.call_tool("probe_orders", {"purpose": "personalization",
                                                     "orders": [{"customer": "ana"}, {"customer": "nobody-x"}]})
        assert unknown.is_error and "No profile exists for user_id 'nobody-x'" in tool_text(unknown)
        assert not (await c.call_tool("probe_orders", {"purpose": "personalization",
                                                       "orders": [{"customer": "ana"}]})).is_error


# -- the meta-test: no handler takes a user id the gate does not see ----------------------------------------------
USER_ID_NAME = re.compile(r"(^|_)(user|subject|customer|member|person|people|account|client|recipient)s?"
                          r"(_?ids?)?$")


def leaves(annotation: Any, path: tuple[str, ...], seen: frozenset[type] = frozenset()
           ) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every named place in a type that holds a value (models walked field by field, containers item by item)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        yield path, annotation
        yield from leaves(args[0], path, seen)
    elif origin is not None:
        for arg in args:
            yield from leaves(arg, path, seen)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel) and annotation not in seen:
        hints = get_type_hints(annotation, include_extras=True)
        for name in annotation.model_fields:
            yield from leaves(hints[name], (*path, name), seen | {annotation})
    else:
        yield path, annotation


def unseen_user_ids(handler: Handler) -> list[str]:
    """Parameters and fields that look like a user id by name or description but are not ``UserId``."""
    seen = {tuple(step for step in p if not step.startswith(("[", "{"))) for p in handler.paths}
    hints = get_type_hints(handler.fn, include_extras=True)
    found = set()
    for name in list(hints)[1:]:
        if name == "return":
            continue
        for path, annotation in leaves(hints[name], (name,)):
            metadata = getattr(annotation, "__metadata__", ())
            described = " ".join(str(getattr(m, "description", "") or "") for m in metadata)
            if (USER_ID_NAME.search(path[-1]) or re.search(r"\b(user|customer|person)('s)? id\b", described, re.I)
                    ) and path not in seen:
                found.add(".".join(path))
    return sorted(found)


def test_no_declared_handler_takes_a_user_id_the_gate_does_not_see() -> None:
    assert {h.name for h in CATALOG if h.paths} >= TOOLS | PROMPTS | {"profile://{user_id}", "consent://{user_id}"}
    problems = {h.action: unseen_user_ids(h) for h in CATALOG}
    assert not {k: v for k, v in problems.items() if v}, problems


class Loose(BaseModel):
    member: str


async def probe_loose(scope: Scope, purpose: Purpose, customer_id: str, items: list[Loose],
                      other: Annotated[str, Field(description="The customer id to compare with.")]) -> OrdersView:
    """A handler that takes user ids as plain strings (declared by a test)."""
    return OrdersView(orders=0)


def test_the_meta_test_catches_user_ids_that_are_plain_strings() -> None:
    loose = tool(title="Probe loose")(probe_loose)
    assert loose.paths == ()
    assert unseen_user_ids(loose) == ["customer_id", "items.member", "other"]
    assert unseen_user_ids(tool(title="Probe orders")(probe_orders)) == []


# -- the catalog ----------------------------------------------------------------------------------------------------
def declared_handlers() -> list[Handler]:
    """Every handler declared in a module of tools/ or resources/."""
    found: dict[int, Handler] = {}
    for package in (mnky_profiles.tools, mnky_profiles.resources):
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            found |= {id(v): v for v in vars(module).values() if isinstance(v, Handler)}
    return list(found.values())


async def test_the_catalog_lists_every_declared_handler_once(surface: World) -> None:
    from mnky_profiles.tools.profiles import get_profile

    declared = declared_handlers()
    assert len(declared) >= len(TOOLS | RESOURCES | PROMPTS)
    missing = sorted(h.action for h in declared if not any(h is c for c in CATALOG))
    assert not missing, f"declared but not in server/catalog.py, so never served: {missing}"
    assert len({h.action for h in CATALOG}) == len(CATALOG)
    with pytest.raises(ValueError, match="declared twice: tool:get_profile"):
        build_server(surface.runtime, handlers=(*CATALOG, get_profile))


async def test_handlers_registered_around_the_gate_are_refused_and_audited(surface: World) -> None:
    server = build_server(surface.runtime, local_caller="privacy-officer")

    def ungated_lookup(user_id: str) -> dict[str, str]:
        return {"email": "leaked-marker"}

    def ungated_resource(user_id: str) -> str:
        return "leaked-marker"

    def ungated_prompt(user_id: str) -> str:
        return "leaked-marker"

    server.add_tool(ungated_lookup, name="ungated_lookup")
    server.resource("ungated://{user_id}")(ungated_resource)
    server.prompt(name="ungated_prompt")(ungated_prompt)
    runtime = surface.runtime
    async with Client(server, mode="legacy", cache=None) as c:
        before = await audit_length(runtime)
        result = await c.call_tool("ungated_lookup", {"user_id": "ana"})
        assert result.is_error and "did not pass the consent gate" in tool_text(result)
        assert "leaked-marker" not in "\n".join(result_texts(result))
        outcomes = [await newest_entry(runtime)]
        with pytest.raises(MCPError) as resource_error:
            await c.read_resource("ungated://ana")
        outcomes.append(await newest_entry(runtime))
        with pytest.raises(MCPError) as prompt_error:
            await c.get_prompt("ungated_prompt", {"user_id": "ana"})
        outcomes.append(await newest_entry(runtime))
    assert await audit_length(runtime) == before + 3
    assert "leaked-marker" not in str(resource_error.value) + str(prompt_error.value)
    assert [(e.action, e.outcome) for e in outcomes] == [  # names the gate does not declare are not recorded
        ("tool:?", "error:ungated"), ("resource:?", "error:ungated"), ("prompt:?", "error:ungated")]
    assert outcomes[0].subject == await runtime.pseudonyms.subject("ana")
    assert not [e for e in outcomes if "ana" in audit_text(e) or "leaked-marker" in audit_text(e)]


# -- completions -------------------------------------------------------------------------------------------------
async def complete(client: Client, ref: Any, name: str, value: str) -> list[str]:
    return (await client.complete(ref, {"name": name, "value": value})).completion.values


PERSONALIZE = PromptReference(type="ref/prompt", name="personalize")
PROFILE = ResourceTemplateReference(type="ref/resource", uri="profile://{user_id}")


async def test_purpose_completion_offers_the_callers_purposes(surface: World) -> None:
    async with connect(surface.server("shopping-assistant")) as c:
        assert await complete(c, PERSONALIZE, "purpose", "p") == ["personalization"]
        assert await complete(c, PERSONALIZE, "purpose", "") == ["service", "personalization", "recommendation"]
        assert await complete(c, PERSONALIZE, "purpose", "mark") == []
    async with connect(surface.server("privacy-officer")) as c:
        assert await complete(c, PERSONALIZE, "purpose", "p") == ["personalization", "profiling"]


async def test_user_id_completion_respects_role_and_bound_subject(surface: World) -> None:
    async with connect(surface.server("privacy-officer")) as c:
        assert await complete(c, PROFILE, "user_id", "an") == ["ana", "andre"]
        assert await complete(c, PERSONALIZE, "user_id", "b") == ["bob"]
    async with connect(surface.server("bound")) as c:
        assert await complete(c, PROFILE, "user_id", "") == ["ana"]
        assert await complete(c, PROFILE, "user_id", "an") == ["ana"]
        assert await complete(c, PROFILE, "user_id", "b") == []
    async with connect(surface.server("writer-only")) as c:
        assert await complete(c, PROFILE, "user_id", "") == []
    entries = [e.entry async for e in surface.runtime.audit.entries()]
    completions = [e for e in entries if e.action == "completion:user_id"]
    assert completions and not [e for e in completions if re.search(r"\b(ana|andre|bob)\b", audit_text(e))]
