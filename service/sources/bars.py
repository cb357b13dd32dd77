"""Reading and cleaning OHLCV bars: every source becomes one bar frame, and every rule that drops or refuses
a row is counted, so a backfill can say exactly what it did to each symbol (DESIGN.md "Cleaning and refusal").

A bar frame has columns `ts` (datetime64[ns, UTC], the bar's open time), `open high low close volume`
(float64; volume NaN when the source has none). `read_bars` gives the raw frame as the file holds it;
`clean_bars` gives the frame the ratings engines consume (strictly increasing `ts`, no refused rows).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from vocabulary.errors import InvalidInput
from vocabulary.time import iso

PRICE_COLUMNS = ("open", "high", "low", "close")
BAR_COLUMNS = ("ts", *PRICE_COLUMNS, "volume")
TIME_COLUMNS = ("timestamp", "ts", "time", "datetime", "date")
"""Accepted names of the time column, in order of preference (matched case-insensitively)."""

EPOCH_MS_FROM = 1e11
"""Epoch numbers whose largest magnitude reaches this are milliseconds, below it seconds: 1e11 seconds is
the year 5138 while 1e11 milliseconds is March 1973, so real data of either kind falls on its own side."""

_EPOCH_SECONDS_LIMIT = 9.2e9  # datetime64[ns] ends in April 2262 (about 9.22e9 seconds)

VALUE_RANGE = (1e-150, 1e150)
"""Where a price, and a volume other than 0 or NaN, must lie. The largest quantity the ratings form from bars
is a sum of close x volume over VWMA's 20 bars, with volume itself a sum of up to 44,640 bars when minute
bars are resampled into months: 20 x 44,640 x 1e150 x 1e150 is about 9e305, finite in float64 (whose
largest value is 1.8e308), and sums of 200 prices are far smaller; no indicator squares a price. The lower
bound keeps such products normal floats (1e-300 > 2.2e-308). A value outside is a sentinel or a corrupted
cell (1e308 would overflow SMA10 to inf and spoil ten bars), never a market price."""

REFUSAL_REASONS = (
    "missing or non-finite price",
    "non-positive price",
    "price outside [1e-150, 1e150]",
    "high < max(open, close, low)",
    "low > min(open, close, high)",
    "volume negative, infinite or outside [1e-150, 1e150]",
)
"""Why a row is refused; a row is counted under the first reason it meets (a NaN volume is kept: unknown)."""


class OHLCVError(InvalidInput):
    """Bad OHLCV input; the message names the file (or symbol), column, row and value at fault."""


@dataclass(frozen=True)
class CleaningReport:
    """What `clean_bars` did: rows_in == rows_out + duplicates + zero_volume + refused."""

    rows_in: int
    rows_out: int
    duplicates: int  # rows dropped because a later row has the same ts
    unsorted: int  # rows whose ts is earlier than a ts before them in the input
    zero_volume: int  # zero-volume rows dropped (0 when they are kept)
    refused: int
    refused_reasons: dict[str, int]  # reason -> rows, only reasons that occurred
    first_refused: dict[str, pd.Timestamp] = field(default_factory=dict)  # reason -> ts of its first row

    def refusals(self) -> str:
        """The refusal counts as text, each reason with the first row it refused, e.g. `non-positive price:
        2 (first at 2024-01-02T00:00:00Z)`."""
        return ", ".join(
            f"{reason}: {count} (first at {iso(self.first_refused[reason])})"
            if reason in self.first_refused
            else f"{reason}: {count}"
            for reason, count in self.refused_reasons.items()
        )


class SymbolRefused(OHLCVError):
    """More rows were refused than the limit allows; `report` holds the counts."""

    def __init__(self, message: str, report: CleaningReport) -> None:
        super().__init__(message)
        self.report = report


def read_bars(path: Path | str) -> pd.DataFrame:
    """Raw bars of one CSV or Parquet file (see `bars_from_table` for the accepted columns)."""
    path = Path(path)
    return bars_from_table(load_table(path), source=path.name)


def load_table(path: Path) -> pd.DataFrame:
    """The file as a table; OHLCVError for a missing, unreadable or unsupported file."""
    readers = {".csv": pd.read_csv, ".parquet": _read_parquet, ".pq": _read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise OHLCVError(f"{path.name}: unsupported file type {path.suffix!r}; expected .csv or .parquet")
    if not path.is_file():
        raise OHLCVError(f"{path.name}: no such regular file")
    try:
        return reader(path)
    except Exception as error:  # any reader failure means the same thing to the caller: unreadable
        raise OHLCVError(f"{path.name}: unreadable ({type(error).__name__}: {error})") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    """One Parquet file, read by pyarrow's file reader on this thread: `pd.read_parquet` plans a dataset
    first, twice the work for a lake's small files (a backfill reads thousands, on every core at once).
    Plain columns become a frame without pandas' conversion; a stored index or other types take it."""
    table = pq.ParquetFile(path).read(use_threads=False)
    metadata = table.schema.pandas_metadata or {}
    plain = all(
        pa.types.is_floating(column.type) or (pa.types.is_integer(column.type) and not column.null_count)
        for column in table.columns
    )
    stored_index = any(isinstance(index, str) for index in metadata.get("index_columns", []))
    if not plain or stored_index or len(set(table.column_names)) < table.num_columns:
        return table.to_pandas()
    return pd.DataFrame({name: table[name].to_numpy() for name in table.column_names})


