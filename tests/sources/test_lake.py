"""The backfill's input files: lake folders and long files, candidates shapes, returns matrix validation."""

import json

import numpy as np
import pandas as pd
import pytest

from service.sources.bars import OHLCVError
from service.sources.lake import Lake, SourceError, read_candidates, read_returns

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z
DAY = 86_400


def klines(n: int, first_close: float) -> pd.DataFrame:
    """n daily bars in tradingview-scraper's file layout (epoch-second `timestamp`)."""
    close = first_close + np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "timestamp": T0 + DAY * np.arange(n),
            "open": close - 0.5,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": 10.0,
        }
    )


# --- Lake: folder of per-symbol files ---------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    klines(3, 100).to_parquet(lake / "BINANCE_BTCUSDT_1d.parquet", index=False)
    klines(4, 200).to_csv(lake / "NASDAQ_AAPL_1d.csv", index=False)
    klines(2, 300).to_parquet(lake / "CME_ES1!_1d.parquet", index=False)
    klines(5, 400).to_parquet(
        lake / "BINANCE_1000_SATS_USDT_1d.parquet", index=False
    )  # underscores in ticker
    klines(6, 500).to_parquet(lake / "BINANCE_BTCUSDT_1h.parquet", index=False)  # another interval
    klines(2, 600).to_csv(lake / "BINANCE_BTCUSDT_1d.csv", index=False)  # Parquet is preferred
    (lake / "notes.txt").write_text("not a lake file")
    (lake / "README_1d.parquet").write_bytes(b"")  # no ticker: not a symbol file
    return lake


def test_folder_symbols_follow_tradingview_scraper_naming(folder):
    assert Lake(folder, "1d").symbols() == [
        "BINANCE:1000_SATS_USDT",
        "BINANCE:BTCUSDT",
        "CME:ES1!",
        "NASDAQ:AAPL",
    ]
    assert Lake(folder, "1h").symbols() == ["BINANCE:BTCUSDT"]
    assert Lake(folder, "1W").symbols() == []


def test_folder_read_returns_the_symbols_bars(folder):
    lake = Lake(folder, "1d")
    assert lake.read("BINANCE:BTCUSDT")["close"].tolist() == [100.0, 101.0, 102.0]
    assert lake.read("NASDAQ:AAPL")["close"].tolist() == [200.0, 201.0, 202.0, 203.0]
    assert lake.read("BINANCE:1000_SATS_USDT")["close"].tolist() == [400.0 + k for k in range(5)]
    bars = Lake(folder, "1h").read("BINANCE:BTCUSDT")
    assert bars["close"].iloc[0] == 500.0
    assert bars["ts"].iloc[1] == pd.Timestamp("2024-01-02", tz="UTC")


def test_folder_read_errors_name_the_symbol(folder):
    lake = Lake(folder, "1d")
    with pytest.raises(OHLCVError, match=r"^BINANCE:ETHUSDT: no file BINANCE_ETHUSDT_1d\.parquet or "):
        lake.read("BINANCE:ETHUSDT")
    with pytest.raises(OHLCVError, match=r"^ETHUSDT: not a symbol of the form EXCHANGE:TICKER"):
        lake.read("ETHUSDT")
    (folder / "BINANCE_BAD_1d.parquet").write_bytes(b"truncated")
    with pytest.raises(OHLCVError, match=r"^BINANCE:BAD: BINANCE_BAD_1d\.parquet: unreadable"):
        lake.read("BINANCE:BAD")
    klines(3, 1).drop(columns="close").to_parquet(folder / "BINANCE_NOCLOSE_1d.parquet")
    with pytest.raises(
        OHLCVError, match=r"^BINANCE:NOCLOSE: BINANCE_NOCLOSE_1d\.parquet: missing column 'close'"
    ):
        lake.read("BINANCE:NOCLOSE")


def test_lake_rejects_a_missing_path_and_an_unknown_interval(tmp_path):
    with pytest.raises(OHLCVError, match="no such folder or file"):
        Lake(tmp_path / "nowhere", "1d")
    with pytest.raises(ValueError, match="unknown interval '3d'"):
        Lake(tmp_path, "3d")


