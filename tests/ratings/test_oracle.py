"""The pandas-ta oracle: its Pine primitives against plain loops from the spec, and bar-for-bar agreement
with the panel engine on a varied seeded universe (the scanner captures: tests/test_acceptance.py)."""

import math

import numpy as np
import pandas as pd
import pytest

from service.ratings import engine, oracle
from service.sample import SyntheticUniverse
from service.sources.bars import clean_bars
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


def scaled(bars: pd.DataFrame, factor: float) -> pd.DataFrame:
    return bars.assign(**{name: bars[name] * factor for name in ("open", "high", "low", "close")})


def with_flat_stretches(
    bars: pd.DataFrame, starts: list[int], length: int, *, keep_range: bool
) -> pd.DataFrame:
    """`length` bars from each start at the previous close: every price (a halted symbol), or only open
    and close with the high/low range kept (a stuck last trade)."""
    bars = bars.copy()
    for start in starts:
        rows, price = slice(start, start + length - 1), bars["close"].iloc[start - 1]
        bars.loc[rows, ["open", "close"]] = price
        if keep_range:
            bars.loc[rows, "high"] = bars.loc[rows, "high"].clip(lower=price)
            bars.loc[rows, "low"] = bars.loc[rows, "low"].clip(upper=price)
        else:
            bars.loc[rows, ["high", "low"]] = price
    return bars


def with_an_ulp_off_halt(bars: pd.DataFrame, start: int, length: int) -> pd.DataFrame:
    """A halt from `start` at a price within a few % of the previous close whose 20-bar hlc3 sma is an ulp
    off the price's hlc3, so that CCI over the halt is +-200/3 (counted) rather than 0 / 0."""
    price = bars["close"].iloc[start - 1]
    while math.fsum([typical := (price + price + price) / 3] * 20) / 20 == typical:
        price *= 1.001
    bars = bars.copy()
    bars.loc[start - 1, ["open", "close"]] = price
    bars.loc[start - 1, "high"] = max(bars.loc[start - 1, "high"], price)
    bars.loc[start - 1, "low"] = min(bars.loc[start - 1, "low"], price)
    return with_flat_stretches(bars, [start], length, keep_range=False)


LONG_HALTS = {"X:LONGHALT": (150, 250), "X:LONGHALTMICRO": (200, 300), "X:ULPHALT": (300, 200)}
"""Symbol: (first bar, length) of a long halt."""


@pytest.fixture(scope="module")
def universe() -> dict[str, dict[str, pd.DataFrame]]:
    """Groups of symbols, all rated by the engine in one panel: the synthetic universe (listings, delistings,
    start prices from about 5 to 500), micro prices, no volume, short histories, short and long flat
    stretches."""
    base = {
        symbol: clean_bars(raw)[0]
        for symbol, raw in SyntheticUniverse(n_symbols=12, n_bars=800, seed=5).frames().items()
    }
    long = sorted(base.values(), key=len, reverse=True)  # listed from the start, about 800 bars
    return {
        "synthetic": base,
        "micro": {f"X:MICRO{i}": scaled(bars, 1e-6) for i, bars in enumerate(long[:3])},
        "no volume": {"X:NOVOL": long[3].assign(volume=np.nan)},
        "short": {f"X:SHORT{n}": long[4].iloc[:n] for n in (1, 2, 9, 10, 11, 14, 26, 33, 34, 51, 52, 60)},
        "flat": {
            "X:HALTED": with_flat_stretches(long[5], [60, 300, 520], 45, keep_range=False),
            "X:HALTEDMICRO": with_flat_stretches(scaled(long[6], 1e-6), [100, 400], 40, keep_range=False),
            "X:STUCK": with_flat_stretches(long[7], [80, 350], 30, keep_range=True),
        },
        "long flat": {
            "X:LONGHALT": with_flat_stretches(long[8], [150], 250, keep_range=False),
            "X:LONGHALTMICRO": with_flat_stretches(scaled(long[9], 1e-6), [200], 300, keep_range=False),
            "X:ULPHALT": with_an_ulp_off_halt(long[10], 300, 200),
        },
    }


@pytest.fixture(scope="module")
def panels(universe) -> dict[str, pd.DataFrame]:
    """The whole universe rated by the engine in one panel, under each rule set."""
    frames = {symbol: bars for group in universe.values() for symbol, bars in group.items()}
    return {rules: engine.rate(frames, rules=rules) for rules in RULE_SETS}


@pytest.fixture(scope="module")
def panel(panels) -> pd.DataFrame:
    return panels["scanner"]


@pytest.mark.parametrize("rules", RULE_SETS)
@pytest.mark.parametrize("group", ["synthetic", "micro", "no volume", "short", "flat", "long flat"])
def test_engine_agrees_with_the_oracle_on_every_bar(universe, panels, group, rules):
    rows = dict(tuple(panels[rules].groupby("symbol", sort=False)))
    found = []
    for symbol, bars in universe[group].items():
        theirs = rows[symbol].drop(columns="symbol").reset_index(drop=True)
        ours = oracle.rate_frame(bars, rules=rules)
        found += [f"{symbol} {line}" for line in oracle.disagreements(theirs, ours)]
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
