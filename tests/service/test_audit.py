"""The lookahead audit passes a clean run and catches each lookahead it exists for: a row visible a bar before
it is knowable, a stored value that the lake does not give, and a backtest that peeks one bar ahead."""

import json
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from typer.testing import CliRunner

from backtest.engine import Backtest
from backtest.selection import SelectionPolicy
from cli import app
from service.audit.run import audit_run
from service.sample import SampleFiles, SyntheticUniverse
from storage.catalog import RunInfo
from storage.read import parquet_sql
from storage.runs import RunWriter

DAY = pd.Timedelta(days=1)


def engine(**overrides) -> Backtest:
    """A backtest small enough for a 300-bar universe: about a dozen rebalances."""
    return Backtest(
        lookback=60, rebalance_every=20, policy=SelectionPolicy(top_k=3, threshold=None), **overrides
    )


class PeekingBacktest(Backtest):
    """Reads the features one bar after the decision bar closed: the lookahead check 3 must catch."""

    def as_of(self, ts: pd.Timestamp) -> pd.Timestamp:
        return super().as_of(ts) + DAY


@pytest.fixture(scope="module")
def audited(backfilled):
    return backfilled(
        SyntheticUniverse(n_symbols=5, n_bars=300, seed=11, flippers=1), returns=True, candidates=True
    )


@pytest.fixture(scope="module")
def sample(audited) -> SampleFiles:
    return audited.files


@pytest.fixture(scope="module")
def clean(audited) -> RunInfo:
    return audited.run


def stored_rows(run: RunInfo) -> pd.DataFrame:
    """The run's rows as the engine gave them to the writer (votes back to float64)."""
    with duckdb.connect() as connection:
        rows = connection.sql(f"SELECT * FROM {parquet_sql(run.files())} ORDER BY symbol, ts").df()
    for name in ("ts", "available_at"):
        rows[name] = pd.to_datetime(rows[name], utc=True).astype("datetime64[ns, UTC]")
    votes = [name for name in rows.columns if name.startswith("Rec.")]
    rows[votes] = rows[votes].astype("float64")
    return rows


def publish(data_dir: Path, run: RunInfo, rows: pd.DataFrame) -> RunInfo:
    with RunWriter(data_dir, run.spec) as writer:
        writer.write(rows)
        return writer.publish()


def pick_row(rows: pd.DataFrame, position: int = 40) -> tuple[int, str, pd.Timestamp]:
    """A row early in the second symbol's history, so that almost any truncation point lies after it."""
    symbol = sorted(rows["symbol"].unique())[1]
    index = rows.index[rows["symbol"] == symbol][position]
    return index, symbol, rows.at[index, "ts"]


def test_clean_run_passes_every_check(clean: RunInfo) -> None:
    report = audit_run(clean.path.parents[1], clean.run_id, samples=9, seed=3, backtest=engine())

    assert report.passed, report.to_markdown()
    assert [check.name for check in report.checks] == ["truncation", "serving", "poisoning"]
    for check in report.checks:
        assert check.skipped is None and check.samples > 0 and check.compared > 0, check
    truncation, _, poisoning = report.checks
    assert truncation.compared > 9 * 60  # every row served at each sampled T, not just the row at T
    assert poisoning.compared >= 2  # decisions at or before the poisoned instant
    document = json.loads(report.to_json())
    assert document["status"] == "passed" and document["run_id"] == clean.run_id


def test_row_available_a_bar_early_is_caught_and_named(clean: RunInfo, tmp_path: Path) -> None:
    rows = stored_rows(clean)
    index, symbol, ts = pick_row(rows)
    early = rows.copy()
    early.at[index, "available_at"] -= DAY
    with pytest.raises(ValueError, match="available_at"):  # the writer refuses it outright ...
        publish(tmp_path, clean, early)
    run = publish(tmp_path, clean, rows)  # ... so doctor a published file, as a bug or a bad copy would
    (part,) = run.files()
    early_row = (
        "CASE WHEN symbol = $symbol AND ts = $ts THEN available_at - INTERVAL 1 DAY ELSE available_at END"
    )
    with duckdb.connect() as connection:
        connection.execute(
            f"COPY (SELECT * REPLACE ({early_row} AS available_at) FROM read_parquet('{part}') "
            f"ORDER BY available_at, symbol) TO '{tmp_path / 'doctored.parquet'}' (FORMAT parquet)",
            {"symbol": symbol, "ts": ts.to_pydatetime()},
        )
    shutil.move(tmp_path / "doctored.parquet", part)

    report = audit_run(tmp_path, run.run_id, samples=6, checks=("truncation", "serving"))

    assert not report.passed and report.status == "failed"
    named = [v for v in report.violations if v.check == "serving" and v.field == "available_at"]
    assert [(v.symbol, v.ts, v.stored, v.expected) for v in named] == [(symbol, ts, ts, ts + DAY)]
    assert "before the bar's close" in named[0].message
    document = json.loads(report.to_json())
    assert document["status"] == "failed"
    assert {"check": "serving", "symbol": symbol, "ts": ts.isoformat(), "field": "available_at"}.items() <= (
        document["checks"][1]["violations"][0].items()
    )
    assert f"| serving | {symbol} | {ts.isoformat()} | available_at |" in report.to_markdown()


