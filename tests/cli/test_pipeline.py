"""`asof demo` and `asof pipeline` end to end through the CLI: backfill, audit, backtest of both modes."""

import json
import math
import shutil
from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from service.sample import SyntheticUniverse
from storage.catalog import Catalog
from tests.support.server import running_server


def run_cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    data_dir = tmp_path_factory.mktemp("demo")
    output = run_cli("demo", "--data-dir", str(data_dir), "--symbols", "6", "--years", "1.5", "--seed", "4")
    return data_dir, output


def test_demo_writes_a_user_like_sample_and_reports_on_its_run(demo: tuple[Path, str]) -> None:
    data_dir, output = demo
    sample = data_dir / "sample"
    assert len(list((sample / "lake").glob("SYNTH_S*_1d.parquet"))) == 6
    assert pd.read_parquet(sample / "returns_matrix.parquet").shape == (548, 6)  # 1.5 years of daily rows
    assert len(json.loads((sample / "portfolio_candidates.json").read_text())) == 6

    [run] = Catalog(data_dir).runs()
    folder = data_dir / "artifacts" / "summaries" / "runs" / run.run_id
    assert f"report: {folder / 'report.md'}" in output
    assert f"audit passed: {folder / 'audit.md'}" in output
    assert set(run.symbols) == set(SyntheticUniverse(n_symbols=6).symbols)

    audit = json.loads((folder / "audit.json").read_text())
    assert audit["status"] == "passed" and audit["run_id"] == run.run_id
    assert [check["status"] for check in audit["checks"]] == ["passed"] * 3
    assert all(check["compared"] > 0 for check in audit["checks"])

    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics) == {"dynamic", "static"}
    for mode in metrics.values():
        assert (
            math.isfinite(mode["cagr"]) and math.isfinite(mode["max_drawdown"]) and mode["max_drawdown"] <= 0
        )
        assert mode["rebalances"] == len(range(252, 548 - 1, 20))

    rebalances = pd.read_csv(folder / "rebalances.csv")
    dynamic = rebalances[rebalances["mode"] == "dynamic"]
    assert (dynamic["run_id"] == run.run_id).all()
    decision_ts = pd.to_datetime(dynamic["ts"], utc=True)
    assert (pd.to_datetime(dynamic["as_of"], utc=True) == decision_ts + pd.Timedelta(days=1)).all()

    equity = pd.read_csv(folder / "equity.csv", index_col="ts")
    assert list(equity.columns) == ["dynamic", "static"] and equity.notna().all().all()
    for name in ("equity.png", "drawdown.png", "holdings_dynamic.png", "holdings_static.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG"
    report = (folder / "report.md").read_text()
    assert run.run_id in report and "passed" in report

    matrix = pd.read_parquet(folder / "data" / "features_matrix.parquet")
    assert list(matrix.columns.names) == ["symbol", "feature"]
    assert set(matrix.columns.get_level_values("symbol")) == set(run.symbols)
    assert matrix.index.name == "ts" and len(matrix) == 548


PIPELINE_OPTIONS = (
    "--lookback",
    "120",
    "--rebalance-every",
    "60",
    "--top-k",
    "2",
    "--optimizer",
    "inverse-vol",
)


def pipeline(sample: Path, data_dir: Path, out: Path, *extra: str) -> str:
    return run_cli(
        "pipeline", "--lake", str(sample / "lake"), "--returns", str(sample / "returns_matrix.parquet"),
        *PIPELINE_OPTIONS, "--samples", "4", "--out", str(out), "--data-dir", str(data_dir), *extra,
    )  # fmt: skip


@pytest.fixture(scope="module")
def local_cycle(demo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """The pipeline on the demo's files, reading features from its own data dir, reporting into --out."""
    root = tmp_path_factory.mktemp("local")
    output = pipeline(demo[0] / "sample", root / "data", root / "report")
    return root / "data", root / "report", output


def test_pipeline_on_user_files_reports_into_out(
    demo: tuple[Path, str], local_cycle: tuple[Path, Path, str]
) -> None:
    data_dir, out, output = local_cycle

    [run] = Catalog(data_dir).runs()
    assert f"report: {out / 'report.md'}" in output
    assert json.loads((out / "audit.json").read_text())["status"] == "passed"
    rebalances = pd.read_csv(out / "rebalances.csv")
    assert len(rebalances) == 2 * len(range(120, 548 - 1, 60))
    held = rebalances["selected"].fillna("").str.split()
    assert held.map(len).max() == 2
    assert pd.read_parquet(out / "data" / "features_matrix.parquet").shape[1] == 6 * 3  # three ratings each
    assert run.spec.returns == str(demo[0] / "sample" / "returns_matrix.parquet")


def test_pipeline_through_the_service_decides_as_the_local_store_does(
    demo: tuple[Path, str], local_cycle: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """The server holds the data dir, so it backfills (POST /backfill, followed as a job) and serves the
    backtest; the inputs lie in its data dir."""
    data_dir = tmp_path / "data"
    shutil.copytree(demo[0] / "sample", data_dir / "sample")
    with running_server(data_dir) as base_url:
        output = pipeline(data_dir / "sample", data_dir, tmp_path / "report", "--service", base_url)
        [job] = httpx.get(f"{base_url}/jobs").json()

    [run] = Catalog(data_dir).runs()
    assert (job["kind"], job["status"], job["run_id"]) == ("backfill", "succeeded", run.run_id)
    assert job["params"]["lake"] == "sample/lake" and run.spec.lake == "sample/lake"
    assert f"report: {tmp_path / 'report' / 'report.md'}" in output
    served = pd.read_csv(tmp_path / "report" / "rebalances.csv")
    local = pd.read_csv(local_cycle[1] / "rebalances.csv")
    assert (served["run_id"] == run.run_id).all()
    decisions = ["mode", "ts", "as_of", "selected", "weights", "turnover"]
    pd.testing.assert_frame_equal(served[decisions], local[decisions])


def test_pipeline_refuses_a_returns_matrix_too_short_before_backfilling(
    demo: tuple[Path, str], tmp_path: Path
) -> None:
    sample = demo[0] / "sample"
    result = CliRunner().invoke(
        app,
        [
            "pipeline",
            "--lake",
            str(sample / "lake"),
            "--returns",
            str(sample / "returns_matrix.parquet"),
            "--lookback",
            "600",
            "--data-dir",
            str(tmp_path / "data"),
        ],
    )

    assert result.exit_code == 1
    assert "a lookback of 600 needs at least 602" in result.output
    assert Catalog(tmp_path / "data").runs() == []
