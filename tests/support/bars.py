"""Seeded bars for the ratings-engine tests: a random walk in log price with an intrabar range, and the
edits the tests need (flat stretches, missing volume, micro prices)."""

import numpy as np
import pandas as pd

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
    bars = bars.copy()
    bars.loc[start : start + length - 1, ["open", "high", "low", "close"]] = bars["close"].iloc[start - 1]
    return bars
