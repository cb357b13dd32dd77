"""The catalog's format version: a data dir written by the first release (format 1) is migrated in place, in
one transaction, on first open; one written by a newer asof is refused with what to do."""

import json
import threading
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from service.jobs.store import JobStore
from storage.catalog import CATALOG_FILE, FORMAT_VERSION, Catalog
from storage.read import FeatureStore
from tests.support.rows import daily, feature_rows, publish
from vocabulary.errors import InvalidInput, Unavailable
from vocabulary.spec import BackfillSpec

FORMAT_1 = """
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY, interval VARCHAR NOT NULL, lag_us BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL, published_at TIMESTAMPTZ NOT NULL, code_version VARCHAR NOT NULL,
    symbols VARCHAR[] NOT NULL, start_ts TIMESTAMPTZ, end_ts TIMESTAMPTZ, n_rows BIGINT NOT NULL,
    features VARCHAR[] NOT NULL, params VARCHAR NOT NULL, path VARCHAR NOT NULL
);
CREATE TABLE symbol_status (
    run_id VARCHAR NOT NULL, symbol VARCHAR NOT NULL, ok BOOLEAN NOT NULL, reason VARCHAR,
    rows_in BIGINT NOT NULL, n_rows BIGINT NOT NULL, duplicates BIGINT NOT NULL, unsorted BIGINT NOT NULL,
    zero_volume BIGINT NOT NULL, refused BIGINT NOT NULL, refused_reasons VARCHAR NOT NULL,
    first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ, first_available_at TIMESTAMPTZ, last_available_at TIMESTAMPTZ,
    PRIMARY KEY (run_id, symbol)
);
CREATE TABLE jobs (
    job_id VARCHAR PRIMARY KEY, status VARCHAR NOT NULL, params VARCHAR NOT NULL, params_key VARCHAR NOT NULL,
    done BIGINT NOT NULL DEFAULT 0, total BIGINT, errors VARCHAR NOT NULL DEFAULT '[]',
    report VARCHAR NOT NULL DEFAULT '{}', run_id VARCHAR, created TIMESTAMP NOT NULL, started TIMESTAMP,
    finished TIMESTAMP, message VARCHAR
);
"""
"""The schema the first release wrote (no format table, no run layout, no job kind), verbatim."""

OLD_PARAMS = {
    "lake": "/data/lake",
    "symbols": None,
    "candidates": "/data/candidates.json",
    "returns": None,
    "start": "2020-01-01T00:00:00+00:00",
    "end": None,
    "keep_zero_volume": False,
}
OLD_JOB = {
    "lake": "/data/lake",
    "interval": "1d",
    "symbols": ["A:X", "B:Y"],
    "candidates": None,
    "returns": None,
    "start": None,
    "end": None,
    "lag": "P0DT0H5M0S",
    "keep_zero_volume": False,
}


