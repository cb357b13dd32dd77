"""The catalog: which runs are published, how every symbol fared in each, and the jobs table.

`catalog.duckdb` under the data dir is the one authority on visibility: a run exists for readers once its
row is committed here, and not before. DuckDB lets one process open a database file at a time, so every
call opens a short-lived connection (`Catalog.connect`) and retries while another process holds the file;
an API server and a CLI backfill can then share a data dir.

The file carries its format version (`FORMAT_VERSION`); opening an older catalog migrates it in place in one
transaction, and a newer one is refused with what to do. Each run records the layout version of its files.
"""

import json
import logging
import os
import random
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Final

import duckdb
import pandas as pd
import pyarrow as pa

from storage.parts import PART_PREFIX, Span
from vocabulary.errors import InvalidInput, NotFound, Unavailable
from vocabulary.spec import BackfillSpec

CATALOG_FILE: Final = "catalog.duckdb"
PUBLISHED_MARKER: Final = "catalog.published"
"""Replaced after every publish, so readers can tell with one stat that the newest run may have changed."""
FORMAT_VERSION: Final = 5
"""1: the first release. 2: a `format` table; runs record their whole BackfillSpec and their layout; jobs
have a kind. 3: runs belong to a dataset. 4: a job records that its cancel was asked for (any server
process may ask; the one that runs the job acts on it). 5: runs list their files (relative to the data
dir) and record how they were made (`made_by`) and from which runs (`lineage`), so that a run made by an
update can share its ancestors' files."""
RUN_LAYOUT: Final = 3
"""How a run's files are laid out. 1: one `features.parquet` sorted by (available_at, symbol); `path` is the
file. 2: `part-NNNNN.parquet` files in the run's folder (`path`), each a range of available_at sorted by
(available_at, symbol), so that read in name order they are the layout-1 sequence (`storage.parts`).
3: the catalog lists the run's parts (each sorted by (available_at, symbol)) and its carried-state files:
its own, in its folder, and for a run made by an update its ancestors' too, so that the parts' ranges of
`available_at` may overlap (an update's new rows follow its parent's per symbol, not as a whole). Every
layout ever written stays readable."""
MADE_BY: Final = ("backfill", "update", "compact")
"""How a run was made: a backfill of a lake; an update of a parent run (its files plus the new bars'
rows); a compaction of a run (the same rows rewritten into fresh parts of its own)."""

logger = logging.getLogger(__name__)

_SCHEMA = f"""
CREATE TABLE format (version INTEGER NOT NULL);
INSERT INTO format VALUES ({FORMAT_VERSION});
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY,
    interval VARCHAR NOT NULL,
    lag_us BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ NOT NULL,
    code_version VARCHAR NOT NULL,
    symbols VARCHAR[] NOT NULL,
    start_ts TIMESTAMPTZ,
    end_ts TIMESTAMPTZ,
    n_rows BIGINT NOT NULL,
    features VARCHAR[] NOT NULL,
    params VARCHAR NOT NULL,
    path VARCHAR NOT NULL,
    layout INTEGER NOT NULL DEFAULT {RUN_LAYOUT},
    dataset VARCHAR NOT NULL,
    made_by VARCHAR NOT NULL DEFAULT 'backfill',
    lineage VARCHAR[] NOT NULL DEFAULT [],
    parts VARCHAR[],
    states VARCHAR[] NOT NULL DEFAULT []
);
CREATE TABLE symbol_status (
    run_id VARCHAR NOT NULL,
    symbol VARCHAR NOT NULL,
    ok BOOLEAN NOT NULL,
    reason VARCHAR,
    rows_in BIGINT NOT NULL,
    n_rows BIGINT NOT NULL,
    duplicates BIGINT NOT NULL,
    unsorted BIGINT NOT NULL,
    zero_volume BIGINT NOT NULL,
    refused BIGINT NOT NULL,
    refused_reasons VARCHAR NOT NULL,
    first_ts TIMESTAMPTZ,
    last_ts TIMESTAMPTZ,
    first_available_at TIMESTAMPTZ,
    last_available_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, symbol)
);
CREATE TABLE jobs (
    job_id VARCHAR PRIMARY KEY,
    kind VARCHAR NOT NULL DEFAULT 'backfill',
    status VARCHAR NOT NULL,
    params VARCHAR NOT NULL,
    params_key VARCHAR NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    total BIGINT,
    errors VARCHAR NOT NULL DEFAULT '[]',
    report VARCHAR NOT NULL DEFAULT '{{}}',
    run_id VARCHAR,
    created TIMESTAMP NOT NULL,
    started TIMESTAMP,
    finished TIMESTAMP,
    message VARCHAR,
    cancel_requested BOOLEAN NOT NULL DEFAULT false
);
"""
_RUN_COLUMNS = (
    "run_id, created_at, code_version, symbols, start_ts, end_ts, n_rows, features, params, path, layout, "
    "made_by, lineage, parts, states"
)
_STATUS_COLUMNS = (
    "symbol, ok, reason, rows_in, n_rows, duplicates, unsorted, zero_volume, refused, refused_reasons, "
    "first_ts, last_ts"
)


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"unknown run {run_id!r}")
        self.run_id = run_id


