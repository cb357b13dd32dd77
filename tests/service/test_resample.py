"""Higher intervals built from a lower one (`from_interval`), end to end: a resampled backfill answers exactly
as a backfill of a lake that holds the higher bars directly, aggregated here independently with pandas; the
point-in-time rule holds at the period's close; only complete periods are stored; the CLI and `POST
/backfill` do the same. Plus the refusal of bars whose interval is mislabelled."""

import json
from pathlib import Path

import httpx
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal
from typer.testing import CliRunner

from backtest.engine import Backtest
from backtest.selection import SelectionPolicy
from cli import app
from service.audit.run import audit_run
from service.backfill import BackfillFailed, HistoricalFeatureBackfill
from service.sample import SampleFiles, SyntheticUniverse
from storage.catalog import RunInfo
from storage.read import FeatureStore
from tests.support.server import running_server, wait_for_job
from vocabulary.errors import InvalidInput
from vocabulary.spec import BackfillSpec

# Daily bars from a Wednesday, so every symbol's first week and month are partial; some list late.
DAILY = SyntheticUniverse(n_symbols=5, n_bars=1300, seed=21, start="2015-01-07", zero_volume_share=0.01)
HOURLY = SyntheticUniverse(n_symbols=3, n_bars=900, interval="1h", seed=22, start="2024-01-03T05:00Z")
PERIODS = {  # target interval -> (pandas resample rule, the period's length)
    "1W": ("W-MON", pd.DateOffset(weeks=1)),
    "1M": ("MS", pd.DateOffset(months=1)),
    "4h": ("4h", pd.DateOffset(hours=4)),
}
CASES = [(DAILY, "1d", "1W"), (DAILY, "1d", "1M"), (HOURLY, "1h", "4h")]


