"""`asof gc`: retention from the command line, when no server holds the data dir (a server runs its own,
ASOF_KEEP_RUNS)."""

from pathlib import Path
from typing import Annotated

import typer

from cli.console import DataDir, existing_data_dir, one_line_errors
from cli.root import app
from service.jobs.store import JobStore
from storage.catalog import Catalog
from storage.datadir import refuse_if_served
from storage.retention import collect


@app.command()
def gc(
    keep: Annotated[int, typer.Option(min=1, help="Runs kept per dataset, newest first.")] = 3,
    data_dir: DataDir = Path("data"),
) -> None:
    """Delete runs beyond the newest --keep of each dataset, their files, and what crashed writers left.

    The newest run of a dataset always stays, and so does a run a queued or running job needs; a file
    several runs share goes only with the last of them. Prints the runs deleted and the space reclaimed.

    Example: asof gc --keep 2 --data-dir data
    """
    with one_line_errors():
        refuse_if_served(data_dir, "it runs retention itself after each publish: set ASOF_KEEP_RUNS for it")
        catalog = Catalog(existing_data_dir(data_dir))
        collected = collect(catalog, keep=keep, pinned=JobStore(catalog).needed())
        for run_id in collected.runs:
            typer.echo(f"deleted run {run_id}")
        for run_id in collected.swept:
            typer.echo(f"swept the staging of run {run_id} (a writer that died)")
        typer.echo(f"{len(collected.runs)} runs deleted, {collected.bytes / 1e6:.1f} MB reclaimed")
