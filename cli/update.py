"""`asof update`: keep a run current from the command line, when no server holds the data dir.

Errors print one line naming what was wrong and exit 1, never a traceback.
"""

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.console import (
    ChunkBars,
    DataDir,
    DatasetOfNewest,
    Executor,
    RayAddress,
    RunOfDataset,
    dataset_or_default,
    existing_data_dir,
    one_line_errors,
    progress_bar,
    span_text,
    symbol_table,
    timings_text,
)
from cli.root import app
from service.backfill import BackfillResult
from service.chunks import CHUNK_BARS
from service.update import update_run
from storage.datadir import refuse_if_served
from vocabulary.spec import NEWEST, UpdateSpec
from vocabulary.time import iso


@app.command()
def update(
    run_id: RunOfDataset = NEWEST,
    dataset: DatasetOfNewest = None,
    lake: Annotated[
        Path | None, typer.Option(help="Read this lake instead of the run's own (same symbols' files).")
    ] = None,
    executor: Executor = "local",
    ray_address: RayAddress = None,
    chunk_bars: ChunkBars = CHUNK_BARS,
    data_dir: DataDir = Path("data"),
) -> None:
    """Extend a run with the bars its lake holds after each symbol's last one, into a new run.

    The new run shares the run's files and adds the new bars' rows, rated from the state the run carries:
    the rows a full backfill of the extended lake would store, for the cost of the new bars. It keeps the
    run's parameters; symbols new to its universe are backfilled in full, and a symbol whose rated bars
    changed in the lake is rated again in full and listed as revised, with its first changed bar. The new
    run is what unpinned reads follow; the old one still answers as before. When the lake holds nothing
    new, nothing is published.

    Example: asof update --data-dir data

    Example: asof update --run-id 20261124T130000Z-1a2b3c --lake /srv/lake
    """
    with one_line_errors():
        refuse_if_served(
            data_dir,
            "update through it (POST /runs/newest/update, or /runs/<run id>/update) or stop it",
        )
        spec = UpdateSpec(
            run_id,
            dataset=dataset_or_default(dataset) if run_id == NEWEST else dataset,
            lake=None if lake is None else lake.resolve(),
            executor=executor,
        )
        began = time.perf_counter()
        with progress_bar("update", "symbols") as progress:
            result = update_run(
                existing_data_dir(data_dir),
                spec,
                chunk_bars=chunk_bars,
                ray_address=ray_address,
                progress=progress,
            )
        _print_result(Console(soft_wrap=False), result, time.perf_counter() - began)


def _print_result(out: Console, result: BackfillResult, seconds: float) -> None:
    """The run published (or that none was), then what was revised, added, kept or failed, and the time
    (the stages, then the update's wall time, start-up excluded); plain lines (symbols hold colons, which
    rich would read as emoji codes)."""
    run, update = result.run, result.update
    assert update is not None, "an update's result says what it did"
    if not update.published:
        typer.echo(f"run {run.run_id} is up to date: the lake holds nothing new")
    else:
        added = sum(status.rows for status in result.statuses)
        typer.echo(
            f"run {run.run_id}: update of {update.parent}, {added} rows added, {run.rows} rows, "
            f"{span_text(run)}"
        )
    for symbol, at in sorted(update.revised.items()):
        typer.echo(f"revised {symbol}: its bars changed from {iso(at)}; rated again in full")
    for symbol in update.added:
        typer.echo(f"added {symbol}: new to the run, backfilled in full")
    for symbol, reason in sorted(update.kept.items()):
        typer.echo(f"kept {symbol} as it was (not updated): {reason}")
    failed = [status for status in result.statuses if not status.ok and status.symbol not in update.kept]
    if failed:
        out.print(symbol_table(failed))
    typer.echo(f"time: {timings_text(result.timings)}; {seconds:.2f}s in all")
