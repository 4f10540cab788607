"""Bad input to every tool: generated garbage gets a tool error that says what is wrong, writes nothing, is
audited once, and leaves the server serving. Named cases check the messages an agent acts on."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from mnky_profiles.domain.events import EVENT_TYPES, MAX_PROPERTIES, MAX_PROPERTY_BYTES
from mnky_profiles.domain.fields import BY_NAME, SECTIONS
from mnky_profiles.domain.limits import MAX_ATTRIBUTES, MAX_BATCH
from mnky_profiles.domain.purposes import CONSENT_PURPOSES, PURPOSE_NAMES, PURPOSES

from ..conftest import FakeClock, World, open_world
from ..support.clients import connect, tool_text
from ..support.gate import audit_length, newest_entry, required_arguments, resolve, snapshot

pytestmark = pytest.mark.anyio

USER = "u1"
GOOD_EVENT = {"user_id": USER, "event_type": "view", "item_id": "candle-lavender"}
USER_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
# Garbage: the arguments, and a text the error must contain (None: any actionable message).
Garbage = tuple[dict[str, Any], str | None]


# -- generic garbage from the input schema: works for any tool, including tools added later ---------------------
def _types(schema: dict[str, Any], node: dict[str, Any]) -> set[str]:
    node = resolve(schema, node)
    if "anyOf" in node:
        return set().union(*(_types(schema, option) for option in node["anyOf"]))
    if "enum" in node or "const" in node:
        return {"string"}
    return {node.get("type", "any")}


# No NaN or infinity: JSON has neither, and the client would send them as null, which an optional argument takes.
_scalars = st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.booleans()
_containers = st.lists(_scalars, max_size=3) | st.dictionaries(st.text(max_size=5), _scalars, max_size=3)


def wrong_value(types: set[str]) -> st.SearchStrategy[Any] | None:
    """A JSON value of a type the parameter does not take (and that pydantic's lax mode will not coerce)."""
    if "any" in types:
        return None
    if types & {"array", "object"}:
        options: list[st.SearchStrategy[Any]] = []
        if "array" not in types:
            options.append(st.lists(_scalars, max_size=3))
        if "object" not in types:
            options.append(st.dictionaries(st.text(max_size=5), _scalars, max_size=3))
        if not types & {"string", "integer", "number", "boolean"}:
            options += [st.integers(), st.text(max_size=10)]
        return st.one_of(options) if options else None
    if types == {"string"} or types == {"string", "null"}:
        return _scalars | _containers
    return _containers


def _with(valid: dict[str, Any], name: str) -> Callable[[Any], Garbage]:
    """Valid arguments with ``name`` set to a value, and the name the error must mention."""
    return lambda value: ({**valid, name: value}, name)


def schema_garbage(schema: dict[str, Any], valid: dict[str, Any]) -> st.SearchStrategy[Garbage]:
    required = [name for name in schema.get("required", []) if name in valid]
    options: list[st.SearchStrategy[Garbage]] = []
    if required:
        options.append(st.sampled_from(required).map(
            lambda name: ({k: v for k, v in valid.items() if k != name}, name)))
    for name, node in schema.get("properties", {}).items():
        wrong = wrong_value(_types(schema, node))
        if wrong is not None:
            options.append(wrong.map(_with(valid, name)))
    options.append(st.just(({}, None)) if required else st.nothing())
    return st.one_of(options)


# -- garbage that only knowing the tool can make ----------------------------------------------------------------
unknown_users = st.from_regex(r"[a-z][a-z0-9]{2,12}", fullmatch=True).map(lambda s: "nobody-" + s)
bad_user_ids = (st.just("") | st.text(min_size=129, max_size=400) | st.integers(1000, 200_000).map(lambda n: "u" * n)
                | st.text(min_size=1, max_size=30).filter(lambda s: not USER_ID.fullmatch(s)))
unknown_purposes = st.text(max_size=40).filter(lambda s: s not in PURPOSES)
junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                     max_size=3), max_leaves=12)
unstorable = st.sampled_from(["\x00", "\ud800", "a\x00b", "x\udfff"])


def _unparseable(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return True
    return False


def bad_times(now: datetime, retention_days: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30).filter(_unparseable),
        st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda d: d.isoformat()),  # naive: no zone
        st.integers(10, 10**6).map(lambda m: (now + timedelta(minutes=m)).isoformat()),  # future
        st.integers(1, 3000).map(lambda d: (now - timedelta(days=retention_days + d)).isoformat()),  # purged
        st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]),  # out of range
        st.text(min_size=65, max_size=120),  # longer than the schema allows
    )


