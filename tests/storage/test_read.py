"""The as-of read against real runs (DuckDB catalog and Parquet in a tmp dir), through both paths."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage.catalog import Catalog, NoRunError, RunNotFound, SymbolNotFound
from storage.index import ColumnBudget, RunIndex
from storage.read import FeatureStore, RunView, Sight, point_in_time
from tests.support.rows import daily, feature_rows, publish
from vocabulary.features import FEATURES, RATINGS, VOTES

BOTH_PATHS = pytest.mark.parametrize("index", [True, False], ids=["memory", "duckdb"])


@pytest.fixture(scope="module")
def market(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    """A run whose symbols list late, halt, and delist; plus the rows it was built from."""
    bars = {
        "X:EARLY": daily("2024-01-01", 90),
        "X:LATE": daily("2024-02-15", 40),
        "X:HALTED": daily("2024-01-01", 90, skip=range(30, 45)),
        "X:GONE": daily("2024-01-01", 35),
    }
    rows = feature_rows(bars)
    data_dir = tmp_path_factory.mktemp("market")
    return data_dir, publish(data_dir, rows), rows


@BOTH_PATHS
def test_a_row_is_visible_from_its_available_at_and_not_one_nanosecond_before(
    market: tuple, index: bool
) -> None:
    data_dir, run, _ = market
    store = FeatureStore(data_dir, index=index)
    at = store.cross_section("2024-01-10T00:00:00Z", symbols=["X:EARLY"])
    before = store.cross_section("2024-01-09T23:59:59.999999999Z", symbols=["X:EARLY"])
    assert at.rows["ts"].tolist() == [pd.Timestamp("2024-01-09", tz="UTC")]
    assert at.rows["available_at"].tolist() == [pd.Timestamp("2024-01-10", tz="UTC")]
    assert before.rows["ts"].tolist() == [pd.Timestamp("2024-01-08", tz="UTC")]
    assert at.run_id == before.run_id == run.run_id


@BOTH_PATHS
def test_a_bare_date_is_midnight_utc_so_that_days_bar_is_not_yet_visible(market: tuple, index: bool) -> None:
    store = FeatureStore(market[0], index=index)
    on_the_day = store.cross_section("2024-03-01", symbols=["X:EARLY"]).rows
    next_day = store.cross_section("2024-03-02", symbols=["X:EARLY"]).rows
    assert on_the_day["ts"].tolist() == [pd.Timestamp("2024-02-29", tz="UTC")]
    assert next_day["ts"].tolist() == [pd.Timestamp("2024-03-01", tz="UTC")]


@BOTH_PATHS
def test_an_offset_is_converted_to_utc(market: tuple, index: bool) -> None:
    store = FeatureStore(market[0], index=index)
    section = store.cross_section("2024-01-10T02:00:00+02:00", symbols=["X:EARLY"])
    assert section.as_of == pd.Timestamp("2024-01-10T00:00:00Z")
    assert section.rows["ts"].tolist() == [pd.Timestamp("2024-01-09", tz="UTC")]


@BOTH_PATHS
def test_a_halted_symbol_is_stale_past_max_staleness_and_left_out(market: tuple, index: bool) -> None:
    store = FeatureStore(market[0], index=index)
    # X:HALTED's last bar before the halt opens 2024-01-30 and is available 2024-01-31T00:00Z.
    edge = store.cross_section("2024-02-03T00:00:00Z", max_staleness=3)
    past = store.cross_section("2024-02-03T00:00:00.000000001Z", max_staleness=3)
    assert "X:HALTED" in edge.rows["symbol"].tolist()
    assert "X:HALTED" not in edge.stale
    assert "X:HALTED" not in past.rows["symbol"].tolist()
    assert past.stale == ["X:HALTED"]
    resumed = store.cross_section("2024-02-16T00:00:00Z", max_staleness=3)
    assert resumed.rows.set_index("symbol").loc["X:HALTED", "ts"] == pd.Timestamp("2024-02-15", tz="UTC")
    assert resumed.stale == ["X:GONE"]


@BOTH_PATHS
def test_max_staleness_zero_keeps_only_rows_available_exactly_at_as_of_and_a_huge_one_keeps_all(
    market: tuple, index: bool
) -> None:
    store = FeatureStore(market[0], index=index)
    midnight = store.cross_section("2024-01-20", max_staleness=0)
    later = store.cross_section("2024-01-20T00:00:01Z", max_staleness=0)
    assert midnight.rows["symbol"].tolist() == ["X:EARLY", "X:GONE", "X:HALTED"]
    assert later.rows.empty
    assert later.stale == ["X:EARLY", "X:GONE", "X:HALTED"]
    forever = store.cross_section("2030-01-01", max_staleness=10**15)
    assert forever.rows["symbol"].tolist() == ["X:EARLY", "X:GONE", "X:HALTED", "X:LATE"]
    assert forever.stale == []


@pytest.fixture(scope="module")
def monthly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A monthly run (lag 1 h): X:STOPS has bars for January and February 2024 only, X:GOES through June."""
    months = {
        "X:STOPS": pd.date_range("2024-01-01", periods=2, freq="MS", tz="UTC", unit="ns"),
        "X:GOES": pd.date_range("2024-01-01", periods=6, freq="MS", tz="UTC", unit="ns"),
    }
    data_dir = tmp_path_factory.mktemp("monthly")
    lag = pd.Timedelta(hours=1)
    publish(data_dir, feature_rows(months, interval="1M", lag=lag), interval="1M", lag=lag)
    return data_dir


