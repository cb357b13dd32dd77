"""Writing a run: chunks staged as Parquet, then one sorted file published atomically.

A run is built in `runs/.staging-<run_id>/`, held by an exclusive `flock` on `runs/.staging-<run_id>.lock`
for the writer's lifetime. `publish()` sorts every chunk by (available_at, symbol) into one
`features.parquet` (so an as-of read touches only the row groups near T), fsyncs it, renames the directory
to `runs/<run_id>/`, and only then commits the catalog rows: until that commit nothing is visible, and a
failure or a kill at any point leaves a directory the next writer sweeps (its lock is free once the process
is gone). Publishing never touches another run.
"""

import fcntl
import os
import secrets
import shutil
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Final, Self

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from storage.catalog import Catalog, RunInfo, RunNotFound, SymbolStatus, code_version
from vocabulary.features import FEATURES, RATINGS, ROW_META, VOTES
from vocabulary.spec import BackfillSpec
from vocabulary.time import available_at

RUNS_DIR: Final = "runs"
FEATURES_FILE: Final = "features.parquet"
STAGING_PREFIX: Final = ".staging-"
LOCK_SUFFIX: Final = ".lock"
ROW_GROUP_ROWS: Final = 32_768
"""About a month of a 1000-symbol daily universe: a cross-section with the default staleness window reads
one or two row groups, and the file keeps few enough groups for DuckDB to plan a query in well under 1 ms."""

TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
RUN_SCHEMA: Final = pa.schema(
    [
        ("symbol", pa.string()),
        ("ts", TIMESTAMP),
        ("available_at", TIMESTAMP),
        ("bars", pa.int64()),
        ("warm", pa.bool_()),
        *((name, pa.int8() if name in VOTES else pa.float64()) for name in FEATURES),
    ]
)
"""The columns of `features.parquet`, in order: votes TINYINT (NULL = not counted), the rest DOUBLE."""

_NOT_NULL: Final = ROW_META
_VOTE_VALUES: Final = (-1.0, 0.0, 1.0)