def bad_expiries(now: datetime) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=30).filter(_unparseable),
        st.datetimes(min_value=datetime(2000, 1, 1)).map(lambda d: d.isoformat()),  # naive: no zone
        st.integers(0, 10**6).map(lambda m: (now - timedelta(minutes=m)).isoformat()),  # not in the future
        st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]),  # out of range
        st.text(min_size=65, max_size=120),  # longer than the schema allows
    )


def bad_properties(event_type: str) -> st.SearchStrategy[Garbage]:
    too_many = st.integers(MAX_PROPERTIES + 1, MAX_PROPERTIES + 40).map(
        lambda n: ({f"k{i}": i for i in range(n)}, f"at most {MAX_PROPERTIES}"))
    too_big = st.integers(MAX_PROPERTY_BYTES, MAX_PROPERTY_BYTES * 3).map(
        lambda n: ({"blob": "x" * n}, f"at most {MAX_PROPERTY_BYTES}"))
    hidden = st.tuples(junk, unstorable).map(lambda t: ({"nested": [t[0], {"deep": t[1]}]}, "NUL"))
    required = {"rating": "rating", "dwell": "seconds", "mood_check_in": "mood", "search": "query",
                "feature_use": "feature"}.get(event_type)
    options: list[st.SearchStrategy[Garbage]] = [too_many, too_big, hidden]
    if required is not None:
        options.append(st.just(({}, required)))
        if event_type in ("rating", "dwell", "mood_check_in"):
            options.append(junk.map(_with({}, required)).map(
                lambda g: ({k: [v] for k, v in g[0].items()}, g[1])))  # nested junk where a value belongs
    return st.one_of(options)


def bad_event(now: datetime, retention_days: int) -> st.SearchStrategy[Garbage]:
    def with_(key: str, values: st.SearchStrategy[Any], expect: str | None = None) -> st.SearchStrategy[Garbage]:
        return values.map(lambda v: ({**GOOD_EVENT, key: v}, expect))

    typed = st.sampled_from(sorted(EVENT_TYPES)).flatmap(lambda t: bad_properties(t).map(
        lambda g: ({"user_id": USER, "event_type": t, "item_id": "candle-lavender", "properties": g[0]}, g[1])))
    return st.one_of(
        with_("user_id", unknown_users, "create=true"),
        with_("user_id", bad_user_ids),
        with_("event_type", st.text(max_size=30).filter(lambda s: s not in EVENT_TYPES), "mood_check_in"),
        with_("item_id", st.from_regex(r"[a-z-]{1,20}", fullmatch=True).map(lambda s: "no-such-" + s),
              "Unknown item_id"),
        with_("item_id", st.just(None), "needs an item_id"),
        with_("item_id", unstorable.map(lambda s: "candle" + s), "item_id"),
        with_("occurred_at", bad_times(now, retention_days)),
        typed,
    )


