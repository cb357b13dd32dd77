"""Updates end to end: a lake backfilled at T1, extended to T2 (symbols listed and delisted in between, a
vendor's correction of a bar before T1), updated from the run's carried state; the updated run holds,
value for value, the rows of a full backfill of the T2 lake, and its parent answers as before. Daily,
one-minute, weekly bars built from daily ones, a history window, a stored span cut short, the Ray
executor; the audit on an updated run. Real lakes, real runs, real reads."""

import shutil
from pathlib import Path
from types import ModuleType

import duckdb
import numpy as np
import pandas as pd
import pytest

from service.audit.run import audit_run
from service.backfill import BackfillResult, HistoricalFeatureBackfill
from service.compaction import compact_run
from service.update import CarriesNoState, update_run
from storage.catalog import Catalog, RunInfo
from storage.read import FeatureStore, parquet_sql
from tests.support.bars import random_walk_bars
from vocabulary.spec import BackfillSpec, CompactSpec, UpdateSpec
from vocabulary.time import parse_interval

DAY = pd.Timedelta(days=1)


def write_lake(folder: Path, frames: dict[str, pd.DataFrame], interval: str) -> Path:
    """Per-symbol Parquet files as tradingview-scraper names them, epoch seconds; the folder replaced."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for symbol, bars in frames.items():
        exchange, ticker = symbol.split(":")
        epoch = bars["ts"].array.as_unit("s").asi8
        bars.drop(columns="ts").assign(timestamp=epoch).to_parquet(
            folder / f"{exchange}_{ticker}_{interval}.parquet", index=False
        )
    return folder


def universe(interval: str, bars: int, t1: pd.Timestamp) -> tuple[dict, dict, pd.Timestamp]:
    """The lake as it stood at T1 and as it stands at T2, and the bar revised: X:NEW lists after T1,
    X:GONE delists between T1 and T2, X:DEAD before T1, X:REV has a bar before T1 corrected, and X:HALT
    has zero-volume bars (dropped) and a missing volume on both sides of T1."""
    freq = parse_interval(interval).length
    step = int(np.ceil(bars / 4))
    full = {
        "X:LONG": random_walk_bars(bars, seed=1, start="2020-01-06", freq=freq),
        "X:REV": random_walk_bars(bars, seed=2, start="2020-01-06", freq=freq),
        "X:HALT": random_walk_bars(bars, seed=3, start="2020-01-06", freq=freq),
        "X:GONE": random_walk_bars(bars, seed=4, start="2020-01-06", freq=freq).iloc[: 3 * step + step // 2],
        "X:DEAD": random_walk_bars(bars, seed=5, start="2020-01-06", freq=freq).iloc[: step + 7],
        "X:NEW": random_walk_bars(bars, seed=6, start="2020-01-06", freq=freq).iloc[3 * step + 11 :],
    }
    halt = full["X:HALT"]
    halt.loc[[40, 41, 3 * step + 5], "volume"] = 0.0
    halt.loc[[60, 3 * step + 9], "volume"] = np.nan
    before = {
        symbol: frame[frame["ts"] + freq <= t1]
        for symbol, frame in full.items()
        if (frame["ts"] + freq <= t1).any()
    }
    revised = full["X:REV"].copy()
    at = len(before["X:REV"]) - 30
    revised.loc[at, "close"] *= 1.003
    revised.loc[at, "high"] *= 1.05  # above its week's other highs too: the week is revised
    return before, {**full, "X:REV": revised}, revised.loc[at, "ts"]


def next_bar(bars: pd.DataFrame) -> pd.DataFrame:
    """`bars` and one more day: up 1% from the last close."""
    last = bars.iloc[-1]
    close = last["close"] * 1.01
    following = {"ts": last["ts"] + DAY, "open": last["close"], "high": close * 1.002, "low": last["close"]}
    return pd.concat(
        [bars, pd.DataFrame([following | {"close": close, "volume": last["volume"]}])], ignore_index=True
    )


def stored(run: RunInfo) -> pd.DataFrame:
    """Every stored row, by symbol and ts."""
    with duckdb.connect() as connection:
        return connection.sql(f"SELECT * FROM {parquet_sql(run.files())} ORDER BY symbol, ts").df()


def answers(data_dir: Path, run: RunInfo) -> list[pd.DataFrame]:
    """Cross-sections at a few instants and every symbol's history, by both read paths."""
    instants = pd.date_range(run.start, run.end + 3 * DAY, periods=5)
    found = []
    for index in (True, False):
        store = FeatureStore(data_dir, index=index)
        found += [store.cross_section(t, features="all", run_id=run.run_id).rows for t in instants]
        found += [store.history(s, features="all", run_id=run.run_id) for s in run.symbols]
    return found


