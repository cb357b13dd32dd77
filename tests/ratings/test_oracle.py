"""The pandas-ta oracle: its Pine primitives against plain loops from the spec, and bar-for-bar agreement
with the panel engine on a varied seeded universe (the scanner captures: tests/ratings/test_acceptance.py)."""

import numpy as np
import pandas as pd
import pytest

from service.ratings import engine, oracle
from service.sample import SyntheticUniverse
from service.sources.bars import clean_bars
from tests.support.bars import varied_universe
from tests.support.resume import rate_resumed
from vocabulary.features import VOTES
from vocabulary.rules import RULE_SETS

# Primitives against plain loops written from RATINGS_SPEC section 3 ---------------------------------


def loop_sma(x: list[float], n: int) -> list[float]:
    out, window = [], []
    for value in x:
        if value != value:
            out.append(np.nan)
            continue
        window = [*window, value][-n:]
        out.append(sum(window) / n if len(window) == n else np.nan)
    return out


def loop_smoothed(x: list[float], n: int, alpha: float) -> list[float]:
    """ema (alpha 2/(n+1)) or rma (alpha 1/n): SMA seed on the n-th non-na value, na inputs skipped."""
    out, seen, state = [], [], np.nan
    for value in x:
        if value != value:
            out.append(np.nan)
            continue
        if len(seen) < n:
            seen.append(value)
            state = sum(seen) / n if len(seen) == n else np.nan
        else:
            state = state + alpha * (value - state)
        out.append(state)
    return out


def with_gaps(seed: int, size: int = 300) -> pd.Series:
    rng = np.random.default_rng(seed)
    x = 50 + rng.normal(0, 1, size).cumsum()
    x[rng.random(size) < 0.1] = np.nan
    x[:3] = np.nan
    return pd.Series(x)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [1, 3, 14, 50])
def test_moving_averages_match_the_spec_loops(seed, n):
    x = with_gaps(seed)
    values = x.tolist()
    np.testing.assert_allclose(oracle.sma(x, n), loop_sma(values, n), rtol=1e-12)
    np.testing.assert_allclose(oracle.ema(x, n), loop_smoothed(values, n, 2 / (n + 1)), rtol=1e-12)
    np.testing.assert_allclose(oracle.rma(x, n), loop_smoothed(values, n, 1 / n), rtol=1e-12)


def test_rsi_and_stoch_follow_pine_on_flat_and_one_way_prices():
    """Rising prices: D = 0, U / D = +inf, RSI 100; falling: 0; flat from the start: 0 / 0, na."""
    rising, flat = pd.Series(np.arange(1.0, 31.0)), pd.Series(np.full(30, 7.0))
    assert oracle.rsi(rising, 14).iloc[14:].eq(100).all()
    assert oracle.rsi(rising[::-1].reset_index(drop=True), 14).iloc[14:].eq(0).all()
    assert oracle.rsi(flat, 14).isna().all()
    assert oracle.rsi(rising, 14).iloc[:14].isna().all()
    assert oracle.stoch(flat, flat, flat, 14).isna().all()
    assert oracle.cci(flat, 20).isna().all()
    assert oracle.cci(pd.Series(np.full(10, 0.1)), 3).iloc[2:].eq(-200 / 3).all()  # sma an ulp above 0.1


def test_flat_history_counts_no_oscillator_that_divides_by_zero():
    flat = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC"),
            **{name: np.full(120, 0.1) for name in ("open", "high", "low", "close")},
            "volume": np.full(120, 5.0),
        }
    )
    last = oracle.rate_frame(flat).iloc[-1]
    dividing = ["Rec.RSI", "Rec.Stoch.K", "Rec.CCI20", "Rec.ADX", "Rec.WR", "Rec.UO", "Rec.Stoch.RSI"]
    assert last[dividing].isna().all()  # zero ranges, zero true range, 0 / 0 in RSI and CCI
    assert last[["Rec.AO", "Rec.Mom", "Rec.MACD", "Rec.BBPower"]].eq(0).all()
    assert last["Recommend.MA"] == 0 and last["Recommend.Other"] == 0 and not last["warm"]


def test_a_bar_does_not_depend_on_later_bars():
    bars = clean_bars(SyntheticUniverse(n_symbols=2, n_bars=400, seed=3).frames()["SYNTH:S0001"])[0]
    full = oracle.rate_frame(bars)
    for cut in (1, 2, 15, 34, 52, 120, 399):
        alone = oracle.rate_frame(bars.iloc[:cut]).iloc[-1]
        pd.testing.assert_series_equal(alone, full.iloc[cut - 1], check_names=False, obj=f"bar {cut}")


