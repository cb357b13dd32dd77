"""Runs that share files: a run made by an update reads its parent's parts (not copied) and its own, the
parts holding a symbol it recomputes in full are rewritten without it, its carried state is listed after
its ancestors', and retention deletes a shared file only with the last run that reads it. Real Parquet,
a real catalog, both read paths."""

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from storage.catalog import Catalog, RunInfo
from storage.read import FeatureStore
from storage.retention import collect
from storage.runs import RUNS_DIR, STATE_FILE, RunWriter, read_state
from tests.support.rows import daily, feature_rows, publish, spec

AS_OFS = ("2024-01-15", "2024-02-20T12:00Z", "2024-03-02", "2024-03-20", "2024-06-01")
SYMBOLS = ("X:A", "X:B", "X:C")


def history(days: int) -> pd.DataFrame:
    """Three symbols' rows over `days` days (X:C listed on day 10), the same values whatever `days`."""
    every = feature_rows({symbol: daily("2024-01-01", 80) for symbol in SYMBOLS})
    every = every[~((every["symbol"] == "X:C") & (every["ts"] < pd.Timestamp("2024-01-11", tz="UTC")))]
    return every[every["ts"] < pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=days)]


def states(symbols: list[str], tag: int) -> pa.Table:
    return pa.table({"symbol": symbols, "tag": [tag] * len(symbols)})


def extend(data_dir: Path, parent: RunInfo, rows: pd.DataFrame, *, without: tuple[str, ...] = ()) -> RunInfo:
    """A run made from `parent` plus `rows`, leaving out the parent's rows of `without`."""
    with RunWriter(data_dir, spec(), made_by="update", lineage=(parent.run_id, *parent.lineage)) as writer:
        writer.write(rows)
        writer.inherit(parent, without=without)
        writer.add_states(states(sorted(set(rows["symbol"])), tag=2))
        return writer.publish(parallelism=1)


def spans(data_dir: Path, run: RunInfo) -> list[tuple]:
    """Each symbol's stored rows as the catalog records them."""
    statuses = Catalog(data_dir).symbol_status(run.run_id)
    return [(status.symbol, status.ok, status.rows, status.first_ts, status.last_ts) for status in statuses]


def answers(data_dir: Path, run_id: str, index: bool) -> list[pd.DataFrame]:
    store = FeatureStore(data_dir, index=index)
    sections = [store.cross_section(as_of, features="all", run_id=run_id).rows for as_of in AS_OFS]
    return [*sections, *(store.history(symbol, features="all", run_id=run_id) for symbol in SYMBOLS)]


def assert_same_answers(data_dir: Path, ours: str, theirs: str, other_dir: Path | None = None) -> None:
    for index in (True, False):
        for mine, expected in zip(
            answers(data_dir, ours, index), answers(other_dir or data_dir, theirs, index), strict=True
        ):
            pd.testing.assert_frame_equal(mine, expected, check_exact=True)


@pytest.fixture
def parent(tmp_path: Path) -> RunInfo:
    with RunWriter(tmp_path / "data", spec()) as writer:
        writer.write(history(50))
        writer.add_states(states(list(SYMBOLS), tag=1))
        return writer.publish(parallelism=2)


def test_an_update_shares_its_parents_parts_and_answers_as_the_whole_run(tmp_path: Path, parent) -> None:
    data_dir = tmp_path / "data"
    before = answers(data_dir, parent.run_id, index=False)
    whole = history(80)
    child = extend(data_dir, parent, whole[whole["ts"] >= pd.Timestamp("2024-02-20", tz="UTC")])

    assert child.files()[: len(parent.files())] == parent.files()  # shared, not copied
    assert all(file.parent == child.path for file in child.files()[len(parent.files()) :])
    assert (child.made_by, child.parent, child.lineage) == ("update", parent.run_id, (parent.run_id,))
    assert child.state_files == (*parent.state_files, child.path / STATE_FILE)
    assert read_state(child.state_files[-1], symbols=["X:B"]).to_pylist() == [{"symbol": "X:B", "tag": 2}]
    assert Catalog(data_dir).run(child.run_id) == child
    written = publish(tmp_path / "whole", whole)
    assert (child.symbols, child.start, child.end, child.rows) == (
        written.symbols,
        written.start,
        written.end,
        written.rows,
    )
    assert spans(data_dir, child) == spans(tmp_path / "whole", written)
    assert_same_answers(data_dir, child.run_id, written.run_id, tmp_path / "whole")
    for mine, expected in zip(answers(data_dir, parent.run_id, index=False), before, strict=True):
        pd.testing.assert_frame_equal(mine, expected, check_exact=True)  # the parent answers as it did


def test_a_symbol_recomputed_in_full_leaves_its_parents_rows_behind(tmp_path: Path, parent) -> None:
    """Its parent's parts holding it are rewritten without it (and only those); the child serves the new
    rows only, the parent its old ones."""
    data_dir = tmp_path / "data"
    whole = history(80)
    revised = feature_rows({"X:B": daily("2024-01-01", 80)}, seed=9)  # other values, all of its history
    new = pd.concat(
        [whole[(whole["ts"] >= pd.Timestamp("2024-02-20", tz="UTC")) & (whole["symbol"] != "X:B")]]
    )
    child = extend(data_dir, parent, pd.concat([new, revised]), without=("X:B",))

    inherited = [file for file in child.files() if file.parent == parent.path]
    rewritten = [file for file in child.files() if file.parent == child.path][: len(parent.files())]
    assert not inherited and len(rewritten) == len(parent.files())  # every part held X:B
    for file in rewritten:
        assert "X:B" not in set(pq.read_table(file, columns=["symbol"])["symbol"].to_pylist())
    expected = pd.concat([whole[whole["symbol"] != "X:B"], revised])
    written = publish(tmp_path / "whole", expected)
    assert_same_answers(data_dir, child.run_id, written.run_id, tmp_path / "whole")
    old = FeatureStore(data_dir).history("X:B", features="all", run_id=parent.run_id)
    assert len(old) == 50 and not old.equals(FeatureStore(data_dir).history("X:B", run_id=child.run_id))


def test_new_rows_must_follow_the_inherited_ones(tmp_path: Path, parent) -> None:
    again = history(50)
    again = again[(again["symbol"] == "X:A") & (again["ts"] >= pd.Timestamp("2024-02-19", tz="UTC"))]
    with pytest.raises(ValueError, match="new rows of 'X:A' start at or before its inherited last ts"):
        extend(tmp_path / "data", parent, again)
    assert [run.run_id for run in Catalog(tmp_path / "data").runs()] == [parent.run_id]


def test_retention_deletes_a_shared_file_with_the_last_run_that_reads_it(tmp_path: Path, parent) -> None:
    data_dir = tmp_path / "data"
    whole = history(80)
    child = extend(data_dir, parent, whole[whole["ts"] >= pd.Timestamp("2024-02-20", tz="UTC")])
    expected = answers(data_dir, child.run_id, index=True)

    collected = collect(Catalog(data_dir), keep=1)

    assert collected.runs == [parent.run_id]
    assert all(file.is_file() for file in child.reads())  # the parent's parts and state file stay
    for mine, theirs in zip(answers(data_dir, child.run_id, index=True), expected, strict=True):
        pd.testing.assert_frame_equal(mine, theirs, check_exact=True)
    other = publish(data_dir, history(80))  # the dataset's next run reads nothing of theirs
    collected = collect(Catalog(data_dir), keep=1)
    assert collected.runs == [child.run_id]
    assert sorted(path.name for path in (data_dir / RUNS_DIR).iterdir()) == [other.run_id]
