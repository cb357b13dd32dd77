"""THE as-of read. Every feature row leaves storage through `point_in_time`, the one function that applies
the point-in-time rule of DESIGN.md; cross-sections, batches and histories all call it.

Where rows come from is a separate concern: a source proposes candidate rows (the in-memory index, or
DuckDB over the run's Parquet), and `point_in_time` decides what is visible. Both sources are held to the
same answers by tests.
"""

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Final, Protocol

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from storage.catalog import Catalog, NoRunError, RunInfo, SymbolNotFound
from storage.index import COLUMN_BYTES, MemoryIndex, Rows, column_values, symbol_codes
from storage.schema import microseconds
from vocabulary.errors import InvalidInput, NotFound, Unavailable
from vocabulary.features import FEATURES, RATINGS, ROW_META
from vocabulary.time import nanoseconds, parse_instant, parse_interval

logger = logging.getLogger(__name__)

VIEWS_HELD: Final = 64

_INT64: Final = np.iinfo(np.int64)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DATETIME_RANGE_US: Final = (
    (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1),
    (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1),
)


@dataclass(frozen=True)
class CrossSection:
    """Per symbol, the newest row knowable at `as_of` (sorted by symbol); `stale` lists, sorted, the symbols
    whose newest knowable row is older than the staleness window and that `rows` therefore leaves out.

    The rows are held as columns (`found`, symbols by their position in `labels`, the run's sorted symbols),
    which is what the answer encoders read; `rows` builds the pandas frame on first use, for Python callers.
    """

    as_of: pd.Timestamp
    run_id: str
    dataset: str
    interval: str
    features: list[str]
    found: Rows = field(repr=False, compare=False)
    labels: pd.api.extensions.ExtensionArray = field(repr=False, compare=False)
    stale: list[str] = field(default_factory=list)

    @cached_property
    def rows(self) -> pd.DataFrame:
        return frame(self.found, self.labels, self.features)


