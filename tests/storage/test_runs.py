"""Writing, publishing and cataloguing runs: real DuckDB files and Parquet in tmp dirs, real processes."""

import hashlib
import itertools
import os
import re
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.chunks import failed
from storage.catalog import RUN_LAYOUT, Catalog, CatalogLocked, RunNotFound, code_version
from storage.parts import piece, stage_table
from storage.read import FeatureStore, parquet_sql
from storage.runs import RUNS_DIR, RunWriter, to_table
from tests.support.rows import daily, feature_rows, publish, spec
from vocabulary.errors import InvalidInput
from vocabulary.features import FEATURES, VOTES

REPO = Path(__file__).resolve().parents[2]


def visible_entries(data_dir: Path) -> list[str]:
    return sorted(os.listdir(data_dir / RUNS_DIR))


def test_publish_writes_one_sorted_typed_parquet_and_catalogues_the_run(tmp_path: Path) -> None:
    rows = feature_rows({"B:ONE": daily("2024-01-03", 50), "A:TWO": daily("2024-01-01", 60)})
    run = publish(tmp_path, rows, chunk_symbols=1, statuses=[failed("C:BAD", "missing file")])
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", run.run_id)
    assert run.path == tmp_path / "runs" / run.run_id
    assert (run.symbols, run.rows, run.interval, run.lag) == (["A:TWO", "B:ONE"], 110, "1d", pd.Timedelta(0))
    assert (run.start, run.end) == (
        pd.Timestamp("2024-01-01", tz="UTC"),
        pd.Timestamp("2024-02-29", tz="UTC"),
    )
    assert run.features == list(FEATURES)
    assert run.code_version == code_version() and run.code_version.startswith("0.")
    assert run.spec == spec() and run.layout == RUN_LAYOUT == 3
    assert (run.made_by, run.lineage, run.parent, run.state_files) == ("backfill", (), None, ())
    assert Catalog(tmp_path).run(run.run_id) == run
    assert [file.name for file in run.files()] == sorted(os.listdir(run.path)) == ["part-00000.parquet"]
    assert visible_entries(tmp_path) == [run.run_id]

    stored = pq.read_table(run.files()[0])
    schema = stored.schema
    assert schema.names == ["symbol", "ts", "available_at", "bars", "warm", *FEATURES]
    assert schema.field("ts").type == schema.field("available_at").type == pa.timestamp("us", tz="UTC")
    assert (schema.field("bars").type, schema.field("warm").type) == (pa.int64(), pa.bool_())
    assert {schema.field(name).type for name in VOTES} == {pa.int8()}
    assert {schema.field(name).type for name in FEATURES if name not in VOTES} == {pa.float64()}
    frame = stored.to_pandas()
    assert frame[["available_at", "symbol"]].equals(
        frame[["available_at", "symbol"]].sort_values(["available_at", "symbol"]).reset_index(drop=True)
    )
    assert (
        pq.ParquetFile(run.files()[0]).metadata.row_group(0).column(0).compression == "LZ4"
    )  # LZ4_RAW, as DuckDB names it

    catalog = Catalog(tmp_path)
    assert catalog.run(run.run_id) == run
    assert catalog.runs() == [run]
    assert catalog.latest_run() == run and catalog.latest_run(interval="1h") is None
    statuses = {status.symbol: status for status in catalog.symbol_status(run.run_id)}
    assert sorted(statuses) == ["A:TWO", "B:ONE", "C:BAD"]
    assert (statuses["C:BAD"].ok, statuses["C:BAD"].reason, statuses["C:BAD"].rows) == (
        False,
        "missing file",
        0,
    )
    assert (statuses["A:TWO"].ok, statuses["A:TWO"].rows) == (True, 60)
    assert statuses["B:ONE"].first_ts == pd.Timestamp("2024-01-03", tz="UTC")
    assert catalog.first_available(run.run_id) == {
        "A:TWO": pd.Timestamp("2024-01-02", tz="UTC"),
        "B:ONE": pd.Timestamp("2024-01-04", tz="UTC"),
    }


def test_a_lagged_run_records_its_lag_and_serves_from_close_plus_lag(tmp_path: Path) -> None:
    lag = pd.Timedelta(hours=2)
    run = publish(tmp_path, feature_rows({"X:A": daily("2024-01-01", 5)}, lag=lag), lag=lag)
    assert Catalog(tmp_path).run(run.run_id).lag == lag
    store = FeatureStore(tmp_path)
    assert store.cross_section("2024-01-02T01:59:59Z").rows.empty
    assert store.cross_section("2024-01-02T02:00:00Z").rows["ts"].tolist() == [
        pd.Timestamp("2024-01-01", tz="UTC")
    ]


