"""The rule sets (docs/RATINGS.md, RATINGS_SPEC section 7) on small hand-built bar sequences: one test per
rule that differs, each asserting the exact vote under every rule set, from both engines. Where a vote rests
on indicator lines the test recomputes them plainly (pandas rolling windows) and asserts why it votes."""

import math

import numpy as np
import pandas as pd
import pytest

from service.ratings import engine, oracle
from tests.support.bars import halted, random_walk_bars
from vocabulary.errors import InvalidInput
from vocabulary.features import MA_LENGTHS, MA_VOTES
from vocabulary.rules import RULE_SETS

ENGINES = pytest.mark.parametrize(
    "rate_frame", [engine.rate_frame, oracle.rate_frame], ids=["engine", "oracle"]
)


def bars(close, high=None, low=None) -> pd.DataFrame:
    """Daily bars with these closes; high and low half a point around the close unless given."""
    close = np.asarray(close, dtype=float)
    return pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=len(close), freq="D", tz="UTC"),
            "open": close,
            "high": close + 0.5 if high is None else np.asarray(high, dtype=float),
            "low": close - 0.5 if low is None else np.asarray(low, dtype=float),
            "close": close,
            "volume": 1.0,
        }
    )


def rated(rate_frame, frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {rules: rate_frame(frame, rules=rules) for rules in RULE_SETS}


def votes(rows: dict[str, pd.DataFrame], vote: str, at: int | list[int] = -1) -> dict[str, object]:
    """The vote under each rule set at one bar (or a list of bars): 1, 0, -1, or None where not counted."""

    def plain(value: float) -> float | None:
        return None if np.isnan(value) else value

    return {
        rules: [plain(v) for v in rows[rules][vote].iloc[at]]
        if isinstance(at, list)
        else plain(rows[rules][vote].iloc[at])
        for rules in RULE_SETS
    }


def cloud(frame: pd.DataFrame) -> dict[str, pd.Series]:
    """Ichimoku's lines recomputed plainly: the midpoints of the 9, 26 and 52-bar ranges, span A."""

    def mid(n: int) -> pd.Series:
        return (frame["high"].rolling(n).max() + frame["low"].rolling(n).min()) / 2

    tenkan, kijun = mid(9), mid(26)
    return {"tenkan": tenkan, "kijun": kijun, "span_a": (tenkan + kijun) / 2, "span_b": mid(52)}


@ENGINES
def test_ichimoku_in_a_steady_trend_votes_on_the_chart_only(rate_frame):
    """Rising one point a bar: Tenkan > Kijun > both spans and the close above Tenkan. The scanner's rule on
    the current spans asks Kijun above span A, their own midpoint, so it is 0; the chart library asks it of
    the span of 26 bars ago, which lies far below, so it buys; the old rule wants the close below Kijun."""
    up, down = (
        rated(rate_frame, bars(100 + np.arange(120.0))),
        rated(rate_frame, bars(300 - np.arange(120.0))),
    )
    assert votes(up, "Rec.Ichimoku") == {"scanner": 0, "chart": 1, "legacy": 0}
    assert votes(down, "Rec.Ichimoku") == {"scanner": 0, "chart": -1, "legacy": 0}


BASE_THEN_PULLBACK = (
    [100.0] * 30 + list(np.linspace(100, 150, 30)) + [150.0] * 5 + list(np.linspace(150, 118, 15))
)
"""Low ground (span B's floor), a climb to a plateau (Kijun's ceiling), a pullback below Tenkan."""


@ENGINES
def test_legacy_ichimoku_votes_the_close_crossing_tenkan_below_kijun(rate_frame):
    """After the pullback the close jumps from 118 to 131: above Tenkan (126) and span A (130), below Kijun
    (134), span A above span B (125): the old rule buys. Mirrored (250 - price) it sells, by the rule after
    the 2024-10-09 fix (close below span A). Tenkan is below Kijun, so neither newer rule votes."""
    frame = bars([*BASE_THEN_PULLBACK, 131.0])
    lines = {name: line.iloc[-1] for name, line in cloud(frame).items()}
    assert lines == {"tenkan": 126.0, "kijun": 134.0, "span_a": 130.0, "span_b": 125.0}
    assert votes(rated(rate_frame, frame), "Rec.Ichimoku") == {"scanner": 0, "chart": 0, "legacy": 1}
    mirrored = bars(250 - np.array([*BASE_THEN_PULLBACK, 131.0]))
    assert votes(rated(rate_frame, mirrored), "Rec.Ichimoku") == {"scanner": 0, "chart": 0, "legacy": -1}


@ENGINES
def test_legacy_ichimoku_sells_below_span_a_not_below_span_b(rate_frame):
    """Mirrored, a last close of 123 sits between span A (120) and span B (125), above Kijun (116), having
    crossed below Tenkan (124) from 132. The rule before the fix (close below span B) would sell; after it
    (close below span A) it does not."""
    frame = bars(250 - np.array([*BASE_THEN_PULLBACK, 127.0]))
    lines = {name: line.iloc[-1] for name, line in cloud(frame).items()}
    assert lines == {"tenkan": 124.0, "kijun": 116.0, "span_a": 120.0, "span_b": 125.0}
    assert frame["close"].iloc[-2:].tolist() == [132.0, 123.0]
    assert votes(rated(rate_frame, frame), "Rec.Ichimoku") == {"scanner": 0, "chart": 0, "legacy": 0}


@ENGINES
def test_legacy_stochastic_needs_a_cross(rate_frame):
    """At the bottom of a slide %K turns up through %D (from 2.65 < 5.31 to 9.64 > 6.34): every rule set
    buys. A bar later %K is still above %D, both below 20, with no new cross: the old rule does not buy."""
    bottom = 200 - 2 * 39.0
    frame = bars([*(200 - 2 * np.arange(40.0)), *(bottom + np.array([0, 3, 0, 0, 0, 3, 3.2]))])
    rows = rated(rate_frame, frame)
    k, d = rows["scanner"]["Stoch.K"].iloc[-3:], rows["scanner"]["Stoch.D"].iloc[-3:]
    assert k.iloc[0] < d.iloc[0] and (k.iloc[1:] > d.iloc[1:]).all() and (d < 20).all() and (k < 20).all()
    assert votes(rows, "Rec.Stoch.K", [-2, -1]) == {"scanner": [1, 1], "chart": [1, 1], "legacy": [1, 0]}


@ENGINES
def test_legacy_stoch_rsi_needs_a_cross(rate_frame):
    """Above the EMA50 after a climb, RSI tops out (Stoch RSI %K 100) and dips: %K falls through %D (100 >
    82 to 90 < 93), both above 80, and every rule set sells; a bar later %K is still below %D without a new
    cross, and the old rule no longer sells."""
    climb = np.cumsum([0.0] + [3 if k % 3 else -1.5 for k in range(70)]) + 100
    frame = bars([*climb, *(climb[-1] + np.cumsum([4, 4, 4, 4, -1, 1]))])
    rows = rated(rate_frame, frame)
    k = rows["scanner"]["Stoch.RSI.K"]
    d = k.rolling(3).mean()  # %D is the sma of %K
    assert k.iloc[-3] > d.iloc[-3] and (k.iloc[-2:] < d.iloc[-2:]).all() and (d.iloc[-2:] > 80).all()
    assert votes(rows, "Rec.Stoch.RSI", [-2, -1]) == {
        "scanner": [-1, -1],
        "chart": [-1, -1],
        "legacy": [-1, 0],
    }


@ENGINES
def test_adx_rising_against_the_old_di_cross(rate_frame):
    """A trend out of a range: ADX above 20 and rising, +DI above -DI without crossing it now: the newer rules
    buy, the old one (a DI cross) does not. A sharp reversal of a long slide: +DI crosses above -DI while
    ADX, still above 20, falls: only the old rule buys."""
    trend = rated(rate_frame, bars([*(100.0 + np.arange(60) % 2), *(101 + 1.5 * np.arange(1, 25))]))
    assert votes(trend, "Rec.ADX", 72) == {"scanner": 1, "chart": 1, "legacy": 0}
    reversal = rated(rate_frame, bars([*(200 - 2 * np.arange(50.0)), *(102 + 4 * np.arange(1, 8))]))
    plus, minus, adx = (reversal["scanner"][name].iloc[54:56] for name in ("ADX+DI", "ADX-DI", "ADX"))
    assert plus.iloc[0] < minus.iloc[0] and plus.iloc[1] > minus.iloc[1] and 20 < adx.iloc[1] < adx.iloc[0]
    assert votes(reversal, "Rec.ADX", 55) == {"scanner": 0, "chart": 0, "legacy": 1}


@ENGINES
def test_cci_runs_on_hlc3_except_on_the_chart(rate_frame):
    """Closes alternate 100/101 while two bars' lows plunge (70, then 80): CCI on hlc3 falls far below -100
    and turns up (buy); CCI on the close stays at +-200/3 (no vote)."""
    close = 100.0 + np.arange(32) % 2
    low = close - 0.5
    low[-2:] = [70.0, 80.0]
    rows = rated(rate_frame, bars(close, close + 0.5, low))
    assert rows["chart"]["CCI20"].iloc[-2:].abs().round(9).eq(round(200 / 3, 9)).all()
    assert rows["scanner"]["CCI20"].iloc[-1] < -100 and rows["scanner"]["CCI20"].diff().iloc[-1] > 0
    assert votes(rows, "Rec.CCI20", [-2, -1]) == {"scanner": [0, 1], "chart": [0, 0], "legacy": [0, 1]}


@ENGINES
def test_the_chart_compares_close_and_averages_exactly(rate_frame):
    """One price from the start, chosen so that ten of it average an ulp below it: the scanner's tolerant
    comparison calls SMA10 equal to the close (0); the chart library's math.sign sees the close above (+1)."""
    price = 0.1
    while math.fsum([price] * 10) / 10 == price:
        price *= 1.001
    rows = rated(rate_frame, bars(np.full(250, price), np.full(250, price), np.full(250, price)))
    assert rows["scanner"]["SMA10"].iloc[-1] == math.fsum([price] * 10) / 10 < price
    assert votes(rows, "Rec.SMA10") == {"scanner": 0, "chart": 1, "legacy": 0}
    for n in MA_LENGTHS:
        expected = np.sign(price - math.fsum([price] * n) / n)
        assert rows["chart"][f"Rec.SMA{n}"].iloc[-1] == expected, n
    assert all(rows[rules][list(MA_VOTES)].iloc[-1].eq(0).all() for rules in ("scanner", "legacy"))


@ENGINES
def test_the_chart_counts_each_vote_by_the_one_source_it_names(rate_frame):
    """The library's calcRating(src, ...) counts a vote when src is non-na: Stoch RSI and Bull/Bear Power
    name the EMA50, so they count from bar 49, not 32 and 13; Stochastic and W%R name their [1] value, so on
    the first bar of a zero range (a halt) they still count, as 0, where the scanner drops them."""
    rows = rated(rate_frame, random_walk_bars(120, seed=4))
    first = {
        rules: (
            rows[rules]["Rec.Stoch.RSI"].first_valid_index(),
            rows[rules]["Rec.BBPower"].first_valid_index(),
        )
        for rules in RULE_SETS
    }
    assert first == {"scanner": (32, 13), "chart": (49, 49), "legacy": (32, 13)}
    rows = rated(
        rate_frame, halted(random_walk_bars(120, seed=4), 80, 30)
    )  # every 14-bar range 0 from bar 93
    assert votes(rows, "Rec.Stoch.K", [93, 94]) == {
        "scanner": [None, None],
        "chart": [0, None],
        "legacy": [None, None],
    }
    assert votes(rows, "Rec.WR", [93, 94]) == {
        "scanner": [None, None],
        "chart": [0, None],
        "legacy": [None, None],
    }


@ENGINES
def test_the_chart_dmi_has_no_directional_movement_on_the_first_bar(rate_frame):
    """Rising a point a bar (high and low half a point around the close): +DM is 1 and the true range 1.5
    from bar 1. ta.dmi leaves bar 0 out: +DI on bar 14 is 100 * 1 / 1.5. The scanner's dirmov counts a 0 on
    bar 0 into the seed: rma(+DM) is 13/14 on bar 13 and (13/14 * 13 + 1) / 14 = 183/196 on bar 14."""
    rows = rated(rate_frame, bars(np.arange(1.0, 21.0)))
    plus = {rules: rows[rules]["ADX+DI"].iloc[14] for rules in RULE_SETS}
    assert plus["chart"] == pytest.approx(100 / 1.5, rel=1e-14)
    assert plus["scanner"] == plus["legacy"] == pytest.approx(100 * 183 / 196 / 1.5, rel=1e-14)


@pytest.mark.parametrize(
    "call",
    [engine.rate_frame, oracle.rate_frame, lambda frame, rules: engine.rate({"X:Y": frame}, rules=rules)],
)
def test_an_unknown_rule_set_is_refused_by_name(call):
    with pytest.raises(
        InvalidInput, match=r"^rules: unknown rule set 'tradingview'; expected one of scanner, chart, legacy$"
    ):
        call(bars(np.arange(1.0, 5.0)), rules="tradingview")