def aggregate(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    """The complete periods of `interval` from finer raw `bars`, built with pandas alone: traded bars only
    (cleaning drops untraded ones), open of the first, max high, min low, close of the last, summed volume;
    a period is complete when the lake holds a bar opening at or after its end."""
    rule, length = PERIODS[interval]
    traded = bars[bars["volume"] != 0].set_index("ts")
    periods = traded.resample(rule, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    periods = periods.dropna(subset=["close"])
    return periods[periods.index + length <= bars["ts"].max()].reset_index()


def write_lake(frames: dict[str, pd.DataFrame], folder: Path, interval: str) -> Path:
    """Bars as a lake folder in tradingview-scraper's naming, with epoch-second timestamps."""
    folder.mkdir(parents=True, exist_ok=True)
    for symbol, bars in frames.items():
        exchange, ticker = symbol.split(":")
        seconds = (bars["ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
        bars.drop(columns="ts").assign(timestamp=seconds).to_parquet(
            folder / f"{exchange}_{ticker}_{interval}.parquet", index=False
        )
    return folder


def backfill(data_dir: Path, **spec) -> RunInfo:
    return HistoricalFeatureBackfill(data_dir, BackfillSpec(**spec)).run().run


def everything(data_dir: Path, run: RunInfo) -> dict[str, pd.DataFrame]:
    store = FeatureStore(data_dir, index=False)
    return {symbol: store.history(symbol, run_id=run.run_id, features="all") for symbol in run.symbols}


@pytest.fixture(scope="module")
def lakes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SampleFiles]:
    root = tmp_path_factory.mktemp("lakes")
    return {"1d": DAILY.write(root / "daily"), "1h": HOURLY.write(root / "hourly")}


@pytest.mark.parametrize(("universe", "lower", "higher"), CASES, ids=[case[2] for case in CASES])
def test_resampled_ratings_equal_those_of_a_lake_holding_the_higher_bars(
    lakes: dict[str, SampleFiles], tmp_path: Path, universe: SyntheticUniverse, lower: str, higher: str
) -> None:
    direct = {symbol: aggregate(bars, higher) for symbol, bars in universe.frames().items()}
    direct_lake = write_lake(direct, tmp_path / "direct", higher)

    resampled = backfill(tmp_path / "resampled", lake=lakes[lower].lake, interval=higher, from_interval=lower)
    reference = backfill(tmp_path / "reference", lake=direct_lake, interval=higher)

    assert resampled.symbols == reference.symbols == universe.symbols
    ours, theirs = (
        everything(tmp_path / "resampled", resampled),
        everything(tmp_path / "reference", reference),
    )
    for symbol in universe.symbols:
        assert_frame_equal(ours[symbol], theirs[symbol], check_exact=True)
        assert ours[symbol]["ts"].tolist() == direct[symbol]["ts"].tolist()
    compared = pd.concat(ours.values())
    assert compared["Recommend.All"].notna().sum() > len(compared) / 2  # the ratings were really compared
    assert (resampled.interval, resampled.spec.from_interval) == (higher, lower)


@pytest.fixture(scope="module")
def weekly(lakes: dict[str, SampleFiles], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunInfo]:
    data_dir = tmp_path_factory.mktemp("weekly")
    return data_dir, backfill(data_dir, lake=lakes["1d"].lake, interval="1W", from_interval="1d")


def test_a_weeks_row_is_visible_at_the_weeks_close_and_not_one_nanosecond_before(
    weekly: tuple[Path, RunInfo],
) -> None:
    data_dir, _ = weekly
    symbol = DAILY.symbols[0]
    store = FeatureStore(data_dir)
    close = pd.Timestamp("2016-03-14T00:00:00Z")  # a Monday: the week of 2016-03-07 closes
    before = store.cross_section(close - pd.Timedelta(1, "ns"), symbols=[symbol]).rows
    at = store.cross_section(close, symbols=[symbol]).rows
    assert before["ts"].tolist() == [pd.Timestamp("2016-02-29T00:00:00Z")]
    assert at["ts"].tolist() == [pd.Timestamp("2016-03-07T00:00:00Z")]
    assert at["available_at"].tolist() == [close]
    assert store.cross_section("2016-04-04T00:00:00Z", symbols=[symbol], max_staleness=0).stale == []


def test_the_last_incomplete_week_is_not_stored_and_a_partial_first_week_is(
    weekly: tuple[Path, RunInfo],
) -> None:
    data_dir, run = weekly
    frames = DAILY.frames()
    store = FeatureStore(data_dir, index=False)
    for symbol, bars in frames.items():
        rows = store.history(symbol, run_id=run.run_id)
        first_day, last_day = bars["ts"].iloc[0], bars["ts"].iloc[-1]
        monday = first_day.normalize() - pd.Timedelta(days=first_day.day_of_week)
        assert rows["ts"].iloc[0] == monday and rows["bars"].iloc[0] == 1  # partial: listed mid-week
        assert rows["available_at"].iloc[-1] <= last_day  # the lake holds a bar at or after its close
        assert rows["available_at"].iloc[-1] + pd.Timedelta(weeks=1) > last_day  # the next one is open
    # The lake ends on Sunday 2018-07-29: that week's bars are all there, but no bar opens at or after its
    # close, so the newest may still be forming, and the week is left out.
    last_day = frames[DAILY.symbols[0]]["ts"].iloc[-1]
    assert last_day == pd.Timestamp("2018-07-29T00:00:00Z")
    assert run.end == pd.Timestamp("2018-07-16T00:00:00Z")


def test_an_end_past_the_period_says_the_data_is_complete(
    lakes: dict[str, SampleFiles], weekly: tuple[Path, RunInfo], tmp_path: Path
) -> None:
    symbol = DAILY.symbols[0]
    bars = DAILY.frames()[symbol]
    last_day = bars["ts"].iloc[-1]
    open_week = last_day.normalize() - pd.Timedelta(days=last_day.day_of_week)
    for end, stored in ((open_week + pd.Timedelta(days=6), False), (open_week + pd.Timedelta(weeks=1), True)):
        run = backfill(
            tmp_path / str(stored), lake=lakes["1d"].lake, interval="1W", from_interval="1d", end=end
        )
        rows = FeatureStore(tmp_path / str(stored)).history(symbol, run_id=run.run_id, features=["close"])
        assert (rows["ts"].iloc[-1] == open_week) is stored
    assert rows["close"].iloc[-1] == bars["close"].iloc[-1]  # the week so far, declared complete by `end`
    full = everything(weekly[0], weekly[1])[symbol]
    assert_frame_equal(rows.iloc[:-1], full[rows.columns], check_exact=True)


def test_a_lake_cut_at_t_with_end_t_answers_as_of_t_as_the_full_resampled_run(
    lakes: dict[str, SampleFiles], weekly: tuple[Path, RunInfo], tmp_path: Path
) -> None:
    """Point in time: the bars closed by T, declared complete up to T, give the rows the full run serves
    at T."""
    as_of = pd.Timestamp("2016-06-15T12:00:00Z")
    cut = {s: bars[bars["ts"] + pd.Timedelta(days=1) <= as_of] for s, bars in DAILY.frames().items()}
    cut = {symbol: bars for symbol, bars in cut.items() if len(bars)}
    lake = write_lake(cut, tmp_path / "cut", "1d")
    backfill(tmp_path / "data", lake=lake, interval="1W", from_interval="1d", end=as_of)

    served = FeatureStore(tmp_path / "data").cross_section(as_of, features="all")
    full = FeatureStore(weekly[0]).cross_section(as_of, features="all", run_id=weekly[1].run_id)
    assert_frame_equal(served.rows, full.rows, check_exact=True)
    assert len(served.rows) >= 3 and (served.rows["available_at"] <= as_of).all()


def test_the_audit_passes_a_resampled_run_with_every_check(
    weekly: tuple[Path, RunInfo], tmp_path: Path
) -> None:
    """Truncation recomputes from the daily lake cut at T; poisoning garbles the daily bars after T."""
    closes = pd.DataFrame(
        {symbol: aggregate(bars, "1W").set_index("ts")["close"] for symbol, bars in DAILY.frames().items()}
    )
    closes.pct_change(fill_method=None).to_parquet(tmp_path / "weekly_returns.parquet")
    backtest = Backtest(
        interval="1W", lookback=30, rebalance_every=8, policy=SelectionPolicy(top_k=2, threshold=None)
    )
    data_dir, run = weekly
    report = audit_run(
        data_dir,
        run.run_id,
        samples=6,
        seed=2,
        backtest=backtest,
        returns=tmp_path / "weekly_returns.parquet",
    )
    assert report.passed, report.to_markdown()
    for check in report.checks:
        assert check.skipped is None and check.compared > 0, check


def test_the_audit_passes_a_monthly_run(lakes: dict[str, SampleFiles], tmp_path: Path) -> None:
    run = backfill(tmp_path, lake=lakes["1d"].lake, interval="1M", from_interval="1d", lag="PT6H")
    report = audit_run(tmp_path, run.run_id, samples=9, seed=4, checks=("truncation", "serving"))
    assert report.passed, report.to_markdown()
    assert all(check.compared > 0 for check in report.checks)


@pytest.mark.parametrize(
    ("interval", "lower", "accepted"),
    [
        *(("4h", "1h", True), ("1W", "1d", True), ("1M", "1d", True), ("1M", "1m", True), ("1W", "4h", True)),
        *(("1M", "1W", False), ("1d", "1d", False), ("1d", "1W", False), ("1W", "1M", False)),
    ],
)
def test_from_interval_must_be_a_finer_interval_that_tiles_the_target(
    interval: str, lower: str, accepted: bool
) -> None:
    if accepted:
        assert BackfillSpec(lake="lake", interval=interval, from_interval=lower).lake_interval.name == lower
        return
    with pytest.raises(InvalidInput, match=f"cannot build {interval} bars from {lower} bars") as refused:
        BackfillSpec(lake="lake", interval=interval, from_interval=lower)
    assert refused.value.field == "from_interval"


def test_a_spec_with_from_interval_round_trips_and_is_another_job() -> None:
    spec = BackfillSpec(lake="lake", interval="1M", from_interval="1d")
    assert BackfillSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert spec.key() != BackfillSpec(lake="lake", interval="1M").key()
    with pytest.raises(InvalidInput, match=r"from_interval: unknown interval '1D'.*did you mean '1d'"):
        BackfillSpec(lake="lake", interval="1W", from_interval="1D")


def test_a_symbol_without_a_complete_period_fails_saying_so(tmp_path: Path) -> None:
    short = {"X:SHORT": DAILY.frames()[DAILY.symbols[0]].iloc[:4]}  # Wednesday to Saturday
    lake = write_lake(short, tmp_path / "lake", "1d")
    with pytest.raises(BackfillFailed) as failed:
        backfill(tmp_path / "data", lake=lake, interval="1W", from_interval="1d")
    (status,) = failed.value.statuses
    assert status.reason == (
        "no complete 1W period: the newest 1d bar opens at 2015-01-10T00:00:00Z, before the first period "
        "ends (an `end` past it says the data is complete)"
    )
    assert status.rows_in == 4


def test_daily_files_named_hourly_are_refused_and_the_others_go_on(
    lakes: dict[str, SampleFiles], tmp_path: Path
) -> None:
    """Issue 10 defect 9: daily bars in `_1h` files would be served 23 hours before the day closes."""
    mislabelled = {"X:DAILY": DAILY.frames()[DAILY.symbols[0]]}
    hourly = {"X:HOURLY": HOURLY.frames()[HOURLY.symbols[0]]}
    lake = write_lake({**mislabelled, **hourly}, tmp_path / "lake", "1h")
    reason = "the median spacing of the bars is 1d, not the declared 1h"
    for spec in ({"interval": "1h"}, {"interval": "4h", "from_interval": "1h"}):
        result = HistoricalFeatureBackfill(tmp_path / spec["interval"], BackfillSpec(lake=lake, **spec)).run()
        status = {status.symbol: status for status in result.statuses}
        assert (status["X:DAILY"].ok, status["X:DAILY"].reason) == (False, reason)
        assert status["X:HOURLY"].ok and status["X:HOURLY"].rows > 0
        assert result.run.symbols == ["X:HOURLY"]


def test_the_cli_and_post_backfill_build_the_same_run(
    lakes: dict[str, SampleFiles], weekly: tuple[Path, RunInfo], tmp_path: Path
) -> None:
    expected = everything(*weekly)
    cli_dir = tmp_path / "cli"
    command = ["backfill", "--lake", str(lakes["1d"].lake), "--interval", "1W", "--from", "1d"]
    result = CliRunner().invoke(app, [*command, "--data-dir", str(cli_dir)])
    assert result.exit_code == 0, result.output
    (run,) = FeatureStore(cli_dir).catalog.runs()
    assert everything(cli_dir, run).keys() == expected.keys()
    for symbol, rows in everything(cli_dir, run).items():
        assert_frame_equal(rows, expected[symbol], check_exact=True)

    api_dir = tmp_path / "api"
    DAILY.write(api_dir / "sample")
    with running_server(api_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        refused = client.post(
            "/backfill", json={"lake": "sample/lake", "interval": "1M", "from_interval": "1W"}
        )
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["from_interval"]
        body = {"lake": "sample/lake", "interval": "1W", "from_interval": "1d"}
        job = wait_for_job(client, client.post("/backfill", json=body).json()["job_id"])
        assert job["status"] == "succeeded", job
        assert job["params"]["from_interval"] == "1d"
        assert client.get(f"/runs/{job['run_id']}").json()["interval"] == "1W"
    for symbol, rows in everything(api_dir, FeatureStore(api_dir).run(job["run_id"])).items():
        assert_frame_equal(rows, expected[symbol], check_exact=True)
