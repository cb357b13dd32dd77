"""The historical backfill end to end: real lakes (SyntheticUniverse), real Parquet runs, a real DuckDB
catalog, and reads through `FeatureStore`, the one point-in-time read function."""

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal

from service.backfill import (
    STAGES,
    BackfillCancelled,
    BackfillFailed,
    HistoricalFeatureBackfill,
)
from service.jobs.admission import resolve_inside
from service.ratings.engine import rate
from service.sample import SampleFiles, SyntheticUniverse
from service.sources import lake as lake_module
from service.sources.bars import REFUSAL_REASONS, clean_bars
from service.sources.lake import Lake
from storage.catalog import Catalog
from storage.read import FeatureStore
from vocabulary.errors import AsofError, InvalidInput
from vocabulary.features import FEATURES, VOTES
from vocabulary.spec import BackfillSpec
from vocabulary.time import parse_instant

UNIVERSE = SyntheticUniverse(n_symbols=10, n_bars=500, seed=11)
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    return UNIVERSE.write(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def full(sample: SampleFiles, tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureStore, str]:
    """The whole lake backfilled once, read-only for the tests that compare against it."""
    data_dir = tmp_path_factory.mktemp("full")
    result = HistoricalFeatureBackfill(data_dir, BackfillSpec(lake=sample.lake, interval="1d")).run()
    return FeatureStore(data_dir), result.run.run_id


def lake_file(lake: Path, symbol: str) -> Path:
    exchange, ticker = symbol.split(":")
    return lake / f"{exchange}_{ticker}_1d.parquet"


def cut_lake(lake: Path, into: Path, as_of: pd.Timestamp) -> Path:
    """A copy of the lake holding only the bars closed by `as_of` (ts + 1 day <= as_of)."""
    into.mkdir()
    for file in lake.iterdir():
        bars = pd.read_parquet(file)
        closes = pd.to_datetime(bars["timestamp"], unit="s", utc=True) + DAY
        bars[closes <= as_of].to_parquet(into / file.name, index=False)
    return into


def answers(store: FeatureStore, as_of, run_id: str | None = None) -> tuple[pd.DataFrame, list[str]]:
    section = store.cross_section(as_of, features="all", run_id=run_id)
    return section.rows, section.stale


@pytest.mark.parametrize("as_of", ["2015-09-30", "2016-02-17T12:00:00Z", "2016-05-14T00:00:00Z"])
def test_a_lake_cut_at_t_answers_as_of_t_exactly_as_the_full_backfill(
    sample: SampleFiles, full: tuple[FeatureStore, str], tmp_path: Path, as_of: str
) -> None:
    as_of = parse_instant(as_of)
    cut = cut_lake(sample.lake, tmp_path / "lake", as_of)
    HistoricalFeatureBackfill(tmp_path / "data", BackfillSpec(lake=cut, interval="1d")).run()

    rows, stale = answers(FeatureStore(tmp_path / "data"), as_of)
    expected_rows, expected_stale = answers(full[0], as_of, full[1])

    assert_frame_equal(rows, expected_rows, check_exact=True)
    assert stale == expected_stale
    assert len(rows) >= 5 and rows["warm"].any()
    assert (rows["available_at"] <= as_of).all()


def test_stores_the_requested_span_after_warming_up_on_all_history(
    sample: SampleFiles, full: tuple[FeatureStore, str], tmp_path: Path
) -> None:
    start, end = pd.Timestamp("2015-09-01", tz="UTC"), pd.Timestamp("2015-12-31", tz="UTC")
    result = HistoricalFeatureBackfill(
        tmp_path, BackfillSpec(lake=sample.lake, interval="1d", start="2015-09-01", end="2015-12-31")
    ).run()
    store, full_run = full

    stored = [status for status in result.statuses if status.rows]
    assert len(stored) >= 5
    spanned = FeatureStore(tmp_path, index=False)
    for status in stored:
        history = spanned.history(status.symbol, features="all")
        everything = store.history(status.symbol, run_id=full_run, features="all")
        in_span = everything[everything["ts"].between(start, end)].reset_index(drop=True)
        assert_frame_equal(history.reset_index(drop=True), in_span, check_exact=True)
        assert (status.first_ts, status.last_ts, status.rows) == (
            in_span["ts"].iloc[0],
            in_span["ts"].iloc[-1],
            len(in_span),
        )
    first_bar = spanned.history(UNIVERSE.symbols[0], features="all").iloc[0]
    assert first_bar["ts"] == start
    assert first_bar["bars"] == (start - pd.Timestamp(UNIVERSE.start, tz="UTC")) / DAY + 1  # listed at bar 0
    assert first_bar["warm"]
    assert (result.run.start, result.run.end) == (start, pd.Timestamp("2015-12-31", tz="UTC"))


def test_the_returns_matrix_picks_the_universe_and_the_default_span(
    sample: SampleFiles, tmp_path: Path
) -> None:
    returns = pd.read_parquet(sample.returns)
    chosen = UNIVERSE.symbols[:3]
    returns.loc["2015-06-01":"2015-07-31", chosen].to_parquet(tmp_path / "returns.parquet")

    result = HistoricalFeatureBackfill(
        tmp_path / "data", BackfillSpec(lake=sample.lake, interval="1d", returns=tmp_path / "returns.parquet")
    ).run()

    assert [status.symbol for status in result.statuses] == chosen
    assert sorted(result.run.symbols) == chosen
    assert (result.run.start, result.run.end) == (
        pd.Timestamp("2015-06-01", tz="UTC"),
        pd.Timestamp("2015-07-31", tz="UTC"),
    )


def test_chunks_progress_timings_and_lag(
    sample: SampleFiles, full: tuple[FeatureStore, str], tmp_path: Path
) -> None:
    calls: list[tuple[int, int]] = []
    lag = pd.Timedelta(minutes=15)
    result = HistoricalFeatureBackfill(
        tmp_path, BackfillSpec(lake=sample.lake, interval="1d", lag=lag), chunk_bars=1000
    ).run(progress=lambda done, total: calls.append((done, total)))

    assert calls[0] == (0, 10) and calls[-1] == (10, 10) and len(calls) >= 5  # two symbols a chunk at most
    assert all(total == 10 for _, total in calls) and calls == sorted(calls)
    assert set(result.timings) == set(STAGES) and all(seconds > 0 for seconds in result.timings.values())
    assert result.run.lag == lag
    store, full_run = full
    chunks = FeatureStore(tmp_path, index=False)
    for symbol in UNIVERSE.symbols:
        chunked = chunks.history(symbol, features="all")
        whole = store.history(symbol, run_id=full_run, features="all")
        assert (chunked["available_at"] == chunked["ts"] + DAY + lag).all()
        assert_frame_equal(
            chunked.drop(columns="available_at"), whole.drop(columns="available_at"), check_exact=True
        )


def write_bad_lake(root: Path) -> tuple[SampleFiles, dict[str, str]]:
    """A lake where some symbols are broken, each in its own way; returns the files and symbol -> fault."""
    universe = SyntheticUniverse(
        n_symbols=8, n_bars=700, seed=2, late_listing_share=0, delisted_share=0, zero_volume_share=0
    )
    files = universe.write(root)
    kinds = ["unreadable", "no close", "refused", "flawed", "missing", "mislabelled", "off grid"]
    faults = dict(zip(universe.symbols, kinds, strict=False))
    for symbol, fault in faults.items():
        path = lake_file(files.lake, symbol)
        if fault == "unreadable":
            path.write_bytes(b"this is not parquet")
        elif fault == "no close":
            pq.write_table(pq.read_table(path).drop(["close"]), path)
        elif fault == "missing":
            path.unlink()
        else:
            bars = pd.read_parquet(path)
            if fault == "refused":  # 10 of 700 rows (1.4%) with high below the low
                bars.loc[100:109, "high"] = bars.loc[100:109, "low"] / 2
            elif fault == "mislabelled":  # daily epochs divided by 1000: bars 86.4 s apart, in January 1970
                bars["timestamp"] = bars["timestamp"] / 1000
            elif fault == "off grid":  # daily bars opening at 00:30 UTC
                bars["timestamp"] += 1800
            else:  # one row per refusal rule (6 of 700, under 1%), one duplicate, one untraded bar
                bars.loc[20, "close"] = float("nan")
                bars.loc[40, "open"] = -1.0
                bars.loc[50, "high"] = 1e308
                bars.loc[60, "high"] = bars.loc[60, "low"] / 2
                close = bars.loc[80, "close"]
                bars.loc[80, ["open", "high", "low"]] = [close * 1.01, close * 1.02, close * 1.005]
                bars.loc[90, "volume"] = -1.0
                bars.loc[120, "volume"] = 0.0
                bars = pd.concat([bars, bars.loc[[300]]], ignore_index=True)
            bars.to_parquet(path, index=False)
    return files, faults


def test_each_bad_source_fails_on_its_own_with_its_reason(tmp_path: Path) -> None:
    files, faults = write_bad_lake(tmp_path / "in")
    listed = json.loads(files.candidates.read_text())
    candidates = [*listed, {"symbol": "SYNTH:NOPE"}, {"symbol": "NOEXCHANGE"}]
    files.candidates.write_text(json.dumps(candidates))

    result = HistoricalFeatureBackfill(
        tmp_path / "data", BackfillSpec(lake=files.lake, interval="1d", candidates=files.candidates)
    ).run()

    status = {status.symbol: status for status in result.statuses}
    by_fault = {fault: status[symbol] for symbol, fault in faults.items()}
    assert len(status) == 10
    assert (
        "unreadable" in by_fault["unreadable"].reason
        and "SYNTH_S0001_1d.parquet" in by_fault["unreadable"].reason
    )
    assert "missing column 'close'" in by_fault["no close"].reason
    assert "10 of 700 bars refused" in by_fault["refused"].reason
    assert by_fault["refused"].refused_reasons == {"high < max(open, close, low)": 10}
    assert "not found in lake" in by_fault["missing"].reason
    assert by_fault["mislabelled"].reason == (
        "bars 1m26.4s apart (1970-01-17T10:27:50.400000Z and 1970-01-17T10:29:16.800000Z) are closer than "
        "the declared interval 1d; check the interval and the timestamps' unit"
    )
    assert by_fault["mislabelled"].rows_in == 700  # the cleaning counts are the lake's rows
    assert by_fault["off grid"].reason == (
        "bar at 2015-01-01T00:30:00Z is off the 1d grid: its bars open at 00:00 UTC"
    )
    for unknown in ("SYNTH:NOPE", "NOEXCHANGE"):
        assert "not found in lake" in status[unknown].reason and "candidates" in status[unknown].reason
    failed = {symbol for symbol, s in status.items() if not s.ok}
    assert failed == {symbol for symbol, fault in faults.items() if fault != "flawed"} | {
        "SYNTH:NOPE",
        "NOEXCHANGE",
    }

    flawed = by_fault["flawed"]
    assert flawed.ok and flawed.reason is None
    assert flawed.refused_reasons == dict.fromkeys(REFUSAL_REASONS, 1)
    assert (flawed.rows_in, flawed.duplicates, flawed.zero_volume, flawed.refused, flawed.rows) == (
        701,
        1,
        1,
        6,
        693,
    )
    good = set(status) - failed
    assert all(status[symbol].rows == 700 for symbol in good - {flawed.symbol})
    assert set(result.run.symbols) == good
    served = FeatureStore(tmp_path / "data").cross_section("2016-05-16").rows
    assert set(served["symbol"]) == good
    stored = {
        s.symbol: (s.ok, s.reason, s.rows)
        for s in Catalog(tmp_path / "data").symbol_status(result.run.run_id)
    }
    assert stored == {s.symbol: (s.ok, s.reason, s.rows) for s in result.statuses}


def published(data_dir: Path) -> tuple[list[str], list[str], pd.DataFrame, list[str]]:
    """Everything a reader of the store can see: run ids, published run folders, a served cross-section."""
    runs = [run.run_id for run in Catalog(data_dir).runs()]
    folders = sorted(path.name for path in (data_dir / "runs").iterdir() if not path.name.startswith("."))
    rows, stale = answers(FeatureStore(data_dir), "2016-01-01")
    return runs, folders, rows, stale


def assert_unchanged(before, after) -> None:
    assert before[:2] == after[:2]
    assert_frame_equal(before[2], after[2], check_exact=True)
    assert before[3] == after[3]


@pytest.fixture
def served(sample: SampleFiles, tmp_path: Path) -> Path:
    """A data dir already serving one run."""
    data_dir = tmp_path / "served"
    HistoricalFeatureBackfill(
        data_dir, BackfillSpec(lake=sample.lake, interval="1d", symbols=UNIVERSE.symbols[:4])
    ).run()
    return data_dir


def test_a_backfill_where_everything_fails_publishes_nothing(served: Path, tmp_path: Path) -> None:
    before = published(served)
    files, faults = write_bad_lake(tmp_path / "in")
    bad = [symbol for symbol, fault in faults.items() if fault != "flawed"]

    with pytest.raises(BackfillFailed, match="every symbol failed, nothing published") as failure:
        HistoricalFeatureBackfill(served, BackfillSpec(lake=files.lake, interval="1d", symbols=bad)).run()

    assert [status.symbol for status in failure.value.statuses] == bad
    assert not any(status.ok for status in failure.value.statuses)
    assert_unchanged(before, published(served))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2031-01-01"}, "no symbol has a bar between 2031-01-01"),
        ({"candidates": "empty.json"}, "the universe is empty: candidates file"),
        ({"candidates": "absent.json"}, "absent.json: no such file"),
        ({"returns": "absent.parquet"}, "absent.parquet: no such file"),
        ({"lake": "absent"}, "no such folder or file"),
    ],
)
def test_a_backfill_that_cannot_store_anything_leaves_the_store_unchanged(
    served: Path, sample: SampleFiles, tmp_path: Path, kwargs: dict, message: str
) -> None:
    before = published(served)
    (tmp_path / "empty.json").write_text("[]")
    for name in ("candidates", "returns", "lake"):
        if name in kwargs:
            kwargs[name] = tmp_path / kwargs[name]
    backfill = HistoricalFeatureBackfill(
        served, BackfillSpec(**{"lake": sample.lake, "interval": "1d", **kwargs})
    )

    with pytest.raises(AsofError, match=message):
        backfill.run()

    assert_unchanged(before, published(served))


