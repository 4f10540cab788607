"""The learning core's math: preference weights from signals and the recommender (EASE, blend, MMR)."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnky_profiles.domain.preferences import Preference
from mnky_profiles.learning.preferences import (
    EVENT_WEIGHTS,
    Signal,
    apply,
    effective,
    fold,
    is_item,
    signals_for,
)
from mnky_profiles.learning.recommender import Blend, ItemModel, ItemSpace, fit, rerank, score

T0 = datetime(2025, 1, 1, tzinfo=UTC)
HALF_LIFE = 30.0
TOKENS = {
    "rose-soap": ["family:floral", "note:rose"],
    "oud-candle": ["family:woody", "note:oud"],
    "lavender-mist": ["family:floral", "note:lavender"],
}


def days(n: float) -> datetime:
    return T0 + timedelta(days=n)


def weights_of(signals: list[Signal], half_life: float = HALF_LIFE) -> dict[str, float]:
    prefs = fold({}, signals, half_life)
    when = max(p.ref_at for p in prefs.values())
    return effective(prefs.values(), when, half_life)


# ------------------------------------------------------------------------------------------ preferences


def test_one_half_life_halves_a_weight() -> None:
    prefs = fold({}, [Signal("note:rose", 1.0, days(0), 1)], HALF_LIFE)
    assert effective(prefs.values(), days(HALF_LIFE), HALF_LIFE)["note:rose"] == pytest.approx(0.5)
    assert effective(prefs.values(), days(2 * HALF_LIFE), HALF_LIFE)["note:rose"] == pytest.approx(0.25)


def test_weight_is_the_decayed_sum_of_its_signals() -> None:
    signals = [Signal("note:rose", 1.0, days(0), 1), Signal("note:rose", 0.5, days(10), 2),
               Signal("note:rose", -0.2, days(45), 3)]
    expected = sum(s.strength * 2 ** (-(45 - (s.at - T0).days) / HALF_LIFE) for s in signals)
    assert weights_of(signals)["note:rose"] == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(st.permutations(range(8)), st.integers(min_value=1, max_value=7))
def test_decay_does_not_depend_on_arrival_order(order: list[int], batch: int) -> None:
    rng = random.Random(7)
    signals = [Signal(rng.choice(["note:rose", "note:oud", "family:woody"]), rng.uniform(-1, 1),
                      days(rng.uniform(0, 200)), i) for i in range(8)]
    in_order = fold({}, signals, HALF_LIFE)
    # realtime: the same signals arriving in another order, a few at a time, folded into the stored state
    state: dict[str, Preference] = {}
    shuffled = [signals[i] for i in order]
    for start in range(0, len(shuffled), batch):
        state |= fold(state, shuffled[start:start + batch], HALF_LIFE)
    assert state.keys() == in_order.keys()
    when = days(365)
    a, b = effective(in_order.values(), when, HALF_LIFE), effective(state.values(), when, HALF_LIFE)
    for token in a:
        assert b[token] == pytest.approx(a[token], rel=1e-9, abs=1e-12)
        assert state[token].evidence_count == in_order[token].evidence_count
        assert state[token].evidence == in_order[token].evidence
        assert state[token].ref_at == in_order[token].ref_at


def test_explicit_outranks_implicit_and_does_not_fade() -> None:
    implicit = apply(None, Signal("note:oud", 5.0, days(0), 1), HALF_LIFE)
    stated = Preference("note:oud", "explicit", -1.0, days(1), 1, (), days(1))
    both = effective([implicit, stated], days(400), HALF_LIFE)
    assert both["note:oud"] == -1.0  # the person said they dislike it: that wins over what was inferred
    assert effective([stated, implicit], days(400), HALF_LIFE)["note:oud"] == -1.0  # whatever the order
    assert stated.confidence() == 1.0 and implicit.confidence() < 1.0
    assert effective([implicit], days(400), HALF_LIFE)["note:oud"] < 5.0 * 2 ** (-399 / HALF_LIFE)


def test_signals_spread_over_item_and_attribute_tokens() -> None:
    signals = signals_for(1, "purchase", "rose-soap", {}, T0, TOKENS, {})
    by_token = {s.token: s.strength for s in signals}
    assert by_token["item:rose-soap"] == EVENT_WEIGHTS["purchase"]
    share = EVENT_WEIGHTS["purchase"] / math.sqrt(2)
    assert by_token["family:floral"] == pytest.approx(share)
    assert by_token["note:rose"] == pytest.approx(share)
    assert all(s.at == T0 and s.event_id == 1 for s in signals)
    assert is_item("item:rose-soap") and not is_item("note:rose")


def test_explicit_feedback_outweighs_a_glance() -> None:
    view = weights_of(signals_for(1, "view", "oud-candle", {}, T0, TOKENS, {}))
    bought = weights_of(signals_for(2, "purchase", "rose-soap", {}, T0, TOKENS, {}))
    loved = weights_of(signals_for(3, "rating", "lavender-mist", {"rating": 5}, T0, TOKENS, {}))
    assert loved["item:lavender-mist"] >= bought["item:rose-soap"] > view["item:oud-candle"] > 0
    assert signals_for(4, "rating", "rose-soap", {"rating": 3}, T0, TOKENS, {}) == []  # neutral says nothing
    assert signals_for(5, "session", None, {}, T0, TOKENS, {}) == []


def test_negative_signals_push_weights_down() -> None:
    signals = (signals_for(1, "purchase", "oud-candle", {}, days(0), TOKENS, {})
               + signals_for(2, "return", "oud-candle", {}, days(0), TOKENS, {})
               + signals_for(3, "rating", "rose-soap", {"rating": 1}, days(1), TOKENS, {}))
    w = weights_of(signals)
    assert w["item:oud-candle"] == pytest.approx(0.0, abs=1e-12)  # bought then returned: nothing left
    assert w["item:rose-soap"] < 0 and w["note:rose"] < 0 and w["family:floral"] < 0
    space = ItemSpace.build((item, "product", tokens) for item, tokens in TOKENS.items())
    content = space.content_scores({t: v for t, v in w.items() if not is_item(t)})
    assert content[space.index["rose-soap"]] < 0
    assert content[space.index["rose-soap"]] < content[space.index["oud-candle"]]


def test_search_signals_go_to_the_tokens_the_query_names() -> None:
    vocabulary = {"lavender": ["note:lavender"], "woody": ["family:woody"]}
    signals = signals_for(1, "search", None, {"query": "Lavender, something woody"}, T0, TOKENS, vocabulary)
    assert {s.token: s.strength for s in signals} == {"note:lavender": EVENT_WEIGHTS["search"],
                                                      "family:woody": EVENT_WEIGHTS["search"]}


# ------------------------------------------------------------------------------------------ recommender


def ease_reference(x: np.ndarray, l2: float) -> np.ndarray:
    """Steck (2019), written out: B = I - P / diag(P) with P = (X'X + l2 I)^-1, i.e. -P_ij / P_jj off the diagonal."""
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    b: np.ndarray = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    return b


def histories_of(x: np.ndarray, items: list[str]) -> list[dict[str, float]]:
    return [{items[j]: float(v) for j, v in enumerate(row) if v > 0} for row in x]


@pytest.mark.parametrize("users, n_items", [(40, 12), (8, 30)])  # more users than items, and fewer
def test_fit_is_the_ease_closed_form(users: int, n_items: int) -> None:
    rng = np.random.default_rng(users)
    x = (rng.random((users, n_items)) < 0.3) * rng.uniform(0.5, 2.0, (users, n_items))
    items = [f"i{j}" for j in range(n_items)]
    model = fit(items, histories_of(x, items), l2=3.0)
    peak = np.maximum(x.max(axis=1, keepdims=True), 1e-300)  # each history is scaled to a peak of 1
    np.testing.assert_allclose(model.weights, ease_reference(x / peak, 3.0), atol=1e-5)
    assert model.users == int((x > 0).any(axis=1).sum())
    counts = (x > 0).sum(axis=0)
    np.testing.assert_allclose(model.popularity, counts / counts.max(), atol=1e-7)


def test_fit_does_not_depend_on_when_histories_were_taken() -> None:
    # the same tastes, one user seen long ago (every weight decayed by the same factor): the same model
    rng = np.random.default_rng(3)
    x = (rng.random((20, 10)) < 0.4) * rng.uniform(0.5, 2.0, (20, 10))
    items = [f"i{j}" for j in range(10)]
    faded = x * np.array([1e-6 if u % 2 else 1.0 for u in range(20)])[:, None]
    a, b = fit(items, histories_of(x, items), l2=2.0), fit(items, histories_of(faded, items), l2=2.0)
    np.testing.assert_allclose(a.weights, b.weights, atol=1e-5)


def test_ease_recovers_co_occurrence() -> None:
    # shampoo and conditioner are always bought together, candle and matches too; soap goes with anything
    baskets = [["shampoo", "conditioner"], ["shampoo", "conditioner", "soap"], ["candle", "matches"],
               ["candle", "matches", "soap"]] * 5
    items = ["candle", "conditioner", "matches", "shampoo", "soap"]
    model = fit(items, [dict.fromkeys(b, 1.0) for b in baskets], l2=1.0)
    w = {(a, b): model.weights[model.index[a], model.index[b]] for a in items for b in items}
    assert np.allclose(np.diag(model.weights), 0.0)
    assert w["shampoo", "conditioner"] > 0.5 and w["candle", "matches"] > 0.5
    assert w["shampoo", "matches"] <= 0 and w["candle", "conditioner"] <= 0
    space = ItemSpace.build((item, "product", []) for item in items)
    s = score(space, model, {"shampoo": 1.0}, {}, Blend(content=0, popularity=0, diversity=0), repurchase=False)
    candidates = np.array([i for i, item in enumerate(space.item_ids) if item != "shampoo"])
    assert space.item_ids[rerank(space, s, candidates, 1, 0.0)[0]] == "conditioner"


def test_fit_skips_what_it_cannot_use() -> None:
    model = fit(["a", "b"], [{"a": 1.0, "zzz": 1.0}, {"b": -1.0}, {}, {"a": 1.0, "b": 1.0}], l2=1.0)
    assert model.users == 2  # the user with only a negative weight and the empty one add nothing
    assert model.popularity.tolist() == [1.0, 0.5]
    empty = fit([], [{"a": 1.0}])
    assert empty.weights.shape == (0, 0) and empty.users == 0
    assert not fit(["a"], []).weights.any()


def space_and_model() -> tuple[ItemSpace, ItemModel]:
    items = [("a", "product", ["family:floral"]), ("b", "product", ["family:floral"]),
             ("c", "product", ["family:woody"]), ("d", "content", ["family:woody", "note:oud"])]
    space = ItemSpace.build(items)
    model = fit(["a", "b", "c", "d"], [{"a": 1.0, "b": 1.0}, {"a": 1.0}, {"a": 1.0, "c": 1.0}], l2=1.0)
    return space, model


def test_content_scores_follow_attribute_weights() -> None:
    space, _ = space_and_model()
    np.testing.assert_allclose(np.linalg.norm(space.attributes, axis=1), 1.0, rtol=1e-6)
    s = space.content_scores({"family:woody": 1.0, "note:oud": 1.0, "unknown:token": 9.0})
    d, c, a = s[space.index["d"]], s[space.index["c"]], s[space.index["a"]]
    assert d == pytest.approx(math.sqrt(2)) and c == pytest.approx(1.0) and a == 0.0
    assert not space.content_scores({}).any()


def test_cold_user_falls_back_to_popularity() -> None:
    space, model = space_and_model()
    s = score(space, model, {}, {}, Blend(), repurchase=False)
    top = rerank(space, s, np.arange(len(space.item_ids)), 2, 0.0)
    assert [space.item_ids[i] for i in top] == ["a", "b"]  # a: 3 users, b and c: 1 (b first, stable)
    assert score(space, None, {}, {}, Blend(), repurchase=False).shape == (4,)


def test_stated_tastes_reach_a_user_with_little_history() -> None:
    space, model = space_and_model()
    s = score(space, model, {}, {"family:woody": 1.0}, Blend(content=0.5, popularity=0.05), repurchase=False)
    assert space.item_ids[int(np.argmax(s))] in {"c", "d"}


def test_repurchase_scores_own_history_only_when_asked() -> None:
    space, model = space_and_model()
    blend = Blend(content=0, popularity=0, repurchase=2.0, diversity=0)
    history = {"c": 3.0}
    without = score(space, model, history, {}, blend, repurchase=False)
    with_own = score(space, model, history, {}, blend, repurchase=True)
    assert with_own[space.index["c"]] - without[space.index["c"]] == pytest.approx(2.0)
    assert int(np.argmax(with_own)) == space.index["c"]


def test_mmr_trades_relevance_for_diversity() -> None:
    items = [("f1", "product", ["family:floral"]), ("f2", "product", ["family:floral"]),
             ("f3", "product", ["family:floral"]), ("w1", "product", ["family:woody"])]
    space = ItemSpace.build(items)
    scores = np.array([1.0, 0.95, 0.9, 0.6], dtype=np.float32)
    everything = np.arange(4)
    assert rerank(space, scores, everything, 2, 0.0) == [0, 1]  # pure relevance
    diverse = rerank(space, scores, everything, 2, 0.5)
    assert diverse == [0, 3]  # the second pick would repeat the first; the woody one differs
    assert rerank(space, scores, everything, 4, 0.5)[:2] == [0, 3]
    assert sorted(rerank(space, scores, everything, 4, 0.5)) == [0, 1, 2, 3]
    assert rerank(space, scores, np.array([1, 2]), 5, 0.3) == [1, 2]  # only candidates, never more than exist


def test_rerank_without_diversity_is_a_stable_sort_of_the_candidates() -> None:
    rng = np.random.default_rng(5)
    space = ItemSpace.build((f"i{j:03d}", "product", []) for j in range(300))
    for _ in range(20):
        scores = rng.integers(0, 6, 300).astype(np.float32)  # many ties
        candidates = rng.permutation(300)[:200]
        expected = candidates[np.argsort(-scores[candidates], kind="stable")][:7]
        assert rerank(space, scores, candidates, 7, 0.0) == expected.tolist()


def test_one_model_scores_against_different_item_spaces() -> None:
    _, model = space_and_model()
    blend = Blend(content=0, popularity=0, diversity=0)
    small = ItemSpace.build([("b", "product", []), ("new", "product", [])])
    full = ItemSpace.build((item, "product", []) for item in ["a", "b", "c", "d"])
    row = model.weights[model.index["a"]]
    for space in (full, small, full):  # the model remembers one space's positions; a new space must not reuse them
        expected = np.array([row[model.index[i]] if i in model.index else 0.0 for i in space.item_ids])
        expected /= np.abs(expected).max()
        np.testing.assert_allclose(score(space, model, {"a": 1.0}, {}, blend, repurchase=False), expected, atol=1e-6)


@pytest.mark.parametrize("users, n_items", [(40, 12), (8, 30)])  # the primal and the dual path
def test_taking_a_user_out_equals_fitting_without_them(users: int, n_items: int) -> None:
    rng = np.random.default_rng(users + n_items)
    x = (rng.random((users, n_items)) < 0.4) * rng.uniform(0.5, 2.0, (users, n_items))
    items = [f"i{j}" for j in range(n_items)]
    owners = [1000 + u for u in range(users)]
    model = fit(items, histories_of(x, items), l2=3.0, owners=owners, min_group=2)
    gone = [3, 5]
    for u in gone:
        assert model.learned_from(owners[u])
        model = model.without(owners[u])
        assert not model.learned_from(owners[u])
    kept = [u for u in range(users) if u not in gone]
    refit = fit(items, histories_of(x[kept], items), l2=3.0, owners=[owners[u] for u in kept], min_group=2)
    np.testing.assert_allclose(model.weights, refit.weights, atol=1e-4)
    np.testing.assert_allclose(model.popularity, refit.popularity, atol=1e-6)
    assert (model.together == refit.together).all() and model.users == refit.users
    assert model.without(owners[3]) is model  # taking out someone already out changes nothing
    restored = ItemModel.from_arrays(model.arrays(), min_group=2)
    assert restored is not None and np.array_equal(restored.weights, model.weights)


def test_aggregates_rest_on_the_minimum_group() -> None:
    # a and b chosen together by 3 people, a and c by 1; a chosen by 4, b by 3, c by 2
    histories = [{"a": 1.0, "b": 1.0}] * 3 + [{"a": 1.0, "c": 1.0}, {"c": 1.0}]
    open_model = fit(["a", "b", "c"], histories, l2=1.0)
    floored = fit(["a", "b", "c"], histories, l2=1.0, min_group=3)
    i = open_model.index
    assert open_model.weights[i["c"], i["a"]] != 0 and floored.weights[i["c"], i["a"]] == 0
    assert floored.weights[i["a"], i["b"]] == pytest.approx(open_model.weights[i["a"], i["b"]])
    assert floored.chosen_together("a", "b") and not floored.chosen_together("a", "c")
    assert floored.popularity.tolist() == [1.0, 0.75, 0.0]  # c: two people, below the group
    assert ItemModel.from_arrays({"item_ids": np.array(["a"])}) is None  # a file from before: refitted
