"""Reading OHLCV files in every accepted form, and every cleaning and refusal rule with its counts."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.sources.bars import (
    BAR_COLUMNS,
    CleaningReport,
    OHLCVError,
    SymbolRefused,
    clean_bars,
    read_bars,
)

DAY = 86_400
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def bars(n: int, *, start: int = T0, step: int = DAY) -> pd.DataFrame:
    """n sound daily bars with distinct prices, so any mix-up of rows shows."""
    close = 100.0 + np.arange(n)
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(start + step * np.arange(n), unit="s", utc=True).astype(
                "datetime64[ns, UTC]"
            ),
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": 1000.0 + np.arange(n),
        }
    )


# --- read_bars: timestamp forms ---------------------------------------------------------------------------


def test_epoch_seconds_and_milliseconds_give_the_same_instants(tmp_path):
    seconds = write_csv(tmp_path / "s.csv", f"timestamp,open,high,low,close,volume\n{T0},1,2,0.5,1.5,10\n")
    millis = write_csv(tmp_path / "ms.csv", f"timestamp,open,high,low,close,volume\n{T0}000,1,2,0.5,1.5,10\n")
    expected = pd.Timestamp("2024-01-01T00:00:00Z")
    assert read_bars(seconds)["ts"].tolist() == [expected]
    assert read_bars(millis)["ts"].tolist() == [expected]


def test_millisecond_epochs_keep_their_milliseconds_exactly(tmp_path):
    path = write_csv(tmp_path / "ms.csv", f"timestamp,open,high,low,close\n{T0}123,1,2,0.5,1.5\n")
    assert read_bars(path)["ts"].iloc[0] == pd.Timestamp("2024-01-01T00:00:00.123Z")


def test_iso_strings_offsets_converted_and_naive_means_utc(tmp_path):
    path = write_csv(
        tmp_path / "iso.csv",
        """
