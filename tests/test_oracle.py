"""The pandas-ta oracle: the three scanner captures, its Pine primitives against plain loops from the
spec, and bar-for-bar agreement with the panel engine on a varied seeded universe."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.ratings import oracle
from service.ratings.features import RATINGS, VALUES, VOTES

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "acceptance" / "tradingview_closed_bars.json"
DIRECT_VOTES = {
    "stochRsi": "Rec.Stoch.RSI",
    "wr": "Rec.WR",
    "bbPower": "Rec.BBPower",
    "uo": "Rec.UO",
    "ichimokuBLine": "Rec.Ichimoku",
    "vwma20": "Rec.VWMA",
    "hullMa9": "Rec.HullMA9",
}


def klines(case: dict) -> pd.DataFrame:
    """Binance klines as bars, untraded (zero-volume) bars dropped as TradingView does."""
    rows = pd.DataFrame([row[:6] for row in case["rawKlines"]], columns=oracle.BAR_COLUMNS)
    bars = rows.astype({name: "float64" for name in oracle.BAR_COLUMNS[1:]})
    bars["ts"] = pd.to_datetime(rows["ts"].astype("int64"), unit="ms", utc=True).astype("datetime64[ns, UTC]")
    return bars[bars["volume"] > 0].reset_index(drop=True)


@pytest.mark.parametrize("case", json.loads(FIXTURE.read_text())["cases"], ids=lambda case: case["symbol"])
def test_reproduces_the_scanner_captures(case):
    expected = case["expected"]
    last = oracle.rate_frame(klines(case)).iloc[-1]
    assert last["ts"] == pd.Timestamp(expected["barOpenTimeMs"], unit="ms", tz="UTC")
    assert last["close"] == float(expected["tradingViewClose"])
    assert last["Recommend.All"] == expected["recommendAll"]
    assert last["Recommend.MA"] == expected["recommendMa"]
    assert last["Recommend.Other"] == expected["recommendOther"]
    assert {field: last[column] for field, column in DIRECT_VOTES.items()} == expected["directVotes"]


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


def test_rsi_and_stoch_follow_the_spec_on_flat_and_one_way_prices():
    rising, flat = pd.Series(np.arange(1.0, 31.0)), pd.Series(np.full(30, 7.0))
    assert oracle.rsi(rising, 14).iloc[14:].eq(100).all()
    assert oracle.rsi(rising[::-1].reset_index(drop=True), 14).iloc[14:].eq(0).all()
    assert oracle.rsi(flat, 14).iloc[14:].eq(100).all()  # rma(D) = 0 comes first
    assert oracle.rsi(rising, 14).iloc[:14].isna().all()
    assert oracle.stoch(flat, flat, flat, 14).isna().all()
    assert oracle.cci(flat, 20).isna().all()


def test_flat_history_counts_no_range_oscillators():
    flat = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC"),
            **{name: np.full(120, 0.1) for name in ("open", "high", "low", "close")},
            "volume": np.full(120, 5.0),
        }
    )
    last = oracle.rate_frame(flat).iloc[-1]
    no_range = ["Rec.Stoch.K", "Rec.CCI20", "Rec.ADX", "Rec.WR", "Rec.UO", "Rec.Stoch.RSI"]
    assert last[no_range].isna().all()  # zero range or true range: division by zero
    assert last[["Rec.RSI", "Rec.AO", "Rec.Mom", "Rec.MACD", "Rec.BBPower"]].eq(0).all()
    assert last["Recommend.MA"] == 0 and last["Recommend.Other"] == 0 and not last["warm"]


# Agreement with the panel engine ------------------------------------------------------------------


def assert_same_ratings(ours: pd.DataFrame, theirs: pd.DataFrame, symbol: str) -> None:
    """Votes, ratings, bars and warm exactly (na positions included); values within 1e-9 relative."""
    assert list(theirs.columns) == list(ours.columns), symbol
    pd.testing.assert_series_equal(theirs["ts"], ours["ts"], obj=f"{symbol} ts")
    for column in ("bars", "warm", *VOTES, *RATINGS):
        mismatch = ~((theirs[column] == ours[column]) | (theirs[column].isna() & ours[column].isna()))
        assert not mismatch.any(), (
            f"{symbol} {column}: first differing bar {mismatch.idxmax()}: "
            f"engine {theirs[column][mismatch.idxmax()]}, oracle {ours[column][mismatch.idxmax()]}"
        )
    for column in VALUES:
        np.testing.assert_allclose(
            theirs[column], ours[column], rtol=1e-9, atol=0, err_msg=f"{symbol} {column}"
        )