@BOTH_PATHS
def test_monthly_rows_go_stale_by_calendar_months(monthly: Path, index: bool) -> None:
    store = FeatureStore(monthly, index=index)
    march = store.cross_section("2024-03-01T01:00:00Z", symbols=["X:STOPS"])  # February's bar, 29 days
    assert march.rows["ts"].tolist() == [pd.Timestamp("2024-02-01", tz="UTC")]
    assert march.rows["available_at"].tolist() == [pd.Timestamp("2024-03-01T01:00", tz="UTC")]
    before = store.cross_section("2024-03-01T00:59:59.999999999Z", symbols=["X:STOPS"])
    assert before.rows["ts"].tolist() == [pd.Timestamp("2024-01-01", tz="UTC")]
    # February's row, 3 intervals: fresh until the close of May's bar plus the lag (2024-06-01T01:00Z), which
    # 3 nominal months (91.3 days from 2024-03-01T01:00Z) would have cut short on 2024-05-31.
    edge = store.cross_section("2024-06-01T01:00:00Z", max_staleness=3)
    past = store.cross_section("2024-06-01T01:00:00.000000001Z", max_staleness=3)
    assert edge.rows["symbol"].tolist() == ["X:GOES", "X:STOPS"] and edge.stale == []
    assert past.rows["symbol"].tolist() == ["X:GOES"] and past.stale == ["X:STOPS"]
    assert store.cross_section("2024-03-01T01:00:00Z", max_staleness=0).stale == []
    assert store.cross_section("2024-03-01T01:00:01Z", max_staleness=0).stale == ["X:GOES", "X:STOPS"]


@BOTH_PATHS
def test_a_symbol_is_invisible_before_its_first_bar(market: tuple, index: bool) -> None:
    store = FeatureStore(market[0], index=index)
    before = store.cross_section("2024-02-15T23:59:59Z")
    listed = store.cross_section("2024-02-16")
    assert "X:LATE" not in before.rows["symbol"].tolist()
    assert "X:LATE" not in before.stale
    assert listed.rows.set_index("symbol").loc["X:LATE", "bars"] == 1
    nothing_yet = store.cross_section("2023-12-31")
    assert nothing_yet.rows.empty
    assert nothing_yet.stale == []


@BOTH_PATHS
def test_rows_hold_the_stored_values_and_the_served_dtypes(market: tuple, index: bool) -> None:
    data_dir, _, rows = market
    store = FeatureStore(data_dir, index=index)
    section = store.cross_section("2024-02-20T12:00:00Z", features="all")
    expected = rows[rows["ts"] == pd.Timestamp("2024-02-19", tz="UTC")].sort_values("symbol")
    assert section.features == list(FEATURES)
    assert section.rows["symbol"].tolist() == expected["symbol"].tolist()
    for name in FEATURES:
        served = section.rows[name]
        assert str(served.dtype) == ("Int8" if name in VOTES else "float64")
        np.testing.assert_array_equal(
            served.astype("Float64").to_numpy(np.float64, na_value=np.nan), expected[name]
        )
    assert str(section.rows["ts"].dtype) == "datetime64[ns, UTC]"
    assert section.rows["bars"].tolist() == expected["bars"].tolist()
    assert section.rows["warm"].tolist() == expected["warm"].tolist()


@BOTH_PATHS
def test_the_default_features_are_the_three_ratings(market: tuple, index: bool) -> None:
    section = FeatureStore(market[0], index=index).cross_section("2024-02-20")
    assert section.features == list(RATINGS)
    assert section.rows.columns.tolist() == ["symbol", "ts", "available_at", "bars", "warm", *RATINGS]


@BOTH_PATHS
def test_symbols_select_and_unknown_ones_do_not_appear(market: tuple, index: bool) -> None:
    section = FeatureStore(market[0], index=index).cross_section(
        "2024-02-20", symbols=["X:LATE", "X:EARLY", "X:NOPE"], features=["Rec.RSI"]
    )
    assert section.rows["symbol"].tolist() == ["X:EARLY", "X:LATE"]
    assert section.rows.columns.tolist()[-1] == "Rec.RSI"


