"""`asof backfill`, `asof features`, `asof export` through Typer's CliRunner, their output checked against the
store they wrote (FeatureStore, the one point-in-time read)."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from service.sample import SampleFiles, SyntheticUniverse
from storage.catalog import Catalog
from storage.read import FeatureStore
from vocabulary.features import FEATURES

UNIVERSE = SyntheticUniverse(n_symbols=6, n_bars=400, seed=4)
AS_OF = "2015-10-01T06:00:00Z"
runner = CliRunner()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    return UNIVERSE.write(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def data_dir(sample: SampleFiles, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir with one run made by `asof backfill` (read-only for the tests that use it)."""
    data_dir = tmp_path_factory.mktemp("data")
    result = invoke(
        "backfill",
        "--lake",
        sample.lake,
        "--candidates",
        sample.candidates,
        "--interval",
        "1d",
        "--data-dir",
        data_dir,
    )
    assert result.exit_code == 0, result.stderr
    return data_dir


def invoke(*args, env: dict | None = None):
    return runner.invoke(app, [str(arg) for arg in args], env=env)


def summary(stdout: str) -> dict[str, list[str]]:
    """The backfill's summary table: symbol -> its cells (status, rows, dropped, refused, reason)."""
    cells = (
        [cell.strip() for cell in line.strip("│ ").split("│")] for line in stdout.splitlines() if "│" in line
    )
    return {row[0]: row[1:] for row in cells if row[0].startswith("SYNTH:")}


def test_backfill_prints_the_run_id_progress_and_a_summary_per_symbol(
    sample: SampleFiles, tmp_path: Path
) -> None:
    result = invoke(
        "backfill",
        "--lake",
        sample.lake,
        "--symbols",
        f"{UNIVERSE.symbols[0]},SYNTH:NOPE",
        "--interval",
        "1d",
        "--start",
        "2015-06-01",
        "--lag",
        "60",
        "--data-dir",
        tmp_path,
    )

    assert result.exit_code == 0, result.stderr
    run = Catalog(tmp_path).latest_run()
    assert re.search(
        rf"^run {re.escape(run.run_id)}: 1 of 2 symbols ok, {run.rows} rows", result.stdout, re.M
    )
    assert run.lag == pd.Timedelta(seconds=60) and run.start == pd.Timestamp("2015-06-01", tz="UTC")
    assert result.stderr.splitlines() == ["backfill: 0/2 symbols", "backfill: 2/2 symbols"]
    table = summary(result.stdout)
    assert table[UNIVERSE.symbols[0]][:4] == ["ok", str(run.rows), "0", "0"]
    assert table["SYNTH:NOPE"][:4] == ["failed", "0", "0", "0"]
    assert table["SYNTH:NOPE"][4].startswith("not found in lake")


def test_backfill_takes_the_rule_set_and_the_history_window(sample: SampleFiles, tmp_path: Path) -> None:
    result = invoke(
        *("backfill", "--lake", sample.lake, "--symbols", UNIVERSE.symbols[0], "--interval", "1d"),
        *("--rules", "legacy", "--history-bars", "150", "--data-dir", tmp_path),
    )
    assert result.exit_code == 0, result.stderr
    run = Catalog(tmp_path).latest_run()
    assert (run.spec.rules, run.spec.history_bars) == ("legacy", 150)
    bars = FeatureStore(tmp_path).history(UNIVERSE.symbols[0], features="all")["bars"]
    assert bars.max() == 150 and bars.iloc[0] == 1
    refused = invoke(
        "backfill", "--lake", sample.lake, "--interval", "1d", "--rules", "tv", "--data-dir", tmp_path
    )
    assert refused.exit_code == 1
    assert refused.stderr == "error: rules: unknown rule set 'tv'; expected one of scanner, chart, legacy\n"


def test_a_backfill_where_every_symbol_fails_says_why_and_publishes_nothing(
    sample: SampleFiles, data_dir: Path
) -> None:
    runs = [run.run_id for run in Catalog(data_dir).runs()]
    result = invoke(
        "backfill",
        "--lake",
        sample.lake,
        "--symbols",
        "SYNTH:NOPE,SYNTH:GONE",
        "--interval",
        "1d",
        "--data-dir",
        data_dir,
    )

    assert result.exit_code == 1
    last = result.stderr.splitlines()[-1]
    assert last.startswith("error: every symbol failed, nothing published: SYNTH:GONE: not found in lake")
    assert {symbol: cells[0] for symbol, cells in summary(result.stdout).items()} == {
        "SYNTH:NOPE": "failed",
        "SYNTH:GONE": "failed",
    }
    assert [run.run_id for run in Catalog(data_dir).runs()] == runs