def test_a_cancelled_backfill_publishes_nothing(served: Path, sample: SampleFiles) -> None:
    before = published(served)
    calls: list[int] = []

    with pytest.raises(BackfillCancelled):
        HistoricalFeatureBackfill(served, BackfillSpec(lake=sample.lake, interval="1d"), chunk_bars=500).run(
            progress=lambda done, total: calls.append(done), cancelled=lambda: len(calls) > 1
        )

    assert calls[0] == 0 and 0 < calls[-1] < 10
    assert_unchanged(before, published(served))


@pytest.mark.parametrize("history_bars", [None, 90])
def test_rules_and_history_bars_reach_the_engine_and_the_run_records_them(
    sample: SampleFiles, tmp_path: Path, history_bars: int | None
) -> None:
    """A legacy backfill of a span, over all history or over the last 90 bars of each bar: its rows are the
    engine's on the cleaned lake under those options (the backfill rates only the bars the span reads), not
    the default ones, and the run records both options."""
    spec = BackfillSpec(
        lake=sample.lake,
        interval="1d",
        start="2015-09-01",
        end="2015-12-31",
        rules="legacy",
        history_bars=history_bars,
    )
    run = HistoricalFeatureBackfill(tmp_path, spec).run().run
    assert Catalog(tmp_path).run(run.run_id).spec == spec
    lake = Lake(sample.lake, "1d")
    frames = {symbol: clean_bars(lake.read(symbol))[0] for symbol in run.symbols}
    in_span = rate(frames)["ts"].between(spec.start, spec.end)
    expected = rate(frames, rules="legacy", history_bars=history_bars)[in_span].reset_index(drop=True)
    store = FeatureStore(tmp_path, index=False)
    stored = pd.concat([store.history(symbol, features="all") for symbol in run.symbols], ignore_index=True)
    for name in ("symbol", "ts", "bars", "warm"):
        assert stored[name].tolist() == expected[name].tolist(), name
    for name in FEATURES:
        np.testing.assert_array_equal(stored[name].astype("float64"), expected[name], err_msg=name)
    default = rate(frames)[in_span].reset_index(drop=True)
    assert (default[list(VOTES)].fillna(9) != expected[list(VOTES)].fillna(9)).any(axis=None)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": "2d"}, "interval: unknown interval '2d'"),
        (
            {"lag": pd.Timedelta(seconds=-1)},
            "lag: must be a duration from 0 to 365 days in whole microseconds",
        ),
        ({"lag": pd.Timedelta(nanoseconds=1500)}, "lag: must be a duration from 0 to 365 days"),
        ({"lag": pd.Timedelta(days=366)}, "lag: must be a duration from 0 to 365 days"),
        (
            {"start": "2020-02-01", "end": "2020-01-01"},
            "end: end 2020-01-01T00:00:00\\+00:00 is before start",
        ),
        ({"start": "yesterday-ish"}, "start: 'yesterday-ish' is not an ISO-8601 instant"),
        ({"symbols": []}, "symbols: empty universe: give at least one symbol"),
        ({"symbols": ["A:B"], "candidates": "c.json"}, "candidates: give either candidates or symbols"),
        ({"rules": "screener"}, "rules: unknown rule set 'screener'; expected one of scanner, chart, legacy"),
        ({"history_bars": 0}, "history_bars: must be a whole number of bars from 1 to 100000"),
        ({"history_bars": "700"}, "history_bars: must be a whole number of bars"),
    ],
)
def test_bad_specs_are_refused_naming_the_field(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as refused:
        BackfillSpec(**{"lake": str(tmp_path), "interval": "1d", **kwargs})
    assert refused.value.field == message.partition(":")[0]


def test_a_chunk_below_one_bar_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="chunk_bars: must be at least 1"):
        HistoricalFeatureBackfill(tmp_path, BackfillSpec(lake=str(tmp_path), interval="1d"), chunk_bars=0)