class NoRunError(NotFound):
    """Nothing is published yet, so there is no default run to read."""


class SymbolNotFound(NotFound):
    def __init__(self, symbol: str, run_id: str) -> None:
        super().__init__(f"symbol {symbol!r} has no rows in run {run_id!r}")
        self.symbol = symbol
        self.run_id = run_id


class CatalogLocked(Unavailable):
    """Another process kept the catalog file locked for longer than the catalog waits."""


class CatalogUnreadable(Unavailable):
    """The catalog file is damaged or cannot be read at all."""


@dataclass(frozen=True)
class SymbolStatus:
    """How one symbol fared in a run: its cleaning counts, and the span of the rows it stored."""

    symbol: str
    ok: bool
    reason: str | None
    rows_in: int
    rows: int
    duplicates: int
    unsorted: int
    zero_volume: int
    refused: int
    refused_reasons: dict[str, int]
    first_ts: pd.Timestamp | None
    last_ts: pd.Timestamp | None


@dataclass(frozen=True)
class RunInfo:
    """A published run: the spec it was made from, its folder (`path`; layout 1: its file), the first and
    last bar `ts` it holds (`start`, `end`), how it was made (`made_by`, MADE_BY) and from which runs
    (`lineage`: an update's parent first, then the parent's lineage), and, from layout 3 on, the files it
    reads: `parts` (its rows) and `state_files` (its carried state, after its ancestors': what locating a
    revision reads)."""

    run_id: str
    spec: BackfillSpec
    created_at: pd.Timestamp
    code_version: str
    symbols: list[str]
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    rows: int
    features: list[str]
    path: Path
    layout: int = RUN_LAYOUT
    made_by: str = "backfill"
    lineage: tuple[str, ...] = ()
    parts: tuple[Path, ...] | None = None
    state_files: tuple[Path, ...] = ()

    @property
    def interval(self) -> str:
        return self.spec.interval

    @property
    def parent(self) -> str | None:
        """The run this one was made from (an update's parent, a compaction's source), if any."""
        return self.lineage[0] if self.lineage else None

    def files(self) -> list[Path]:
        """Every file the run's rows are read from, each sorted by (available_at, symbol): layout 1 its one
        Parquet file, layout 2 its parts in name order (one sorted sequence), layout 3 the parts listed."""
        if self.layout == 1:
            return [self.path]
        if self.parts is not None:
            return list(self.parts)
        return sorted(self.path.glob(f"{PART_PREFIX}*.parquet"))

    def reads(self) -> list[Path]:
        """Every file the run needs: its rows' and its carried state's. Retention keeps a file while a run
        that reads it remains."""
        return [*self.files(), *self.state_files]

    @property
    def lag(self) -> pd.Timedelta:
        return self.spec.lag


