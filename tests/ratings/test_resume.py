"""Carried state (issue 13): the panel engine resumed from each symbol's state gives, bit for bit, the rows
of one run over the whole history, under every rule set, over all history and with history_bars, cut at
bar 0 and 1, inside the warm-ups, right after the longest window, a bar at a time and at random points of
each symbol's own, through chained resumes and through the state's Parquet form; and it refuses a state it
cannot resume. The resumed rows against the oracle: tests/ratings/test_oracle.py."""

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from service.ratings import engine, pine
from service.ratings import state as carried_state
from tests.support.bars import random_walk_bars, varied_universe
from tests.support.resume import assert_same_rows, rate_resumed, through_parquet
from vocabulary.rules import RULE_SETS


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    """The oracle tests' universe: listings and delistings, micro prices, no volume, histories shorter
    than the warm-ups (1 to 60 bars), short and long flat stretches."""
    return {symbol: bars for group in varied_universe().values() for symbol, bars in group.items()}


@pytest.fixture(scope="module")
def full(frames) -> dict[str, pd.DataFrame]:
    return {rules: engine.rate(frames, rules=rules) for rules in RULE_SETS}


def random_cuts(frames: dict[str, pd.DataFrame], seed: int) -> dict[str, list[int]]:
    """Up to four cuts per symbol, each symbol its own, a quarter of them at bar 0 (so a later call mixes
    symbols it starts with symbols it resumes)."""
    rng = np.random.default_rng(seed)
    cuts = {}
    for symbol, bars in sorted(frames.items()):
        points = rng.integers(0, len(bars) + 1, rng.integers(1, 5)).tolist()
        cuts[symbol] = sorted(points + ([0] if rng.random() < 0.25 else []))
    return cuts


SCHEDULES = {
    "at bar 0 and bar 1": lambda length: [0, 1],
    "inside the warm-ups": lambda length: [13, 34, 52],
    "right after the longest window": lambda length: [199, 200, 201],
    "a bar at a time": lambda length: list(range(max(0, length - 4), length)),
}
"""Where each symbol is cut: bar positions, capped at its length (a symbol shorter than the cut has an
empty piece after it)."""


def schedule(frames: dict[str, pd.DataFrame], name: str) -> dict[str, list[int]]:
    return {
        symbol: sorted(min(cut, len(bars)) for cut in SCHEDULES[name](len(bars)))
        for symbol, bars in frames.items()
    }


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("name", SCHEDULES)
def test_resuming_gives_the_full_runs_rows(frames, full, rules, name):
    assert_same_rows(rate_resumed(frames, schedule(frames, name), rules=rules), full[rules])


@pytest.mark.parametrize("rules", RULE_SETS)
def test_resuming_at_each_symbols_own_points_through_parquet(frames, full, rules):
    cuts = random_cuts(frames, seed=RULE_SETS.index(rules))
    assert_same_rows(rate_resumed(frames, cuts, rules=rules, stored=True), full[rules])


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("history_bars", [1, 2, 64])
def test_resuming_with_history_bars(frames, rules, history_bars):
    """Each bar rated from the N bars up to it: the state is the last N - 1 bars, so a resume reads them
    and rates only the new bars. Cut before, at and after N - 1 bars, a bar at a time, and at random."""
    some = {symbol: frames[symbol] for symbol in sorted(frames)[::3]}  # a third: a window costs N per bar
    expected = engine.rate(some, rules=rules, history_bars=history_bars)
    parameters = {"rules": rules, "history_bars": history_bars}
    around_n = {symbol: [0, 1, history_bars - 1, history_bars, history_bars + 1] for symbol in some}
    for cuts in (around_n, schedule(some, "a bar at a time"), random_cuts(some, seed=history_bars)):
        cuts = {
            symbol: sorted(min(cut, len(some[symbol])) for cut in points) for symbol, points in cuts.items()
        }
        assert_same_rows(rate_resumed(some, cuts, **parameters), expected)
    assert_same_rows(rate_resumed(some, random_cuts(some, seed=9), stored=True, **parameters), expected)


def test_a_resume_continues_the_counts_and_the_last_bar(frames):
    walk = random_walk_bars(260, seed=3)
    first = engine.resume({"X:A": walk.iloc[:250]})
    state = first.states["X:A"]
    assert (state.bars, state.last_ts) == (250, walk["ts"].iloc[249])
    assert not state.values.flags.writeable
    rows, states = engine.resume({"X:A": walk.iloc[250:], "X:B": walk.iloc[:7]}, first.states)
    assert rows["bars"].tolist() == [*range(251, 261), *range(1, 8)]
    assert rows["warm"].iloc[:10].all() and not rows["warm"].iloc[10:].any()
    assert (states["X:A"].bars, states["X:A"].last_ts) == (260, walk["ts"].iloc[-1])
    assert states["X:B"].bars == 7


