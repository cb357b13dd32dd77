"""The synthetic universe: consistent bars, listings and delistings, untraded bars, determinism, the files it
writes (read back through the real sources), and flippers whose ratings follow their known schedule."""

import json

import numpy as np
import pandas as pd
import pytest

from service.ratings.oracle import rate_frame
from service.sample import SyntheticUniverse
from service.sources.bars import BAR_COLUMNS, clean_bars
from service.sources.lake import Lake, read_candidates, read_returns

UNIVERSE = SyntheticUniverse(n_symbols=40, n_bars=600, seed=7, flip_bars=150)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return UNIVERSE.frames()


def test_symbols_are_named_and_every_frame_has_the_bar_columns(frames):
    assert list(frames) == UNIVERSE.symbols
    assert UNIVERSE.symbols[:2] == ["SYNTH:S0001", "SYNTH:S0002"]
    assert SyntheticUniverse(n_symbols=12345, n_bars=8, flippers=0).symbols[-1] == "SYNTH:S12345"
    for bars in frames.values():
        assert list(bars.columns) == list(BAR_COLUMNS)
        assert str(bars["ts"].dtype) == "datetime64[ns, UTC]"
        assert (bars[list(BAR_COLUMNS[1:])].dtypes == "float64").all()
        assert bars["ts"].is_monotonic_increasing and bars["ts"].is_unique


def test_high_and_low_bound_every_bar_and_prices_are_positive(frames):
    bars = pd.concat(frames.values())
    assert (bars[["open", "high", "low", "close"]] > 0).all().all()
    assert (bars["high"] >= bars[["open", "close"]].max(axis=1)).all()
    assert (bars["low"] <= bars[["open", "close"]].min(axis=1)).all()
    assert (bars["high"] > bars["low"]).mean() > 0.99  # only untraded bars are flat


def test_symbols_list_at_different_dates_and_some_delist(frames):
    grid = pd.date_range("2015-01-01", periods=600, freq="D", tz="UTC")
    firsts = pd.Series({symbol: bars["ts"].iloc[0] for symbol, bars in frames.items()})
    lasts = pd.Series({symbol: bars["ts"].iloc[-1] for symbol, bars in frames.items()})
    late, delisted = firsts[firsts > grid[0]], lasts[lasts < grid[-1]]
    assert len(late) == 8 and late.nunique() == 8  # ceil(0.2 * 38 non-flippers), each its own date
    assert len(delisted) == 2  # ceil(0.05 * 38)
    assert (late <= grid[300]).all()  # late listings fall in the first half
    for symbol in delisted.index:  # a delisted name trades at least a quarter of the bars, then stops
        assert len(frames[symbol]) >= 150
    for symbol, bars in frames.items():  # every bar between listing and the end (or delisting) is there
        span = grid[(grid >= firsts[symbol]) & (grid <= lasts[symbol])]
        assert bars["ts"].tolist() == span.tolist()


def test_untraded_bars_have_zero_volume_and_repeat_the_last_close(frames):
    volumes = pd.concat(bar["volume"] for bar in frames.values())
    assert (volumes >= 0).all()
    untraded = 0
    for bars in frames.values():
        at = np.flatnonzero(bars["volume"].to_numpy() == 0)
        assert 0 not in at  # a symbol's first bar trades
        untraded += len(at)
        for row in at:
            last_close = bars["close"].iloc[:row][bars["volume"].iloc[:row] > 0].iloc[-1]
            assert bars.loc[row, ["open", "high", "low", "close"]].tolist() == [last_close] * 4
    assert 20 <= untraded <= 80  # about 0.2% of roughly 21,000 bars
    assert all((frames[symbol]["volume"] > 0).all() for symbol in UNIVERSE.symbols[:2])  # flippers all trade


def test_volume_rises_with_the_size_of_the_move(frames):
    correlations = []
    for bars in frames.values():
        traded = bars[bars["volume"] > 0]
        move = np.log(traded["close"]).diff().abs()
        correlations.append(move.corr(np.log(traded["volume"])))
    assert np.median(correlations) > 0.2


def test_regimes_give_different_volatility_over_time(frames):
    """Regime switching: a symbol's rolling volatility moves well beyond sampling noise."""
    ratios = []
    for bars in frames.values():
        rolling = np.log(bars["close"]).diff().rolling(60).std().dropna()
        ratios.append(rolling.quantile(0.9) / rolling.quantile(0.1))
    assert np.median(ratios) > 1.6