def test_features_json_is_what_the_store_serves(data_dir: Path) -> None:
    result = invoke("features", "--as-of", AS_OF, "--features", "all", "--data-dir", data_dir)

    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    section = FeatureStore(data_dir).cross_section(AS_OF, features="all")
    assert document["as_of"] == "2015-10-01T06:00:00Z"
    assert (document["run_id"], document["features"], document["stale"]) == (
        section.run_id,
        list(FEATURES),
        section.stale,
    )
    assert [row["symbol"] for row in document["rows"]] == list(section.rows["symbol"])
    for row, expected in zip(document["rows"], section.rows.to_dict("records"), strict=True):
        assert pd.Timestamp(row["ts"]) == expected["ts"]
        assert pd.Timestamp(row["available_at"]) == expected["available_at"]
        assert (row["bars"], row["warm"]) == (expected["bars"], expected["warm"])
        for name in FEATURES:
            assert row[name] == (None if pd.isna(expected[name]) else expected[name]), name


def test_features_csv_with_symbols_features_and_a_pinned_run(data_dir: Path) -> None:
    run_id = Catalog(data_dir).latest_run().run_id
    symbols = UNIVERSE.symbols[1:3]
    result = invoke(
        "features",
        "--as-of",
        AS_OF,
        "--symbols",
        ",".join(symbols),
        "--features",
        "Recommend.All,RSI",
        "--run-id",
        run_id,
        "--format",
        "csv",
        "--data-dir",
        data_dir,
    )

    assert result.exit_code == 0, result.stderr
    rows = pd.read_csv(io.StringIO(result.stdout))
    expected = (
        FeatureStore(data_dir)
        .cross_section(AS_OF, symbols=symbols, features=["Recommend.All", "RSI"], run_id=run_id)
        .rows
    )
    assert list(rows.columns) == list(expected.columns)
    assert list(rows["symbol"]) == symbols == list(expected["symbol"])
    assert list(rows["bars"]) == list(expected["bars"])
    np.testing.assert_array_equal(rows["RSI"], expected["RSI"])
    np.testing.assert_array_equal(rows["Recommend.All"], expected["Recommend.All"])


def test_the_data_dir_comes_from_asof_data_dir(data_dir: Path) -> None:
    result = invoke("features", "--as-of", AS_OF, env={"ASOF_DATA_DIR": str(data_dir)})

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["run_id"] == Catalog(data_dir).latest_run().run_id


def test_export_writes_the_wide_matrix_and_prints_its_path(data_dir: Path) -> None:
    run_id = Catalog(data_dir).latest_run().run_id
    result = invoke("export", "--run-id", run_id, "--data-dir", data_dir)

    assert result.exit_code == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.name == "features_matrix.parquet" and path.parent.parent.name == run_id
    matrix = pd.read_parquet(path)
    assert list(matrix.columns.names) == ["symbol", "feature"]
    symbol = UNIVERSE.symbols[0]
    history = FeatureStore(data_dir).history(symbol, run_id=run_id, features="all")
    column = matrix[(symbol, "Recommend.All")]
    np.testing.assert_array_equal(column.loc[history["ts"]].to_numpy(), history["Recommend.All"].to_numpy())
    assert column.drop(index=history["ts"]).isna().all()
    assert history["Recommend.All"].notna().sum() > 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["features", "--as-of", "not-a-date"], "as_of: 'not-a-date' is not an ISO-8601 instant"),
        (["features", "--as-of", AS_OF, "--features", "Recommend.Nope"], "Recommend.Nope"),
        (
            ["features", "--as-of", AS_OF, "--run-id", "20000101T000000Z-000000"],
            "unknown run '20000101T000000Z-000000'",
        ),
        (["export", "--run-id", "20000101T000000Z-000000"], "unknown run '20000101T000000Z-000000'"),
        (["backfill", "--lake", "lake", "--interval", "2d"], "unknown interval '2d'"),
        (
            ["backfill", "--lake", "lake", "--interval", "1d", "--lag", "-5"],
            "lag: must be a duration from 0 to 365 days",
        ),
        (
            ["backfill", "--lake", "lake", "--interval", "1d", "--symbols", "A:B", "--candidates", "c.json"],
            "not both",
        ),
        (["backfill", "--lake", "nowhere", "--interval", "1d"], "nowhere: no such folder or file"),
    ],
)
def test_errors_are_one_line_without_a_traceback(data_dir: Path, args: list[str], message: str) -> None:
    result = invoke(*args, "--data-dir", data_dir)

    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_features_on_a_missing_data_dir_says_so(tmp_path: Path) -> None:
    result = invoke("features", "--as-of", AS_OF, "--data-dir", tmp_path / "nothing")

    assert result.exit_code == 1
    assert (
        result.stderr.strip()
        == f"error: data directory '{tmp_path / 'nothing'}' does not exist (set --data-dir or ASOF_DATA_DIR)"
    )
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize("command", ["backfill", "features", "export"])
def test_every_help_has_an_example(command: str) -> None:
    result = invoke(command, "--help")

    assert result.exit_code == 0
    assert f"Example: asof {command} --" in result.stdout
