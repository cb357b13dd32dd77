"""`GET /health`: whether the service can do its work, and if not, what is wrong (503, so an orchestrator
acts). An empty data dir (no run yet) is healthy."""

import pandas as pd
from fastapi import APIRouter, Response

from api.schemas import DatasetOut, HealthOut
from api.state import Runner, Store
from storage.catalog import RunInfo
from vocabulary.errors import Unavailable
from vocabulary.time import available_at

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(store: Store, runner: Runner, response: Response) -> HealthOut:
    """Published runs, the newest, jobs per state; `problems` names what is wrong (catalog unreadable or
    locked, the newest run's file missing, the job worker stopped or unable to record a job)."""
    problems = runner.problems()
    runs = jobs = None
    datasets: dict[str, RunInfo] = {}
    try:
        runs = store.catalog.runs()  # newest first
        datasets = store.datasets()
        jobs = runner.jobs.counts()
    except Unavailable as error:
        problems.append(f"catalog: {error}")
    problems += [
        f"run {run.run_id} (dataset {name}): its features files are missing"
        for name, run in datasets.items()
        if not (files := run.files()) or not all(file.is_file() for file in files)
    ]
    if problems:
        response.status_code = 503
    now = pd.Timestamp.now(tz="UTC")
    return HealthOut(
        status="unhealthy" if problems else "ok",
        problems=problems,
        runs=None if runs is None else len(runs),
        newest_run=runs[0].run_id if runs else None,
        datasets={name: _dataset_out(run, now) for name, run in datasets.items()},
        jobs=jobs,
    )


def _dataset_out(run: RunInfo, now: pd.Timestamp) -> DatasetOut:
    """How current a dataset is: its newest run, newest bar, and how long ago that bar became knowable."""
    newest = None if run.end is None else available_at(run.end, run.interval, run.lag)
    return DatasetOut(
        run_id=run.run_id,
        interval=run.interval,
        newest_bar=run.end,
        age_seconds=None if newest is None else max(0.0, (now - newest).total_seconds()),
    )