def test_batch_equals_one_call_per_instant(market: tuple) -> None:
    store = FeatureStore(market[0])
    instants = ["2024-01-05", "2024-02-03T00:00:00.5Z", "2023-01-01", "2024-03-20T13:00:00+01:00"]
    sections = store.batch(instants, max_staleness=3, features=["Recommend.All", "Rec.MACD", "RSI"])
    assert len(sections) == len(instants)
    for instant, section in zip(instants, sections, strict=True):
        single = store.cross_section(instant, max_staleness=3, features=["Recommend.All", "Rec.MACD", "RSI"])
        pd.testing.assert_frame_equal(section.rows, single.rows)
        assert (section.as_of, section.stale, section.run_id) == (single.as_of, single.stale, single.run_id)


@BOTH_PATHS
def test_history_shows_only_rows_known_at_as_of(market: tuple, index: bool) -> None:
    data_dir, _, rows = market
    store = FeatureStore(data_dir, index=index)
    history = store.history("X:HALTED", as_of="2024-02-20T06:00:00Z", features=["Recommend.MA", "Rec.AO"])
    stored = rows[
        (rows["symbol"] == "X:HALTED") & (rows["available_at"] <= pd.Timestamp("2024-02-20T06:00Z"))
    ]
    assert history["ts"].tolist() == stored["ts"].tolist()
    np.testing.assert_array_equal(history["Recommend.MA"], stored["Recommend.MA"])
    assert history.columns.tolist() == [
        "symbol",
        "ts",
        "available_at",
        "bars",
        "warm",
        "Recommend.MA",
        "Rec.AO",
    ]
    window = store.history(
        "X:HALTED", start="2024-01-29", end="2024-02-16T00:00:00.000000001Z", as_of="2024-03-01"
    )
    assert window["ts"].dt.strftime("%m-%d").tolist() == ["01-29", "01-30", "02-15", "02-16"]
    assert store.history("X:LATE", as_of="2024-02-16T00:00:00Z")["bars"].tolist() == [1]
    assert store.history("X:LATE", as_of="2024-02-15T23:59:59.999999999Z").empty


def test_the_index_and_duckdb_paths_answer_identically(tmp_path) -> None:
    """A few hundred seeded random queries (instants, symbol subsets, features, staleness) on a run with
    late listings, halts, delistings and a publication lag, including exact and one-nanosecond-off
    boundaries."""
    rng = np.random.default_rng(7)
    bars = {}
    for k in range(30):
        start = pd.Timestamp("2023-01-01", tz="UTC") + pd.Timedelta(days=int(rng.integers(0, 60)))
        periods = int(rng.integers(20, 200))
        halt = int(rng.integers(0, periods))
        bars[f"R:S{k:02d}"] = daily(
            str(start.date()), periods, skip=range(halt, min(periods, halt + int(rng.integers(0, 12))))
        )
    lag = pd.Timedelta(minutes=90)
    rows = feature_rows(bars, lag=lag, seed=3)
    publish(tmp_path, rows, lag=lag)
    memory, duck = FeatureStore(tmp_path, index=True), FeatureStore(tmp_path, index=False)
    stored = rows["available_at"].tolist()
    low, high = pd.Timestamp("2022-12-25", tz="UTC").value, pd.Timestamp("2023-09-01", tz="UTC").value
    symbols = sorted(bars)
    for query in range(300):
        kind = query % 3
        if kind == 0:
            as_of = pd.Timestamp(int(rng.integers(low, high)), tz="UTC")
        else:
            as_of = stored[int(rng.integers(0, len(stored)))] - pd.Timedelta(kind - 1, "ns")
        chosen = (
            None if rng.random() < 0.5 else [str(s) for s in rng.choice(symbols, int(rng.integers(1, 10)))]
        )
        features = [str(name) for name in rng.choice(FEATURES, int(rng.integers(1, 6)), replace=False)]
        staleness = int(rng.integers(0, 8))
        a = memory.cross_section(as_of, symbols=chosen, features=features, max_staleness=staleness)
        b = duck.cross_section(as_of, symbols=chosen, features=features, max_staleness=staleness)
        pd.testing.assert_frame_equal(a.rows, b.rows)
        assert a.stale == b.stale
        assert (a.rows["available_at"] <= as_of).all()
        assert (as_of - a.rows["available_at"] <= staleness * pd.Timedelta(days=1)).all()
    for symbol in symbols[:8]:
        as_of = pd.Timestamp(int(rng.integers(low, high)), tz="UTC")
        pd.testing.assert_frame_equal(
            memory.history(symbol, as_of=as_of, features="all"),
            duck.history(symbol, as_of=as_of, features="all"),
        )