timestamp,open,high,low,close,volume
2024-03-01,1,2,0.5,1.5,10
2024-03-01T05:00:00+02:00,1,2,0.5,1.5,10
2024-03-01 07:30:00,1,2,0.5,1.5,10
2024-03-01T08:00:00Z,1,2,0.5,1.5,10
""",
    )
    assert read_bars(path)["ts"].tolist() == [
        pd.Timestamp("2024-03-01T00:00Z"),
        pd.Timestamp("2024-03-01T03:00Z"),
        pd.Timestamp("2024-03-01T07:30Z"),
        pd.Timestamp("2024-03-01T08:00Z"),
    ]


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_datetime_columns_in_parquet_become_utc_nanoseconds(tmp_path, tz):
    times = pd.DatetimeIndex(["2024-01-01 00:00", "2024-01-02 00:00"]).as_unit("us")
    times = times if tz is None else times.tz_localize(tz)
    frame = pd.DataFrame({"ts": times, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 3})
    frame.to_parquet(tmp_path / "dt.parquet")
    raw = read_bars(tmp_path / "dt.parquet")
    assert str(raw["ts"].dtype) == "datetime64[ns, UTC]"
    expected = times.tz_localize("UTC") if tz is None else times.tz_convert("UTC")
    assert raw["ts"].tolist() == list(expected)


def test_a_datetime_index_serves_when_there_is_no_time_column(tmp_path):
    index = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC", name="when")
    pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0}, index=index).to_parquet(
        tmp_path / "indexed.parquet"
    )
    assert read_bars(tmp_path / "indexed.parquet")["ts"].tolist() == list(index)


def test_output_columns_dtypes_and_case_insensitive_names(tmp_path):
    path = write_csv(
        tmp_path / "upper.csv",
        f"Time,Open,HIGH,low,Close,Volume,extra\n{T0},1,2,0.5,1.5,10,x\n{T0 + DAY},2,3,1,2,0,y\n",
    )
    raw = read_bars(path)
    assert list(raw.columns) == list(BAR_COLUMNS)
    assert {name: str(dtype) for name, dtype in raw.dtypes.items()} == {
        "ts": "datetime64[ns, UTC]",
        **{name: "float64" for name in BAR_COLUMNS[1:]},
    }
    assert raw["close"].tolist() == [1.5, 2.0]
    assert raw["volume"].tolist() == [10.0, 0.0]


def test_missing_volume_column_gives_nan_volume(tmp_path):
    path = write_csv(tmp_path / "novol.csv", f"timestamp,open,high,low,close\n{T0},1,2,0.5,1.5\n")
    assert np.isnan(read_bars(path)["volume"]).all()


# --- read_bars: errors name the file, column, row and value -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"timestamp,open,high,low,volume\n{T0},1,2,0.5,10\n",
            "prices.csv: missing column 'close' (columns: timestamp, open, high, low, volume)",
        ),
        ("open,high,low,close\n1,2,0.5,1.5\n", "prices.csv: missing column 'timestamp'"),
        (
            f"timestamp,open,high,low,close\n{T0},1,2,0.5,1.5\n{T0 + DAY},1,2,0.5,abc\n",
            "prices.csv: column 'close', row 2: 'abc' is not a number",
        ),
        (
            f"timestamp,open,high,low,close,volume\n{T0},1,2,0.5,1.5,10\n{T0 + DAY},1,2,0.5,1.5,lots\n",
            "prices.csv: column 'volume', row 2: 'lots' is not a number",
        ),
        (
            "timestamp,open,high,low,close\n2024-01-01,1,2,0.5,1.5\n2024-13-45,1,2,0.5,1.5\n",
            "prices.csv: column 'timestamp', row 2: '2024-13-45' is not a timestamp",
        ),
        (
            f"timestamp,open,high,low,close\n{T0},1,2,0.5,1.5\nyesterday,1,2,0.5,1.5\n",
            "prices.csv: column 'timestamp', row 2: 'yesterday' is not a timestamp",
        ),
        (
            f"timestamp,open,high,low,close\n{T0},1,2,0.5,1.5\n,1,2,0.5,1.5\n",
            "prices.csv: column 'timestamp', row 2: missing timestamp",
        ),
        (
            f"timestamp,open,high,low,close\n{T0},1,2,0.5,1.5\n1e17,1,2,0.5,1.5\n",
            "prices.csv: column 'timestamp', row 2: 1e+17 is not a timestamp",
        ),
    ],
)
def test_bad_input_names_what_is_wrong(tmp_path, text, message):
    path = write_csv(tmp_path / "prices.csv", text)
    with pytest.raises(OHLCVError) as caught:
        read_bars(path)
    assert str(caught.value).startswith(message)


def test_missing_unreadable_and_unsupported_files(tmp_path):
    with pytest.raises(OHLCVError, match=r"^gone\.csv: no such regular file"):
        read_bars(tmp_path / "gone.csv")
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(OHLCVError, match=r"^junk\.parquet: unreadable"):
        read_bars(tmp_path / "junk.parquet")
    (tmp_path / "bars.xlsx").write_bytes(b"")
    with pytest.raises(OHLCVError, match=r"^bars\.xlsx: unsupported file type '\.xlsx'"):
        read_bars(tmp_path / "bars.xlsx")


# --- clean_bars -------------------------------------------------------------------------------------------


def test_clean_input_passes_through_unchanged():
    raw = bars(50)
    cleaned, report = clean_bars(raw)
    pd.testing.assert_frame_equal(cleaned, raw)
    assert report == CleaningReport(50, 50, 0, 0, 0, 0, {})


def test_unsorted_rows_are_sorted_and_counted():
    raw = bars(10)
    shuffled = raw.iloc[[0, 1, 5, 2, 3, 4, 6, 9, 7, 8]]
    cleaned, report = clean_bars(shuffled)
    pd.testing.assert_frame_equal(cleaned, raw)
    assert report.unsorted == 5  # rows 2, 3, 4 came after 5; rows 7, 8 after 9


def test_duplicated_timestamps_keep_the_last_row_in_input_order():
    raw = bars(5)
    later = raw.iloc[[1]].assign(close=101.5, volume=7.0)
    earlier_again = raw.iloc[[3]].assign(close=103.25)
    cleaned, report = clean_bars(pd.concat([raw, later, earlier_again]))
    assert cleaned["ts"].tolist() == raw["ts"].tolist()
    assert cleaned["close"].tolist() == [100.0, 101.5, 102.0, 103.25, 104.0]
    assert cleaned.loc[1, "volume"] == 7.0
    assert (report.duplicates, report.unsorted, report.rows_out) == (2, 2, 5)


def test_zero_volume_bars_dropped_unless_kept_and_nan_volume_stays():
    raw = bars(10)
    raw.loc[[2, 7], "volume"] = 0.0
    raw.loc[4, "volume"] = np.nan
    cleaned, report = clean_bars(raw)
    assert cleaned["ts"].tolist() == raw["ts"].drop([2, 7]).tolist()
    assert (report.zero_volume, report.rows_out) == (2, 8)
    kept, report = clean_bars(raw, keep_zero_volume=True)
    assert len(kept) == 10 and report.zero_volume == 0


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"close": np.nan}, "missing or non-finite price"),
        ({"open": np.inf}, "missing or non-finite price"),
        ({"low": 0.0}, "non-positive price"),
        ({"open": -1.0}, "non-positive price"),
        ({"high": 100.2}, "high < max(open, close, low)"),  # below close 101
        ({"low": 101.2}, "low > min(open, close, high)"),  # above open 100.5
        ({"high": 1e308}, "price outside [1e-150, 1e150]"),  # finite, but SMA10 would overflow to inf
        ({"high": 2e150}, "price outside [1e-150, 1e150]"),
        ({"low": 5e-324}, "price outside [1e-150, 1e150]"),  # a subnormal: positive, not a price
        ({"volume": -5.0}, "volume negative, infinite or outside [1e-150, 1e150]"),
        ({"volume": np.inf}, "volume negative, infinite or outside [1e-150, 1e150]"),
        ({"volume": 1e300}, "volume negative, infinite or outside [1e-150, 1e150]"),
        ({"volume": 1e-200}, "volume negative, infinite or outside [1e-150, 1e150]"),
    ],
)
def test_each_refusal_rule_refuses_the_row_with_its_reason(change, reason):
    raw = bars(200)
    for column, value in change.items():
        raw.loc[1, column] = value
    cleaned, report = clean_bars(raw)
    assert raw.loc[1, "ts"] not in set(cleaned["ts"])
    assert (report.refused, report.refused_reasons, report.rows_out) == (1, {reason: 1}, 199)
    assert report.first_refused == {reason: raw.loc[1, "ts"]}


def test_prices_and_volumes_at_the_bounds_pass_and_nan_volume_is_kept():
    raw = bars(4)
    raw.loc[0, ["open", "high", "low", "close"]] = [1e150, 1e150, 1e150, 1e150]
    raw.loc[1, ["open", "high", "low", "close", "volume"]] = [1e-150, 1e-150, 1e-150, 1e-150, 1e150]
    raw.loc[2, "volume"] = 1e-150
    raw.loc[3, "volume"] = np.nan
    cleaned, report = clean_bars(raw)
    pd.testing.assert_frame_equal(cleaned, raw)
    assert report.refused == 0


def test_a_row_counts_once_under_its_first_reason():
    raw = bars(300)
    raw.loc[0, ["low", "high"]] = [-5.0, -6.0]  # non-positive, and high < low too
    raw.loc[1, "high"] = 50.0  # high below open and close
    raw.loc[2, ["high", "low"]] = [50.0, 200.0]  # both bound rules: the high rule comes first
    _, report = clean_bars(raw)
    assert report.refused == 3
    assert report.refused_reasons == {"non-positive price": 1, "high < max(open, close, low)": 2}


def test_refusing_more_than_one_percent_fails_the_symbol_with_counts():
    raw = bars(200)
    raw.loc[[10, 20], "close"] = np.nan  # 2 of 200 = 1%: allowed
    assert clean_bars(raw)[1].refused == 2
    raw.loc[30, "low"] = 0.0  # 3 of 200 = 1.5%: refused
    with pytest.raises(SymbolRefused) as caught:
        clean_bars(raw)
    assert str(caught.value) == (
        "3 of 200 bars refused (1.50%, more than 1% allowed): "
        "missing or non-finite price: 2 (first at 2024-01-11T00:00:00Z), "
        "non-positive price: 1 (first at 2024-01-31T00:00:00Z)"
    )
    assert caught.value.report.refused_reasons == {"missing or non-finite price": 2, "non-positive price": 1}
    assert isinstance(caught.value, OHLCVError)
    assert clean_bars(raw, max_refused=0.02)[1].rows_out == 197


def test_the_refusal_share_is_of_the_bars_left_after_duplicates_and_zero_volume():
    raw = bars(100)
    raw.loc[5, "close"] = np.nan  # 1 bad bar among 100: 1%, allowed
    assert clean_bars(raw)[1].refused == 1
    raw.loc[50:59, "volume"] = 0.0  # now 1 of 90 traded bars: more than 1%
    with pytest.raises(SymbolRefused, match=r"^1 of 90 bars refused"):
        clean_bars(raw)
    assert clean_bars(raw, keep_zero_volume=True)[1].refused == 1


def test_zero_volume_bars_are_dropped_before_refusal():
    raw = bars(10)
    raw.loc[3, ["open", "high", "low", "close", "volume"]] = [0.0, 0.0, 0.0, 0.0, 0.0]
    _, report = clean_bars(raw)
    assert (report.zero_volume, report.refused) == (1, 0)


def test_empty_input_gives_empty_bars():
    cleaned, report = clean_bars(bars(0))
    assert list(cleaned.columns) == list(BAR_COLUMNS) and len(cleaned) == 0
    assert report == CleaningReport(0, 0, 0, 0, 0, 0, {})


def test_read_then_clean_a_messy_file(tmp_path):
    path = write_csv(
        tmp_path / "messy.csv",
        f"""
