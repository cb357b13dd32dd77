"""Retention: old runs go, with their files, so a long-lived data dir does not fill its disk. Never the
newest run of a dataset, never a pinned one (a run a job or a client still needs); a file goes only with
the last run that reads it (runs made by updates read their ancestors' parts and state files)."""

import shutil
from dataclasses import dataclass

from storage.catalog import Catalog, RunInfo
from storage.runs import RUNS_DIR, sweep_abandoned
from vocabulary.errors import InvalidInput


@dataclass(frozen=True)
class Collected:
    runs: list[str]
    """Run ids deleted, oldest first."""
    bytes: int
    """Disk space given back."""
    swept: list[str]
    """Staging directories of dead writers removed."""


def collect(catalog: Catalog, *, keep: int | None, pinned: frozenset[str] = frozenset()) -> Collected:
    """Delete every run beyond the newest `keep` of its dataset (None: keep them all) that is not `pinned`,
    then the files no run left reads, and what dead writers left behind. The catalog forgets the runs
    first, so no reader can pin one whose files are going."""
    if keep is not None and keep < 1:
        raise InvalidInput("must keep at least the newest run of each dataset", field="keep")
    runs = catalog.runs()  # newest first
    rank: dict[str, int] = {}
    doomed: list[RunInfo] = []
    for run in runs:
        position = rank[run.spec.dataset] = rank.get(run.spec.dataset, 0) + 1
        if keep is not None and position > keep and run.run_id not in pinned:
            doomed.append(run)
    gone = {run.run_id for run in doomed}
    still_read = {file for run in runs if run.run_id not in gone for file in run.reads()}
    catalog.forget([run.run_id for run in reversed(doomed)])
    reclaimed = 0
    folders = {catalog.data_dir / RUNS_DIR / run.run_id for run in doomed}
    for run in doomed:
        for file in run.reads():
            if file not in still_read and file.exists():
                reclaimed += file.stat().st_size
                file.unlink()
                folders.add(file.parent)  # an ancestor's folder, collected before, empties last
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder)
    runs_dir = catalog.data_dir / RUNS_DIR
    swept = sweep_abandoned(runs_dir, catalog) if runs_dir.is_dir() else []
    return Collected([run.run_id for run in reversed(doomed)], reclaimed, swept)
