"""`GET /health`: whether the service can do its work, and if not, what is wrong (503, so an orchestrator
acts). It reads no storage: the watch (`api.watch`) keeps what it reports current. An empty data dir (no
run yet) is healthy."""

import os

import pandas as pd
from fastapi import APIRouter, Request, Response

from api.schemas import DatasetOut, HealthOut
from storage.catalog import RunInfo
from vocabulary.time import available_at

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
async def health(request: Request, response: Response) -> HealthOut:
    """Published runs, the newest, each dataset's newest run and bar, jobs per state; `problems` names what
    is wrong (catalog unreadable or locked, a dataset's newest run file missing, the job worker stopped or
    unable to record a job)."""
    snapshot = request.app.state.watch.snapshot
    problems = [*snapshot.problems, *request.app.state.runner.problems()]
    if problems:
        response.status_code = 503
    now = pd.Timestamp.now(tz="UTC")
    runs = snapshot.runs
    return HealthOut(
        status="unhealthy" if problems else "ok",
        problems=problems,
        pid=os.getpid(),
        writer=request.app.state.writer.writing,
        runs=None if runs is None else len(runs),
        newest_run=runs[0].run_id if runs else None,
        datasets={name: _dataset_out(run, now) for name, run in snapshot.datasets.items()},
        jobs=snapshot.jobs,
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
