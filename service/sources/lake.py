"""The input files a backfill starts from (DESIGN.md "Data in"): the OHLCV lake, the candidates file that
picks the universe, and the returns matrix whose columns and span pick it when there is no candidates file.
"""

import json
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from service.sources.bars import OHLCVError, bars_from_table, load_table, read_bars
from vocabulary.errors import InvalidInput
from vocabulary.time import Interval, parse_interval

LAKE_SUFFIXES = (".parquet", ".csv")
"""File types of a lake folder, in order of preference when a symbol has both."""
CSV_ROW_BYTES = 48
"""About the size of one OHLCV row of a CSV file (epoch seconds and five numbers)."""


class SourceError(InvalidInput):
    """A candidates file or returns matrix that cannot be used; the message names the file and the problem."""


class Lake:
    """OHLCV for one interval: a folder of per-symbol files, or one long file with a `symbol` column.

    Folder files are named as tradingview-scraper names them, `<EXCHANGE>_<TICKER>_<interval>.parquet` (or
    `.csv`) for the symbol `EXCHANGE:TICKER`: the exchange ends at the first underscore, so tickers may hold
    underscores; files of other intervals are ignored (the suffix is case-sensitive: `_1m` minutes, `_1M`
    months). A long file is read once and kept, and its rows
    for one symbol are parsed when that symbol is read, so a bad row fails only its own symbol.

    Only regular files are read (a FIFO would block the reader forever). With `inside`, a folder file that
    resolves outside that directory (a symlink out of the data dir) is refused by name, unread.
    """

    def __init__(self, path: Path | str, interval: str | Interval, *, inside: Path | None = None) -> None:
        self.interval = parse_interval(interval)
        self.path = Path(path)
        self.inside = inside
        if not self.path.exists():
            raise OHLCVError(f"lake {self.path}: no such folder or file")

    def symbols(self) -> list[str]:
        """Every symbol the lake holds, sorted, in TradingView form EXCHANGE:TICKER."""
        if not self.path.is_dir():
            return sorted(self._long_rows)
        found = (self._symbol_of(file) for file in self.path.iterdir() if file.is_file())
        return sorted({symbol for symbol in found if symbol is not None})

    def read(self, symbol: str) -> pd.DataFrame:
        """The symbol's raw bars (`read_bars` columns); OHLCVError naming the symbol when missing or bad."""
        try:
            if not self.path.is_dir():
                return self._read_long(symbol)
            return read_bars(self._file_of(symbol))
        except OHLCVError as error:
            raise OHLCVError(f"{symbol}: {error}") from None

    def rows(self, symbols: list[str]) -> dict[str, int]:
        """About how many rows each symbol has (Parquet footers, a CSV's size, a long file's rows): what a
        backfill plans its chunks by. A symbol whose file cannot be found or read counts 0 (reading it will
        say why)."""
        if not self.path.is_dir():
            return {symbol: len(self._long_rows.get(symbol, ())) for symbol in symbols}
        with ThreadPoolExecutor(8) as pool:  # footers are small reads: overlap their latency
            return dict(zip(symbols, pool.map(self._rows_of, symbols), strict=True))

    def _rows_of(self, symbol: str) -> int:
        try:
            file = self._file_of(symbol)
            if file.suffix.lower() == ".parquet":
                return pq.read_metadata(file).num_rows
            return file.stat().st_size // CSV_ROW_BYTES
        except (OSError, ValueError, pa.ArrowException):
            return 0

    def _symbol_of(self, file: Path) -> str | None:
        """The symbol a folder file holds, or None when its name is not `<EXCHANGE>_<TICKER>_<interval>`."""
        suffix = f"_{self.interval}"
        if file.suffix.lower() not in LAKE_SUFFIXES or not file.stem.endswith(suffix):
            return None
        exchange, _, ticker = file.stem.removesuffix(suffix).partition("_")
        return f"{exchange}:{ticker}" if exchange and ticker else None

    def _file_of(self, symbol: str) -> Path:
        exchange, colon, ticker = symbol.partition(":")
        if not (exchange and colon and ticker):
            raise OHLCVError(f"not a symbol of the form EXCHANGE:TICKER in lake {self.path}")
        stem = f"{exchange}_{ticker}_{self.interval}"
        for suffix in LAKE_SUFFIXES:
            file = self.path / f"{stem}{suffix}"
            if file.is_file():
                if self.inside is not None and not file.resolve().is_relative_to(self.inside):
                    raise OHLCVError(f"{file.name} resolves outside the data directory; it was not read")
                return file
        raise OHLCVError(f"no file {stem}.parquet or {stem}.csv in lake {self.path}")

    @cached_property
    def _long_table(self) -> pd.DataFrame:
        table = load_table(self.path)
        if "symbol" not in table.columns:
            found = ", ".join(map(str, table.columns)) or "none"
            raise OHLCVError(f"{self.path.name}: missing column 'symbol' (columns: {found})")
        return table

    @cached_property
    def _long_rows(self) -> dict[str, np.ndarray]:
        """Symbol -> positions of its rows in the long file."""
        groups = self._long_table.groupby("symbol", sort=False).indices
        return {str(symbol): positions for symbol, positions in groups.items()}

    def _read_long(self, symbol: str) -> pd.DataFrame:
        positions = self._long_rows.get(symbol)
        if positions is None:
            raise OHLCVError(f"no rows with symbol {symbol!r} in {self.path.name}")
        rows = self._long_table.iloc[positions]
        return bars_from_table(rows, source=self.path.name, rows=positions + 1)