def assert_frames_equal(ours: list[pd.DataFrame], theirs: list[pd.DataFrame]) -> None:
    assert len(ours) == len(theirs)
    for mine, expected in zip(ours, theirs, strict=True):
        pd.testing.assert_frame_equal(mine, expected, check_exact=True)


def status_table(data_dir: Path, run: RunInfo) -> list:
    return Catalog(data_dir).symbol_status(run.run_id)


def check_update(
    tmp_path: Path,
    interval: str,
    bars: int,
    t1: pd.Timestamp,
    *,
    executor: str = "local",
    **spec_options,
) -> BackfillResult:
    """Backfill the lake at T1, extend it to T2, update; the updated run against a full backfill of the T2
    lake (rows, spans, statuses, answers), the parent's answers against those it gave before, and each
    symbol's added rows against its parent's newest. Returns the update's result."""
    lake_interval = spec_options.get("from_interval", interval)
    before, after, _ = universe(lake_interval, bars, t1)
    lake = write_lake(tmp_path / "lake", before, lake_interval)
    spec = BackfillSpec(lake=lake, interval=interval, **spec_options)
    parent = HistoricalFeatureBackfill(tmp_path / "data", spec).run().run
    parent_rows, parent_answers = stored(parent), answers(tmp_path / "data", parent)
    write_lake(lake, after, lake_interval)

    result = update_run(tmp_path / "data", UpdateSpec(executor=executor))

    updated = result.run
    full = HistoricalFeatureBackfill(tmp_path / "full", spec).run().run
    pd.testing.assert_frame_equal(stored(updated), stored(full), check_exact=True)
    assert (updated.symbols, updated.start, updated.end, updated.rows) == (
        full.symbols,
        full.start,
        full.end,
        full.rows,
    )
    assert status_table(tmp_path / "data", updated) == status_table(tmp_path / "full", full)
    assert_frames_equal(answers(tmp_path / "data", updated), answers(tmp_path / "full", full))
    assert_frames_equal(answers(tmp_path / "data", parent), parent_answers)
    pd.testing.assert_frame_equal(stored(parent), parent_rows, check_exact=True)
    assert (updated.made_by, updated.parent, Catalog(tmp_path / "data").latest_run()) == (
        "update",
        parent.run_id,
        updated,
    )
    assert_adds_only_later_rows(parent_rows, updated, set(result.update.revised))
    return result


def assert_adds_only_later_rows(parent_rows: pd.DataFrame, updated: RunInfo, revised: set[str]) -> None:
    """Every row of the updated run that its parent did not hold, of a symbol the parent held and the
    update did not revise, is knowable only after the parent's newest row of that symbol."""
    keys = ["symbol", "ts"]
    rows = stored(updated)[[*keys, "available_at"]].merge(
        parent_rows[keys], on=keys, how="left", indicator=True
    )
    added = rows[rows["_merge"] == "left_only"]
    newest = parent_rows.groupby("symbol")["available_at"].max()
    carried = added[added["symbol"].isin(newest.index) & ~added["symbol"].isin(revised)]
    assert len(carried)
    assert (carried["available_at"].to_numpy() > newest[carried["symbol"]].to_numpy()).all()


T1_DAILY = pd.Timestamp("2020-06-03", tz="UTC")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"start": "2020-03-01", "end": "2020-07-15"},
        {"history_bars": 30, "start": "2020-02-20"},
        {"rules": "chart", "lag": pd.Timedelta(hours=2)},
    ],
    ids=["all history", "span", "history window", "chart rules with a lag"],
)
def test_an_updated_daily_run_equals_the_full_backfill_of_the_extended_lake(tmp_path: Path, options) -> None:
    result = check_update(tmp_path, "1d", 280, T1_DAILY, **options)

    _, _, revised_at = universe("1d", 280, T1_DAILY)
    assert result.update.revised == {"X:REV": revised_at}
    listed_in_span = "end" not in options  # X:NEW lists after the span's end
    assert result.update.added == (["X:NEW"] if listed_in_span else [])
    assert result.update.kept == {} and result.update.published


def test_an_updated_minute_run_equals_the_full_backfill_of_the_extended_lake(tmp_path: Path) -> None:
    t1 = pd.Timestamp("2020-01-06T12:00", tz="UTC")  # bar 720 of 2,000
    result = check_update(tmp_path, "1m", 2000, t1)

    _, _, revised_at = universe("1m", 2000, t1)
    assert result.update.revised == {"X:REV": revised_at} and result.update.added == ["X:NEW"]