def test_truncation_recomputes_under_the_runs_rules_and_history_window(backfilled) -> None:
    """A chart run rated over the last 60 bars passes the truncation check: it recomputes each symbol under
    the run's own rules and window. Its rows are not what the defaults give, so a recomputation with them
    would flag every sampled symbol."""
    built = backfilled(SyntheticUniverse(n_symbols=3, n_bars=200, seed=12), rules="chart", history_bars=60)
    assert stored_rows(built.run)["bars"].max() == 60
    report = audit_run(built.data_dir, built.run.run_id, samples=6, checks=("truncation",))
    assert report.passed and report.checks[0].compared > 0


@pytest.mark.parametrize(
    ("feature", "change", "position"), [("close", lambda x: x * (1 + 1e-6), 60), ("Rec.RSI", lambda x: -x, 0)]
)
def test_stored_value_the_lake_does_not_give_is_caught_by_truncation(
    clean: RunInfo, tmp_path: Path, feature: str, change, position: int
) -> None:
    rows = stored_rows(clean)
    candidates = rows[rows[feature].fillna(0) != 0]  # a vote that is cast, so flipping it changes it
    index, symbol, ts = pick_row(candidates, position)
    original = rows.at[index, feature]
    rows.at[index, feature] = change(original)
    run = publish(tmp_path, clean, rows)

    report = audit_run(tmp_path, run.run_id, samples=10, checks=("truncation",))

    assert not report.passed
    [violation] = report.violations
    assert (violation.symbol, violation.ts, violation.field) == (symbol, ts, feature)
    assert violation.stored == pytest.approx(change(original), rel=1e-12)
    assert violation.expected == pytest.approx(original, rel=1e-12)


def test_backtest_peeking_one_bar_ahead_is_caught_by_poisoning(clean: RunInfo) -> None:
    data_dir = clean.path.parents[1]

    peeking = audit_run(
        data_dir,
        clean.run_id,
        seed=3,
        backtest=PeekingBacktest(
            lookback=60, rebalance_every=20, policy=SelectionPolicy(top_k=3, threshold=None)
        ),
        checks=("poisoning",),
    )

    assert not peeking.passed
    [poisoned_after] = [pd.Timestamp(instant) for instant in peeking.checks[0].sampled]
    decisions = {v.ts for v in peeking.violations}
    # Only the last decision at or before T reads a poisoned bar: the one whose next bar closes after T.
    assert decisions == {poisoned_after - DAY}
    assert {v.field for v in peeking.violations} <= {"eligible", "passed", "ranked", "selected", "weight"}


def test_audit_command_exits_non_zero_and_writes_both_reports(clean: RunInfo, tmp_path: Path) -> None:
    rows = stored_rows(clean)
    index, symbol, ts = pick_row(rows)
    rows.at[index, "Recommend.All"] = (
        -rows.at[index, "Recommend.All"] if rows.at[index, "Recommend.All"] else 0.5
    )
    run = publish(tmp_path / "data", clean, rows)

    result = CliRunner().invoke(
        app,
        ["audit", "--data-dir", str(tmp_path / "data"), "--samples", "10", "--out", str(tmp_path / "out")],
    )

    assert result.exit_code == 1, result.output
    assert f"{symbol} at {ts.isoformat()}, Recommend.All" in result.output
    document = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert document["status"] == "failed" and document["run_id"] == run.run_id
    assert "FAILED" in (tmp_path / "out" / "audit.md").read_text()