def new_run_id(created_at: pd.Timestamp) -> str:
    """`YYYYMMDDTHHMMSSZ-<6 hex>`: sorts by creation time, and two writers in one second still differ."""
    return f"{created_at.tz_convert('UTC'):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class RunWriter:
    """Stages a run's rows and publishes them as one immutable run.

    Used as a context manager: an exception inside the `with` block, or leaving it without `publish()`,
    discards the staging directory and leaves the catalog untouched.
    """

    def __init__(self, data_dir: Path | str, spec: BackfillSpec) -> None:
        self.spec = spec
        self.catalog = Catalog(data_dir)
        self.created_at = pd.Timestamp.now(tz="UTC").floor("us")
        self.run_id = new_run_id(self.created_at)
        self.runs_dir = self.catalog.data_dir / RUNS_DIR
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        sweep_abandoned(self.runs_dir, self.catalog)
        self._lock = _try_lock(_lock_path(self.runs_dir, self.run_id))
        if self._lock is None:
            raise RuntimeError(f"run {self.run_id} is already being written")
        self.staging = self.runs_dir / f"{STAGING_PREFIX}{self.run_id}"
        self.staging.mkdir()
        self._chunks = 0
        self._statuses: dict[str, SymbolStatus] = {}
        self._published: RunInfo | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._lock is not None:
            self._discard()

    def write(self, rows: pd.DataFrame) -> None:
        """Stage a chunk: engine output plus `available_at`, any subset of symbols. A ValueError names the
        column, row and value of anything the point-in-time rule could not trust."""
        self._check_open()
        table = _to_table(rows, self.spec)
        if table.num_rows:
            # Dictionary-encoding float columns costs 5x the write time for staging files read once.
            chunk = self.staging / f"chunk-{self._chunks:06d}.parquet"
            pq.write_table(table, chunk, compression="zstd", use_dictionary=["symbol"])
            self._chunks += 1

    def add_status(self, status: SymbolStatus) -> None:
        """Record how a symbol fared; a symbol with rows but no status is recorded as ok."""
        self._check_open()
        if status.symbol in self._statuses:
            raise ValueError(f"run {self.run_id}: status of {status.symbol!r} given twice")
        self._statuses[status.symbol] = status

    def publish(self) -> RunInfo:
        """Sort, fsync, rename into place, then commit the catalog rows: visible from that commit on."""
        self._check_open()
        if not self._chunks:
            raise ValueError(f"run {self.run_id}: nothing to publish, no rows were written")
        spans = self._build()
        statuses = self._merged_statuses(spans)
        final = self.runs_dir / self.run_id
        stored = sorted(spans)
        run = RunInfo(
            run_id=self.run_id,
            spec=self.spec,
            created_at=self.created_at,
            code_version=code_version(),
            symbols=stored,
            start=min(spans[symbol][1] for symbol in stored),
            end=max(spans[symbol][2] for symbol in stored),
            rows=sum(spans[symbol][0] for symbol in stored),
            features=list(FEATURES),
            path=final / FEATURES_FILE,
        )
        os.rename(self.staging, final)
        _fsync(self.runs_dir)
        try:
            self.catalog.record(run, statuses, {symbol: spans[symbol][3:] for symbol in stored})
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        finally:
            self._release()
        self._published = run
        return run

    def _build(self) -> dict[str, tuple]:
        """Sort the chunks into `features.parquet`; per stored symbol: rows, first/last ts, available_at."""
        chunks = f"read_parquet('{_sql_path(self.staging)}/chunk-*.parquet')"
        target = self.staging / FEATURES_FILE
        with duckdb.connect() as db:
            db.execute(f"SET temp_directory = '{_sql_path(self.staging / '.spill')}'")
            duplicate = db.execute(
                f"SELECT symbol, ts FROM {chunks} GROUP BY symbol, ts HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
            if duplicate is not None:
                symbol, ts = duplicate
                raise ValueError(f"run {self.run_id}: symbol {symbol!r} has more than one row at ts {ts}")
            db.execute(
                f"COPY (SELECT * FROM {chunks} ORDER BY available_at, symbol) TO '{_sql_path(target)}' "
                f"(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP_ROWS})"
            )
            spans = db.execute(
                "SELECT symbol, count(*), min(ts), max(ts), min(available_at), max(available_at) "
                f"FROM read_parquet('{_sql_path(target)}') GROUP BY symbol ORDER BY symbol"
            ).fetchall()
        shutil.rmtree(self.staging / ".spill", ignore_errors=True)
        for chunk in self.staging.glob("chunk-*.parquet"):
            chunk.unlink()
        _fsync(target)
        _fsync(self.staging)
        return {
            symbol: (count, *(pd.Timestamp(instant).tz_convert("UTC") for instant in instants))
            for symbol, count, *instants in spans
        }

    def _merged_statuses(self, spans: dict[str, tuple]) -> list[SymbolStatus]:
        """The statuses given, with rows and first/last ts taken from what was actually stored."""
        statuses = []
        for symbol in sorted(self._statuses.keys() | spans.keys()):
            count, first, last = spans.get(symbol, (0, None, None))[:3]
            status = self._statuses.get(symbol)
            if status is None:
                status = SymbolStatus(
                    symbol=symbol,
                    ok=True,
                    reason=None,
                    rows_in=count,
                    rows=count,
                    duplicates=0,
                    unsorted=0,
                    zero_volume=0,
                    refused=0,
                    refused_reasons={},
                    first_ts=first,
                    last_ts=last,
                )
            elif count and not status.ok:
                raise ValueError(
                    f"run {self.run_id}: {symbol!r} is marked failed ({status.reason}) but has {count} rows"
                )
            statuses.append(replace(status, rows=count, first_ts=first, last_ts=last))
        return statuses

    def _check_open(self) -> None:
        if self._published is not None:
            raise RuntimeError(f"run {self.run_id} is already published; runs are immutable")
        if self._lock is None:
            raise RuntimeError(f"run {self.run_id} was discarded")

    def _discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)
        self._release()

    def _release(self) -> None:
        """Drop the lock file while still holding it, then the lock itself."""
        if self._lock is not None:
            _lock_path(self.runs_dir, self.run_id).unlink(missing_ok=True)
            os.close(self._lock)
            self._lock = None