def test_the_same_seed_gives_the_same_bars_and_another_seed_does_not(frames):
    again = SyntheticUniverse(n_symbols=40, n_bars=600, seed=7, flip_bars=150).frames()
    for symbol in frames:
        pd.testing.assert_frame_equal(again[symbol], frames[symbol])
    other = SyntheticUniverse(n_symbols=40, n_bars=600, seed=8, flip_bars=150).frames()
    assert not np.allclose(other["SYNTH:S0010"]["close"].iloc[:10], frames["SYNTH:S0010"]["close"].iloc[:10])


def test_intraday_bars_step_by_the_interval():
    bars = SyntheticUniverse(
        n_symbols=3, n_bars=50, interval="15m", start="2024-03-01T09:00Z", flippers=1
    ).frames()
    ts = bars["SYNTH:S0001"]["ts"]
    assert ts.iloc[0] == pd.Timestamp("2024-03-01T09:00", tz="UTC")
    assert (ts.diff().dropna() == pd.Timedelta(minutes=15)).all()
    daily = SyntheticUniverse(n_symbols=3, n_bars=50, flippers=1).frames()["SYNTH:S0003"]
    minute_moves = np.log(bars["SYNTH:S0003"]["close"]).diff().std()
    assert minute_moves < np.log(daily["close"]).diff().std() / 2  # volatility scales with the bar length


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"interval": "3d"}, "unknown interval '3d'"),
        ({"n_bars": 5}, "n_bars: at least 8 bars, got 5"),
        ({"flippers": 4, "n_symbols": 3}, "flippers: between 0 and n_symbols (3), got 4"),
        ({"delisted_share": 1.5}, "delisted_share: a share between 0 and 1, got 1.5"),
        ({"start": "soon"}, "start: 'soon' is not an ISO-8601 instant"),
    ],
)
def test_bad_parameters_are_named(change, message):
    with pytest.raises(ValueError) as caught:
        SyntheticUniverse(**change)
    assert message in str(caught.value)


def test_flippers_ratings_follow_their_known_schedule(frames):
    """In the second half of each spell after the warm-up one, a bull flipper rates above zero and a bear
    flipper below, nearly bar for bar: ratings that rotate at known times."""
    schedule = UNIVERSE.regime_schedule()
    assert schedule["regime"].tolist() == ["bull", "bear"] * 2 + ["bear", "bull"] * 2
    assert schedule["ts"].tolist()[:4] == list(pd.date_range("2015-01-01", periods=4, freq="150D", tz="UTC"))
    for symbol, spells in schedule.groupby("symbol"):
        bars, _ = clean_bars(frames[symbol])
        rated = rate_frame(bars).set_index("ts")
        for start, regime in zip(spells["ts"][1:], spells["regime"][1:], strict=True):
            sign = 1 if regime == "bull" else -1
            window = rated[start + pd.Timedelta(days=75) : start + pd.Timedelta(days=149)]
            assert len(window) == 75 and window["warm"].all()
            second_half = sign * window["Recommend.All"]
            assert second_half.mean() > 0.2, (symbol, start, regime)
            assert (second_half > 0).mean() > 0.9, (symbol, start, regime)


def test_written_files_read_back_through_the_sources(tmp_path, frames):
    files = UNIVERSE.write(tmp_path)
    assert files.lake == tmp_path / "lake"
    assert (files.lake / "SYNTH_S0001_1d.parquet").is_file()
    raw = pd.read_parquet(files.lake / "SYNTH_S0001_1d.parquet")
    assert list(raw.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert raw["timestamp"].iloc[0] == 1_420_070_400  # 2015-01-01T00:00Z in epoch seconds

    lake = Lake(files.lake, "1d")
    assert lake.symbols() == UNIVERSE.symbols
    for symbol in UNIVERSE.symbols:
        pd.testing.assert_frame_equal(lake.read(symbol), frames[symbol])

    assert read_candidates(files.candidates) == UNIVERSE.symbols
    assert json.loads(files.candidates.read_text())[0] == {"symbol": "SYNTH:S0001"}

    returns = read_returns(files.returns)
    assert list(returns.columns) == UNIVERSE.symbols
    assert returns.index.tolist() == pd.date_range("2015-01-01", periods=600, freq="D", tz="UTC").tolist()
    for symbol, bars in frames.items():
        expected = bars.set_index("ts")["close"].pct_change()
        traded = returns[symbol].dropna()
        assert traded.index.tolist() == expected.index[1:].tolist()  # NaN before listing, after delisting
        np.testing.assert_allclose(traded.to_numpy(), expected.iloc[1:].to_numpy(), rtol=1e-12)