def bars_from_table(table: pd.DataFrame, *, source: str, rows: Sequence[int] | None = None) -> pd.DataFrame:
    """A raw bar frame from a table with a time column and `open high low close` (`volume` optional).

    Column names match case-insensitively. The time column is the first of TIME_COLUMNS present (else a
    DatetimeIndex): epoch seconds or milliseconds (told apart by EPOCH_MS_FROM), ISO-8601 strings, or
    datetimes; naive times are UTC. `rows` are the row numbers errors cite (default 1, 2, ... for the
    first, second data row, the header not counted).
    """
    rows = np.arange(1, len(table) + 1) if rows is None else np.asarray(rows)
    columns = {str(name).strip().lower(): name for name in reversed(table.columns)}

    def missing(name: str) -> OHLCVError:
        found = ", ".join(map(str, table.columns)) or "none"
        return OHLCVError(f"{source}: missing column {name!r} (columns: {found})")

    def column(name: str) -> pd.Series:
        if name not in columns:
            raise missing(name)
        return table[columns[name]]

    time_name = next((name for name in TIME_COLUMNS if name in columns), None)
    if time_name is not None:
        ts = parse_times(column(time_name), source=source, column=str(columns[time_name]), rows=rows)
    elif isinstance(table.index, pd.DatetimeIndex):
        ts = parse_times(table.index.to_series(), source=source, column="index", rows=rows)
    else:
        raise missing(TIME_COLUMNS[0])
    bars = {"ts": ts}
    for name in PRICE_COLUMNS:
        bars[name] = _numbers(column(name), source=source, column=str(columns[name]), rows=rows)
    bars["volume"] = (
        _numbers(column("volume"), source=source, column=str(columns["volume"]), rows=rows)
        if "volume" in columns
        else np.full(len(table), np.nan)
    )
    return pd.DataFrame(bars)


def parse_times(values: pd.Series, *, source: str, column: str, rows: np.ndarray) -> pd.DatetimeIndex:
    """Timestamps in UTC at nanosecond resolution; OHLCVError naming the first row that is missing or
    unparseable."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = pd.DatetimeIndex(values)
        parsed = parsed.tz_localize("UTC") if parsed.tz is None else parsed.tz_convert("UTC")
        failed = parsed.isna()
    elif pd.api.types.is_numeric_dtype(values.dtype):
        parsed, failed = _epoch(values.to_numpy(dtype="float64", na_value=np.nan))
    else:
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        iso = pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce"))
        if np.isfinite(numbers).sum() >= iso.notna().sum():
            parsed, failed = _epoch(numbers)
        else:
            parsed, failed = iso, iso.isna()
    if failed.any():
        at = int(np.flatnonzero(failed)[0])
        value = values.iloc[at]
        problem = "missing timestamp" if pd.isna(value) else f"{_shown(value)} is not a timestamp"
        hint = "" if pd.isna(value) else " (expected epoch seconds, epoch milliseconds or ISO-8601)"
        raise OHLCVError(f"{source}: column {column!r}, row {rows[at]}: {problem}{hint}")
    return parsed.as_unit("ns")


def _epoch(numbers: np.ndarray) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Epoch seconds or milliseconds (one unit per column) and the mask of values that are no instant."""
    finite = np.isfinite(numbers)
    milliseconds = bool(finite.any()) and np.abs(numbers[finite]).max() >= EPOCH_MS_FROM
    per_second, per_unit = (1e3, 1_000_000) if milliseconds else (1.0, 1_000_000_000)
    with np.errstate(invalid="ignore"):
        failed = ~(np.abs(numbers / per_second) < _EPOCH_SECONDS_LIMIT)  # NaN and inf fail too
    valid = np.where(failed, 0.0, numbers)
    if (valid == np.round(valid)).all():  # whole units: exact integer arithmetic
        nanoseconds = valid.astype("int64") * per_unit
    else:
        nanoseconds = np.round(valid * per_unit).astype("int64")
    return _utc(nanoseconds), failed


