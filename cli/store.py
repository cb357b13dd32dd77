"""`asof backfill`, `asof features`, `asof export`: the feature store from the command line.

Errors print one line naming what was wrong and exit 1, never a traceback.
"""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import orjson
import pandas as pd
import typer
from rich.console import Console

from api.encode import cross_section_documents, csv_bytes
from cli.app import app
from cli.console import DataDir, existing_data_dir, one_line_errors, progress_bar, symbol_table
from service.backfill import BackfillFailed, BackfillResult, HistoricalFeatureBackfill
from storage.export import export_matrix
from storage.read import FeatureStore
from storage.time import iso


class OutputFormat(StrEnum):
    json = "json"
    csv = "csv"


@app.command()
def backfill(
    lake: Annotated[Path, typer.Option(help="OHLCV lake: a folder of per-symbol files or one long file.")],
    interval: Annotated[str, typer.Option(help="Bar interval of the lake: 1m 5m 15m 30m 1h 2h 4h 1d 1W.")],
    candidates: Annotated[
        Path | None, typer.Option(help="portfolio_candidates.json choosing the symbols.")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. BINANCE:BTCUSDT.")
    ] = None,
    returns: Annotated[
        Path | None,
        typer.Option(
            help="returns_matrix.parquet: its columns are the universe (without --candidates or "
            "--symbols) and its span the default stored span."
        ),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First bar open time to store (ISO-8601, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last bar open time to store (ISO-8601, UTC).")] = None,
    lag: Annotated[int, typer.Option(help="Publication lag in seconds added to each bar's close.")] = 0,
    keep_zero_volume: Annotated[
        bool, typer.Option(help="Keep zero-volume bars (dropped by default).")
    ] = False,
    chunk_size: Annotated[int, typer.Option(help="Symbols rated at once; bounds memory.")] = 200,
    data_dir: DataDir = Path("data"),
) -> None:
    """Backfill the ratings of a lake into a new run, published only when complete.

    Ratings use all the history in the lake (warm-up first); bars opening in [--start, --end] are stored.

    A symbol that cannot be read or cleaned fails on its own; the summary names its reason.

    Example: asof backfill --lake data/lake --candidates data/candidates.json --interval 1d --start 2020-01-01
    """
    with one_line_errors():
        if candidates is not None and symbols is not None:
            raise ValueError("give --candidates or --symbols, not both")
        job = HistoricalFeatureBackfill(
            data_dir,
            lake=lake,
            interval=interval,
            symbols=_names(symbols),
            candidates=candidates,
            returns=returns,
            start=start,
            end=end,
            lag=pd.Timedelta(seconds=lag),
            keep_zero_volume=keep_zero_volume,
            chunk_size=chunk_size,
        )
        out = Console(soft_wrap=False)
        try:
            with progress_bar("backfill", "symbols") as progress:
                result = job.run(progress=progress)
        except BackfillFailed as failure:
            out.print(symbol_table(failure.statuses))
            raise
        _print_result(out, result)


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
    run_id: Annotated[str | None, typer.Option(help="Pin a run (default: the newest published).")] = None,
    max_staleness: Annotated[int, typer.Option(help="Leave out symbols older than this many intervals.")] = 5,
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
            symbols=_names(symbols),
            features=_feature_names(features),
            run_id=run_id,
            max_staleness=max_staleness,
        )
        if output is OutputFormat.json:
            typer.echo(
                orjson.dumps(cross_section_documents([section])[0], option=orjson.OPT_INDENT_2).decode()
            )
        else:
            typer.echo(csv_bytes(section.rows).decode(), nl=False)


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
        typer.echo(str(export_matrix(store, run_id, features=_feature_names(features))))


def _names(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when not given); empty items are an error."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",")]
    if not all(names):
        raise ValueError(f"empty name in {value!r}")
    return names


def _feature_names(value: str | None) -> list[str] | str | None:
    """--features: None (the three ratings), "all", or a list of names."""
    return value if value == "all" else _names(value)


def _print_result(out: Console, result: BackfillResult) -> None:
    run, statuses = result.run, result.statuses
    ok = sum(status.ok for status in statuses)
    span = f"{iso(run.start)} .. {iso(run.end)}" if run.start is not None and run.end is not None else "-"
    out.print(f"run {run.run_id}: {ok} of {len(statuses)} symbols ok, {run.rows} rows, {span}")
    out.print(symbol_table(statuses))
    split = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.timings.items())
    out.print(f"time: {split}")
