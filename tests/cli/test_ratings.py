"""`asof ratings FILE`: its rows are the panel engine's on the cleaned file, and bad input gets one line
naming the column and row; through Typer's runner and once as the installed console script."""

import io
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from service.ratings.engine import rate_frame
from service.sample import SyntheticUniverse
from service.sources.bars import clean_bars, read_bars
from vocabulary.features import FEATURES, VOTES

COLUMNS = ["ts", "available_at", "bars", "warm", *FEATURES]
BAR_LENGTHS = {"1d": pd.Timedelta(days=1), "4h": pd.Timedelta(hours=4)}
ASOF = Path(sys.executable).with_name("asof")
runner = CliRunner()


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    """300 daily bars of a synthetic symbol with a few untraded (zero-volume) bars."""
    frames = SyntheticUniverse(n_symbols=12, n_bars=300, seed=3, zero_volume_share=0.02).frames()
    bars = frames["SYNTH:S0012"]
    assert (bars["volume"] == 0).sum() >= 3
    return bars


@pytest.fixture
def prices(tmp_path, bars) -> Path:
    """The bars as a CSV in tradingview-scraper's layout: epoch-second `timestamp`."""
    path = tmp_path / "prices.csv"
    table = bars.assign(timestamp=bars["ts"].astype("int64") // 10**9).drop(columns="ts")
    table[["timestamp", "open", "high", "low", "close", "volume"]].to_csv(path, index=False)
    return path


def expected_rows(
    path: Path, *, interval: str = "1d", rating: dict | None = None, **cleaning
) -> pd.DataFrame:
    """What the command must print: the engine on the cleaned file (with the `rating` options: rules,
    history_bars), votes as nullable integers."""
    rows = rate_frame(clean_bars(read_bars(path), **cleaning)[0], **(rating or {}))
    rows.insert(1, "available_at", rows["ts"] + BAR_LENGTHS[interval])
    return rows.astype(dict.fromkeys(VOTES, "Int8"))[COLUMNS]


def from_csv(text: str) -> pd.DataFrame:
    rows = pd.read_csv(io.StringIO(text))
    for column in ("ts", "available_at"):
        rows[column] = pd.to_datetime(rows[column], utc=True).astype("datetime64[ns, UTC]")
    return rows.astype(dict.fromkeys(VOTES, "Int8"))


def test_parquet_output_is_the_engine_on_the_cleaned_file(tmp_path, prices, bars):
    result = runner.invoke(app, ["ratings", str(prices), "-o", str(tmp_path / "out.parquet")])
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(tmp_path / "out.parquet")
    expected = expected_rows(prices)
    pd.testing.assert_frame_equal(written, expected)
    assert list(written.columns) == COLUMNS
    untraded = int((bars["volume"] == 0).sum())
    assert len(written) == 300 - untraded  # zero-volume bars dropped by default
    assert written["warm"].iloc[-1] and written["Recommend.All"].notna().iloc[-1]
    summary = f"{300 - untraded} bars rated of 300 rows (dropped: {untraded} zero-volume)"
    assert result.stderr == f"prices.csv: {summary} -> {tmp_path / 'out.parquet'}\n"


def test_csv_on_stdout_and_csv_file_carry_the_same_rows(tmp_path, prices):
    result = runner.invoke(app, ["ratings", str(prices)])
    assert result.exit_code == 0, result.output
    expected = expected_rows(prices)
    pd.testing.assert_frame_equal(from_csv(result.stdout), expected, check_exact=False, rtol=1e-15, atol=0)
    assert runner.invoke(app, ["ratings", str(prices), "--output", str(tmp_path / "out.csv")]).exit_code == 0
    assert (tmp_path / "out.csv").read_text() == result.stdout


def test_keep_zero_volume_and_interval(tmp_path, prices, bars):
    out = tmp_path / "kept.parquet"
    result = runner.invoke(
        app, ["ratings", str(prices), "-o", str(out), "--keep-zero-volume", "--interval", "4h"]
    )
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out)
    assert len(written) == 300
    expected = expected_rows(prices, interval="4h", keep_zero_volume=True)
    pd.testing.assert_frame_equal(written, expected)
    assert (written["available_at"] - written["ts"] == pd.Timedelta(hours=4)).all()
    assert "(dropped: none)" in result.stderr
    # Daily bars declared 4h: a backfill would refuse them; a quick check warns and rates them all the same.
    assert result.stderr.startswith(
        "asof ratings: warning: prices.csv: the median spacing of the bars is 1d, not the declared 4h\n"
    )


