"""The seed's wide matrix of a run: `features_matrix.parquet`, index `ts` (UTC), columns `[symbol, feature]`.

It is built through the read path (each symbol's history as of the instant the run's last row became
knowable), so it holds exactly what the point-in-time rule lets a reader see, and nothing else.
"""

import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import pandas as pd

from storage.catalog import Catalog
from storage.read import FeatureStore, resolve_features
from vocabulary.time import available_at

MATRIX_FILE: Final = "features_matrix.parquet"


def matrix_path(data_dir: Path | str, run_id: str) -> Path:
    """Where the run's matrix goes: `artifacts/summaries/runs/<RUN_ID>/data/` under the data dir."""
    return Path(data_dir) / "artifacts" / "summaries" / "runs" / run_id / "data" / MATRIX_FILE


def summary_dir(data_dir: Path | str, run_id: str) -> Path:
    """Where a run's reports go: `artifacts/summaries/runs/<RUN_ID>/`, beside its exported matrix."""
    return matrix_path(data_dir, run_id).parent.parent


def feature_matrix(
    store: FeatureStore, run_id: str, *, features: Iterable[str] | str | None = None
) -> pd.DataFrame:
    """The run's wide matrix; `features`: None = the three ratings, "all", or names. A bar a symbol does not
    have is missing (NaN / NA), never filled."""
    run = store.catalog.run(run_id)
    names = resolve_features(features)
    as_of = available_at(run.end, run.interval, run.lag)
    histories = {
        symbol: store.history(symbol, as_of=as_of, run_id=run_id, features=names).set_index("ts")[names]
        for symbol in run.symbols
    }
    matrix = pd.concat(histories, axis=1, names=["symbol", "feature"], sort=True)
    matrix.index.name = "ts"
    return matrix


def export_matrix(
    store_or_catalog: FeatureStore | Catalog, run_id: str, *, features: Iterable[str] | str | None = None
) -> Path:
    """Write the run's wide matrix to `matrix_path` and return the path; the file is replaced atomically."""
    store = (
        store_or_catalog
        if isinstance(store_or_catalog, FeatureStore)
        else FeatureStore(store_or_catalog.data_dir)
    )
    matrix = feature_matrix(store, run_id, features=features)
    path = matrix_path(store.catalog.data_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        matrix.to_parquet(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
