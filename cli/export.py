"""`asof export`: a run's wide feature matrix as Parquet.

Errors print one line naming what was wrong and exit 1, never a traceback.
"""

from pathlib import Path
from typing import Annotated

import typer

from cli.console import DataDir, existing_data_dir, feature_names, one_line_errors
from cli.root import app
from storage.export import export_matrix
from storage.read import FeatureStore


@app.command()
def export(
    run_id: Annotated[str, typer.Option(help="The run to export.")],
    features: Annotated[
        str | None, typer.Option(help="'all', or comma-separated feature names (default: the three ratings).")
    ] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Write a run's wide features_matrix.parquet (index ts, columns (symbol, feature)) and print its path.

    The file goes to artifacts/summaries/runs/<RUN_ID>/data/ under the data directory.

    Example: asof export --run-id 20240301T120000Z-3f2a1c --features all --data-dir data
    """
    with one_line_errors():
        store = FeatureStore(existing_data_dir(data_dir), index=False)
        typer.echo(str(export_matrix(store, run_id, features=feature_names(features))))