def _utc(nanoseconds: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(nanoseconds.view("datetime64[ns]"), tz="UTC")


def _numbers(values: pd.Series, *, source: str, column: str, rows: np.ndarray) -> np.ndarray:
    """A float64 column; OHLCVError naming the first value that is present but not a number."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return values.to_numpy(dtype="float64", na_value=np.nan)
    numbers = pd.to_numeric(values, errors="coerce")
    not_numbers = numbers.isna().to_numpy() & values.notna().to_numpy()
    if not_numbers.any():
        at = int(np.flatnonzero(not_numbers)[0])
        raise OHLCVError(
            f"{source}: column {column!r}, row {rows[at]}: {_shown(values.iloc[at])} is not a number"
        )
    return numbers.to_numpy(dtype="float64", na_value=np.nan)


def _shown(value: object) -> str:
    """A cell as an error message quotes it: numpy scalars as plain Python values."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def clean_bars(
    raw: pd.DataFrame, *, keep_zero_volume: bool = False, max_refused: float = 0.01
) -> tuple[pd.DataFrame, CleaningReport]:
    """The bars the engines consume, and what was done to get them.

    In order: sort by ts (stable, so "last" means last in the input), keep the last of duplicated
    timestamps, drop zero-volume bars (TradingView shows no untraded bars) unless `keep_zero_volume`,
    refuse rows with a bad price or volume (REFUSAL_REASONS). SymbolRefused when the refused rows are more
    than `max_refused` of the rows checked for refusal (those left after the duplicates and zero-volume
    bars).
    """
    missing = [name for name in BAR_COLUMNS if name not in raw.columns]
    if missing:
        raise OHLCVError(f"bars lack column(s) {', '.join(map(repr, missing))}")
    nanos = _utc_nanoseconds(raw["ts"])
    if (nanos == _NAT).any():
        raise OHLCVError(f"row {int(np.flatnonzero(nanos == _NAT)[0]) + 1}: missing timestamp")
    values = np.column_stack(
        [raw[name].to_numpy(dtype="float64", na_value=np.nan) for name in BAR_COLUMNS[1:]]
    )
    unsorted = int((nanos[1:] < np.maximum.accumulate(nanos)[:-1]).sum())
    if unsorted:  # sorted input (nearly every file) keeps its order: a stable sort would not move it
        order = np.argsort(nanos, kind="stable")
        nanos, values = nanos[order], values[order]

    keep = np.ones(len(nanos), dtype=bool)
    keep[:-1] = nanos[:-1] != nanos[1:]
    duplicates = int((~keep).sum())
    zero_volume = keep & (values[:, -1] == 0) & (not keep_zero_volume)
    keep &= ~zero_volume
    checked_rows = np.flatnonzero(keep)
    reasons = _refusals(values if len(checked_rows) == len(keep) else values[keep])
    counts = np.bincount(reasons, minlength=len(REFUSAL_REASONS) + 1)[1:]
    refused = {reason: int(count) for reason, count in zip(REFUSAL_REASONS, counts, strict=True) if count}
    codes = [code for code, reason in enumerate(REFUSAL_REASONS, start=1) if reason in refused]
    first_refused = {}
    if codes:
        firsts = _utc(nanos[checked_rows[[int(np.argmax(reasons == code)) for code in codes]]])
        first_refused = {REFUSAL_REASONS[code - 1]: first for code, first in zip(codes, firsts, strict=True)}
    keep[checked_rows[reasons > 0]] = False
    cleaned = pd.DataFrame(
        {"ts": _utc(nanos[keep]), **{name: values[keep, k] for k, name in enumerate(BAR_COLUMNS[1:])}}
    )

    checked = len(reasons)
    report = CleaningReport(
        rows_in=len(raw),
        rows_out=len(cleaned),
        duplicates=duplicates,
        unsorted=unsorted,
        zero_volume=int(zero_volume.sum()),
        refused=sum(refused.values()),
        refused_reasons=refused,
        first_refused=first_refused,
    )
    if report.refused > max_refused * checked:
        raise SymbolRefused(
            f"{report.refused} of {checked} bars refused ({report.refused / checked:.2%}, more than "
            f"{max_refused * 100:g}% allowed): {report.refusals()}",
            report,
        )
    return cleaned, report


_NAT = np.iinfo(np.int64).min


def _utc_nanoseconds(ts: pd.Series) -> np.ndarray:
    """Instants as int64 nanoseconds since the epoch, UTC (naive means UTC); NaT stays `_NAT`."""
    if isinstance(ts.dtype, pd.DatetimeTZDtype) and ts.dtype.unit == "ns":
        return ts.array.asi8  # already UTC-based: the instants do not depend on the zone shown
    index = pd.DatetimeIndex(ts)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns").asi8


def _refusals(values: np.ndarray) -> np.ndarray:
    """Per row of (open, high, low, close, volume), 1 + the index in REFUSAL_REASONS of the first reason it
    meets, or 0 when the row is sound."""
    prices, volume = values[:, :4], values[:, 4]
    open_, high, low, close = prices.T
    low_bound, high_bound = VALUE_RANGE
    with np.errstate(invalid="ignore"):
        conditions = [
            ~np.isfinite(prices).all(axis=1),
            (prices <= 0).any(axis=1),
            ((prices < low_bound) | (prices > high_bound)).any(axis=1),
            high < np.maximum.reduce([open_, close, low]),
            low > np.minimum.reduce([open_, close, high]),
            (volume < 0) | (volume > high_bound) | ((volume > 0) & (volume < low_bound)),
        ]
    return np.select(conditions, np.arange(1, len(REFUSAL_REASONS) + 1), default=0)