# Agreement with the panel engine ------------------------------------------------------------------


LONG_HALTS = {"X:LONGHALT": (150, 250), "X:LONGHALTMICRO": (200, 300), "X:ULPHALT": (300, 200)}
"""Symbol: (first bar, length) of a long halt."""


@pytest.fixture(scope="module")
def universe() -> dict[str, dict[str, pd.DataFrame]]:
    return varied_universe()


@pytest.fixture(scope="module")
def panels(universe) -> dict[str, pd.DataFrame]:
    """The whole universe rated by the engine in one panel, under each rule set."""
    frames = {symbol: bars for group in universe.values() for symbol, bars in group.items()}
    return {rules: engine.rate(frames, rules=rules) for rules in RULE_SETS}


@pytest.fixture(scope="module")
def panel(panels) -> pd.DataFrame:
    return panels["scanner"]


@pytest.fixture(scope="module")
def resumed(universe) -> dict[str, pd.DataFrame]:
    """The universe rated again, each symbol cut at its own points (at bar 0 or 1, inside the warm-ups, at
    or right after bar 200, and at random) and each piece resumed from the states the previous one left."""
    frames = {symbol: bars for group in universe.values() for symbol, bars in group.items()}
    rng = np.random.default_rng(13)
    cuts = {
        symbol: sorted(
            min(cut, len(bars))
            for cut in (rng.integers(0, 2), rng.integers(2, 60), rng.integers(199, 202), rng.integers(0, 800))
        )
        for symbol, bars in sorted(frames.items())
    }
    return {rules: rate_resumed(frames, cuts, rules=rules) for rules in RULE_SETS}


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("group", ["synthetic", "micro", "no volume", "short", "flat", "long flat"])
def test_engine_agrees_with_the_oracle_on_every_bar(universe, panels, resumed, group, rules):
    """Both the engine's run over all history and its chained resumes (tests/ratings/test_resume.py holds
    the two equal to the bit) against the oracle."""
    found = []
    for run, rated in (("full", panels[rules]), ("resumed", resumed[rules])):
        rows = dict(tuple(rated.groupby("symbol", sort=False)))
        for symbol, bars in universe[group].items():
            theirs = rows[symbol].drop(columns="symbol").reset_index(drop=True)
            ours = oracle.rate_frame(bars, rules=rules)
            found += [f"{run} {symbol} {line}" for line in oracle.disagreements(theirs, ours)]
    assert not found, "\n".join(found)


def test_the_rule_sets_differ_on_this_universe(panels):
    """The agreement above is not the same test three times: each rule set changes votes here."""
    votes = {rules: panels[rules][list(VOTES)] for rules in RULE_SETS}
    for one, other in (("scanner", "chart"), ("scanner", "legacy"), ("chart", "legacy")):
        differ = ~((votes[one] == votes[other]) | (votes[one].isna() & votes[other].isna()))
        assert differ.any(axis=None), (one, other)


def test_long_halts_count_stoch_rsi_as_pine_does(universe, panel):
    """Along a long halt RSI only wobbles in its last digits, and Stoch RSI, that wobble over its range, is
    counted wherever the range is not exactly 0 (most bars), in both engines (which agree on every vote:
    test above). CCI is 0 / 0 there unless its sma is an ulp off, as on X:ULPHALT."""
    rows = dict(tuple(panel.groupby("symbol", sort=False)))
    for symbol, (start, length) in LONG_HALTS.items():
        rated = rows[symbol].reset_index(drop=True)
        rsi_range = rated["RSI"].rolling(14).max() - rated["RSI"].rolling(14).min()
        halt, halt_range = (
            rated.iloc[start + 20 : start + length],
            rsi_range.iloc[start + 20 : start + length],
        )
        assert (halt["Stoch.RSI.K"].isna() == (halt_range == 0)).all(), symbol
        assert halt["Rec.Stoch.RSI"].notna().mean() > 0.5 and halt["Rec.Stoch.RSI"].isna().any(), symbol
        assert 0 < np.ptp(halt["RSI"]) < 1e-10, symbol
        assert halt["CCI20"].abs().eq(200 / 3).all() if symbol == "X:ULPHALT" else halt["CCI20"].isna().all()