def test_a_writer_that_raises_midway_leaves_nothing_visible(tmp_path: Path) -> None:
    previous = publish(tmp_path, feature_rows({"X:A": daily("2024-01-01", 20)}))
    served = FeatureStore(tmp_path).cross_section("2024-01-15", features="all")
    with pytest.raises(RuntimeError, match="compute failed"), RunWriter(tmp_path, spec()) as writer:
        writer.write(feature_rows({"X:A": daily("2024-01-01", 40), "X:B": daily("2024-01-01", 40)}, seed=9))
        assert len(visible_entries(tmp_path)) == 3  # the previous run, our staging dir and its lock
        raise RuntimeError("compute failed")
    assert visible_entries(tmp_path) == [previous.run_id]
    assert Catalog(tmp_path).runs() == [previous]
    again = FeatureStore(tmp_path).cross_section("2024-01-15", features="all")
    pd.testing.assert_frame_equal(again.rows, served.rows)
    assert again.run_id == previous.run_id


def test_leaving_the_block_without_publishing_discards_the_run(tmp_path: Path) -> None:
    with RunWriter(tmp_path, spec()) as writer:
        writer.write(feature_rows({"X:A": daily("2024-01-01", 5)}))
    assert visible_entries(tmp_path) == []
    assert Catalog(tmp_path).latest_run() is None
    with pytest.raises(RuntimeError, match="discarded"):
        writer.write(feature_rows({"X:A": daily("2024-01-01", 5)}))


@pytest.mark.parametrize("staged", [False, True], ids=["in memory", "a piece file"])
def test_a_failed_publish_rolls_back_and_leaves_the_previous_run_served(tmp_path: Path, staged: bool) -> None:
    previous = publish(tmp_path, feature_rows({"X:A": daily("2024-01-01", 20)}))
    duplicate = r"'X:A' has more than one row at ts 2024-01-0"
    with pytest.raises(ValueError, match=duplicate), RunWriter(tmp_path, spec()) as writer:
        writer.write(feature_rows({"X:A": daily("2024-01-01", 5), "X:B": daily("2024-01-01", 5)}))
        later = to_table(feature_rows({"X:A": daily("2024-01-03", 5)}), spec())
        writer.add_staged(stage_table(writer.pieces, "later", later) if staged else piece(later))
        writer.publish()
    assert visible_entries(tmp_path) == [previous.run_id]
    assert FeatureStore(tmp_path).cross_section("2024-01-10").run_id == previous.run_id


def test_publishing_never_touches_another_run(tmp_path: Path) -> None:
    first = publish(tmp_path, feature_rows({"X:A": daily("2024-01-01", 30)}))
    (file,) = first.files()
    digest = hashlib.sha256(file.read_bytes()).hexdigest()
    second = publish(tmp_path, feature_rows({"X:A": daily("2024-01-01", 30)}, seed=5))
    assert hashlib.sha256(file.read_bytes()).hexdigest() == digest
    catalog = Catalog(tmp_path)
    assert catalog.run(first.run_id) == first
    assert [run.run_id for run in catalog.runs()] == [second.run_id, first.run_id]
    with pytest.raises(RuntimeError, match="already published"), RunWriter(tmp_path, spec()) as writer:
        writer.write(feature_rows({"X:A": daily("2024-01-01", 3)}))
        writer.publish()
        writer.write(feature_rows({"X:B": daily("2024-01-01", 3)}))


