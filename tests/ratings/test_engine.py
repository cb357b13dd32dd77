"""The panel engine: output shape, independence of symbols, truncation invariance, warm-up, flat prices,
missing volume, tolerance, bad input, the rating labels, and rating over the last N bars only."""

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from service.ratings import engine
from tests.support.bars import COUNTED_FROM, halted, random_walk_bars
from vocabulary.errors import InvalidInput
from vocabulary.features import FEATURES, MA_LENGTHS, MA_VOTES, OSCILLATOR_VOTES, VOTES, label
from vocabulary.rules import RULE_SETS

REPO = Path(__file__).resolve().parents[2]
RATINGS_AND_VOTES = ["Recommend.All", "Recommend.MA", "Recommend.Other", *VOTES]


@pytest.fixture(scope="module")
def walk() -> pd.DataFrame:
    return random_walk_bars(400, seed=11)


@pytest.fixture(scope="module")
def rated(walk) -> pd.DataFrame:
    return engine.rate_frame(walk)


def test_rows_columns_and_dtypes():
    frames = {
        "B:LATE": random_walk_bars(30, seed=2, start="2021-03-01"),
        "A:EARLY": random_walk_bars(50, seed=3),
    }
    rows = engine.rate(frames)
    assert list(rows.columns) == ["symbol", "ts", "bars", "warm", *FEATURES]
    assert rows["symbol"].tolist() == ["A:EARLY"] * 50 + ["B:LATE"] * 30  # ordered by symbol, then ts
    assert rows["ts"].dtype == "datetime64[ns, UTC]"
    assert rows["ts"].iloc[50] == pd.Timestamp("2021-03-01", tz="UTC")
    assert rows["bars"].dtype == "int64" and rows["bars"].tolist() == [*range(1, 51), *range(1, 31)]
    assert rows["warm"].dtype == bool
    assert (rows[list(FEATURES)].dtypes == "float64").all()
    votes = rows[list(VOTES)].to_numpy()
    assert np.isin(votes[~np.isnan(votes)], [-1.0, 0.0, 1.0]).all()
    assert engine.rate({}).empty


def test_each_symbol_rates_as_if_alone():
    """Symbols of different lengths and start dates, side by side: each equals its own run, bit for bit."""
    frames = {
        "X:LONG": random_walk_bars(420, seed=4),
        "X:LATE": random_walk_bars(260, seed=5, start="2021-01-01", price=3.0),
        "X:SHORT": random_walk_bars(17, seed=6, start="2020-06-01"),
        "X:ONE": random_walk_bars(1, seed=7),
        "X:MICRO": random_walk_bars(300, seed=8, price=4e-4),
    }
    together = engine.rate(frames)
    for symbol, bars in frames.items():
        alone = engine.rate_frame(bars)
        mine = together[together["symbol"] == symbol].drop(columns="symbol").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone, check_exact=True)


def test_panel_columns_are_independent():
    """rate_panel on left-aligned columns (na after a shorter column's end) equals each column alone."""
    long, short = random_walk_bars(250, seed=9), random_walk_bars(90, seed=10, price=20.0)
    panels = [np.full((250, 2), np.nan) for _ in range(4)]
    for panel, column in zip(panels, ("high", "low", "close", "volume"), strict=True):
        panel[:, 0] = long[column]
        panel[:90, 1] = short[column]
    together = engine.rate_panel(*panels)
    for j, bars in enumerate((long, short)):
        alone = engine.rate_frame(bars)
        for name in FEATURES:
            np.testing.assert_array_equal(together[name][: len(bars), j], alone[name], err_msg=name)


@pytest.mark.parametrize("cut", [1, 14, 52, 199, 200, 333])
def test_a_bar_does_not_depend_on_later_bars(walk, rated, cut):
    pd.testing.assert_frame_equal(engine.rate_frame(walk.iloc[:cut]), rated.iloc[:cut], check_exact=True)


def test_votes_are_counted_from_the_bars_of_the_spec(rated):
    for vote, first in COUNTED_FROM.items():
        counted = rated[vote].notna()
        assert not counted.iloc[:first].any() and counted.iloc[first:].all(), vote
    assert rated["warm"].tolist() == [bar >= 199 for bar in range(len(rated))]


@pytest.mark.parametrize("length", [1, 2, 10, 30, 60])
def test_histories_shorter_than_the_warm_ups(walk, rated, length):
    short = engine.rate_frame(walk.iloc[:length])
    assert short["bars"].tolist() == list(range(1, length + 1)) and not short["warm"].any()
    for vote, first in COUNTED_FROM.items():
        assert short[vote].notna().sum() == max(0, length - first), vote
    assert short["Recommend.MA"].isna().tolist() == [bar < 9 for bar in range(length)]  # SMA10 first
    assert short["Recommend.Other"].isna().tolist() == [bar < 11 for bar in range(length)]  # Mom first
    pd.testing.assert_frame_equal(short, rated.iloc[:length], check_exact=True)