def format_1_catalog(data_dir: Path, interval: str = "1h") -> Path:
    """A catalog as the first release left it: one published run and one finished backfill job."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / CATALOG_FILE
    with duckdb.connect(str(path)) as connection:
        connection.execute(FORMAT_1)
        connection.execute(
            "INSERT INTO runs VALUES ('20240101T000000Z-abcdef', ?, 300000000, '2024-01-01 00:00:00+00', "
            "'2024-01-01 00:00:01+00', '0.1.0', ['A:X'], '2020-01-01 00:00:00+00', '2020-02-01 00:00:00+00', "
            "10, ['Recommend.All'], ?, 'runs/20240101T000000Z-abcdef/features.parquet')",
            [interval, json.dumps(OLD_PARAMS)],
        )
        connection.execute(
            "INSERT INTO jobs (job_id, status, params, params_key, created) "
            "VALUES ('0123456789ab', 'succeeded', ?, ?, '2024-01-01 00:00:00')",
            [json.dumps(OLD_JOB), json.dumps(OLD_JOB, sort_keys=True, separators=(",", ":"))],
        )
    return path


def test_a_format_1_catalog_is_migrated_in_place_on_first_open(tmp_path: Path) -> None:
    format_1_catalog(tmp_path)

    catalog = Catalog(tmp_path)

    with catalog.connect() as connection:
        assert connection.execute("SELECT version FROM format").fetchall() == [(FORMAT_VERSION,)]
    (run,) = catalog.runs()
    assert run.spec == BackfillSpec(
        lake="/data/lake",
        interval="1h",
        candidates="/data/candidates.json",
        start="2020-01-01",
        lag=pd.Timedelta(minutes=5),
    )
    assert (run.interval, run.lag, run.layout) == ("1h", pd.Timedelta(minutes=5), 1)
    (job,) = JobStore(catalog).recent()
    assert (job.kind, job.work) == ("backfill", BackfillSpec.from_dict(OLD_JOB))
    assert JobStore(catalog).find_active(job.work) is None
    assert Catalog(tmp_path).runs() == [run]  # a second open finds the current format and changes nothing
    assert catalog.runs() == [run]


def test_a_migration_that_fails_leaves_the_catalog_as_it_was(tmp_path: Path) -> None:
    path = format_1_catalog(tmp_path, interval="7d")  # no such interval: the run's spec cannot be written

    with pytest.raises(InvalidInput, match="unknown interval '7d'"):
        Catalog(tmp_path).runs()

    with duckdb.connect(str(path)) as connection:
        tables = {name for (name,) in connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        columns = [
            name for (name,) in connection.execute("SELECT name FROM pragma_table_info('runs')").fetchall()
        ]
    assert "format" not in tables and "layout" not in columns


def test_a_catalog_of_a_newer_format_is_refused_with_what_to_do(tmp_path: Path) -> None:
    assert Catalog(tmp_path).runs() == []
    with duckdb.connect(str(tmp_path / CATALOG_FILE)) as connection:
        connection.execute(f"UPDATE format SET version = {FORMAT_VERSION + 1}")

    with pytest.raises(Unavailable, match=f"format {FORMAT_VERSION + 1}, newer than this asof.*upgrade asof"):
        Catalog(tmp_path).runs()


def test_a_format_4_catalog_keeps_its_runs_readable_and_records_them_as_backfills(tmp_path: Path) -> None:
    """Format 5 lists a run's files and how it was made: a run of format 4 (layout 2) has its parts found
    in its folder, is a backfill of its own, and carries no state (so it cannot be updated)."""
    rows = feature_rows({"A:X": daily("2024-01-01", 40), "B:Y": daily("2024-01-05", 30)})
    current = publish(tmp_path, rows)
    expected = FeatureStore(tmp_path).cross_section("2024-02-01", features="all", run_id=current.run_id).rows
    with duckdb.connect(str(tmp_path / CATALOG_FILE)) as connection:  # the catalog as format 4 wrote it
        for column in ("made_by", "lineage", "parts", "states"):
            connection.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        connection.execute("UPDATE runs SET layout = 2")
        connection.execute("UPDATE format SET version = 4")

    (run,) = Catalog(tmp_path).runs()

    assert (run.layout, run.parts, run.made_by, run.lineage, run.state_files) == (2, None, "backfill", (), ())
    assert run.files() == current.files() == sorted(current.path.glob("part-*.parquet"))
    served = FeatureStore(tmp_path).cross_section("2024-02-01", features="all", run_id=run.run_id).rows
    pd.testing.assert_frame_equal(served, expected, check_exact=True)
    with duckdb.connect(str(tmp_path / CATALOG_FILE)) as connection:
        assert connection.execute("SELECT version FROM format").fetchall() == [(FORMAT_VERSION,)] == [(5,)]


def test_a_unit_of_work_waits_for_its_turn_at_most_the_catalogs_wait(tmp_path: Path) -> None:
    """Units of work of one process take turns; one that waits past `lock_timeout` is Unavailable, and
    names no path."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Catalog(tmp_path).connect():
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(10)
        with pytest.raises(
            Unavailable, match=r"catalog\.duckdb stayed locked by other work of this process for 0\.2 s"
        ):
            Catalog(tmp_path, lock_timeout=0.2).runs()
    finally:
        release.set()
        holder.join()
    assert Catalog(tmp_path, lock_timeout=0.2).runs() == []
