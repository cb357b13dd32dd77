"""`asof backtest` through Typer's CliRunner: the files it writes, and one clear line for each bad input."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from service.sample import SampleFiles, SyntheticUniverse

UNIVERSE = SyntheticUniverse(n_symbols=8, n_bars=500, flippers=2, seed=5)
runner = CliRunner()


@pytest.fixture(scope="module")
def sample(backfilled) -> tuple[SampleFiles, Path]:
    made = backfilled(UNIVERSE, returns=True)
    return made.files, made.data_dir


def invoke(*args: object):
    return runner.invoke(app, ["backtest", *(str(arg) for arg in args)])


def test_both_modes_write_every_output(sample: tuple[SampleFiles, Path], tmp_path: Path) -> None:
    files, data_dir = sample
    out = tmp_path / "report"
    result = invoke(
        "--returns", files.returns, "--candidates", files.candidates, "--data-dir", data_dir,
        "--lookback", 220, "--rebalance-every", 30, "--top-k", 3, "--optimizer", "inverse-vol",
        "--mode", "both", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.md'}" in result.stdout
    expected = {"equity.csv", "rebalances.csv", "metrics.json", "report.md"}
    expected |= {"equity.png", "drawdown.png", "holdings_dynamic.png", "holdings_static.png"}
    assert {path.name for path in out.iterdir()} == expected
    equity = pd.read_csv(out / "equity.csv", index_col="ts")
    assert list(equity.columns) == ["dynamic", "static"]
    assert len(equity) == 500 - 220
    log = pd.read_csv(out / "rebalances.csv")
    columns = ["mode", "ts", "as_of", "run_id", "selected", "entered", "exited", "weights", "turnover"]
    assert set(columns) <= set(log.columns)
    dynamic = log[log["mode"] == "dynamic"]
    assert len(dynamic) == len(range(220, 499, 30))
    for selected, weights in zip(dynamic["selected"].fillna(""), dynamic["weights"], strict=True):
        held = json.loads(weights)
        assert list(held) == selected.split()
        assert sum(held.values()) == pytest.approx(1.0) if held else held == {}
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"dynamic", "static"}
    assert metrics["static"]["looks_ahead"] is True and metrics["dynamic"]["looks_ahead"] is False
    assert metrics["dynamic"]["periods_per_year"] == 365
    for name in ("cagr", "volatility", "sharpe", "sortino", "max_drawdown", "calmar", "turnover"):
        assert name in metrics["dynamic"]
    report = (out / "report.md").read_text()
    assert "![equity](equity.png)" in report and "looks ahead" in report


BAD_INPUTS = {
    "missing returns": (
        ["--returns", "{tmp}/nope.parquet", "--data-dir", "{data}"],
        "nope.parquet: no such file",
    ),
    "non-UTC index": (["--returns", "{tmp}/paris.parquet", "--data-dir", "{data}"], "must be in UTC"),
    "non-monotonic index": (
        ["--returns", "{tmp}/backwards.parquet", "--data-dir", "{data}"],
        "the index must be strictly increasing; row 2",
    ),
    "unreachable service": (["--returns", "{returns}", "--service", "http://127.0.0.1:9"], "cannot reach"),
    "no feature source": (["--returns", "{returns}"], "give exactly one of --service URL or --data-dir DIR"),
    "unknown optimiser": (
        ["--returns", "{returns}", "--data-dir", "{data}", "--optimizer", "magic"],
        "unknown optimizer 'magic'",
    ),
    "missing data dir": (["--returns", "{returns}", "--data-dir", "{tmp}/void"], "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_1(
    sample: tuple[SampleFiles, Path], tmp_path: Path, case: str
) -> None:
    files, data_dir = sample
    one_column = {"SYNTH:S0001": [0.01, 0.02]}
    pd.DataFrame(one_column, index=pd.date_range("2024-01-01", periods=2, tz="Europe/Paris")).to_parquet(
        tmp_path / "paris.parquet"
    )
    pd.DataFrame(one_column, index=pd.DatetimeIndex(["2024-01-02", "2024-01-01"], tz="UTC")).to_parquet(
        tmp_path / "backwards.parquet"
    )
    template, message = BAD_INPUTS[case]
    args = [arg.format(tmp=tmp_path, data=data_dir, returns=files.returns) for arg in template]
    result = invoke(*args, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_symbols_absent_from_the_store_are_named(sample: tuple[SampleFiles, Path], tmp_path: Path) -> None:
    files, data_dir = sample
    returns = pd.read_parquet(files.returns).assign(**{"SYNTH:GHOST": 0.0})
    returns.to_parquet(tmp_path / "returns.parquet")
    result = invoke(
        "--returns", tmp_path / "returns.parquet", "--data-dir", data_dir, "--out", tmp_path / "out"
    )
    assert result.exit_code == 1
    assert "1 symbol(s) absent from run" in result.stderr and "SYNTH:GHOST" in result.stderr


def test_help_gives_an_example() -> None:
    result = runner.invoke(app, ["backtest", "--help"])
    assert result.exit_code == 0
    assert "Example: asof backtest --returns" in result.stdout


def test_a_data_dir_read_here_follows_asof_default_dataset(
    sample: tuple[SampleFiles, Path], tmp_path: Path
) -> None:
    files, data_dir = sample
    args = ["backtest", "--returns", str(files.returns), "--data-dir", str(data_dir), "--out", str(tmp_path)]
    result = runner.invoke(app, args, env={"ASOF_DEFAULT_DATASET": "elsewhere_1d"})
    assert result.exit_code == 1
    assert "unknown dataset 'elsewhere_1d'" in result.stderr
