"""Seeded bars for the ratings-engine tests: a random walk in log price with an intrabar range, the edits
the tests need (flat stretches, missing volume, micro prices), and a varied universe built from them."""

import math

import numpy as np
import pandas as pd

from service.sample import SyntheticUniverse
from service.sources.bars import clean_bars
from vocabulary.features import VOTES

COUNTED_FROM = {
    **{f"Rec.SMA{n}": n - 1 for n in (10, 20, 30, 50, 100, 200)},
    **{f"Rec.EMA{n}": n - 1 for n in (10, 20, 30, 50, 100, 200)},
    "Rec.HullMA9": 10,
    "Rec.VWMA": 19,
    "Rec.Ichimoku": 51,
    "Rec.RSI": 15,
    "Rec.Stoch.K": 18,
    "Rec.CCI20": 20,
    "Rec.ADX": 27,
    "Rec.AO": 34,
    "Rec.Mom": 11,
    "Rec.MACD": 33,
    "Rec.Stoch.RSI": 32,
    "Rec.WR": 14,
    "Rec.BBPower": 13,
    "Rec.UO": 28,
}
"""The first bar (0-based) on which each vote is counted, from the tables of RATINGS_SPEC sections 4 and 5."""
assert set(COUNTED_FROM) == set(VOTES)


def random_walk_bars(
    n_bars: int,
    *,
    seed: int,
    start: str = "2020-01-01",
    freq: str = "1D",
    price: float = 100.0,
    volatility: float = 0.02,
) -> pd.DataFrame:
    """Cleaned bars (ts, open, high, low, close, volume) of a seeded random walk."""
    rng = np.random.default_rng(seed)
    close = price * np.exp(np.cumsum(rng.normal(0.0, volatility, n_bars)))
    open_ = np.concatenate([[price], close[:-1]])
    reach = rng.uniform(0.0, volatility, (2, n_bars))
    return pd.DataFrame(
        {
            "ts": pd.date_range(start, periods=n_bars, freq=freq, tz="UTC").as_unit("ns"),
            "open": open_,
            "high": np.maximum(open_, close) * (1.0 + reach[0]),
            "low": np.minimum(open_, close) * (1.0 - reach[1]),
            "close": close,
            "volume": rng.uniform(1e3, 1e6, n_bars),
        }
    )


def halted(bars: pd.DataFrame, start: int, length: int) -> pd.DataFrame:
    """The bars with `length` bars from `start` at the previous close: open, high, low and close all equal."""
    return with_flat_stretches(bars, [start], length, keep_range=False)


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


def varied_universe() -> dict[str, dict[str, pd.DataFrame]]:
    """Groups of symbols: the synthetic universe (listings, delistings, start prices from about 5 to 500),
    micro prices, no volume, short histories, short and long flat stretches."""
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
