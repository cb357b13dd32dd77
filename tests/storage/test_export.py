"""The seed's wide matrix, exported from a real run through the read path."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from storage.catalog import Catalog, RunNotFound
from storage.export import export_matrix, matrix_path
from storage.read import FeatureStore
from tests.support.rows import daily, feature_rows, publish
from vocabulary.features import FEATURES, RATINGS, VOTES


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    bars = {"X:B": daily("2024-01-01", 10, skip=[4, 5]), "X:A": daily("2024-01-03", 12)}
    rows = feature_rows(bars, seed=11)
    data_dir = tmp_path_factory.mktemp("export")
    return data_dir, publish(data_dir, rows), rows


def test_the_matrix_has_ts_rows_and_symbol_feature_columns(run: tuple) -> None:
    data_dir, info, rows = run
    path = export_matrix(Catalog(data_dir), info.run_id)
    assert (
        path
        == data_dir / "artifacts" / "summaries" / "runs" / info.run_id / "data" / "features_matrix.parquet"
    )
    assert path == matrix_path(data_dir, info.run_id)
    matrix = pd.read_parquet(path)
    assert matrix.index.name == "ts"
    assert str(matrix.index.dtype) == "datetime64[ns, UTC]"
    assert matrix.index.tolist() == sorted(rows["ts"].unique())
    assert matrix.columns.names == ["symbol", "feature"]
    assert matrix.columns.tolist() == [(symbol, name) for symbol in ("X:A", "X:B") for name in RATINGS]
    assert matrix.shape == (14, 6)
    for symbol in ("X:A", "X:B"):
        stored = rows[rows["symbol"] == symbol].set_index("ts")["Recommend.All"].reindex(matrix.index)
        np.testing.assert_array_equal(matrix[(symbol, "Recommend.All")].to_numpy(), stored.to_numpy())
    halted = matrix.loc[pd.Timestamp("2024-01-05", tz="UTC"), ("X:B", "Recommend.MA")]
    assert np.isnan(halted)  # a bar the symbol does not have stays missing: no forward fill


def test_every_feature_keeps_its_dtype_in_the_matrix(run: tuple) -> None:
    data_dir, info, _ = run
    matrix = pd.read_parquet(export_matrix(FeatureStore(data_dir, index=False), info.run_id, features="all"))
    assert matrix.shape == (14, 2 * len(FEATURES))
    assert {str(matrix[("X:A", name)].dtype) for name in VOTES} == {"Int8"}
    assert {str(matrix[("X:A", name)].dtype) for name in FEATURES if name not in VOTES} == {"float64"}


def test_exporting_an_unknown_run_names_it(run: tuple) -> None:
    with pytest.raises(RunNotFound, match="nope"):
        export_matrix(Catalog(run[0]), "nope")
    assert not (Path(run[0]) / "artifacts" / "summaries" / "runs" / "nope").exists()
