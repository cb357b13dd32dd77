"""`asof features`: the cross-section as of an instant, read from the data dir.

Errors print one line naming what was wrong and exit 1, never a traceback.
"""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import typer

from api.encode import cross_section_documents, csv_bytes
from cli.console import (
    DataDir,
    DatasetOption,
    MaxStaleness,
    dataset_or_default,
    existing_data_dir,
    feature_names,
    names,
    one_line_errors,
)
from cli.root import app
from storage.read import FeatureStore


class OutputFormat(StrEnum):
    json = "json"
    csv = "csv"


@app.command()
def features(
    as_of: Annotated[
        str, typer.Option("--as-of", help="The instant to stand at (ISO-8601; bare date = 00:00 UTC).")
    ],
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols (default: every symbol).")
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="'all', or comma-separated feature names (default: the three ratings).")
    ] = None,
    run_id: Annotated[str | None, typer.Option(help="Pin a run (default: the dataset's newest).")] = None,
    dataset: DatasetOption = None,
    max_staleness: MaxStaleness = 5,
    output: Annotated[OutputFormat, typer.Option("--format", help="json or csv.")] = OutputFormat.json,
    data_dir: DataDir = Path("data"),
) -> None:
    """Print the cross-section as of T: per symbol, the newest row knowable at T (available_at <= T).

    JSON has the shape the API serves (as_of, run_id, interval, features, rows, stale); CSV the rows only.

    Example: asof features --as-of 2024-03-01 --symbols BINANCE:BTCUSDT,BINANCE:ETHUSDT --features all
    """
    with one_line_errors():
        store = FeatureStore(existing_data_dir(data_dir), index=False)
        section = store.cross_section(
            as_of,
            symbols=names(symbols),
            features=feature_names(features),
            run_id=run_id,
            dataset=dataset_or_default(dataset),
            max_staleness=max_staleness,
        )
        if output is OutputFormat.json:
            typer.echo(
                orjson.dumps(cross_section_documents([section])[0], option=orjson.OPT_INDENT_2).decode()
            )
        else:
            typer.echo(csv_bytes(section.rows).decode(), nl=False)