def sweep_abandoned(runs_dir: Path, catalog: Catalog) -> list[str]:
    """Remove what dead writers left: staging directories, and runs renamed into place but never committed.

    A writer holds its lock file until it has published or discarded, so a lock we can take belongs to a
    process that is gone. Returns the run ids swept.
    """
    run_ids = {
        name.removeprefix(STAGING_PREFIX).removesuffix(LOCK_SUFFIX)
        for name in os.listdir(runs_dir)
        if name.startswith(STAGING_PREFIX)
    }
    swept = []
    for run_id in sorted(run_ids):
        lock_path = _lock_path(runs_dir, run_id)
        lock = _try_lock(lock_path)
        if lock is None:
            continue
        try:
            shutil.rmtree(runs_dir / f"{STAGING_PREFIX}{run_id}", ignore_errors=True)
            if (runs_dir / run_id).exists() and not _published(catalog, run_id):
                shutil.rmtree(runs_dir / run_id, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
        finally:
            os.close(lock)
        swept.append(run_id)
    return swept


def _to_table(rows: pd.DataFrame, spec: BackfillSpec) -> pa.Table:
    """Check a chunk against the run's contract and convert it to RUN_SCHEMA."""
    if not isinstance(rows, pd.DataFrame):
        raise TypeError(f"rows must be a pandas DataFrame, not {type(rows).__name__}")
    expected = RUN_SCHEMA.names
    missing = [name for name in expected if name not in rows.columns]
    if missing:
        raise ValueError(
            f"rows: missing column {missing[0]!r}"
            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
        )
    unexpected = [str(name) for name in rows.columns if name not in expected]
    if unexpected:
        raise ValueError(f"rows: unexpected column {unexpected[0]!r}")
    if rows.columns.duplicated().any():
        raise ValueError(f"rows: column {rows.columns[rows.columns.duplicated()][0]!r} appears twice")
    rows = rows.reset_index(drop=True)
    for name in _NOT_NULL:
        _refuse(rows, name, rows[name].isna(), "is missing")
    for name in ("ts", "available_at"):
        dtype = rows[name].dtype
        if not isinstance(dtype, pd.DatetimeTZDtype) or str(dtype.tz) != "UTC":
            raise ValueError(f"rows: column {name!r} must be datetime64 in UTC, not {dtype}")
        _refuse(rows, name, rows[name] != rows[name].dt.floor("us"), "is not a whole microsecond")
    _refuse(
        rows,
        "available_at",
        rows["available_at"] != available_at(rows["ts"], spec.interval, spec.lag),
        f"is not ts + interval + lag ({spec.interval} + {spec.lag})",
    )
    for name, kind in (("bars", "integer"), ("warm", "boolean")):
        checker = pd.api.types.is_integer_dtype if kind == "integer" else pd.api.types.is_bool_dtype
        if not checker(rows[name].dtype):
            raise ValueError(f"rows: column {name!r} must be {kind}, not {rows[name].dtype}")
    _refuse(rows, "bars", rows["bars"] < 1, "is not a positive count of bars")
    for name in FEATURES:
        if not pd.api.types.is_numeric_dtype(rows[name].dtype) or pd.api.types.is_bool_dtype(
            rows[name].dtype
        ):
            raise ValueError(f"rows: column {name!r} must be numeric, not {rows[name].dtype}")
    for name in VOTES:
        _refuse(
            rows, name, rows[name].notna() & ~rows[name].isin(_VOTE_VALUES), "is not a vote (-1, 0, 1 or NaN)"
        )
    for name in RATINGS:
        _refuse(rows, name, rows[name].abs() > 1, "is outside [-1, 1]")
    duplicated = rows.duplicated(["symbol", "ts"])
    _refuse(rows, "ts", duplicated, "repeats an earlier row of the same symbol")
    frame = rows[expected].astype(
        {"ts": "datetime64[us, UTC]", "available_at": "datetime64[us, UTC]", **dict.fromkeys(VOTES, "Int8")}
    )
    return pa.Table.from_pandas(frame, schema=RUN_SCHEMA, preserve_index=False)


def _refuse(rows: pd.DataFrame, column: str, bad: pd.Series, problem: str) -> None:
    """Raise naming the first row where `bad` holds: its position, symbol, ts and the offending value."""
    positions = np.flatnonzero(bad.to_numpy(dtype=bool, na_value=False))
    if len(positions):
        row = rows.iloc[positions[0]]
        value = row[column].item() if isinstance(row[column], np.generic) else row[column]
        more = f"; {len(positions) - 1} more rows like it" if len(positions) > 1 else ""
        raise ValueError(
            f"rows: column {column!r}, row {positions[0]} (symbol {row['symbol']!r}, ts {row['ts']}): "
            f"value {value!r} {problem}{more}"
        )


def _published(catalog: Catalog, run_id: str) -> bool:
    try:
        catalog.run(run_id)
    except RunNotFound:
        return False
    return True


def _lock_path(runs_dir: Path, run_id: str) -> Path:
    return runs_dir / f"{STAGING_PREFIX}{run_id}{LOCK_SUFFIX}"


def _try_lock(path: Path) -> int | None:
    """An exclusive flock on `path` (created if needed), or None when a live process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")
