"""Other people in find_similar_users cannot be followed or identified by their names, on both databases.

The attacks run through an MCP client as a profiling caller would run them:

* Elimination: the user asked about is the one missing from their own neighbours. With stable names (per caller,
  as they were), asking for everyone's neighbours ties every name to a user id: the name missing from exactly one
  user's answers is that user. Names made fresh for every response never appear twice, so nothing can be
  eliminated.
* Join: two callers asking about the same user share no name.

What an entry shows besides its name is coarsened (similarity rounded to 0.05, at most three shared preferences).
That makes entries coincide more often, which the join test measures; it does not make them unlinkable (similarity
and shared preferences are symmetric), so the unlinkability of names rests on their being per response.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ..conftest import FakeClock, World, open_world
from ..support.clients import call, connect

pytestmark = pytest.mark.anyio

# Twelve people with overlapping tastes: each shares likes with several others, no two alike.
LIKES = {
    "p01": ["lavender", "vanilla", "calm"],
    "p02": ["lavender", "vanilla", "floral", "sleep"],
    "p03": ["lavender", "calm", "sleep"],
    "p04": ["vanilla", "musk", "oud"],
    "p05": ["oud", "musk", "woody", "bold"],
    "p06": ["woody", "bold", "vanilla"],
    "p07": ["bergamot", "lemon", "citrus"],
    "p08": ["citrus", "energized", "lemon", "lavender"],
    "p09": ["bergamot", "floral", "calm"],
    "p10": ["musk", "floral", "lavender", "vanilla"],
    "p11": ["sleep", "calm", "candle"],
    "p12": ["bath", "citrus", "calm", "vanilla"],
}
ALL = {"limit": 20, "min_similarity": -1.0}  # everyone else, every time: the most an attacker can ask for


@pytest.fixture
async def population(backend: str, tmp_path: Path, clock: FakeClock) -> AsyncIterator[World]:
    async with open_world(backend, tmp_path, clock) as world:
        async with connect(world.server("privacy-officer")) as c:
            for user_id, likes in LIKES.items():
                await call(c, "update_profile", user_id=user_id, create=True, attributes={"language": "en"})
                for purpose in ("profiling", "personalization"):  # stated likes are collected for personalization
                    await call(c, "record_consent", user_id=user_id, purpose=purpose, granted=True, source="test")
                await call(c, "update_profile", user_id=user_id, attributes={"likes": likes})
        yield world


async def neighbours(world: World, caller: str, user_id: str) -> list[dict[str, Any]]:
    async with connect(world.server(caller)) as c:
        found = await call(c, "find_similar_users", user_id=user_id, purpose="profiling", **ALL)
    result: list[dict[str, Any]] = found["neighbours"]
    return result


def shown(entry: dict[str, Any]) -> tuple[float, tuple[str, ...]]:
    """What an entry shows besides its name."""
    return entry["similarity"], tuple(entry["shared_preferences"])


async def test_no_name_survives_its_response_so_elimination_identifies_nobody(population: World) -> None:
    answers: list[tuple[str, list[dict[str, Any]]]] = []
    for _ in range(2):
        for user_id in LIKES:
            answers.append((user_id, await neighbours(population, "insights-agent", user_id)))
    # Every answer lists all eleven others: with stable names that alone gives the attack all it needs.
    assert all(len(found) == len(LIKES) - 1 for _, found in answers)
    # The attack: a name seen in every answer except those about one user names that user.
    seen_in: dict[str, set[int]] = {}
    for i, (_, found) in enumerate(answers):
        for n in found:
            seen_in.setdefault(n["pseudonym"], set()).add(i)
    about = {u: {i for i, (v, _) in enumerate(answers) if v == u} for u in LIKES}
    everyone = set(range(len(answers)))
    identified = {name: u for name, where in seen_in.items() for u, own in about.items() if where == everyone - own}
    assert identified == {}
    # Stronger: no name appears in two answers, so no name can be tied to anything outside its own answer.
    assert all(len(where) == 1 for where in seen_in.values())
    assert len(seen_in) == sum(len(found) for _, found in answers)
    # The answers themselves are the same each time: only the names change.
    first, second = answers[:len(LIKES)], answers[len(LIKES):]
    assert [[shown(n) for n in a] for _, a in first] == [[shown(n) for n in b] for _, b in second]


async def test_two_callers_share_no_name_and_what_entries_show_is_coarse(population: World) -> None:
    mine = await neighbours(population, "privacy-officer", "p01")
    theirs = await neighbours(population, "insights-agent", "p01")
    assert {n["pseudonym"] for n in mine}.isdisjoint({n["pseudonym"] for n in theirs})
    assert len({n["pseudonym"] for n in mine}) == len(mine) == len(LIKES) - 1
    # The same people, shown the same way, so the answers pair up by what they show; but the names are the
    # answer's own, so pairing them tells neither caller anything the other one's answer did not already say.
    assert sorted(map(shown, mine)) == sorted(map(shown, theirs))
    for n in mine:
        assert round(n["similarity"] * 20, 6) == round(n["similarity"] * 20)  # a multiple of 0.05
        assert len(n["shared_preferences"]) <= 3
    # How far coarsening goes, over every answer of this population: an entry whose (similarity, shared) pair is
    # unique in its answer stands apart there by what it shows. Exact similarities alone set all 132 entries apart;
    # rounded, and with at most three shared tokens, 93 of them stand apart. The README quotes these figures.
    unique = entries = 0
    for user_id in LIKES:
        found = await neighbours(population, "insights-agent", user_id)
        counts = Counter(map(shown, found))
        unique += sum(1 for n in found if counts[shown(n)] == 1)
        entries += len(found)
    assert await exact_similarities_unique(population) == entries == 132
    assert unique == 93


async def exact_similarities_unique(world: World) -> int:
    """How many entries, over every answer, an exact similarity alone (as it was shown before) sets apart."""
    runtime = world.runtime
    total = 0
    for user_id in LIKES:
        async with runtime.store.read() as repo:
            prefs = (await repo.attribute_weights_of([user_id]))[user_id]
        state = await runtime.usecases.discovery.vectors.of(prefs)
        assert state is not None
        hits = await runtime.index.query(state.vector.tolist(), 20, exclude=[user_id])
        counts = Counter(round(s, 4) for _, s in hits)
        total += sum(1 for _, s in hits if counts[round(s, 4)] == 1)
    return total
