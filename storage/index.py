"""The hot path: a published run held in memory, answering a cross-section with one table lookup.

A run's rows are kept as numpy arrays sorted by (symbol, available_at), each with the rank of its
available_at among the run's U distinct instants. A checkpoint table counts, for every `step`-th instant and
every symbol, the symbol's rows before it; "the last row of each symbol with available_at <= T" is then one
row of that table, plus a short vectorised bisection when T falls between checkpoints. `step` is 1 (no
bisection at all) unless U x symbols exceeds `max_cells`. Feature columns load lazily, the first time a
query asks for them. The index proposes rows; `storage.read.point_in_time` decides what is visible,
exactly as it does for the DuckDB path.
"""

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.catalog import RunInfo
from storage.schema import microseconds
from vocabulary.features import ROW_META

Column = np.ndarray | pd.arrays.IntegerArray

COLUMN_BYTES: Final = 1 << 30
"""Feature columns held in memory by default: every feature of a 1.6M-row run (640 bytes a row)."""
MAX_CELLS: Final = 1 << 24
"""Cells of the checkpoint table (8 bytes each): 128 MB at most, 20 MB for 1000 symbols x 2520 days."""


@dataclass(frozen=True)
class Rows:
    """Feature rows as columns. `code` is the position of the row's symbol in the run's sorted `symbols`;
    `ts` and `available_at` are microseconds since the epoch; votes are Int8 arrays (NA = not counted)."""

    code: np.ndarray
    ts: np.ndarray
    available_at: np.ndarray
    bars: np.ndarray
    warm: np.ndarray
    features: dict[str, Column]

    def take(self, positions: np.ndarray) -> "Rows":
        return Rows(
            code=self.code[positions],
            ts=self.ts[positions],
            available_at=self.available_at[positions],
            bars=self.bars[positions],
            warm=self.warm[positions],
            features={name: values[positions] for name, values in self.features.items()},
        )


def symbol_codes(run: RunInfo, symbols: pa.ChunkedArray, known: pa.Array | None = None) -> np.ndarray:
    """Positions of stored symbol names in the run's sorted symbol list (`known`: that list as Arrow)."""
    codes = pc.index_in(symbols, value_set=pa.array(run.symbols, pa.string()) if known is None else known)
    if codes.null_count:
        unknown = pc.filter(symbols, pc.is_null(codes))[0]
        raise RuntimeError(f"run {run.run_id}: stored symbol {unknown} is not in the catalog's symbol list")
    return codes.to_numpy().astype(np.int64)


def column_values(values: pa.ChunkedArray) -> Column:
    """A stored feature column as the read path serves it: votes Int8 with NA, doubles with NaN."""
    if pa.types.is_int8(values.type):
        return pd.arrays.IntegerArray(
            pc.fill_null(values, 0).to_numpy(), pc.is_null(values).to_numpy(zero_copy_only=False)
        )
    return values.to_numpy(zero_copy_only=False)