timestamp,open,high,low,close,volume
{T0 + 2 * DAY}000,3,4,2,3.5,30
{T0}000,1,2,0.5,1.5,10
{T0 + DAY}000,2,3,1,2.5,0
{T0 + 2 * DAY}000,3,4,2,3.25,31
""",
    )
    cleaned, report = clean_bars(read_bars(path))
    assert cleaned["ts"].tolist() == [
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-01-03", tz="UTC"),
    ]
    assert cleaned["close"].tolist() == [1.5, 3.25]
    assert report == CleaningReport(
        4, 2, duplicates=1, unsorted=2, zero_volume=1, refused=0, refused_reasons={}
    )


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(30)),
    duplicated=st.lists(st.integers(0, 29), max_size=10),
    zero=st.sets(st.integers(0, 29), max_size=5),
)
def test_cleaned_bars_are_strictly_increasing_and_every_row_is_accounted_for(order, duplicated, zero):
    raw = bars(30)
    raw.loc[sorted(zero), "volume"] = 0.0
    messy = pd.concat([raw.iloc[list(order)], raw.iloc[duplicated].assign(close=lambda f: f["close"] + 0.25)])
    cleaned, report = clean_bars(messy, max_refused=1.0)
    assert cleaned["ts"].is_monotonic_increasing and cleaned["ts"].is_unique
    assert report.rows_in == report.rows_out + report.duplicates + report.zero_volume + report.refused
    assert report.duplicates == len(duplicated)
    last = messy.drop_duplicates("ts", keep="last").sort_values("ts")
    expected = last[last["volume"] != 0].reset_index(drop=True)
    pd.testing.assert_frame_equal(cleaned, expected)