def test_states_without_new_bars_pass_through():
    """A symbol in `states` with no frame, or an empty one, keeps its state; a new symbol without bars has
    none."""
    walk = random_walk_bars(40, seed=4)
    states = engine.resume({"X:A": walk, "X:B": walk}).states
    rows, after = engine.resume({"X:B": walk.iloc[:0], "X:C": walk.iloc[:0]}, states)
    assert rows.empty and after.keys() == {"X:A", "X:B"}
    assert after["X:A"] is states["X:A"] and after["X:B"] is states["X:B"]


def test_a_frame_must_hold_only_bars_after_the_state():
    walk = random_walk_bars(30, seed=5)
    states = engine.resume({"X:A": walk.iloc[:20]}).states
    for frame in (walk.iloc[19:], walk.iloc[:20], walk.iloc[10:25]):
        with pytest.raises(
            ValueError, match=r"^X:A: the first bar \(.*\) is not after the carried state's last bar"
        ):
            engine.resume({"X:A": frame}, states)


@pytest.mark.parametrize(
    ("parameters", "named"),
    [
        ({"rules": "chart"}, "rule set 'scanner' cannot resume a run of rule set 'chart'"),
        ({"history_bars": 50}, "history_bars None cannot resume a run of history_bars 50"),
        ({"tolerance": 0.0}, "tolerance 1e-10 cannot resume a run of tolerance 0.0"),
    ],
)
def test_a_state_resumes_only_a_run_of_its_parameters(parameters, named):
    walk = random_walk_bars(30, seed=6)
    states = engine.resume({"X:A": walk.iloc[:20]}).states
    with pytest.raises(ValueError, match=f"^X:A: a state of {re.escape(named)}$"):
        engine.resume({"X:A": walk.iloc[20:]}, states, **parameters)


def test_the_arrow_form_is_a_row_per_symbol():
    walk = random_walk_bars(80, seed=7)
    states = engine.resume({"X:B": walk, "X:A": walk.iloc[:5]}, rules="legacy").states
    table = carried_state.to_arrow(states)
    assert table.column("symbol").to_pylist() == ["X:A", "X:B"]
    assert table.column("bars").to_pylist() == [5, 80]
    assert table.column("last_ts").to_pylist() == [walk["ts"].iloc[4], walk["ts"].iloc[79]]
    assert set(table.column("rules").to_pylist()) == {"legacy"}
    assert table.column("history_bars").null_count == 2
    assert table.schema.field("values").type == pa.list_(pa.float64())
    back = through_parquet(states, rules="legacy")
    for symbol in states:
        assert back[symbol].bars == states[symbol].bars and back[symbol].last_ts == states[symbol].last_ts
        assert np.array_equal(back[symbol].values, states[symbol].values, equal_nan=True)


def test_the_arrow_form_is_refused_by_a_run_it_cannot_resume():
    states = engine.resume({"X:A": random_walk_bars(30, seed=8)}, history_bars=20).states
    table = carried_state.to_arrow(states)
    run = {
        "rules": "scanner",
        "history_bars": 20,
        "tolerance": pine.TOLERANCE,
        "width": engine.state_width(20),
    }
    for change, message in (
        ({"rules": "chart"}, "state of rules 'scanner' cannot resume a run of rules 'chart'"),
        ({"history_bars": None}, "state of history_bars 20 cannot resume a run of history_bars None"),
        ({"tolerance": 0.0}, "state of tolerance 1e-10 cannot resume a run of tolerance 0.0"),
        ({"width": 80}, "state of 76 values a symbol cannot resume an engine that carries 80"),
    ):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            carried_state.from_arrow(table, **{**run, **change})
    older = table.set_column(table.schema.get_field_index("format"), "format", pa.array([0], type=pa.int32()))
    with pytest.raises(
        ValueError, match=f"^state of format 0 cannot resume a run of format {carried_state.FORMAT}$"
    ):
        carried_state.from_arrow(older, **run)
    mixed = {**states, "X:B": engine.resume({"X:B": random_walk_bars(5, seed=9)}).states["X:B"]}
    with pytest.raises(ValueError, match=r"^states of different runs cannot share a table"):
        carried_state.to_arrow(mixed)


def test_the_state_layout_is_pinned():
    """The kernel's state is its primitives' carried values in call order: a change to it (a primitive, a
    period, the order of the calls) must bump state.FORMAT, so that stored states of the old layout are
    refused; this size is the tripwire."""
    assert (carried_state.FORMAT, engine.state_width()) == (1, 1098)
    assert engine.state_width(700) == 4 * 699