def test_the_index_between_checkpoints_finds_the_same_rows(market: tuple) -> None:
    """A checkpoint table too small for one row per instant makes the index bisect; answers must not move."""
    data_dir, run, _ = market
    view = RunView.load(Catalog(data_dir), run)
    columns = ColumnBudget(1 << 30)
    exact, coarse = RunIndex(run, columns), RunIndex(run, columns, max_cells=50)
    everyone = np.arange(len(run.symbols))
    for as_of in pd.date_range("2023-12-30", "2024-04-05", freq="17h", tz="UTC"):
        sight = Sight.at(as_of, (as_of - pd.Timedelta(days=4)).as_unit("ns").value)
        answers = [
            point_in_time(index.newest(everyone, ["Rec.CCI20"], until=sight.until), sight, view, everyone)
            for index in (exact, coarse)
        ]
        (rows_a, stale_a), (rows_b, stale_b) = answers
        np.testing.assert_array_equal(rows_a.code, rows_b.code)
        np.testing.assert_array_equal(rows_a.available_at, rows_b.available_at)
        assert stale_a == stale_b


def test_a_pinned_run_keeps_its_answers_after_a_newer_publish(tmp_path) -> None:
    old_rows = feature_rows({"X:A": daily("2024-01-01", 30), "X:B": daily("2024-01-01", 30)}, seed=1)
    new_rows = feature_rows({"X:A": daily("2024-01-01", 40)}, seed=2)
    first = publish(tmp_path, old_rows)
    store = FeatureStore(tmp_path)
    pinned_before = store.cross_section("2024-01-20", run_id=first.run_id, features="all")
    assert store.cross_section("2024-01-20").run_id == first.run_id
    second = publish(tmp_path, new_rows)
    pinned_after = store.cross_section("2024-01-20", run_id=first.run_id, features="all")
    pd.testing.assert_frame_equal(pinned_before.rows, pinned_after.rows)
    latest = store.cross_section("2024-01-20", features="all")
    assert latest.run_id == second.run_id
    assert (store.run(), store.run(first.run_id)) == (second, first)
    assert latest.rows["symbol"].tolist() == ["X:A"]
    for section, rows in ((pinned_after, old_rows), (latest, new_rows)):
        expected = rows[rows["ts"] == pd.Timestamp("2024-01-19", tz="UTC")]
        np.testing.assert_array_equal(section.rows["close"], expected["close"])
        np.testing.assert_array_equal(section.rows["Recommend.All"], expected["Recommend.All"])


def test_unknown_run_symbol_feature_and_bad_input_are_named(market: tuple, tmp_path) -> None:
    store = FeatureStore(market[0])
    with pytest.raises(RunNotFound, match="20990101T000000Z-abcdef"):
        store.cross_section("2024-02-01", run_id="20990101T000000Z-abcdef")
    with pytest.raises(SymbolNotFound, match="X:NOPE"):
        store.history("X:NOPE")
    with pytest.raises(ValueError, match=r"'Recommend\.Everything'"):
        store.cross_section("2024-02-01", features=["Recommend.All", "Recommend.Everything"])
    with pytest.raises(ValueError, match="'yesterday-ish'"):
        store.cross_section("yesterday-ish")
    with pytest.raises(ValueError, match="max_staleness"):
        store.cross_section("2024-02-01", max_staleness=-1)
    with pytest.raises(ValueError, match="start"):
        store.history("X:EARLY", start="2024-02-01", end="2024-01-01")
    with pytest.raises(NoRunError, match="no run is published"):
        FeatureStore(tmp_path / "empty").cross_section("2024-02-01")
    assert isinstance(RunNotFound("x"), LookupError) and isinstance(NoRunError(), LookupError)


def test_feature_columns_share_one_budget_and_are_read_again_once_dropped(market: tuple) -> None:
    """Memory follows the features asked for, across runs: past the budget the least recently used column
    goes, and asking for it again reads it again, with the same answer."""
    data_dir, *_ = market
    one_column = 8 * Catalog(data_dir).latest_run().rows  # a float column of the run
    store = FeatureStore(data_dir, column_bytes=2 * one_column)
    first = store.cross_section("2024-03-01", features=["RSI", "ADX"]).rows
    budget = store._source.columns
    assert budget._bytes == 2 * one_column
    store.cross_section("2024-03-01", features=["UO"])  # a third column: the least recent goes
    assert budget._bytes == 2 * one_column and len(budget._held) == 2
    again = store.cross_section("2024-03-01", features=["RSI", "ADX"]).rows
    pd.testing.assert_frame_equal(again, first)