def test_statuses_must_agree_with_the_rows(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"'X:A' is marked failed \(refused: too many bad rows\) but has 5 rows"
    ):
        publish(
            tmp_path,
            feature_rows({"X:A": daily("2024-01-01", 5)}),
            statuses=[failed("X:A", "refused: too many bad rows")],
        )
    with RunWriter(tmp_path, spec()) as writer, pytest.raises(ValueError, match="'X:B' given twice"):
        writer.add_status(failed("X:B", "missing"))
        writer.add_status(failed("X:B", "missing"))
    with RunWriter(tmp_path, spec()) as writer, pytest.raises(ValueError, match="nothing to publish"):
        writer.publish()
    assert Catalog(tmp_path).runs() == []


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (lambda rows: rows.drop(columns=["Rec.UO"]), "missing column 'Rec.UO'"),
        (lambda rows: rows.assign(extra=1.0), "unexpected column 'extra'"),
        (lambda rows: rows.assign(ts=rows["ts"].dt.tz_localize(None)), "'ts' must be datetime64 in UTC"),
        (
            lambda rows: rows.assign(available_at=rows["available_at"].where(rows.index != 3, rows["ts"])),
            r"'available_at', row 3 \(symbol 'X:A', ts 2024-01-04 00:00:00\+00:00\).*not ts \+ interval",
        ),
        (
            lambda rows: rows.assign(**{"Rec.RSI": rows["Rec.RSI"].where(rows.index != 2, 2.0)}),
            r"'Rec.RSI', row 2 .*value 2.0 is not a vote",
        ),
        (
            lambda rows: rows.assign(**{"Recommend.MA": rows["Recommend.MA"].where(rows.index != 4, 1.5)}),
            r"'Recommend.MA', row 4 .*outside \[-1, 1\]",
        ),
        (
            lambda rows: rows.assign(symbol=rows["symbol"].where(rows.index != 1, None)),
            r"'symbol', row 1 .*is missing",
        ),
        (lambda rows: rows.assign(bars=rows["bars"] - 1), r"'bars', row 0 .*not a positive count"),
        (lambda rows: rows.assign(warm=rows["warm"].astype(float)), "'warm' must be boolean"),
        (
            lambda rows: rows.assign(
                ts=rows["ts"] + pd.Timedelta(1, "ns"),
                available_at=rows["available_at"] + pd.Timedelta(1, "ns"),
            ),
            r"'ts', row 0 .*not a whole microsecond",
        ),
        (
            lambda rows: pd.concat([rows, rows.iloc[[2]]], ignore_index=True),
            r"'ts', row 6 .*repeats an earlier row",
        ),
    ],
)
def test_a_bad_chunk_is_refused_with_its_column_row_and_value(tmp_path: Path, corrupt, message: str) -> None:
    rows = feature_rows({"X:A": daily("2024-01-01", 6)})
    with RunWriter(tmp_path, spec()) as writer, pytest.raises(ValueError, match=message):
        writer.write(corrupt(rows))


def test_a_bad_spec_fails_before_the_writer_touches_the_data_dir(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="'2d'"):
        RunWriter(tmp_path, spec("2d"))
    with pytest.raises(InvalidInput, match="lag"):
        RunWriter(tmp_path, spec("1d", pd.Timedelta(-1, "s")))
    assert not (tmp_path / RUNS_DIR).exists()


WRITER_PROCESS = textwrap.dedent(
    """
    import sys, time
    sys.path[:0] = [{repo!r}, {tests!r}]
    from tests.support.rows import daily, feature_rows, spec
    from storage.runs import RunWriter
    writer = RunWriter({data_dir!r}, spec())
    writer.write(feature_rows({{"X:A": daily("2024-01-01", 40), "X:Z": daily("2024-01-01", 40)}}, seed=4))
    print(writer.run_id, flush=True)
    time.sleep(600)
    """
)


def test_a_killed_writer_leaves_no_trace_and_its_staging_is_swept_once_it_is_dead(tmp_path: Path) -> None:
    previous = publish(tmp_path, feature_rows({"X:A": daily("2024-01-01", 20)}))
    served = FeatureStore(tmp_path).cross_section("2024-01-15")
    code = WRITER_PROCESS.format(repo=str(REPO), tests=str(REPO / "tests"), data_dir=str(tmp_path))
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        killed_run = process.stdout.readline().strip()
        assert killed_run
        # While the writer lives, another writer must not sweep its staging directory.
        with RunWriter(tmp_path, spec()):
            assert f".staging-{killed_run}" in visible_entries(tmp_path)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert Catalog(tmp_path).runs() == [previous]
    pd.testing.assert_frame_equal(FeatureStore(tmp_path).cross_section("2024-01-15").rows, served.rows)
    with RunWriter(tmp_path, spec()) as writer:
        assert visible_entries(tmp_path) == sorted(
            [previous.run_id, f".staging-{writer.run_id}", f".staging-{writer.run_id}.lock"]
        )
    assert visible_entries(tmp_path) == [previous.run_id]


def test_a_run_renamed_into_place_but_never_committed_is_swept(tmp_path: Path) -> None:
    """The state a kill between the rename and the catalog commit leaves: a run directory the catalog does
    not list, and the dead writer's lock file."""
    previous = publish(tmp_path, feature_rows({"X:A": daily("2024-01-01", 20)}))
    orphan = "20240101T000000Z-0a0b0c"
    (tmp_path / RUNS_DIR / orphan).mkdir()
    (tmp_path / RUNS_DIR / orphan / "part-00000.parquet").write_bytes(previous.files()[0].read_bytes())
    (tmp_path / RUNS_DIR / f".staging-{orphan}.lock").touch()
    with pytest.raises(RunNotFound):
        FeatureStore(tmp_path).cross_section("2024-01-10", run_id=orphan)
    with RunWriter(tmp_path, spec()):
        pass
    assert visible_entries(tmp_path) == [previous.run_id]


HOLDER_PROCESS = textwrap.dedent(
    """
    import sys, time, duckdb
    connection = duckdb.connect({path!r})
    print("holding", flush=True)
    time.sleep(float(sys.argv[1]))
    connection.close()
    """
)