def test_ratings_are_the_means_of_the_counted_votes(rated):
    ma = rated[list(MA_VOTES)].mean(axis=1, skipna=True)
    other = rated[list(OSCILLATOR_VOTES)].mean(axis=1, skipna=True)
    np.testing.assert_allclose(rated["Recommend.MA"], ma, rtol=1e-15, equal_nan=True)
    np.testing.assert_allclose(rated["Recommend.Other"], other, rtol=1e-15, equal_nan=True)
    both = rated["Recommend.MA"].notna() & rated["Recommend.Other"].notna()
    assert (
        rated["Recommend.All"][both] == (rated["Recommend.MA"] + rated["Recommend.Other"])[both] / 2
    ).all()
    only_other = rated["Recommend.MA"].isna() & rated["Recommend.Other"].notna()
    assert (rated["Recommend.All"][only_other] == rated["Recommend.Other"][only_other]).all()
    assert rated["Rec.Ichimoku"].dropna().eq(0).all()  # always 0 (section 4)


def test_a_flat_history_counts_no_oscillator_that_divides_by_zero():
    """One price from the first bar: every range, true range and deviation is 0, and so are both of RSI's
    averages, so Stochastic, CCI, ADX, W%R, UO, RSI and Stoch RSI are na (20 * 0.25 / 20 is 0.25 exactly, so
    CCI's sma is the price and its deviation 0)."""
    bars = random_walk_bars(260, seed=12).assign(open=0.25, high=0.25, low=0.25, close=0.25)
    last = engine.rate_frame(bars).iloc[-1]
    dividing = ["Rec.RSI", "Rec.Stoch.K", "Rec.CCI20", "Rec.ADX", "Rec.WR", "Rec.UO", "Rec.Stoch.RSI"]
    assert last[dividing].isna().all() and last[["RSI", "CCI20", "Stoch.RSI.K"]].isna().all()
    assert last[["Rec.AO", "Rec.Mom", "Rec.MACD", "Rec.BBPower"]].eq(0).all()
    assert last[list(MA_VOTES)].eq(0).all()  # every average equals the close
    assert last["Recommend.MA"] == 0 and last["Recommend.Other"] == 0 and not last["warm"]


def test_a_halt_inside_a_history_drops_what_divides_by_zero_and_no_more():
    """Deep inside a halt (every price equal) Stochastic, W%R and UO divide by a zero range and drop out.
    RSI is not carried: its two averages shrink each with its own rounding, so it wobbles in its last
    digits, and Stoch RSI, the ratio of that wobble to its range, counts wherever the range is not exactly
    0. CCI drops out where its sma is the price itself and is +-200/3 (vote 0) where the sma is an ulp off.
    Everything counts again once prices move."""
    bars = halted(random_walk_bars(320, seed=13), 200, 60)
    rows = engine.rate_frame(bars)
    halt = rows.iloc[214:260]  # the halt, once every 14-bar window lies inside it
    assert halt[["Rec.Stoch.K", "Rec.WR", "Rec.UO", "Stoch.K", "W.R", "UO"]].isna().all().all()
    rsi = rows["RSI"]
    assert 0 < np.ptp(rsi.iloc[201:260]) < 1e-12
    rsi_range = rsi.rolling(14).max() - rsi.rolling(14).min()
    assert (halt["Stoch.RSI.K"].isna() == (rsi_range.iloc[214:260] == 0)).all()
    assert halt["Rec.Stoch.RSI"].notna().sum() > 30
    price = bars["close"].iloc[199]
    typical = (price + price + price) / 3.0
    flat_sma = math.fsum([typical] * 20) / 20
    cci = rows["CCI20"].iloc[219:260]  # every 20-bar window inside the halt
    assert cci.isna().all() if flat_sma == typical else cci.abs().eq(200 / 3).all()
    for _, row in halt.iterrows():
        counted = row[list(OSCILLATOR_VOTES)].dropna()
        assert row["Recommend.Other"] == counted.sum() / len(counted)
    assert rows.iloc[300][list(VOTES)].notna().all() and rows.iloc[300]["warm"]


def test_without_volume_vwma_drops_out_of_a_14_vote_ma(walk, rated):
    rows = engine.rate_frame(walk.assign(volume=np.nan))
    assert rows["VWMA"].isna().all() and rows["Rec.VWMA"].isna().all() and not rows["warm"].any()
    steady = rows.iloc[250:]
    others = rated[[vote for vote in MA_VOTES if vote != "Rec.VWMA"]].iloc[250:]
    assert (steady["Recommend.MA"] == others.sum(axis=1) / 14).all()
    pd.testing.assert_frame_equal(rows[list(OSCILLATOR_VOTES)], rated[list(OSCILLATOR_VOTES)])


def test_zero_volume_sums_make_vwma_na(walk):
    bars = walk.copy()
    bars.loc[100:130, "volume"] = 0.0
    rows = engine.rate_frame(bars)
    assert rows["VWMA"].iloc[119:131].isna().all() and rows["VWMA"].iloc[[118, 131]].notna().all()