def test_weekly_bars_built_from_daily_ones_add_a_week_once_it_has_ended(tmp_path: Path) -> None:
    """T1 falls on a Wednesday: the week holding it is not stored then, and the update adds it (and the
    weeks after), as a backfill at T2 stores them; the corrected day revises its week."""
    t1 = pd.Timestamp("2021-06-03", tz="UTC")  # a Thursday: the lake holds Monday to Wednesday
    result = check_update(tmp_path, "1W", 1000, t1, from_interval="1d")

    _, _, revised_day = universe("1d", 1000, t1)
    assert result.update.revised == {"X:REV": parse_interval("1W").open_of(revised_day)}
    assert result.run.end > t1


def test_the_ray_executor_updates_as_the_local_one(ray_cluster: ModuleType, tmp_path: Path) -> None:
    check_update(tmp_path, "1d", 280, T1_DAILY, executor="ray")


def test_an_updated_run_passes_the_audit_and_updates_chain(tmp_path: Path) -> None:
    """A second update of the first update's run (one more bar), then a compaction: the same rows, every
    answer the same, both audited clean (truncation invariance and serving)."""
    check_update(tmp_path, "1d", 280, T1_DAILY)
    _, after, _ = universe("1d", 280, T1_DAILY)
    write_lake(tmp_path / "lake", {**after, "X:LONG": next_bar(after["X:LONG"])}, "1d")

    second = update_run(tmp_path / "data", UpdateSpec()).run
    compacted = compact_run(tmp_path / "data", CompactSpec()).run

    assert second.lineage[1:] == Catalog(tmp_path / "data").run(second.parent).lineage
    assert (compacted.made_by, compacted.lineage) == ("compact", (second.run_id, *second.lineage))
    assert all(file.parent == compacted.path for file in compacted.reads())
    pd.testing.assert_frame_equal(stored(compacted), stored(second), check_exact=True)
    assert_frames_equal(answers(tmp_path / "data", compacted), answers(tmp_path / "data", second))
    for run in (second, compacted):
        report = audit_run(tmp_path / "data", run.run_id, samples=12, checks=("truncation", "serving"))
        assert report.status == "passed", report.to_dict()
    assert not update_run(tmp_path / "data", UpdateSpec()).update.published  # nothing new since


def test_nothing_new_publishes_nothing_and_a_run_without_a_state_cannot_be_updated(tmp_path: Path) -> None:
    before, _, _ = universe("1d", 280, T1_DAILY)
    lake = write_lake(tmp_path / "lake", before, "1d")
    run = HistoricalFeatureBackfill(tmp_path / "data", BackfillSpec(lake=lake, interval="1d")).run().run

    result = update_run(tmp_path / "data", UpdateSpec(run.run_id))

    assert (result.run, result.update.published, result.update.revised) == (run, False, {})
    assert [r.run_id for r in Catalog(tmp_path / "data").runs()] == [run.run_id]
    with duckdb.connect(str(tmp_path / "data" / "catalog.duckdb")) as connection:
        connection.execute("UPDATE runs SET states = []")  # as a run made before runs carried a state
    with pytest.raises(CarriesNoState, match=f"run {run.run_id} carries no state"):
        update_run(tmp_path / "data", UpdateSpec())


def test_a_symbol_that_cannot_be_read_now_keeps_its_rows_and_is_reported(tmp_path: Path) -> None:
    before, after, _ = universe("1d", 280, T1_DAILY)
    lake = write_lake(tmp_path / "lake", before, "1d")
    parent = HistoricalFeatureBackfill(tmp_path / "data", BackfillSpec(lake=lake, interval="1d")).run().run
    write_lake(lake, after, "1d")
    (lake / "X_LONG_1d.parquet").write_bytes(b"not parquet")

    result = update_run(tmp_path / "data", UpdateSpec())

    assert list(result.update.kept) == ["X:LONG"] and "unreadable" in result.update.kept["X:LONG"]
    store = FeatureStore(tmp_path / "data")
    kept = store.history("X:LONG", features="all", run_id=result.run.run_id)
    pd.testing.assert_frame_equal(kept, store.history("X:LONG", features="all", run_id=parent.run_id))
    (status,) = [s for s in status_table(tmp_path / "data", result.run) if s.symbol == "X:LONG"]
    assert status == next(s for s in status_table(tmp_path / "data", parent) if s.symbol == "X:LONG")