def test_a_spec_round_trips_through_its_record_and_keys_equal_work_alike(tmp_path: Path) -> None:
    spec = BackfillSpec(
        lake="lake",
        interval="1h",
        symbols=["B:Y", "A:X", "B:Y"],
        start="2024-03-01T02:00:00+02:00",
        lag="PT5M",
    )
    assert spec.symbols == ("A:X", "B:Y")
    assert spec.start == pd.Timestamp("2024-03-01T00:00:00Z")
    assert BackfillSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    same = BackfillSpec(lake="lake", interval="1h", symbols=["A:X", "B:Y"], start="2024-03-01", lag="300s")
    assert same.key() == spec.key()
    assert replace(spec, keep_zero_volume=True).key() != spec.key()
    with pytest.raises(InvalidInput, match="unknown field"):
        BackfillSpec.from_dict({**spec.to_dict(), "colour": "red"})
    assert replace(spec, rules="chart").key() != spec.key() != replace(spec, history_bars=700).key()


def test_a_record_written_before_rules_and_history_bars_reads_back_with_the_defaults() -> None:
    record = BackfillSpec(lake="lake", interval="1d").to_dict()
    del record["rules"], record["history_bars"]
    spec = BackfillSpec.from_dict(record)
    assert (spec.rules, spec.history_bars) == ("scanner", None)


