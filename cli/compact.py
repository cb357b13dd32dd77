"""`asof compact`: rewrite a run made by a chain of updates into a self-contained run, from the command
line, when no server holds the data dir."""

from pathlib import Path

import typer

from cli.console import (
    DataDir,
    DatasetOfNewest,
    RunOfDataset,
    dataset_or_default,
    existing_data_dir,
    one_line_errors,
    progress_bar,
)
from cli.root import app
from service.compaction import compact_run
from storage.datadir import refuse_if_served
from vocabulary.spec import NEWEST, CompactSpec


@app.command()
def compact(
    run_id: RunOfDataset = NEWEST,
    dataset: DatasetOfNewest = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Rewrite a run's rows into fresh parts of a new run of its dataset, which reads none of its
    ancestors' files.

    A run made by updates reads its ancestors' parts, a few more with every update; compacting it keeps
    every answer (the same rows, the same carried state) and makes reads open fewer files. The new run is
    what unpinned reads follow; the old chain stays pinnable until retention (asof gc) collects it.

    Example: asof compact --data-dir data
    """
    with one_line_errors():
        refuse_if_served(data_dir, "compact through it (POST /runs/newest/compact) or stop it")
        spec = CompactSpec(run_id, dataset=dataset_or_default(dataset) if run_id == NEWEST else dataset)
        with progress_bar("compact", "files") as progress:
            result = compact_run(existing_data_dir(data_dir), spec, progress=progress)
        run = result.run
        typer.echo(
            f"run {run.run_id}: compaction of {run.parent}, {run.rows} rows in {len(run.files())} parts"
        )
