"""Writing a run: rows staged in pieces, then cut into time-ordered parts and published atomically.

A run made by an update shares its parent's parts (no copy) and adds parts with the new rows; the parts
holding rows of a symbol it recomputed in full (a revision) are rewritten without them instead, so that
every (symbol, ts) is in exactly one of the run's files. A run also stores its carried state
(`state.parquet`, an Arrow table the domain defines), which its updates continue from.

A run is built in `runs/.staging-<run_id>/`, held by an exclusive `flock` on `runs/.staging-<run_id>.lock`
for the writer's lifetime. Rows arrive as pieces (`storage.parts`): staged by `write()` here, or by the
threads and Ray workers of a backfill straight into `staging/pieces/` and handed over with `add_staged()`.
`publish()` writes the parts (each a range of `available_at`, sorted by (available_at, symbol), so an as-of
read touches only the row groups near T), in parallel when given a way to run tasks, fsyncs them, renames
the directory to `runs/<run_id>/`, and only then commits the catalog rows: until that commit nothing is
visible, and a failure or a kill at any point leaves a directory the next writer sweeps (its lock is free
once the process is gone). Publishing never touches another run.
"""

import os
import secrets
import shutil
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.catalog import RUN_LAYOUT, Catalog, RunInfo, RunNotFound, SymbolStatus, code_version
from storage.datadir import try_lock
from storage.parts import (
    MEMORY_ROWS,
    PART_PREFIX,
    RewriteTask,
    Span,
    Staged,
    fsync,
    piece,
    plan_parts,
    rewrite_part,
    spill,
    write_part,
)
from storage.schema import RUN_SCHEMA, TIMESTAMP, microseconds
from vocabulary.features import FEATURES, RATINGS, ROW_META, VOTES
from vocabulary.spec import BackfillSpec
from vocabulary.time import available_at

RUNS_DIR: Final = "runs"
PIECES_DIR: Final = "pieces"
STAGING_PREFIX: Final = ".staging-"
LOCK_SUFFIX: Final = ".lock"
STATE_FILE: Final = "state.parquet"

_NOT_NULL: Final = ROW_META

RunTasks = Callable[[Callable[[Any], Any], Sequence[Any]], list[Any]]
"""Runs `function` on every task, maybe in parallel, and returns the results in the tasks' order."""


def new_run_id(created_at: pd.Timestamp) -> str:
    """`YYYYMMDDTHHMMSSZ-<6 hex>`: sorts by creation time, and two writers in one second still differ."""
    return f"{created_at.tz_convert('UTC'):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@dataclass(frozen=True)
class _Inherited:
    """What a run takes over from the run it updates: its parts (those holding rows of `without` are
    rewritten without them), the spans and statuses of its symbols but `without`, its state files."""

    parts: tuple[Path, ...]
    without: frozenset[str]
    spans: dict[str, Span]
    statuses: dict[str, SymbolStatus]
    state_files: tuple[Path, ...]