def test_paths_must_resolve_inside_the_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "lake").mkdir(parents=True)
    (data_dir / "escape").symlink_to(tmp_path)

    assert resolve_inside(data_dir, "lake") == (data_dir / "lake").resolve()
    assert resolve_inside(data_dir, data_dir / "lake" / "x.json") == (data_dir / "lake" / "x.json").resolve()
    for outside in ("../secrets", "/etc/passwd", "lake/../../x", "escape/lake"):
        with pytest.raises(ValueError, match=f"path '{outside}' resolves outside the data directory"):
            resolve_inside(data_dir, outside)


def test_a_backfill_killed_mid_run_leaves_the_previous_run_served(served: Path, tmp_path: Path) -> None:
    """A real `asof backfill` process, SIGKILLed once its progress shows it mid-way."""
    big = SyntheticUniverse(n_symbols=96, n_bars=2520, seed=5).write(tmp_path / "big")
    before = published(served)
    command = [
        str(Path(sys.executable).with_name("asof")),
        *("backfill", "--lake", str(big.lake), "--interval", "1d", "--chunk-bars", str(8 * 2520)),
        *("--data-dir", str(served)),
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        progress = []
        for line in process.stderr:
            if line.startswith("backfill: "):
                done, total = map(int, line.split()[1].split("/"))
                progress.append(done)
                if 0 < done <= total // 2:
                    os.kill(process.pid, signal.SIGKILL)
                    break
    finally:
        process.kill()
        process.wait()

    assert process.returncode == -signal.SIGKILL
    assert progress and 0 < progress[-1] <= 48, f"not killed mid-way; progress seen: {progress}"
    assert_unchanged(before, published(served))


def test_a_long_file_lake_is_read_once_however_many_chunks_rate_it(
    full: tuple[FeatureStore, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers on threads share the backfill's Lake: one read of the long file, not one per chunk."""
    long = pd.concat([frame.assign(symbol=symbol) for symbol, frame in UNIVERSE.frames().items()])
    long.to_parquet(tmp_path / "all.parquet", index=False)
    reads: list[Path] = []
    read_table = lake_module.load_table
    monkeypatch.setattr(lake_module, "load_table", lambda path: reads.append(path) or read_table(path))

    result = HistoricalFeatureBackfill(
        tmp_path / "data", BackfillSpec(lake=tmp_path / "all.parquet", interval="1d"), chunk_bars=1000
    ).run()

    assert reads == [tmp_path / "all.parquet"]
    store, full_run = full
    chunks = FeatureStore(tmp_path / "data", index=False)
    for symbol in UNIVERSE.symbols:
        assert_frame_equal(
            chunks.history(symbol, features="all"),
            store.history(symbol, run_id=full_run, features="all"),
            check_exact=True,
        )
    assert result.run.rows == store.catalog.run(full_run).rows
