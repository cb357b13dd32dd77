"""The catalog: which runs are published, and how every symbol fared in each.

`catalog.duckdb` under the data dir is the one authority on visibility: a run exists for readers once its
row is committed here, and not before. DuckDB lets one process open a database file at a time, so every
call opens a short-lived connection (`Catalog.connect`) and retries while another process holds the file;
an API server and a CLI backfill can then share a data dir.
"""

import json
import logging
import os
import random
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import metadata
from pathlib import Path

import duckdb
import pandas as pd

CATALOG_FILE = "catalog.duckdb"
PUBLISHED_MARKER = "catalog.published"

logger = logging.getLogger(__name__)
"""Replaced after every publish, so readers can tell with one stat that the newest run may have changed."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
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
    path VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS symbol_status (
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
"""
_RUN_COLUMNS = (
    "run_id, interval, lag_us, created_at, code_version, symbols, start_ts, end_ts, n_rows, features, "
    "params, path"
)
_STATUS_COLUMNS = (
    "symbol, ok, reason, rows_in, n_rows, duplicates, unsorted, zero_volume, refused, refused_reasons, "
    "first_ts, last_ts"
)


class RunNotFound(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"unknown run {run_id!r}")
        self.run_id = run_id


class NoRunError(LookupError):
    """Nothing is published yet, so there is no default run to read."""


class SymbolNotFound(LookupError):
    def __init__(self, symbol: str, run_id: str) -> None:
        super().__init__(f"symbol {symbol!r} has no rows in run {run_id!r}")
        self.symbol = symbol
        self.run_id = run_id


class CatalogLocked(TimeoutError):
    """Another process kept the catalog file locked for longer than the catalog waits."""


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
    """A published run. `path` is its Parquet file; `start`/`end` the first and last bar `ts` it holds."""

    run_id: str
    interval: str
    lag: pd.Timedelta
    created_at: pd.Timestamp
    code_version: str
    symbols: list[str]
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    rows: int
    features: list[str]
    params: dict
    path: Path


class Catalog:
    """`catalog.duckdb` in `data_dir` (both created when missing), read and written through short-lived
    connections; `lock_timeout` bounds how long a call waits for another process to release the file."""

    def __init__(self, data_dir: Path | str, *, lock_timeout: float = 10.0) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / CATALOG_FILE
        self.lock_timeout = lock_timeout
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.connect() as connection:
            connection.execute(_SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A connection for one unit of work, closed on exit so other processes can open the file.

        Waits (with jittered backoff) while another process holds the file; raises CatalogLocked after
        `lock_timeout` seconds, naming the file and the holder DuckDB reports.
        """
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.005
        while True:
            try:
                connection = duckdb.connect(str(self.path))
                break
            except duckdb.IOException as error:
                if "lock" not in str(error).lower():
                    raise
                if time.monotonic() >= deadline:
                    waited = f"{self.lock_timeout:g} s"
                    raise CatalogLocked(
                        f"catalog {self.path} stayed locked by another process for {waited}: {error}"
                    ) from error
                time.sleep(pause * random.uniform(0.5, 1.5))
                pause = min(pause * 2, 0.2)
        try:
            yield connection
        finally:
            connection.close()

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

    def latest_run(self, interval: str | None = None) -> RunInfo | None:
        """The run published last (of `interval` when given), or None when there is none."""
        with self.connect() as connection:
            row = connection.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE ? IS NULL OR interval = ? "
                "ORDER BY published_at DESC, run_id DESC LIMIT 1",
                [interval, interval],
            ).fetchone()
        return None if row is None else self._run(row)

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

    def record(
        self,
        run: RunInfo,
        statuses: list[SymbolStatus],
        available: dict[str, tuple[pd.Timestamp, pd.Timestamp]],
    ) -> None:
        """Publish `run` with its statuses in one transaction (the moment it becomes visible), then replace
        the marker. `available` gives each stored symbol's first and last `available_at`."""
        published_at = pd.Timestamp.now(tz="UTC")
        relative = run.path.relative_to(self.data_dir).as_posix()
        with self.connect() as connection:
            connection.execute("BEGIN TRANSACTION")
            try:
                connection.execute(
                    "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                        json.dumps(run.params),
                        relative,
                    ],
                )
                connection.executemany(
                    "INSERT INTO symbol_status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [_status_record(run.run_id, status, available.get(status.symbol)) for status in statuses],
                )
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        try:  # the marker only speeds up cache checks (the stamp also covers the catalog file); the run is
            # committed, so failing to write it must not fail the publish
            _replace(self.data_dir / PUBLISHED_MARKER, f"{run.run_id} {published_at.isoformat()}\n")
        except OSError as error:
            logger.warning("run %s published; %s not updated: %s", run.run_id, PUBLISHED_MARKER, error)

    def _run(self, row: tuple) -> RunInfo:
        run_id, interval, lag_us, created, version, symbols, start, end, rows, features, params, path = row
        return RunInfo(
            run_id=run_id,
            interval=interval,
            lag=pd.Timedelta(lag_us, "us"),
            created_at=_instant(created),
            code_version=version,
            symbols=list(symbols),
            start=_instant(start),
            end=_instant(end),
            rows=rows,
            features=list(features),
            params=json.loads(params),
            path=self.data_dir / path,
        )


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