def hold_catalog(catalog: Catalog, seconds: float) -> subprocess.Popen:
    code = HOLDER_PROCESS.format(path=str(catalog.path))
    process = subprocess.Popen([sys.executable, "-c", code, str(seconds)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "holding"
    return process


def test_the_catalog_waits_for_another_process_then_names_the_lock(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path, lock_timeout=0.3)
    holder = hold_catalog(catalog, 600)
    try:
        with pytest.raises(
            CatalogLocked, match=r"catalog\.duckdb stayed locked by another process for 0\.3 s"
        ):
            catalog.runs()
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    patient = Catalog(tmp_path, lock_timeout=60)
    holder = hold_catalog(patient, 0.5)
    try:
        assert patient.runs() == []
    finally:
        holder.wait()
        holder.stdout.close()


def test_the_catalog_creates_its_tables_and_sees_other_connections_writes(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "fresh")
    assert not catalog.path.exists()  # created by the first connection, not by the constructor
    with catalog.connect() as connection:
        tables = {
            name
            for (name,) in connection.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
    assert {"format", "runs", "symbol_status", "jobs"} <= tables
    before = catalog.stamp()
    publish(tmp_path / "fresh", feature_rows({"X:A": daily("2024-01-01", 3)}))
    assert catalog.stamp() != before
    with pytest.raises(duckdb.CatalogException), catalog.connect() as connection:
        connection.execute("SELECT * FROM no_such_table")


def many_rows() -> pd.DataFrame:
    """30 symbols of different lengths, some with a halt."""
    bars = {f"X:S{k:02d}": daily("2024-01-01", 120 + k, skip=range(k, 2 * k)) for k in range(30)}
    return feature_rows(bars)


def write(data_dir: Path, rows: pd.DataFrame, parallelism: int):
    with RunWriter(data_dir, spec()) as writer:
        for symbol in rows["symbol"].unique():
            writer.write(rows[rows["symbol"] == symbol])
        return writer.publish(parallelism=parallelism)


def run_answers(data_dir: Path, run_id: str, index: bool) -> list[pd.DataFrame]:
    store = FeatureStore(data_dir, index=index)
    sections = [
        store.cross_section(as_of, features="all", run_id=run_id).rows
        for as_of in ("2024-01-01", "2024-01-31T12:00Z", "2024-03-05", "2024-05-15", "2025-01-01")
    ]
    return [*sections, store.history("X:S07", features="all", run_id=run_id)]


@pytest.mark.parametrize("index", [True, False], ids=["memory", "duckdb"])
def test_parts_are_consecutive_ranges_of_one_sorted_sequence_and_read_as_one_file(
    tmp_path: Path, index: bool
) -> None:
    rows = many_rows()
    parted = write(tmp_path, rows, parallelism=4)
    whole = write(tmp_path, rows, parallelism=1)

    assert len(parted.files()) == 4 and len(whole.files()) == 1
    tables = [pq.read_table(file).to_pandas() for file in parted.files()]
    for earlier, later in itertools.pairwise(tables):
        assert earlier["available_at"].max() < later["available_at"].min()
    together = pd.concat(tables, ignore_index=True)
    assert len(together) == len(rows) == parted.rows
    keys = together[["available_at", "symbol"]]
    assert keys.equals(keys.sort_values(["available_at", "symbol"]).reset_index(drop=True))
    assert pa.concat_tables(map(pq.read_table, parted.files())).equals(pq.read_table(whole.files()[0]))
    for ours, theirs in zip(
        run_answers(tmp_path, parted.run_id, index), run_answers(tmp_path, whole.run_id, index), strict=True
    ):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)


@pytest.mark.parametrize("index", [True, False], ids=["memory", "duckdb"])
def test_a_layout_1_run_stays_readable(tmp_path: Path, index: bool) -> None:
    """A run of the first layout (one features.parquet, as DuckDB wrote it) answers as its copy in parts."""
    current = write(tmp_path, many_rows(), parallelism=3)
    catalog = Catalog(tmp_path)
    old = replace(current, run_id="20240101T000000Z-0a0b0c", layout=1)
    old = replace(old, path=tmp_path / RUNS_DIR / old.run_id / "features.parquet")
    old.path.parent.mkdir()
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * FROM {parquet_sql(current.files())} ORDER BY available_at, symbol) "
            f"TO '{old.path}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 32768)"
        )
    first = catalog.first_available(current.run_id)
    catalog.record(old, catalog.symbol_status(current.run_id), {s: (t, t) for s, t in first.items()})

    assert catalog.run(old.run_id).files() == [old.path]
    for ours, theirs in zip(
        run_answers(tmp_path, old.run_id, index), run_answers(tmp_path, current.run_id, index), strict=True
    ):
        pd.testing.assert_frame_equal(ours, theirs, check_exact=True)