# --- Lake: one long file with a symbol column -------------------------------------------------------------


def long_table() -> pd.DataFrame:
    """Two symbols interleaved, as a long export often is."""
    first, second = (
        klines(3, 100).assign(symbol="BINANCE:BTCUSDT"),
        klines(3, 200).assign(symbol="NASDAQ:AAPL"),
    )
    return pd.concat([first, second]).sort_values(["timestamp", "symbol"]).reset_index(drop=True)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_long_file_symbols_and_reads(tmp_path, suffix):
    path = tmp_path / f"all{suffix}"
    table = long_table()
    table.to_parquet(path, index=False) if suffix == ".parquet" else table.to_csv(path, index=False)
    lake = Lake(path, "1d")
    assert lake.symbols() == ["BINANCE:BTCUSDT", "NASDAQ:AAPL"]
    aapl = lake.read("NASDAQ:AAPL")
    assert aapl["close"].tolist() == [200.0, 201.0, 202.0]
    assert aapl["ts"].tolist() == list(pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC"))
    with pytest.raises(
        OHLCVError, match=rf"^BINANCE:ETHUSDT: no rows with symbol 'BINANCE:ETHUSDT' in all{suffix}"
    ):
        lake.read("BINANCE:ETHUSDT")


def test_long_file_is_read_once(tmp_path):
    path = tmp_path / "all.parquet"
    long_table().to_parquet(path, index=False)
    lake = Lake(path, "1d")
    assert lake.read("BINANCE:BTCUSDT")["close"].tolist() == [100.0, 101.0, 102.0]
    path.unlink()  # served from what was read
    assert lake.read("NASDAQ:AAPL")["close"].tolist() == [200.0, 201.0, 202.0]


def test_a_bad_row_in_a_long_file_fails_only_its_symbol_and_cites_the_file_row(tmp_path):
    table = long_table().astype({"close": object})
    table.loc[5, "close"] = "n/a?"  # the sixth data row: NASDAQ:AAPL's third bar
    path = tmp_path / "all.csv"
    table.to_csv(path, index=False)
    lake = Lake(path, "1d")
    assert len(lake.read("BINANCE:BTCUSDT")) == 3
    with pytest.raises(
        OHLCVError, match=r"^NASDAQ:AAPL: all\.csv: column 'close', row 6: 'n/a\?' is not a number"
    ):
        lake.read("NASDAQ:AAPL")


def test_long_file_without_symbol_column(tmp_path):
    klines(3, 1).to_parquet(tmp_path / "all.parquet")
    with pytest.raises(OHLCVError, match=r"all\.parquet: missing column 'symbol'"):
        Lake(tmp_path / "all.parquet", "1d").symbols()


# --- candidates -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [
        [
            {"symbol": "BINANCE:BTCUSDT", "weight": 0.5},
            {"symbol": "NASDAQ:AAPL"},
            {"symbol": "BINANCE:BTCUSDT"},
        ],
        [
            {"physical_symbol": "BINANCE:BTCUSDT"},
            {"symbol": "NASDAQ:AAPL", "physical_symbol": "NASDAQ:AAPL.X"},
        ],
        {"BINANCE:BTCUSDT": {"sector": "crypto"}, "NASDAQ:AAPL": {}},
    ],
    ids=["list-with-repeat", "physical_symbol", "keyed"],
)
def test_candidates_shapes(tmp_path, document):
    path = tmp_path / "portfolio_candidates.json"
    path.write_text(json.dumps(document))
    assert read_candidates(path) == ["BINANCE:BTCUSDT", "NASDAQ:AAPL"]