class RunWriter:
    """Stages a run's rows and publishes them as one immutable run.

    Used as a context manager: an exception inside the `with` block, or leaving it without `publish()`,
    discards the staging directory and leaves the catalog untouched. `made_by` and `lineage` record how the
    run was made and from which runs (catalog.MADE_BY).
    """

    def __init__(
        self,
        data_dir: Path | str,
        spec: BackfillSpec,
        *,
        made_by: str = "backfill",
        lineage: tuple[str, ...] = (),
    ) -> None:
        self.spec = spec
        self.made_by = made_by
        self.lineage = lineage
        self.catalog = Catalog(data_dir)
        self.created_at = pd.Timestamp.now(tz="UTC").floor("us")
        self.run_id = new_run_id(self.created_at)
        self.runs_dir = self.catalog.data_dir / RUNS_DIR
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        sweep_abandoned(self.runs_dir, self.catalog)
        self._lock = try_lock(_lock_path(self.runs_dir, self.run_id))
        if self._lock is None:
            raise RuntimeError(f"run {self.run_id} is already being written")
        self.staging = self.runs_dir / f"{STAGING_PREFIX}{self.run_id}"
        self.pieces = self.staging / PIECES_DIR
        """Where pieces are staged (`storage.parts.stage_table`); a Ray worker must reach it too."""
        self.pieces.mkdir(parents=True)
        self._staged: list[Staged] = []
        self._statuses: dict[str, SymbolStatus] = {}
        self._states: list[pa.Table] = []
        self._inherited: _Inherited | None = None
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
        table = to_table(rows, self.spec)
        if table.num_rows:
            self.add_staged(piece(table))

    def add_staged(self, staged: Staged) -> None:
        """Take a piece into the run: a file staged in `self.pieces` (by a worker), or a table, kept in
        memory while the pieces held there stay under MEMORY_ROWS rows, else spilled to a file."""
        self._check_open()
        if not staged.rows:
            return
        if isinstance(staged.source, pa.Table):
            held = sum(other.rows for other in self._staged if isinstance(other.source, pa.Table))
            if held + staged.rows > MEMORY_ROWS:
                staged = spill(staged, self.pieces / f"spilled-{len(self._staged):06d}.arrow")
        self._staged.append(staged)

    def add_status(self, status: SymbolStatus) -> None:
        """Record how a symbol fared; a symbol with rows but no status is recorded as ok (or as the run it
        inherits from recorded it)."""
        self._check_open()
        if status.symbol in self._statuses:
            raise ValueError(f"run {self.run_id}: status of {status.symbol!r} given twice")
        self._statuses[status.symbol] = status

    def add_states(self, states: pa.Table) -> None:
        """Rows of the run's carried state (a row per symbol, any schema the caller keeps one), written as
        STATE_FILE in the run's folder at publish."""
        self._check_open()
        self._states.append(states)

    def inherit(self, run: RunInfo, *, without: Collection[str] = ()) -> None:
        """Share `run`'s rows (its parts, not copied), the spans and statuses of its symbols, and its state
        files; the rows of the symbols `without` (recomputed in full by this run) are left out, the parts
        holding them rewritten at publish. Rows added must each follow the symbol's inherited ones."""
        self._check_open()
        if self._inherited is not None:
            raise RuntimeError(f"run {self.run_id} already inherits a run")
        dropped = frozenset(without)
        self._inherited = _Inherited(
            parts=tuple(run.files()),
            without=dropped,
            spans={s: span for s, span in self.catalog.spans(run.run_id).items() if s not in dropped},
            statuses={status.symbol: status for status in self.catalog.symbol_status(run.run_id)},
            state_files=run.state_files,
        )

    def publish(self, run_tasks: RunTasks | None = None, parallelism: int = 1) -> RunInfo:
        """Write the parts (and rewrite the inherited parts holding dropped symbols), fsync, rename into
        place, then commit the catalog rows: visible from that commit on. `run_tasks(function, tasks)` runs
        the part writers (default: one after another, here) and returns their results in order;
        `parallelism` is how many it runs at once."""
        self._check_open()
        if not self._staged and self._inherited is None:
            raise ValueError(f"run {self.run_id}: nothing to publish, no rows were written")
        run_tasks = run_tasks or _one_by_one
        spans = self._spans()
        tasks = plan_parts(self.staging, self._staged, parallelism) if self._staged else []
        written = run_tasks(write_part, tasks)
        if sum(written) != sum(staged.rows for staged in self._staged):
            raise RuntimeError(f"run {self.run_id}: the parts hold {sum(written)} rows, the pieces more")
        parts = [
            *self._shared(run_tasks, len(tasks)),
            *(task.path for task, rows in zip(tasks, written, strict=True) if rows),
        ]
        shutil.rmtree(self.pieces)
        state_files = self._write_states()
        fsync(self.staging)
        statuses = self._merged_statuses(spans)
        final = self.runs_dir / self.run_id
        stored = sorted(spans)
        run = RunInfo(
            run_id=self.run_id,
            spec=self.spec,
            created_at=self.created_at,
            code_version=code_version(),
            symbols=stored,
            start=_instant(min(spans[symbol][1] for symbol in stored)) if stored else None,
            end=_instant(max(spans[symbol][2] for symbol in stored)) if stored else None,
            rows=sum(spans[symbol][0] for symbol in stored),
            features=list(FEATURES),
            path=final,
            layout=RUN_LAYOUT,
            made_by=self.made_by,
            lineage=self.lineage,
            parts=tuple(_placed(file, self.staging, final) for file in parts),
            state_files=tuple(_placed(file, self.staging, final) for file in state_files),
        )
        os.rename(self.staging, final)
        fsync(self.runs_dir)
        available = {symbol: (_instant(spans[symbol][3]), _instant(spans[symbol][4])) for symbol in stored}
        try:
            self.catalog.record(run, statuses, available)
        except BaseException:
            shutil.rmtree(final, ignore_errors=True)
            raise
        finally:
            self._release()
        self._published = run
        return run

    def _shared(self, run_tasks: RunTasks, numbered_from: int) -> list[Path]:
        """The inherited parts this run reads: each as it is, or, when it holds rows of a symbol left out,
        rewritten into the staging folder without them (numbered after the new parts)."""
        inherited = self._inherited
        if inherited is None:
            return []
        if not inherited.without:
            return list(inherited.parts)
        tasks = [
            RewriteTask(
                source, self.staging / f"{PART_PREFIX}{numbered_from + k:05d}.parquet", inherited.without
            )
            for k, source in enumerate(inherited.parts)
        ]
        rewritten = run_tasks(rewrite_part, tasks)
        return [
            task.source if rows is None else task.path
            for task, rows in zip(tasks, rewritten, strict=True)
            if rows is None or rows
        ]

    def _write_states(self) -> list[Path]:
        """The state files this run lists: the inherited ones, then its own (when it was given states)."""
        inherited = list(self._inherited.state_files) if self._inherited is not None else []
        if not self._states:
            return inherited
        path = self.staging / STATE_FILE
        states = pa.concat_tables(self._states, promote_options="default")
        pq.write_table(states.sort_by("symbol"), path, compression="zstd")
        fsync(path)
        return [*inherited, path]

    def _spans(self) -> dict[str, Span]:
        """Per stored symbol: rows, first/last ts, first/last available_at (microseconds), the inherited
        rows included; a ValueError naming the first repeated (symbol, ts) when a symbol's rows came in
        several pieces and overlap, or naming the symbol whose new rows do not follow its inherited ones."""
        merged: dict[str, list[Span]] = {}
        for staged in self._staged:
            for symbol, span in staged.spans.items():
                merged.setdefault(symbol, []).append(span)
        self._check_no_repeats({symbol for symbol, parts in merged.items() if len(parts) > 1})
        inherited = self._inherited.spans if self._inherited is not None else {}
        for symbol, before in inherited.items():
            added = merged.setdefault(symbol, [])
            if added and min(span[1] for span in added) <= before[2]:
                raise ValueError(
                    f"run {self.run_id}: new rows of {symbol!r} start at or before its inherited last ts "
                    f"{_instant(before[2])}"
                )
            added.append(before)
        return {
            symbol: (
                sum(span[0] for span in parts),
                *(pick(span[k] for span in parts) for k, pick in ((1, min), (2, max), (3, min), (4, max))),
            )
            for symbol, parts in merged.items()
        }

    def _check_no_repeats(self, symbols: set[str]) -> None:
        """The rows of `symbols` (each in several pieces) hold no (symbol, ts) twice: one read of the
        pieces that hold them, however many symbols."""
        if not symbols:
            return
        wanted = pa.array(sorted(symbols))
        keys = [
            _keys(staged.source, wanted) for staged in self._staged if not symbols.isdisjoint(staged.spans)
        ]
        table = pa.concat_tables(keys)
        ts = microseconds(table["ts"])
        repeated = _repeats(table["symbol"].combine_chunks(), ts)
        if repeated.any():
            at = int(np.argmax(repeated))
            raise ValueError(
                f"run {self.run_id}: symbol {table['symbol'][at].as_py()!r} has more than one row at ts "
                f"{_instant(int(ts[at]))}"
            )

    def _merged_statuses(self, spans: dict[str, Span]) -> list[SymbolStatus]:
        """The statuses given (else the inherited ones), with rows and first/last ts taken from what the
        run actually stores."""
        inherited = self._inherited.statuses if self._inherited is not None else {}
        statuses = []
        for symbol in sorted(self._statuses.keys() | spans.keys() | inherited.keys()):
            count, first, last = spans.get(symbol, (0, None, None))[:3]
            status = self._statuses.get(symbol) or inherited.get(symbol)
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
                    first_ts=None,
                    last_ts=None,
                )
            elif count and not status.ok:
                raise ValueError(
                    f"run {self.run_id}: {symbol!r} is marked failed ({status.reason}) but has {count} rows"
                )
            first_ts, last_ts = (_instant(first), _instant(last)) if count else (None, None)
            statuses.append(replace(status, rows=count, first_ts=first_ts, last_ts=last_ts))
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
        lock = try_lock(lock_path)
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


