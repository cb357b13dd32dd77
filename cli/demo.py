"""`asof demo`: a generated sample universe through the Alpha Cycle, the first thing to try."""

from pathlib import Path
from typing import Annotated

import typer

from cli.console import DataDir, one_line_errors
from cli.pipeline import pipeline
from cli.root import app
from service.sample import SyntheticUniverse


@app.command()
def demo(
    symbols: Annotated[int, typer.Option(help="Symbols in the sample universe.")] = 60,
    years: Annotated[float, typer.Option(help="Years of daily bars.")] = 6.0,
    seed: Annotated[int, typer.Option(help="Seed of the sample universe.")] = 0,
    service: Annotated[
        str | None, typer.Option(help="Backtest through this feature service (default: read the data dir).")
    ] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Generate a sample universe into the data dir and run the Alpha Cycle on it: the first thing to try.

    The sample is what a real user brings: a lake of per-symbol Parquet files (tradingview-scraper naming),
    a returns matrix and a candidates file, under <data-dir>/sample/. Its symbols move through bull, bear
    and sideways regimes, list late, delist and skip untraded bars, so the ratings rotate.

    Example: asof demo --data-dir data
    """
    with one_line_errors():
        bars = round(years * 365.25)  # daily bars
        universe = SyntheticUniverse(n_symbols=symbols, n_bars=bars, seed=seed)
        files = universe.write(data_dir / "sample")
        typer.echo(f"sample universe: {symbols} symbols x {bars} daily bars in {files.lake.parent}")
    pipeline(
        lake=files.lake,
        returns=files.returns,
        candidates=files.candidates,
        service=service,
        data_dir=data_dir,
    )