def test_the_tolerance_decides_ties_below_it():
    """A micro-priced close that stops moving: the EMAs creep towards it, and the short ones come within
    1e-10 while still apart. Pine's tolerance calls them equal (vote 0); an exact comparison does not."""
    bars = halted(random_walk_bars(400, seed=14, price=0.0408, volatility=0.01), 150, 250)
    tolerant, exact = engine.rate_frame(bars).iloc[-1], engine.rate_frame(bars, tolerance=0.0).iloc[-1]
    gaps = {n: abs(tolerant[f"EMA{n}"] - tolerant["close"]) for n in MA_LENGTHS}
    creeping = [n for n, gap in gaps.items() if 0 < gap <= 1e-10]
    assert creeping and all(gaps[n] > 1e-10 for n in MA_LENGTHS if n not in creeping)
    for n in MA_LENGTHS:
        vote = f"Rec.EMA{n}"
        assert tolerant[vote] == (0 if n in creeping else exact[vote]) and exact[vote] != 0, vote
    assert tolerant["Recommend.MA"] < exact["Recommend.MA"]


def test_bad_input_names_what_is_wrong(walk):
    with pytest.raises(ValueError, match=r"^X:BAD: missing column 'close'$"):
        engine.rate({"X:BAD": walk.drop(columns="close")})
    with pytest.raises(ValueError, match=r"^bars: missing column 'ts'$"):
        engine.rate_frame(walk.drop(columns="ts"))
    backwards = walk.copy()
    backwards.loc[5, "ts"] = backwards.loc[3, "ts"]
    with pytest.raises(ValueError, match=r"X:BAD: ts does not strictly increase at row 5"):
        engine.rate({"X:BAD": backwards})


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (-1.0, "Strong Sell"),
        (-0.5000001, "Strong Sell"),
        (-0.5, "Sell"),
        (-0.1000001, "Sell"),
        (-0.1, "Neutral"),
        (0.0, "Neutral"),
        (3 / 15 / 2, "Neutral"),  # (3/15)/2 is the double 0.1
        (0.1, "Neutral"),
        (0.1000001, "Buy"),
        (0.5, "Buy"),
        (0.5000001, "Strong Buy"),
        (1.0, "Strong Buy"),
        (float("nan"), None),
    ],
)
def test_label_bounds(score, expected):
    assert label(score) == expected


def test_the_compiled_engine_is_cached_where_numba_cache_dir_says(tmp_path: Path) -> None:
    """A read-only install points NUMBA_CACHE_DIR at a writable folder once, and every process (the server,
    each backfill child) loads the machine code from there instead of compiling."""
    probe = "from service.ratings import engine; print(engine._rate_into.stats.cache_path)"
    environment = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    shown = subprocess.run(
        [sys.executable, "-c", probe], env=environment, capture_output=True, text=True, check=True, cwd=REPO
    )
    cache = Path(shown.stdout.strip())
    assert cache.is_relative_to(tmp_path / "numba")
    assert (cache / "engine.depends.sha256").is_file()  # the stale-cache check keeps its stamp there too


@pytest.mark.parametrize("rules", RULE_SETS)
def test_with_history_bars_each_bar_is_rated_from_its_last_n_bars(walk, rules):
    """Row t equals the last row of rating only bars [t - N + 1, t] (fewer at the start): the warm-up, the
    EMA and RMA seeds and every window start there. `bars` counts the bars a row was rated from."""
    n = 120
    rows = engine.rate_frame(walk, rules=rules, history_bars=n)
    assert rows["bars"].tolist() == [min(t + 1, n) for t in range(len(walk))]
    bars_to_check = range(len(walk)) if rules == "scanner" else [0, 1, 13, 50, 119, 120, 121, 250, 399]
    for t in bars_to_check:
        alone = engine.rate_frame(walk.iloc[max(0, t - n + 1) : t + 1], rules=rules).iloc[-1]
        pd.testing.assert_series_equal(rows.iloc[t], alone, check_names=False, obj=f"bar {t}")
    assert not rows.equals(
        engine.rate_frame(walk, rules=rules)
    )  # the seeds and windows differ from full history


def test_history_bars_covering_the_history_change_nothing(walk, rated):
    pd.testing.assert_frame_equal(engine.rate_frame(walk, history_bars=len(walk)), rated, check_exact=True)
    rows = engine.rate_frame(walk, history_bars=250)
    assert (rows["warm"] == (rows["bars"] >= 200)).all()  # warm once its window holds SMA200's bars
    pd.testing.assert_frame_equal(rows.iloc[:250], rated.iloc[:250], check_exact=True)


def test_history_bars_rate_each_symbol_alone():
    frames = {"X:A": random_walk_bars(300, seed=21), "X:B": random_walk_bars(90, seed=22, price=3.0)}
    together = engine.rate(frames, history_bars=64)
    for symbol, bars in frames.items():
        mine = together[together["symbol"] == symbol].drop(columns="symbol").reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, engine.rate_frame(bars, history_bars=64), check_exact=True)


@pytest.mark.parametrize("history_bars", [0, -5, 2.5, True, "700", 100_001])
def test_history_bars_must_be_a_whole_number_of_bars(walk, history_bars):
    with pytest.raises(InvalidInput, match=r"^history_bars: must be a whole number of bars from 1 to 100000"):
        engine.rate_frame(walk, history_bars=history_bars)