def test_an_empty_candidates_list_is_an_empty_universe(tmp_path):
    (tmp_path / "c.json").write_text("[]")
    assert read_candidates(tmp_path / "c.json") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '"BINANCE:BTCUSDT"',
            "c.json: expected a list of objects with 'symbol' or an object keyed by symbol, got a str",
        ),
        (
            '[{"symbol": "A:B"}, {"name": "X"}]',
            "c.json: entry 1 has neither 'symbol' nor 'physical_symbol' (keys: name)",
        ),
        ('["A:B"]', "c.json: entry 0 is a str, expected an object with 'symbol'"),
        ('[{"symbol": 7}]', "c.json: entry 0: symbol 7 is not a non-empty string"),
        (
            '{"candidates": ["A:B"]}',
            "c.json: key 'candidates' holds a list; an object keyed by symbol must hold",
        ),
        ("[{", "c.json: unreadable"),
    ],
)
def test_candidates_errors_name_the_entry(tmp_path, text, message):
    (tmp_path / "c.json").write_text(text)
    with pytest.raises(SourceError) as caught:
        read_candidates(tmp_path / "c.json")
    assert str(caught.value).startswith(message)


def test_missing_candidates_file(tmp_path):
    with pytest.raises(SourceError, match=r"^c\.json: no such file"):
        read_candidates(tmp_path / "c.json")


# --- returns matrix ---------------------------------------------------------------------------------------


def returns_frame(index: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"A:X": [0.01, -0.02, 0.03, -0.04][: len(index)], "B:Y": 1}, index=index)


def test_returns_are_read_with_a_utc_nanosecond_index_and_float_columns(tmp_path):
    index = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC", unit="us")
    returns_frame(index).to_parquet(tmp_path / "r.parquet")
    returns = read_returns(tmp_path / "r.parquet")
    assert str(returns.index.dtype) == "datetime64[ns, UTC]"
    assert list(returns.index) == list(index)
    assert returns.dtypes.tolist() == [np.dtype("float64")] * 2
    assert returns["A:X"].tolist() == [0.01, -0.02, 0.03, -0.04]
    assert returns["B:Y"].tolist() == [1.0] * 4


def test_a_naive_returns_index_means_utc(tmp_path):
    returns_frame(pd.date_range("2024-01-01", periods=2, freq="D")).to_parquet(tmp_path / "r.parquet")
    assert read_returns(tmp_path / "r.parquet").index[0] == pd.Timestamp("2024-01-01", tz="UTC")


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            returns_frame(pd.date_range("2024-01-01", periods=2, freq="D", tz="America/New_York")),
            "r.parquet: the index must be in UTC, found time zone America/New_York",
        ),
        (
            returns_frame(pd.DatetimeIndex(["2024-01-01", "2024-01-03", "2024-01-02"], tz="UTC")),
            "r.parquet: the index must be strictly increasing; "
            "row 3 (2024-01-02T00:00:00+00:00) comes before row 2 (2024-01-03T00:00:00+00:00)",
        ),
        (
            returns_frame(pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-02"], tz="UTC")),
            "r.parquet: the index must be strictly increasing; "
            "row 3 (2024-01-02T00:00:00+00:00) repeats row 2",
        ),
        (returns_frame(pd.RangeIndex(3)), "r.parquet: the index must be timestamps, found RangeIndex"),
        (
            returns_frame(pd.date_range("2024-01-01", periods=2, freq="D", tz="UTC")).assign(
                **{"C:Z": ["a", "b"]}
            ),
            "r.parquet: column 'C:Z' holds str, not numbers",
        ),
    ],
    ids=["other-zone", "out-of-order", "repeat", "not-time", "text-column"],
)
def test_returns_errors_name_the_problem(tmp_path, frame, message):
    frame.to_parquet(tmp_path / "r.parquet")
    with pytest.raises(SourceError) as caught:
        read_returns(tmp_path / "r.parquet")
    assert str(caught.value).startswith(message)


def test_missing_and_unreadable_returns(tmp_path):
    with pytest.raises(SourceError, match=r"^r\.parquet: no such file"):
        read_returns(tmp_path / "r.parquet")
    (tmp_path / "r.parquet").write_text("garbage")
    with pytest.raises(SourceError, match=r"^r\.parquet: unreadable"):
        read_returns(tmp_path / "r.parquet")