def to_table(rows: pd.DataFrame, spec: BackfillSpec) -> pa.Table:
    """Check rows (engine output plus `available_at`, any subset of symbols) against the run's contract and
    convert them to RUN_SCHEMA; a ValueError names the column, row and value of anything the point-in-time
    rule could not trust."""
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
        _refuse(rows, name, rows[name].isna().to_numpy(), "is missing")
    nanoseconds = {}
    for name in ("ts", "available_at"):
        dtype = rows[name].dtype
        if not isinstance(dtype, pd.DatetimeTZDtype) or str(dtype.tz) != "UTC":
            raise ValueError(f"rows: column {name!r} must be datetime64 in UTC, not {dtype}")
        nanoseconds[name] = rows[name].array.as_unit("ns").asi8
        _refuse(rows, name, nanoseconds[name] % 1000 != 0, "is not a whole microsecond")
    formula = available_at(rows["ts"], spec.interval, spec.lag).array.as_unit("ns").asi8
    _refuse(
        rows,
        "available_at",
        nanoseconds["available_at"] != formula,
        f"is not ts + interval + lag ({spec.interval} + {spec.lag})",
    )
    for name, kind in (("bars", "integer"), ("warm", "boolean")):
        checker = pd.api.types.is_integer_dtype if kind == "integer" else pd.api.types.is_bool_dtype
        if not checker(rows[name].dtype):
            raise ValueError(f"rows: column {name!r} must be {kind}, not {rows[name].dtype}")
    _refuse(rows, "bars", rows["bars"].to_numpy() < 1, "is not a positive count of bars")
    values = {}
    for name in FEATURES:
        dtype = rows[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise ValueError(f"rows: column {name!r} must be numeric, not {dtype}")
        column = rows[name]
        # A float64 column is read in place (the engine's output is never copied here); others convert.
        plain = column.dtype == np.float64
        values[name] = column.to_numpy() if plain else column.to_numpy(dtype=np.float64, na_value=np.nan)
    with np.errstate(invalid="ignore"):
        for name in VOTES:
            vote = values[name]
            bad = ~np.isnan(vote) & (vote != -1) & (vote != 0) & (vote != 1)
            _refuse(rows, name, bad, "is not a vote (-1, 0, 1 or NaN)")
        for name in RATINGS:
            _refuse(rows, name, np.abs(values[name]) > 1, "is outside [-1, 1]")
    symbols = _strings(rows["symbol"])
    _refuse(rows, "ts", _repeats(symbols, nanoseconds["ts"]), "repeats an earlier row of the same symbol")
    columns = {
        "symbol": symbols,
        "ts": pa.array(nanoseconds["ts"] // 1000).cast(TIMESTAMP),
        "available_at": pa.array(nanoseconds["available_at"] // 1000).cast(TIMESTAMP),
        "bars": pa.array(rows["bars"].to_numpy(dtype=np.int64)),
        "warm": pa.array(rows["warm"].to_numpy(dtype=bool)),
    }
    for name in FEATURES:
        missing_value = np.isnan(values[name])
        if name in VOTES:
            columns[name] = pa.array(
                np.where(missing_value, 0, values[name]).astype(np.int8), mask=missing_value
            )
        else:
            columns[name] = pa.array(values[name], mask=missing_value)
    return pa.Table.from_pydict(columns, schema=RUN_SCHEMA)


def _strings(column: pd.Series) -> pa.Array:
    """A text column as an Arrow string array (zero-copy from the engine's Arrow-backed strings)."""
    values = pa.array(column.array)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    return values.cast(pa.string())


def _repeats(symbols: pa.Array, ts: np.ndarray) -> np.ndarray:
    """Rows whose (symbol, ts) an earlier row has."""
    codes = pc.dictionary_encode(symbols).indices.to_numpy(zero_copy_only=False)
    order = np.lexsort((ts, codes))
    same = (codes[order][1:] == codes[order][:-1]) & (ts[order][1:] == ts[order][:-1])
    repeated = np.zeros(len(ts), dtype=bool)
    repeated[order[1:][same]] = True
    return repeated


def _keys(source: Path | pa.Table, symbols: pa.Array) -> pa.Table:
    """The `symbol` and `ts` of a staged piece's rows of `symbols` (a piece file is mapped, not read: only
    those two columns are touched)."""
    if isinstance(source, pa.Table):
        table = source.select(["symbol", "ts"])
    else:  # the arrays keep the mapping alive
        table = pa.ipc.open_file(pa.memory_map(str(source))).read_all().select(["symbol", "ts"])
    return table.filter(pc.is_in(table["symbol"], value_set=symbols))


def read_state(
    file: Path, *, columns: list[str] | None = None, symbols: Collection[str] | None = None
) -> pa.Table:
    """A run's carried state (STATE_FILE), its `columns` of the rows of `symbols` (None: all)."""
    table = pq.read_table(file, columns=columns)
    if symbols is None:
        return table
    return table.filter(pc.is_in(table["symbol"], value_set=pa.array(sorted(symbols), pa.string())))


def _placed(file: Path, staging: Path, final: Path) -> Path:
    """Where a file of the run lies once its staging folder is renamed into place (others' files stay)."""
    return final / file.relative_to(staging) if file.is_relative_to(staging) else file


def _one_by_one(function: Callable[[Any], Any], tasks: Sequence[Any]) -> list[Any]:
    return [function(task) for task in tasks]


def _instant(microseconds: int) -> pd.Timestamp:
    return pd.Timestamp(microseconds, unit="us", tz="UTC")


def _refuse(rows: pd.DataFrame, column: str, bad: np.ndarray, problem: str) -> None:
    """Raise naming the first row where `bad` holds: its position, symbol, ts and the offending value."""
    positions = np.flatnonzero(bad)
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