def read_candidates(path: Path | str) -> list[str]:
    """The symbols of a `portfolio_candidates.json`, in file order, without repeats.

    Accepted shapes: a list of objects each with `symbol` (or, failing that, `physical_symbol`), or an
    object keyed by symbol whose values are objects. Anything else is a SourceError naming the entry.
    """
    path = _regular(Path(path))
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SourceError(f"{path.name}: unreadable ({type(error).__name__})") from None
    if isinstance(document, list):
        symbols = [_candidate_symbol(entry, f"{path.name}: entry {at}") for at, entry in enumerate(document)]
    elif isinstance(document, dict):
        for key, value in document.items():
            if not isinstance(value, dict):
                raise SourceError(
                    f"{path.name}: key {key!r} holds a {type(value).__name__}; an object keyed by symbol "
                    "must hold an object per symbol"
                )
        symbols = list(document)
    else:
        raise SourceError(
            f"{path.name}: expected a list of objects with 'symbol' or an object keyed by symbol, "
            f"got a {type(document).__name__}"
        )
    return list(dict.fromkeys(symbols))


def _candidate_symbol(entry: object, where: str) -> str:
    if not isinstance(entry, dict):
        raise SourceError(f"{where} is a {type(entry).__name__}, expected an object with 'symbol'")
    symbol = entry.get("symbol", entry.get("physical_symbol"))
    if symbol is None:
        raise SourceError(f"{where} has neither 'symbol' nor 'physical_symbol' (keys: {', '.join(entry)})")
    if not isinstance(symbol, str) or not symbol:
        raise SourceError(f"{where}: symbol {symbol!r} is not a non-empty string")
    return symbol


def read_returns(path: Path | str) -> pd.DataFrame:
    """A `returns_matrix.parquet`: UTC DatetimeIndex (naive means UTC), strictly increasing, float columns
    named by symbol. SourceError names the problem: another time zone, a repeated or out-of-order
    timestamp, a non-numeric column."""
    path = _regular(Path(path))
    try:
        returns = pd.read_parquet(path)
    except Exception as error:  # any reader failure: the file is unreadable
        raise SourceError(f"{path.name}: unreadable ({type(error).__name__}: {error})") from None
    index = returns.index
    if not isinstance(index, pd.DatetimeIndex):
        raise SourceError(f"{path.name}: the index must be timestamps, found {type(index).__name__}")
    if index.tz is None:
        index = index.tz_localize("UTC")
    elif str(index.tz) != "UTC":
        raise SourceError(f"{path.name}: the index must be in UTC, found time zone {index.tz}")
    if index.hasnans:
        raise SourceError(f"{path.name}: missing timestamp at row {int(np.argmax(index.isna())) + 1}")
    steps = index.asi8[1:] <= index.asi8[:-1]
    if steps.any():
        at = int(np.argmax(steps)) + 1
        problem = "repeats" if index[at] == index[at - 1] else "comes before"
        raise SourceError(
            f"{path.name}: the index must be strictly increasing; row {at + 1} ({index[at].isoformat()}) "
            f"{problem} row {at} ({index[at - 1].isoformat()})"
        )
    for column in returns.columns:
        if not pd.api.types.is_numeric_dtype(returns[column].dtype):
            raise SourceError(f"{path.name}: column {column!r} holds {returns[column].dtype}, not numbers")
    returns = returns.astype("float64")
    returns.index = index.as_unit("ns")
    returns.columns = [str(column) for column in returns.columns]
    return returns


def _regular(path: Path) -> Path:
    """`path` when it is a regular file: a FIFO or device would block its reader, a folder is no table."""
    if not path.exists():
        raise SourceError(f"{path.name}: no such file")
    if not path.is_file():
        raise SourceError(f"{path.name}: not a regular file")
    return path