def test_monthly_bars_close_at_the_next_months_start(tmp_path):
    bars = SyntheticUniverse(n_symbols=1, n_bars=40, interval="1M", start="2021-01-01", flippers=1)
    monthly = bars.frames()["SYNTH:S0001"]
    path = tmp_path / "BINANCE_BTCUSDT_1M.csv"
    table = monthly.assign(timestamp=monthly["ts"].astype("int64") // 10**9).drop(columns="ts")
    table.to_csv(path, index=False)

    result = runner.invoke(app, ["ratings", str(path), "--interval", "1M", "-o", str(tmp_path / "m.parquet")])

    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    written = pd.read_parquet(tmp_path / "m.parquet")
    assert written["ts"].iloc[:3].tolist() == list(
        pd.to_datetime(["2021-01-01", "2021-02-01", "2021-03-01"], utc=True)
    )
    days = (written["available_at"] - written["ts"]).dt.days
    assert (days == written["ts"].dt.days_in_month).all()
    closes = written.set_index("ts")["available_at"]
    assert closes[pd.Timestamp("2023-02-01", tz="UTC")] == pd.Timestamp("2023-03-01", tz="UTC")  # 28 days
    assert closes[pd.Timestamp("2024-02-01", tz="UTC")] == pd.Timestamp("2024-03-01", tz="UTC")  # 29 days
    assert closes[pd.Timestamp("2023-12-01", tz="UTC")] == pd.Timestamp("2024-01-01", tz="UTC")
    assert written["available_at"].iloc[-1] == pd.Timestamp("2024-05-01", tz="UTC")


def test_rules_and_history_bars(tmp_path, prices):
    out = tmp_path / "chart.parquet"
    args = ["ratings", str(prices), "-o", str(out), "--rules", "chart", "--history-bars", "120"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    written = pd.read_parquet(out)
    pd.testing.assert_frame_equal(
        written, expected_rows(prices, rating={"rules": "chart", "history_bars": 120})
    )
    assert written["bars"].max() == 120
    assert not written.equals(expected_rows(prices))


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        (
            "timestamp,open,high,low,volume",
            "1704067200,1,2,0.5,10",
            "asof ratings: bad.csv: missing column 'close' (columns: timestamp, open, high, low, volume)",
        ),
        (
            "timestamp,open,high,low,close,volume",
            "01/02/2024 noon,1,2,0.5,1.5,10",
            "asof ratings: bad.csv: column 'timestamp', row 3: '01/02/2024 noon' is not a timestamp "
            "(expected epoch seconds, epoch milliseconds or ISO-8601)",
        ),
        (
            "timestamp,open,high,low,close,volume",
            "1704240000,1,2,0.5,abc,10",
            "asof ratings: bad.csv: column 'close', row 3: 'abc' is not a number",
        ),
    ],
    ids=["missing-column", "bad-timestamp", "bad-price"],
)
def test_bad_input_exits_1_with_one_line_naming_column_and_row(tmp_path, header, row, message):
    good = (
        "1704067200,1,2,0.5,1.5,10\n1704153600,1,2,0.5,1.5,10"
        if "close" in header
        else "1704067200,1,2,0.5,10"
    )
    (tmp_path / "bad.csv").write_text(f"{header}\n{good}\n{row}\n")
    result = runner.invoke(app, ["ratings", str(tmp_path / "bad.csv")])
    assert result.exit_code == 1
    assert result.stderr == message + "\n"
    assert result.stdout == ""


def test_a_refused_file_and_a_missing_file_exit_1(tmp_path, prices):
    table = pd.read_csv(prices)
    traded = int((table["volume"] > 0).sum())
    table.loc[[10, 20, 30, 40], ["low", "volume"]] = [-1.0, 5.0]  # 4 of 300 or fewer bars: more than 1%
    table.to_csv(tmp_path / "refused.csv", index=False)
    result = runner.invoke(app, ["ratings", str(tmp_path / "refused.csv")])
    checked = traded + int((pd.read_csv(prices).loc[[10, 20, 30, 40], "volume"] == 0).sum())
    assert result.exit_code == 1
    assert result.stderr == (
        f"asof ratings: 4 of {checked} bars refused ({4 / checked:.2%}, more than 1% allowed): "
        "non-positive price: 4 (first at 2015-01-11T00:00:00Z)\n"
    )
    result = runner.invoke(app, ["ratings", str(tmp_path / "absent.csv")])
    assert result.exit_code == 1
    assert result.stderr == "asof ratings: absent.csv: no such regular file\n"


def test_bad_options_are_usage_errors(tmp_path, prices):
    result = runner.invoke(app, ["ratings", str(prices), "-o", str(tmp_path / "out.xlsx")])
    assert result.exit_code == 2 and "out.xlsx: expected a .csv or .parquet file" in result.output
    result = runner.invoke(app, ["ratings", str(prices), "--interval", "3d"])
    assert result.exit_code == 2 and "unknown interval '3d'" in result.output
    result = runner.invoke(app, ["ratings", str(prices), "--rules", "screener"])
    assert result.exit_code == 2 and "unknown rule set 'screener'" in result.output
    result = runner.invoke(app, ["ratings", str(prices), "--history-bars", "0"])
    assert result.exit_code == 2 and "must be a whole number of bars from 1" in result.output
    assert not (tmp_path / "out.xlsx").exists()


def test_help_explains_with_an_example():
    result = runner.invoke(app, ["ratings", "--help"], terminal_width=200)
    assert result.exit_code == 0
    for text in (
        "Example: asof ratings BINANCE_BTCUSDT_1d.csv -o btc.parquet",
        "--keep-zero-volume",
        "--interval",
        "--rules",
        "--history-bars",
    ):
        assert text in result.output


def test_the_installed_console_script(tmp_path, prices):
    done = subprocess.run(
        [ASOF, "ratings", str(prices)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    pd.testing.assert_frame_equal(
        from_csv(done.stdout), expected_rows(prices), check_exact=False, rtol=1e-15, atol=0
    )
    (tmp_path / "bad.csv").write_text(
        "timestamp,open,high,low,close\n1704067200,1,2,0.5,1.5\n1704153600,1,2,0.5,x\n"
    )
    done = subprocess.run(
        [ASOF, "ratings", str(tmp_path / "bad.csv")], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "asof ratings: bad.csv: column 'close', row 2: 'x' is not a number\n"