def tool_garbage(name: str, now: datetime, retention_days: int) -> st.SearchStrategy[Garbage] | None:
    profile = {"user_id": USER, "purpose": "service"}
    update = {"user_id": USER, "attributes": {"language": "en-GB"}}
    consent = {"user_id": USER, "purpose": "marketing", "granted": True, "source": "web"}
    match name:
        case "get_profile" | "check_consent":
            return st.one_of(
                unknown_users.map(lambda u: ({**profile, "user_id": u}, "create=true")),
                bad_user_ids.map(lambda u: ({**profile, "user_id": u}, "user_id")),
                unknown_purposes.map(lambda p: ({**profile, "purpose": p}, "purpose")),
                *([st.lists(st.text(max_size=12).filter(lambda s: s not in SECTIONS), min_size=1, max_size=3).map(
                    lambda s: ({**profile, "sections": s}, "sections"))] if name == "get_profile" else []),
            )
        case "update_profile":
            names = sorted(n for n, f in BY_NAME.items() if f.kind != "derived")
            return st.one_of(
                unknown_users.map(lambda u: ({**update, "user_id": u}, "create=true")),
                bad_user_ids.map(lambda u: ({**update, "user_id": u}, "user_id")),
                st.integers(MAX_ATTRIBUTES + 1, MAX_ATTRIBUTES + 30).map(lambda n: (
                    {**update, "attributes": {f"field_{i}": "x" for i in range(n)}}, f"At most {MAX_ATTRIBUTES}")),
                st.text(max_size=20).filter(lambda s: s not in BY_NAME).map(
                    lambda s: ({**update, "attributes": {s: "x"}}, "Known attributes")),
                st.sampled_from(names).flatmap(lambda n: junk.filter(
                    lambda v: not (isinstance(v, str) and v.strip()) and not (
                        isinstance(v, list) and v and all(isinstance(t, str) and t.strip() for t in v))).map(
                    lambda v: ({**update, "attributes": {n: v}}, n))),
                st.sampled_from(["display_name", "city", "likes"]).flatmap(lambda n: unstorable.map(
                    lambda s: ({**update, "attributes": {n: "ok" + s}}, "NUL"))),
                st.tuples(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=5),
                          st.integers(501, 5000)).map(lambda t: (
                    {**update, "attributes": {"display_name": "n" + t[0] * t[1]}}, "500")),
                st.sampled_from(["behavior", "emotional"]).map(
                    lambda n: ({**update, "attributes": {n: "x"}}, "derived")),
                st.just(({**update, "attributes": {}}, "empty")),
                st.text(max_size=70).filter(lambda s: not re.fullmatch(
                    r"explicit|implicit|(external|inferred):[a-z0-9_.-]{1,40}", s)).map(
                    lambda s: ({**update, "source": s}, "source")),
                st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not 0 <= f <= 1).map(
                    lambda f: ({**update, "confidence": f}, "confidence")),
            )
        case "record_event":
            return bad_event(now, retention_days)
        case "record_events":
            return st.one_of(
                st.integers(MAX_BATCH + 1, MAX_BATCH + 60).map(
                    lambda n: ({"events": [GOOD_EVENT] * n}, f"At most {MAX_BATCH}")),
                st.tuples(st.integers(0, 5), bad_event(now, retention_days)).map(
                    lambda t: ({"events": [GOOD_EVENT] * t[0] + [t[1][0]]}, None)),
                st.just(({"events": []}, "empty")),
            )
        case "record_consent":
            return st.one_of(
                unknown_users.map(lambda u: ({**consent, "user_id": u}, "create=true")),
                unknown_purposes.map(lambda p: ({**consent, "purpose": p}, "purpose")),
                st.just(({**consent, "purpose": "service"}, "contract")),
                st.sampled_from(["", "   ", "x" * 65]).map(lambda s: ({**consent, "source": s}, "source")),
                unstorable.map(lambda s: ({**consent, "source": "web" + s}, "source")),
                unstorable.map(lambda s: ({**consent, "evidence": "said yes" + s}, "evidence")),
                st.sampled_from([p for p in CONSENT_PURPOSES if not PURPOSES[p].opted_out_by_sale_signals]).map(
                    lambda p: ({**consent, "purpose": p, "source": "do_not_sell_or_share"}, "marketing")),
                st.just(({**consent, "purpose": "wellbeing"}, "evidence")),
                st.integers(2001, 5000).map(lambda n: ({**consent, "evidence": "e" * n}, "evidence")),
                bad_expiries(now).map(lambda t: ({**consent, "expires_at": t}, "expires_at")),
                st.just(({**consent, "granted": False, "expires_at": (now + timedelta(days=9)).isoformat()},
                         "grants only")),
            )
        case "record_privacy_signal":
            signal = {"user_id": USER, "signal": "global_privacy_control", "source": "web:checkout"}
            return st.one_of(
                unknown_users.map(lambda u: ({**signal, "user_id": u}, "create=true")),
                st.sampled_from(["", "   ", "x" * 65]).map(lambda s: ({**signal, "source": s}, "source")),
                unstorable.map(lambda s: ({**signal, "source": "web" + s}, "source")),
                st.integers(1990, 2000).map(lambda n: ({**signal, "evidence": "e" * n}, "evidence")),
            )
    return None


VALID: dict[str, dict[str, Any]] = {
    "get_profile": {"user_id": USER, "purpose": "service"},
    "check_consent": {"user_id": USER, "purpose": "marketing"},
    "update_profile": {"user_id": USER, "attributes": {"language": "en-GB"}},
    "record_event": GOOD_EVENT,
    "record_events": {"events": [GOOD_EVENT]},
    "record_consent": {"user_id": USER, "purpose": "marketing", "granted": True, "source": "web"},
}


def looks_like_a_traceback(text: str) -> bool:
    return "Traceback" in text or 'File "' in text or re.search(r"\w+Error: ", text.split(":", 1)[-1]) is not None