class Catalog:
    """`catalog.duckdb` in `data_dir` (both created when missing), read and written through short-lived
    connections; `lock_timeout` bounds how long a call waits for another process to release the file."""

    def __init__(self, data_dir: Path | str, *, lock_timeout: float = 10.0) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / CATALOG_FILE
        self.lock_timeout = lock_timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._formatted = False

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work, closed on exit so other processes can open the file. The first
        one of this Catalog creates or migrates the file's format.

        Units of work of one process run one at a time: its connections share one DuckDB instance, where
        two threads updating the same row (a job's cancel beside its progress) would fail with a write
        conflict. Waits for its turn, then (with jittered backoff) while another process holds the file,
        and raises CatalogLocked after `lock_timeout` seconds in all; a file DuckDB cannot open or read is
        CatalogUnreadable. Both are Unavailable and name the file, never its absolute path (the full error
        goes to the log).
        """
        deadline = time.monotonic() + self.lock_timeout
        turn = _unit_of_work(self.path.resolve())
        if not turn.acquire(timeout=self.lock_timeout):
            raise CatalogLocked(
                f"{CATALOG_FILE} stayed locked by other work of this process for {self.lock_timeout:g} s"
            )
        try:
            yield from self._connected(deadline)
        finally:
            turn.release()

    def _connected(self, deadline: float) -> Iterator[duckdb.DuckDBPyConnection]:
        connection = self._open(deadline)
        try:
            if not self._formatted:
                _open_format(connection, self.path)
                self._formatted = True
            yield connection
        except (duckdb.IOException, duckdb.SerializationException, duckdb.InternalException) as error:
            logger.error("catalog %s cannot be read: %s", self.path, error)
            raise CatalogUnreadable(f"{CATALOG_FILE} cannot be read ({type(error).__name__})") from error
        finally:
            connection.close()

    def _open(self, deadline: float) -> duckdb.DuckDBPyConnection:
        pause = 0.005
        while True:
            try:
                return duckdb.connect(str(self.path))
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    logger.error("catalog %s cannot be opened: %s", self.path, error)
                    raise CatalogUnreadable(
                        f"{CATALOG_FILE} cannot be opened ({type(error).__name__})"
                    ) from error
                if time.monotonic() >= deadline:
                    raise CatalogLocked(
                        f"{CATALOG_FILE} stayed locked by another process for {self.lock_timeout:g} s"
                    ) from error
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.2)
            except duckdb.Error as error:
                logger.error("catalog %s cannot be opened: %s", self.path, error)
                raise CatalogUnreadable(
                    f"{CATALOG_FILE} cannot be opened ({type(error).__name__})"
                ) from error

    def stamp(self) -> tuple:
        """Changes whenever a run is published (and on other writes to the catalog): a cheap cache key."""
        return tuple(
            _file_stamp(self.data_dir / name)
            for name in (PUBLISHED_MARKER, CATALOG_FILE, f"{CATALOG_FILE}.wal")
        )

    def runs(self) -> list[RunInfo]:
        """Every published run, newest first."""
        with self.connect() as connection:
            rows = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs ORDER BY published_at DESC, run_id DESC"
            ).fetchall()
        return [self._run(row) for row in rows]

    def run(self, run_id: str) -> RunInfo:
        with self.connect() as connection:
            row = connection.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", [run_id]).fetchone()
        if row is None:
            raise RunNotFound(run_id)
        return self._run(row)

    def latest_run(self, *, interval: str | None = None) -> RunInfo | None:
        """The run published last (of `interval`, when given), or None when there is none."""
        with self.connect() as connection:
            row = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE (? IS NULL OR interval = ?) "
                "ORDER BY published_at DESC, run_id DESC LIMIT 1",
                [interval, interval],
            ).fetchone()
        return None if row is None else self._run(row)

    def datasets(self) -> dict[str, RunInfo]:
        """Every dataset, by name, with its run published last."""
        with self.connect() as connection:
            rows = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs QUALIFY row_number() OVER "
                "(PARTITION BY dataset ORDER BY published_at DESC, run_id DESC) = 1 ORDER BY dataset"
            ).fetchall()
        return {run.spec.dataset: run for run in map(self._run, rows)}

    def symbol_status(self, run_id: str) -> list[SymbolStatus]:
        """Every symbol the run was asked for, in symbol order; RunNotFound for an unknown run."""
        with self.connect() as connection:
            if connection.execute("SELECT 1 FROM runs WHERE run_id = ?", [run_id]).fetchone() is None:
                raise RunNotFound(run_id)
            rows = connection.execute(
                f"SELECT {_STATUS_COLUMNS} FROM symbol_status WHERE run_id = ? ORDER BY symbol", [run_id]
            ).fetchall()
        return [_status(row) for row in rows]

    def first_available(self, run_id: str) -> dict[str, pd.Timestamp]:
        """When each stored symbol's first row became knowable: a symbol listed at T has one <= T."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT symbol, first_available_at FROM symbol_status "
                "WHERE run_id = ? AND first_available_at IS NOT NULL",
                [run_id],
            ).fetchall()
        return {symbol: _instant(first) for symbol, first in rows}

    def spans(self, run_id: str) -> dict[str, Span]:
        """Each stored symbol's span in the run (rows, first and last ts, first and last available_at, in
        microseconds), as `storage.parts` counts them: what an update inherits."""
        with self.connect() as connection:
            rows = connection.execute(
                "SELECT symbol, n_rows, epoch_us(first_ts), epoch_us(last_ts), epoch_us(first_available_at), "
                "epoch_us(last_available_at) FROM symbol_status WHERE run_id = ? AND n_rows > 0",
                [run_id],
            ).fetchall()
        return {symbol: tuple(span) for symbol, *span in rows}  # type: ignore[misc]

    def record(
        self,
        run: RunInfo,
        statuses: list[SymbolStatus],
        available: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
    ) -> None:
        """Publish `run` with its statuses in one transaction (the moment it becomes visible), then replace
        the marker. `available` gives each stored symbol's first and last `available_at`. Paths are stored
        relative to the data dir, so a data dir can move."""
        published_at = pd.Timestamp.now(tz="UTC")
        parts = None if run.parts is None else [self._relative(file) for file in run.parts]
        with self.connect() as connection, _transaction(connection):
            _check_joins_its_dataset(connection, run)
            connection.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run.run_id,
                    run.interval,
                    run.lag // pd.Timedelta(1, "us"),
                    run.created_at,
                    published_at,
                    run.code_version,
                    run.symbols,
                    run.start,
                    run.end,
                    run.rows,
                    run.features,
                    json.dumps(run.spec.to_dict()),
                    self._relative(run.path),
                    run.layout,
                    run.spec.dataset,
                    run.made_by,
                    list(run.lineage),
                    parts,
                    [self._relative(file) for file in run.state_files],
                ],
            )
            records = _status_table(  # noqa: F841 (DuckDB reads the local by its name)
                [_status_record(run.run_id, status, available.get(status.symbol)) for status in statuses]
            )
            connection.execute("INSERT INTO symbol_status SELECT * FROM records")
        self._mark(f"published {run.run_id} at {published_at.isoformat()}")

    def forget(self, run_ids: list[str]) -> None:
        """Delete runs' rows in one transaction: from its commit on, no reader can pin them (their files are
        the caller's to delete afterwards)."""
        if not run_ids:
            return
        with self.connect() as connection, _transaction(connection):
            for table in ("symbol_status", "runs"):
                connection.execute(f"DELETE FROM {table} WHERE run_id IN (SELECT unnest(?))", [run_ids])
        self._mark(f"forgot {', '.join(run_ids)}")

    def _mark(self, change: str) -> None:
        """Replace the marker file, so readers tell with one stat that the runs changed. The change is
        committed already: failing to write the marker must not fail it (the stamp also covers the catalog
        file)."""
        try:
            _replace(self.data_dir / PUBLISHED_MARKER, f"{change}\n")
        except OSError as error:
            logger.warning("%s; %s not updated: %s", change, PUBLISHED_MARKER, error)

    def _relative(self, file: Path) -> str:
        return file.relative_to(self.data_dir).as_posix()

    def _run(self, row: tuple) -> RunInfo:
        run_id, created, version, symbols, start, end, rows, features, params, path, layout = row[:11]
        made_by, lineage, parts, states = row[11:]
        return RunInfo(
            run_id=run_id,
            spec=BackfillSpec.from_dict(json.loads(params)),
            created_at=_instant(created),
            code_version=version,
            symbols=list(symbols),
            start=_instant(start),
            end=_instant(end),
            rows=rows,
            features=list(features),
            path=self.data_dir / path,
            layout=layout,
            made_by=made_by,
            lineage=tuple(lineage),
            parts=None if parts is None else tuple(self.data_dir / file for file in parts),
            state_files=tuple(self.data_dir / file for file in states),
        )