@dataclass(frozen=True)
class Sight:
    """What a query standing at an instant may see, in whole microseconds (the stored resolution)."""

    until: int
    """Rows with available_at <= until are visible: as_of floored to the microsecond, which is exact."""
    fresh_from: int | None
    """Cross-sections only: a newest visible row with available_at < fresh_from is stale (to the
    nanosecond; see `Interval.fresh_from`)."""

    @classmethod
    def at(cls, as_of: pd.Timestamp, fresh_from: int | None = None) -> "Sight":
        """`fresh_from`: the earliest fresh available_at in nanoseconds (a Python int, so no window is too
        long), None for a history."""
        # Ceiling in microseconds: a row exactly at the bound is fresh.
        fresh = None if fresh_from is None else _clamp(-(-fresh_from // 1000))
        return cls(until=_clamp(nanoseconds(as_of) // 1000), fresh_from=fresh)


@dataclass(frozen=True)
class RunView:
    """A published run as readers need it; immutable, so cached for the life of the store."""

    info: RunInfo
    codes: dict[str, int]
    labels: pd.api.extensions.ExtensionArray
    first_available: np.ndarray

    @classmethod
    def load(cls, catalog: Catalog, info: RunInfo) -> "RunView":
        first = catalog.first_available(info.run_id)
        return cls(
            info=info,
            codes={symbol: code for code, symbol in enumerate(info.symbols)},
            labels=pd.array(info.symbols, dtype="str"),
            first_available=np.array(
                [nanoseconds(first[symbol]) // 1000 for symbol in info.symbols], dtype=np.int64
            ),
        )

    def requested(self, symbols: Iterable[str] | str | None) -> np.ndarray:
        """Codes of the asked-for symbols the run stores, sorted; a symbol it does not store has no
        visible row, so (like one not yet listed) it simply does not appear."""
        if symbols is None:
            return np.arange(len(self.codes))
        if isinstance(symbols, str):
            symbols = [symbols]
        return np.unique(np.array([self.codes[s] for s in symbols if s in self.codes], dtype=np.int64))


class Source(Protocol):
    """Proposes candidate rows of a run; `point_in_time` decides. `section` gives, per asked-for symbol, rows
    that may be its newest visible one (at least that row when it lies in [fresh_from, until]); `history`
    the symbol's rows with first <= ts <= last (at least those visible at until)."""

    def section(
        self, run: RunInfo, codes: np.ndarray, features: list[str], *, until: int, fresh_from: int
    ) -> Rows: ...

    def history(
        self, run: RunInfo, code: int, features: list[str], *, until: int, first: int, last: int
    ) -> Rows: ...


def point_in_time(
    candidates: Rows, sight: Sight, run: RunView, requested: np.ndarray
) -> tuple[Rows, list[str]]:
    """THE point-in-time rule (DESIGN.md), applied to rows a source proposes for the `requested` symbols.

    A row is visible iff available_at <= as_of. History (`sight.fresh_from` None): every visible row, oldest
    first. Cross-section: per symbol the newest visible row; a symbol whose newest visible row is older than
    the staleness window is left out and listed as stale (it has a visible row iff its first row's
    available_at <= as_of); a symbol with no visible row does not appear. Returns the rows and stale symbols.
    """
    asked = np.zeros(len(run.codes), dtype=bool)
    asked[requested] = True
    visible = (candidates.available_at <= sight.until) & asked[candidates.code]
    positions = np.flatnonzero(visible)
    if sight.fresh_from is None:
        return candidates.take(positions[np.argsort(candidates.available_at[positions], kind="stable")]), []
    order = positions[np.lexsort((candidates.available_at[positions], candidates.code[positions]))]
    codes = candidates.code[order]
    newest = order[np.append(codes[1:] != codes[:-1], True)] if len(order) else order
    rows = candidates.take(newest[candidates.available_at[newest] >= sight.fresh_from])
    stale = asked & (run.first_available <= sight.until)
    stale[rows.code] = False
    return rows, [run.info.symbols[code] for code in np.flatnonzero(stale)]


class ParquetSource:
    """DuckDB over the run's Parquet. Cross-sections filter on available_at in [fresh_from, until], so DuckDB
    reads only the row groups near T; one in-process database (not the catalog file), a cursor per thread."""

    def __init__(self) -> None:
        self._database = duckdb.connect()
        self._database.execute("SET GLOBAL parquet_metadata_cache = true")
        self._local = threading.local()
        self._symbols: dict[str, pa.Array] = {}
        self._files: dict[str, list[tuple[Path, int, int]]] = {}

    def section(
        self, run: RunInfo, codes: np.ndarray, features: list[str], *, until: int, fresh_from: int
    ) -> Rows:
        """Every row in [fresh_from, until]: `point_in_time` picks each symbol's newest (cheaper than asking
        DuckDB to, which plans an aggregate per column)."""
        window = "available_at BETWEEN $fresh_from AND $until"
        files = self._spanning(run, fresh_from, until)
        query = f"SELECT {_columns(features)} FROM {parquet_sql(files)} WHERE {window}"
        parameters = {"fresh_from": _datetime(fresh_from), "until": _datetime(until)}
        return self._rows(run, query, parameters, features)

    def history(
        self, run: RunInfo, code: int, features: list[str], *, until: int, first: int, last: int
    ) -> Rows:
        query = (
            f"SELECT {_columns(features)} FROM {parquet_sql(run.files())} WHERE symbol = $symbol "
            "AND available_at <= $until AND ts BETWEEN $first AND $last ORDER BY available_at"
        )
        parameters = {
            "symbol": run.symbols[code],
            "until": _datetime(until),
            "first": _datetime(first),
            "last": _datetime(last),
        }
        return self._rows(run, query, parameters, features)

    def _spanning(self, run: RunInfo, low: int, high: int) -> list[Path]:
        """The run's files holding rows with available_at in [low, high] (microseconds), from their
        footers, read once per run: a layout-2 run's parts each hold one range, and DuckDB opening only the
        one or two that matter is what keeps a many-part run as fast as one file."""
        spans = self._files.get(run.run_id)
        if spans is None:
            spans = self._files[run.run_id] = [(file, *_available_span(file)) for file in run.files()]
        chosen = [file for file, first, last in spans if first <= high and last >= low]
        return chosen or [spans[0][0]]

    def _rows(self, run: RunInfo, query: str, parameters: dict, features: list[str]) -> Rows:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            cursor = self._local.cursor = self._database.cursor()
        table = cursor.sql(query, params=parameters).to_arrow_table()
        known = self._symbols.get(run.run_id)
        if known is None:
            known = self._symbols[run.run_id] = pa.array(run.symbols, pa.string())
        return Rows(
            code=symbol_codes(run, table["symbol"], known),
            ts=microseconds(table["ts"]),
            available_at=microseconds(table["available_at"]),
            bars=table["bars"].to_numpy(),
            warm=table["warm"].to_numpy(zero_copy_only=False),
            features={name: column_values(table[name]) for name in features},
        )


class FeatureStore:
    """Point-in-time reads of published runs in `data_dir`.

    `index=True` serves from the in-memory index (each run loaded on first use), `index=False` from DuckDB
    over Parquet only; both go through `point_in_time` and answer identically. Unpinned reads use the run
    published last, re-checked on every call at the cost of a few `stat`s. `catalog_wait` bounds how long a
    read waits for a catalog another process holds. A run file that is missing or damaged is
    RunFileUnavailable, never a crash.
    """

    def __init__(
        self,
        data_dir: Path | str,
        *,
        index: bool = True,
        catalog_wait: float = 10.0,
        default_dataset: str | None = None,
        column_bytes: int = COLUMN_BYTES,
    ) -> None:
        self.catalog = Catalog(data_dir, lock_timeout=catalog_wait)
        self.default_dataset = default_dataset
        self._source: Source = MemoryIndex(column_bytes=column_bytes) if index else ParquetSource()
        self._views: OrderedDict[str, RunView] = OrderedDict()
        """The runs read lately (a service lives for months: every update makes a run)."""
        self._views_lock = threading.Lock()
        self._datasets: tuple[tuple, dict[str, RunInfo]] | None = None
        self._read_at: dict[str, float] = {}

    def cross_section(
        self,
        as_of: str | datetime | pd.Timestamp,
        *,
        symbols: Iterable[str] | None = None,
        features: Iterable[str] | str | None = None,
        run_id: str | None = None,
        dataset: str | None = None,
        max_staleness: int = 5,
    ) -> CrossSection:
        """The newest row knowable at `as_of` per symbol (`features`: None = the three ratings, "all")."""
        return self.batch(
            [as_of],
            symbols=symbols,
            features=features,
            run_id=run_id,
            dataset=dataset,
            max_staleness=max_staleness,
        )[0]

    def batch(
        self,
        as_ofs: Iterable[str | datetime | pd.Timestamp],
        *,
        symbols: Iterable[str] | None = None,
        features: Iterable[str] | str | None = None,
        run_id: str | None = None,
        dataset: str | None = None,
        max_staleness: int = 5,
    ) -> list[CrossSection]:
        """One cross-section per instant, in order, all from the same run (resolved once): `run_id`, else
        the newest run of `dataset` (see `dataset_of`)."""
        instants = [parse_instant(as_of) for as_of in as_ofs]
        names = resolve_features(features)
        intervals = _intervals(max_staleness)
        run = self._view(run_id, dataset)
        requested = run.requested(symbols)
        interval = parse_interval(run.info.interval)
        return [
            self._cross_section(
                run, instant, requested, names, interval.fresh_from(instant, intervals, run.info.lag)
            )
            for instant in instants
        ]

    def history(
        self,
        symbol: str,
        *,
        start: str | datetime | pd.Timestamp | None = None,
        end: str | datetime | pd.Timestamp | None = None,
        as_of: str | datetime | pd.Timestamp | None = None,
        run_id: str | None = None,
        dataset: str | None = None,
        features: Iterable[str] | str | None = None,
    ) -> pd.DataFrame:
        """The symbol's rows with start <= ts <= end as known at `as_of` (default now), oldest first."""
        moment = pd.Timestamp.now(tz="UTC") if as_of is None else parse_instant(as_of)
        start_at = None if start is None else parse_instant(start, name="start")
        end_at = None if end is None else parse_instant(end, name="end")
        if start_at is not None and end_at is not None and start_at > end_at:
            raise InvalidInput(f"start {start} is after end {end}", field="start")
        first = _INT64.min if start_at is None else -(-nanoseconds(start_at) // 1000)  # rounded up
        last = _INT64.max if end_at is None else nanoseconds(end_at) // 1000
        names = resolve_features(features)
        run = self._view(run_id, dataset)
        if symbol not in run.codes:
            raise SymbolNotFound(symbol, run.info.run_id)
        code = run.codes[symbol]
        sight = Sight.at(moment)
        with _reading(run.info):
            candidates = self._source.history(
                run.info, code, names, until=sight.until, first=first, last=last
            )
        rows, _ = point_in_time(candidates, sight, run, np.array([code]))
        return frame(rows, run.labels, names)

    def run(self, run_id: str | None = None, dataset: str | None = None) -> RunInfo:
        """The pinned run, or the newest of the dataset: what an unpinned read uses (cached like reads)."""
        return self._view(run_id, dataset).info

    def _cross_section(
        self,
        run: RunView,
        as_of: pd.Timestamp,
        requested: np.ndarray,
        features: list[str],
        fresh_from: int,
    ) -> CrossSection:
        sight = Sight.at(as_of, fresh_from)
        with _reading(run.info):
            candidates = self._source.section(
                run.info, requested, features, until=sight.until, fresh_from=sight.fresh_from
            )
        rows, stale = point_in_time(candidates, sight, run, requested)
        return CrossSection(
            as_of=as_of,
            run_id=run.info.run_id,
            dataset=run.info.spec.dataset,
            interval=run.info.interval,
            features=features,
            found=rows,
            labels=run.labels,
            stale=stale,
        )

    def datasets(self) -> dict[str, RunInfo]:
        """Every dataset with its run published last, re-read only when the catalog has changed."""
        stamp, known = self.catalog.stamp(), self._datasets
        if known is None or known[0] != stamp:
            known = self._datasets = (stamp, self.catalog.datasets())
        return known[1]

    def _view(self, run_id: str | None, dataset: str | None = None) -> RunView:
        """The pinned run (RunNotFound if unknown), else the newest run of `dataset` (see `dataset_of`)."""
        if run_id is None:
            datasets = self.datasets()
            run_id = datasets[self.dataset_of(dataset, datasets)].run_id
        with self._views_lock:
            view = self._views.get(run_id)
        if view is None:
            view = RunView.load(self.catalog, self.catalog.run(run_id))  # catalog I/O, outside the lock
        with self._views_lock:
            self._views[run_id] = view
            self._views.move_to_end(run_id)
            while len(self._views) > VIEWS_HELD:
                self._views.popitem(last=False)
        if dataset is not None and view.info.spec.dataset != dataset:
            raise InvalidInput(
                f"run {run_id} belongs to dataset {view.info.spec.dataset!r}, not {dataset!r}",
                field="dataset",
            )
        self._read_at[run_id] = time.monotonic()  # one entry a run ever read: a few bytes each
        return view

    def pinned(self, seconds: float) -> frozenset[str]:
        """The runs read within the last `seconds`: a client reading a run (a backtest pins the run it
        started on and reads it at every batch) holds it against retention for that long after."""
        since = time.monotonic() - seconds
        return frozenset(run_id for run_id, read_at in list(self._read_at.items()) if read_at >= since)

    def dataset_of(self, dataset: str | None, datasets: dict[str, RunInfo] | None = None) -> str:
        """The dataset an unpinned read follows: the one named, else the default (`default_dataset`, or the
        only dataset there is); NoRunError when nothing is published, DatasetNotFound for an unknown name,
        InvalidInput listing the datasets when several exist and none is named. `datasets`: what
        `datasets()` just answered, if the caller has it."""
        datasets = self.datasets() if datasets is None else datasets
        if not datasets:
            raise NoRunError("no run is published yet; run a backfill first")
        name = dataset or self.default_dataset or (next(iter(datasets)) if len(datasets) == 1 else None)
        if name is None:
            raise InvalidInput(
                f"this data dir holds {len(datasets)} datasets ({', '.join(datasets)}): name one with "
                "`dataset` (or set ASOF_DEFAULT_DATASET)",
                field="dataset",
            )
        if name not in datasets:
            raise DatasetNotFound(f"unknown dataset {name!r}; the datasets are {', '.join(datasets)}")
        return name


class DatasetNotFound(NotFound):
    """A read named a dataset the data dir does not hold."""


class RunFileUnavailable(Unavailable):
    """A published run's features file is missing or damaged: storage lost what it published."""


@contextmanager
def _reading(run: RunInfo) -> Iterator[None]:
    """Around a read of a run's file: a missing, truncated or corrupt file is RunFileUnavailable, naming the
    run and not the server's path (the full error goes to the log)."""
    try:
        yield
    except (OSError, pa.ArrowException, duckdb.Error) as error:
        logger.error("run %s: reading %s failed: %s", run.run_id, run.path, error)
        raise RunFileUnavailable(f"run {run.run_id}: its features file is missing or damaged") from error


def resolve_features(features: Iterable[str] | str | None) -> list[str]:
    """None means the three ratings, "all" every feature; otherwise names checked against FEATURES."""
    if features is None:
        return list(RATINGS)
    if features == "all":
        return list(FEATURES)
    names = [features] if isinstance(features, str) else list(features)
    for name in names:
        if name not in FEATURES:
            raise InvalidInput(
                f"unknown feature {name!r}; expected names from FEATURES (or 'all')", field="features"
            )
    return list(dict.fromkeys(names))


def frame(rows: Rows, labels: pd.api.extensions.ExtensionArray, features: list[str]) -> pd.DataFrame:
    """Rows as the read path serves them to Python: `labels` the run's sorted symbols, instants as
    datetime64[ns, UTC], votes Int8, values float64."""
    return pd.DataFrame(
        {
            "symbol": labels.take(rows.code),
            "ts": _utc(rows.ts),
            "available_at": _utc(rows.available_at),
            "bars": rows.bars,
            "warm": rows.warm,
            **{name: rows.features[name] for name in features},
        }
    )


def _utc(microseconds: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex((microseconds * 1000).view("datetime64[ns]"), tz="UTC")


def _intervals(max_staleness: int) -> int:
    if (
        isinstance(max_staleness, bool)
        or not isinstance(max_staleness, (int, np.integer))
        or max_staleness < 0
    ):
        raise InvalidInput(
            f"must be a non-negative whole number of intervals, not {max_staleness!r}", field="max_staleness"
        )
    return int(max_staleness)


def _clamp(microseconds: int) -> int:
    return min(max(microseconds, _INT64.min + 1), _INT64.max - 1)


def _datetime(microseconds: int) -> datetime:
    """An instant as DuckDB takes it, clamped to the range of Python datetimes (stored data lies inside)."""
    low, high = _DATETIME_RANGE_US
    return _EPOCH + timedelta(microseconds=min(max(microseconds, low), high))


def _columns(features: list[str]) -> str:
    return ", ".join(f'"{name}"' for name in (*ROW_META, *features))


def parquet_sql(files: list[Path]) -> str:
    """Parquet files as a DuckDB table expression."""
    quoted = ", ".join("'{}'".format(str(file).replace("'", "''")) for file in files)
    return f"read_parquet([{quoted}])"


def _available_span(file: Path) -> tuple[int, int]:
    """The first and last available_at (microseconds) in a run file, from its row groups' statistics."""
    metadata = pq.read_metadata(file)
    column = metadata.schema.to_arrow_schema().get_field_index("available_at")
    groups = [metadata.row_group(k).column(column).statistics for k in range(metadata.num_row_groups)]
    known = [stats for stats in groups if stats is not None and stats.has_min_max]
    if len(known) < len(groups) or not known:
        return int(_INT64.min), int(_INT64.max)  # without statistics, the file may hold any instant
    return min(_micros(stats.min) for stats in known), max(_micros(stats.max) for stats in known)


def _micros(instant: datetime | int) -> int:
    return instant if isinstance(instant, int) else (instant - _EPOCH) // timedelta(microseconds=1)