async def seed(world: World) -> None:
    async with connect(world.server("privacy-officer")) as c:
        result = await c.call_tool("update_profile", {"user_id": USER, "create": True, "attributes": {
            "display_name": "Ana", "language": "pt-PT"}})
        assert not result.is_error
        for purpose in ("marketing", "personalization"):  # stated likes and viewed items are personalization's
            result = await c.call_tool("record_consent", {"user_id": USER, "purpose": purpose, "granted": True,
                                                          "source": "web"})
            assert not result.is_error
        result = await c.call_tool("update_profile", {"user_id": USER, "attributes": {"likes": ["lavender"]}})
        assert not result.is_error


async def assert_refused_cleanly(world: World, client: Client, tool: str, arguments: dict[str, Any],
                                 expect: str | None = None) -> tuple[str, str]:
    """One bad call: an actionable tool error, nothing written, one audit entry, and the server still serves.

    Returns the error text and the audited outcome.
    """
    runtime = world.runtime
    before, length = await snapshot(runtime), await audit_length(runtime)
    result = await client.call_tool(tool, arguments)
    shown = "\n".join(getattr(block, "text", "") for block in result.content)
    assert result.is_error, (tool, arguments, result.structured_content)
    assert shown.strip() and not looks_like_a_traceback(shown), shown
    if expect is not None:
        assert expect.lower() in shown.lower(), (expect, shown)
    assert await snapshot(runtime) == before, (tool, arguments)
    assert await audit_length(runtime) == length + 1
    entry = await newest_entry(runtime)
    assert entry.action == f"tool:{tool}" and entry.outcome.startswith("error:")
    # Internal and storage errors reach the agent as a generic text: bad input must never end up there.
    assert entry.outcome not in ("error:internal", "error:storage"), (entry.outcome, arguments)
    assert entry.purpose in (None, *PURPOSE_NAMES)
    assert entry.subject is None or re.fullmatch(r"s_[0-9a-f]{32}", entry.subject)
    assert not entry.released and not entry.withheld
    good = await client.call_tool("check_consent", {"user_id": USER, "purpose": "marketing"})
    assert not good.is_error and good.structured_content["allowed"] is True
    return shown, entry.outcome


@pytest.fixture
def served(backend: str, tmp_path: Path, clock: FakeClock) -> Iterator[tuple[BlockingPortal, World, Client]]:
    """A world and a connected client on an event loop of their own, driven from a plain (synchronous) test:
    Hypothesis draws inside the test, and its own control flow must not cross an event loop."""
    with start_blocking_portal() as portal, \
            portal.wrap_async_context_manager(open_world(backend, tmp_path, clock)) as world:
        portal.call(seed, world)
        with portal.wrap_async_context_manager(connect(world.server("privacy-officer"))) as client:
            yield portal, world, client


async def input_schemas(client: Client) -> dict[str, dict[str, Any]]:
    return {t.name: t.input_schema for t in (await client.list_tools()).tools}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data())
def test_garbage_to_every_tool_is_a_clean_tool_error(served: tuple[BlockingPortal, World, Client],
                                                     data: st.DataObject) -> None:
    portal, world, client = served
    tools = portal.call(input_schemas, client)
    name = data.draw(st.sampled_from(sorted(tools)), label="tool")
    options = [schema_garbage(tools[name], VALID.get(name) or required_arguments(tools[name], USER))]
    specific = tool_garbage(name, world.clock.now(), world.runtime.settings.user_profiling.retention_days)
    if specific is not None:
        options += [specific, specific]  # twice as likely as the generic kind
    arguments, expect = data.draw(st.one_of(options), label="garbage")
    portal.call(assert_refused_cleanly, world, client, name, arguments, expect)


# -- named cases -------------------------------------------------------------------------------------------------
async def test_an_unknown_user_is_told_how_to_create_the_profile(world: World) -> None:
    await seed(world)
    async with connect(world.server("privacy-officer")) as c:
        shown, _ = await assert_refused_cleanly(world, c, "get_profile", {"user_id": "ghost", "purpose": "service"})
    assert "No profile exists for user_id 'ghost'" in shown
    assert "update_profile(user_id, attributes, create=true)" in shown


async def test_an_oversized_batch_names_the_bound(world: World) -> None:
    await seed(world)
    async with connect(world.server("privacy-officer")) as c:
        shown, _ = await assert_refused_cleanly(world, c, "record_events", {"events": [GOOD_EVENT] * (MAX_BATCH + 1)})
    assert f"At most {MAX_BATCH} events per call; got {MAX_BATCH + 1}" in shown