def _check_joins_its_dataset(connection: duckdb.DuckDBPyConnection, run: RunInfo) -> None:
    """A dataset answers one question: every run in it has the same interval."""
    row = connection.execute(
        "SELECT interval FROM runs WHERE dataset = ? LIMIT 1", [run.spec.dataset]
    ).fetchone()
    if row is not None and row[0] != run.spec.interval:
        raise InvalidInput(
            f"dataset {run.spec.dataset!r} holds {row[0]} runs, not {run.spec.interval}: "
            "name another dataset",
            field="dataset",
        )


@contextmanager
def _transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Commit what the block did, or roll all of it back."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


@cache
def _unit_of_work(path: Path) -> threading.RLock:
    """The one lock of this process's units of work on the catalog at `path`."""
    return threading.RLock()


def _open_format(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Create a new catalog, migrate an older one in one transaction, refuse a newer one."""
    tables = {name for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "format" in tables:
        (version,) = connection.execute("SELECT max(version) FROM format").fetchone()
    else:
        version = 1 if "runs" in tables else 0
    if version == FORMAT_VERSION:
        return
    if version > FORMAT_VERSION:
        raise Unavailable(
            f"catalog {path.name} has format {version}, newer than this asof understands ({FORMAT_VERSION}): "
            "upgrade asof to read this data directory"
        )
    with _transaction(connection):
        if version == 0:
            connection.execute(_SCHEMA)
        else:
            for step in range(version, FORMAT_VERSION):
                _MIGRATIONS[step](connection, tables)
            connection.execute(f"UPDATE format SET version = {FORMAT_VERSION}")
    if version:
        logger.warning("catalog %s migrated from format %d to %d", path, version, FORMAT_VERSION)


def _migrate_1_to_2(connection: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    """Runs record their whole spec (interval and lag join the other parameters) and their layout; jobs get
    a kind (every job of format 1 was a backfill); the format table appears."""
    connection.execute("CREATE TABLE format (version INTEGER NOT NULL); INSERT INTO format VALUES (1)")
    connection.execute("ALTER TABLE runs ADD COLUMN layout INTEGER DEFAULT 1")
    rows = connection.execute("SELECT run_id, interval, lag_us, params FROM runs").fetchall()
    for run_id, interval, lag_us, params in rows:
        recorded = json.loads(params)
        spec = BackfillSpec(
            lake=recorded.get("lake") or "(not recorded)",
            interval=interval,
            symbols=recorded.get("symbols"),
            candidates=recorded.get("candidates"),
            returns=recorded.get("returns"),
            start=recorded.get("start"),
            end=recorded.get("end"),
            lag=pd.Timedelta(lag_us, "us"),
            keep_zero_volume=bool(recorded.get("keep_zero_volume", False)),
        )
        connection.execute(
            "UPDATE runs SET params = ? WHERE run_id = ?", [json.dumps(spec.to_dict()), run_id]
        )
    if "jobs" in tables:
        connection.execute("ALTER TABLE jobs ADD COLUMN kind VARCHAR DEFAULT 'backfill'")
    else:
        connection.execute(_SCHEMA[_SCHEMA.index("CREATE TABLE jobs") :])


def _migrate_2_to_3(connection: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    """Runs belong to a dataset: the default one of their spec (`<lake name>_<interval>`)."""
    connection.execute("ALTER TABLE runs ADD COLUMN dataset VARCHAR")
    for run_id, params in connection.execute("SELECT run_id, params FROM runs").fetchall():
        spec = BackfillSpec.from_dict(json.loads(params))
        connection.execute(
            "UPDATE runs SET dataset = ?, params = ? WHERE run_id = ?",
            [spec.dataset, json.dumps(spec.to_dict()), run_id],
        )


def _migrate_3_to_4(connection: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    """Jobs record a cancel request, so one server process can cancel a job another runs."""
    connection.execute("ALTER TABLE jobs ADD COLUMN IF NOT EXISTS cancel_requested BOOLEAN DEFAULT false")


def _migrate_4_to_5(connection: duckdb.DuckDBPyConnection, tables: set[str]) -> None:
    """Runs list their files and record how they were made: every run so far was a backfill, its files
    found by its layout (`parts` NULL) and without a carried state."""
    for column in (
        "made_by VARCHAR DEFAULT 'backfill'",
        "lineage VARCHAR[] DEFAULT []",
        "parts VARCHAR[]",
        "states VARCHAR[] DEFAULT []",
    ):
        connection.execute(f"ALTER TABLE runs ADD COLUMN IF NOT EXISTS {column}")


_MIGRATIONS: Final[dict[int, Callable[[duckdb.DuckDBPyConnection, set[str]], None]]] = {
    1: _migrate_1_to_2,
    2: _migrate_2_to_3,
    3: _migrate_3_to_4,
    4: _migrate_4_to_5,
}
"""From format N to N + 1, run inside the caller's transaction."""


@cache
def code_version() -> str:
    """The package version, plus `+g<commit>` when the code runs from a git checkout."""
    version = metadata.version("asof")
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


def _status(row: tuple) -> SymbolStatus:
    symbol, ok, reason, rows_in, rows, duplicates, unsorted, zero_volume, refused, reasons, first, last = row
    return SymbolStatus(
        symbol=symbol,
        ok=ok,
        reason=reason,
        rows_in=rows_in,
        rows=rows,
        duplicates=duplicates,
        unsorted=unsorted,
        zero_volume=zero_volume,
        refused=refused,
        refused_reasons=json.loads(reasons),
        first_ts=_instant(first),
        last_ts=_instant(last),
    )


def _status_record(
    run_id: str, status: SymbolStatus, available: tuple[pd.Timestamp, pd.Timestamp] | None
) -> list:
    first_available, last_available = available or (None, None)
    return [
        run_id,
        status.symbol,
        status.ok,
        status.reason,
        status.rows_in,
        status.rows,
        status.duplicates,
        status.unsorted,
        status.zero_volume,
        status.refused,
        json.dumps(status.refused_reasons),
        status.first_ts,
        status.last_ts,
        first_available,
        last_available,
    ]


_STATUS_SCHEMA: Final = pa.schema(
    [
        ("run_id", pa.string()),
        ("symbol", pa.string()),
        ("ok", pa.bool_()),
        ("reason", pa.string()),
        *(
            (name, pa.int64())
            for name in ("rows_in", "n_rows", "duplicates", "unsorted", "zero_volume", "refused")
        ),
        ("refused_reasons", pa.string()),
        *((name, pa.timestamp("us", tz="UTC")) for name in ("first_ts", "last_ts", "first_av", "last_av")),
    ]
)


def _status_table(records: list[list]) -> pa.Table:
    """Status records as one Arrow table: one INSERT of thousands of rows instead of one per row."""
    columns = list(zip(*records, strict=True)) if records else [[] for _ in _STATUS_SCHEMA]
    return pa.table(
        [pa.array(column, field.type) for column, field in zip(columns, _STATUS_SCHEMA, strict=True)],
        schema=_STATUS_SCHEMA,
    )


def _instant(value: datetime | None) -> pd.Timestamp | None:
    """A TIMESTAMPTZ as read back (in the session's zone) as a UTC Timestamp."""
    return None if value is None else pd.Timestamp(value).tz_convert("UTC")


def _file_stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _replace(path: Path, text: str) -> None:
    """Write `text` to a fresh file and rename it over `path`: a new inode every time."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