class RunIndex:
    """One run in memory; base columns load at construction, feature columns on first use."""

    def __init__(self, run: RunInfo, columns: "ColumnBudget", *, max_cells: int = MAX_CELLS) -> None:
        self.run = run
        self._budget = columns
        self._files = run.files()
        table = self._read(list(ROW_META))
        codes = symbol_codes(run, table["symbol"])
        available = microseconds(table["available_at"])
        self._order = np.lexsort((available, codes))
        codes = codes[self._order]
        self.available_at = available[self._order]
        self.ts = microseconds(table["ts"])[self._order]
        self.bars = table["bars"].to_numpy()[self._order]
        self.warm = table["warm"].to_numpy()[self._order]
        self._instants = np.unique(available)
        self._rank = np.searchsorted(self._instants, self.available_at)
        width = len(run.symbols)
        everyone = np.arange(width)
        self._starts = np.searchsorted(codes, everyone, side="left")
        self._ends = np.searchsorted(codes, everyone, side="right")
        self._step = max(1, -(-len(self._instants) * width // max_cells))
        checkpoints = len(self._instants) // self._step + 2
        landing = (self._rank // self._step + 1) * width + codes
        counts = np.bincount(landing, minlength=checkpoints * width).reshape(checkpoints, width)
        self._before = np.cumsum(counts, axis=0)
        """_before[j, c]: rows of symbol c whose available_at ranks below j * step."""

    def newest(self, codes: np.ndarray, features: list[str], *, until: int) -> Rows:
        """Per symbol in `codes`, its last row with available_at <= until; symbols with none are left out."""
        visible = int(np.searchsorted(self._instants, until, side="right"))
        checkpoint, remainder = divmod(visible, self._step)
        starts = self._starts[codes]
        ends = starts + self._before[checkpoint, codes]
        if remainder:
            ends = _first_at_least(self._rank, ends, starts + self._before[checkpoint + 1, codes], visible)
        found = ends > starts
        return self._rows(codes[found], ends[found] - 1, features)

    def history(self, code: int, features: list[str], *, until: int, first: int, last: int) -> Rows:
        """The symbol's rows with first <= ts <= last and available_at <= until, oldest first."""
        start, end = self._starts[code], self._ends[code]
        low = start + np.searchsorted(self.ts[start:end], first, side="left")
        high = start + np.searchsorted(self.ts[start:end], last, side="right")
        high = min(high, start + np.searchsorted(self.available_at[start:end], until, side="right"))
        positions = np.arange(low, max(low, high))
        return self._rows(np.full(len(positions), code), positions, features)

    def _rows(self, codes: np.ndarray, positions: np.ndarray, features: list[str]) -> Rows:
        return Rows(
            code=codes,
            ts=self.ts[positions],
            available_at=self.available_at[positions],
            bars=self.bars[positions],
            warm=self.warm[positions],
            features={name: self._column(name)[positions] for name in features},
        )

    def _read(self, columns: list[str]) -> pa.Table:
        """Columns of every file of the run, in the run's order (the base columns' order, always)."""
        return pa.concat_tables([pq.read_table(file, columns=columns) for file in self._files])

    def _column(self, name: str) -> Column:
        return self._budget.get(
            (self.run.run_id, name), lambda: column_values(self._read([name])[name])[self._order]
        )


class ColumnBudget:
    """Feature columns in memory across runs, at most `max_bytes` of them: memory follows the features
    clients ask for, and a second run shares the budget instead of doubling it. The least recently used
    column goes first; it is read again from the run's files when asked for again."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._held: OrderedDict[tuple[str, str], Column] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], load: Callable[[], Column]) -> Column:
        with self._lock:
            column = self._held.get(key)
            if column is not None:
                self._held.move_to_end(key)
                return column
        column = load()  # outside the lock: other columns stay readable while this one loads
        with self._lock:
            if key not in self._held:
                self._held[key] = column
                self._bytes += _nbytes(column)
                while self._bytes > self.max_bytes and len(self._held) > 1:
                    _, dropped = self._held.popitem(last=False)
                    self._bytes -= _nbytes(dropped)
        return column


def _nbytes(column: Column) -> int:
    if isinstance(column, np.ndarray):
        return column.nbytes
    return column._data.nbytes + column._mask.nbytes


def _first_at_least(values: np.ndarray, low: np.ndarray, high: np.ndarray, target: int) -> np.ndarray:
    """Per range [low, high) of ascending `values`, the first position with a value >= target, else high."""
    low, high = low.copy(), high.copy()
    while (active := low < high).any():
        middle = (low + high) // 2
        below = active & (values[np.minimum(middle, len(values) - 1)] < target)
        low = np.where(below, middle + 1, low)
        high = np.where(active & ~below, middle, high)
    return low


class MemoryIndex:
    """The runs read most recently, each loaded on first use; at most `max_runs` stay in memory, with their
    feature columns in one budget of `column_bytes`. Memory: about 40 bytes a row for each run held (its
    instants, counts and order) plus the budget."""

    def __init__(
        self, max_runs: int = 2, *, column_bytes: int = COLUMN_BYTES, max_cells: int = MAX_CELLS
    ) -> None:
        self.max_runs = max_runs
        self.max_cells = max_cells
        self.columns = ColumnBudget(column_bytes)
        self._runs: OrderedDict[str, RunIndex] = OrderedDict()
        self._lock = threading.Lock()

    def section(
        self, run: RunInfo, codes: np.ndarray, features: list[str], *, until: int, fresh_from: int
    ) -> Rows:
        """`fresh_from` is not needed here: the rule drops stale rows this proposes."""
        return self._index(run).newest(codes, features, until=until)

    def history(
        self, run: RunInfo, code: int, features: list[str], *, until: int, first: int, last: int
    ) -> Rows:
        return self._index(run).history(code, features, until=until, first=first, last=last)

    def _index(self, run: RunInfo) -> RunIndex:
        with self._lock:
            index = self._runs.get(run.run_id)
            if index is None:
                index = self._runs[run.run_id] = RunIndex(run, self.columns, max_cells=self.max_cells)
                while len(self._runs) > self.max_runs:
                    self._runs.popitem(last=False)
            self._runs.move_to_end(run.run_id)
            return index