async def test_an_oversized_attribute_map_names_the_bound(world: World) -> None:
    await seed(world)
    attributes = {name: "x" for name in list(BY_NAME)[:3]} | {f"extra_{i}": "x" for i in range(MAX_ATTRIBUTES)}
    async with connect(world.server("privacy-officer")) as c:
        shown, _ = await assert_refused_cleanly(world, c, "update_profile", {"user_id": USER, "attributes": attributes})
    assert f"At most {MAX_ATTRIBUTES} attributes per call; got {len(attributes)}" in shown


async def test_an_unknown_event_type_lists_the_types(world: World) -> None:
    await seed(world)
    async with connect(world.server("privacy-officer")) as c:
        shown, _ = await assert_refused_cleanly(world, c, "record_event", {"user_id": USER, "event_type": "teleport"})
    assert all(f"'{t}'" in shown for t in EVENT_TYPES)


async def test_one_bad_event_rejects_the_whole_batch(world: World) -> None:
    await seed(world)
    events = [GOOD_EVENT] * 3 + [{**GOOD_EVENT, "occurred_at": "2026-02-30T10:00:00Z"}]
    async with connect(world.server("privacy-officer")) as c:
        shown, _ = await assert_refused_cleanly(world, c, "record_events", {"events": events})
    assert "events[3]: occurred_at '2026-02-30T10:00:00Z' is not an ISO 8601 timestamp" in shown


@pytest.mark.parametrize(("tool", "arguments", "expect"), [
    ("record_event", {**GOOD_EVENT, "occurred_at": "0001-01-01T00:00:00+14:00"}, "out of range"),
    ("record_consent", {"user_id": USER, "purpose": "marketing", "granted": True, "source": "web",
                        "expires_at": "9999-12-31T23:59:59-14:00"}, "out of range"),
    ("record_event", {**GOOD_EVENT, "occurred_at": "2026-11-26T09:30:00"}, "has no time zone"),
    ("record_event", {**GOOD_EVENT, "properties": {"note": "a\x00b"}}, "NUL"),
    ("record_event", {**GOOD_EVENT, "properties": {"k\x00": 1}}, "NUL"),
    ("record_event", {**GOOD_EVENT, "properties": {"deep": [[{"x": "\ud800"}]]}}, "surrogate"),
    ("update_profile", {"user_id": USER, "attributes": {"display_name": "An\x00a"}}, "NUL"),
    ("update_profile", {"user_id": USER, "attributes": {"likes": ["ok", "\ud800"]}}, "surrogate"),
    ("record_consent", {"user_id": USER, "purpose": "marketing", "granted": True, "source": "web\x00"}, "NUL"),
])
async def test_what_a_store_cannot_hold_is_refused_on_both_databases(
        world: World, tool: str, arguments: dict[str, Any], expect: str) -> None:
    """Timestamps beyond the calendar, NUL characters and unpaired surrogates: an argument error on SQLite and
    PostgreSQL alike, never a store failure that tells the agent to retry."""
    await seed(world)
    async with connect(world.server("privacy-officer")) as c:
        shown, outcome = await assert_refused_cleanly(world, c, tool, arguments)
    assert expect in shown and "retry" not in shown
    assert outcome == "error:invalid_argument"


async def test_a_source_with_a_trailing_newline_cannot_poison_the_profile(world: World) -> None:
    await seed(world)
    async with connect(world.server("privacy-officer")) as c:
        await assert_refused_cleanly(world, c, "update_profile", {"user_id": USER, "attributes": {"likes": ["oud"]},
                                                                  "source": "explicit\n"}, "source")
        view = await c.call_tool("get_profile", {"user_id": USER, "purpose": "marketing"})
        assert not view.is_error, tool_text(view)
    assert view.structured_content["preferences"]["likes"]["value"] == ["lavender"]


async def test_garbage_in_the_arguments_never_reaches_the_audit_log(world: World) -> None:
    """A purpose that is no purpose is caller text; it is not written into the log."""
    await seed(world)
    async with connect(world.server("privacy-officer")) as c:
        await assert_refused_cleanly(world, c, "get_profile", {"user_id": USER, "purpose": "u1 ana@example.org"})
    entries = [e.entry async for e in world.runtime.audit.entries()]
    assert not [e for e in entries if "ana@example.org" in json.dumps([e.purpose, e.action, e.outcome])]
