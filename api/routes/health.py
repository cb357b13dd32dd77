"""`GET /health`: whether the service can do its work, and if not, what is wrong (503, so an orchestrator
acts). An empty data dir (no run yet) is healthy."""

from fastapi import APIRouter, Response

from api.schemas import HealthOut
from api.state import Runner, Store
from vocabulary.errors import Unavailable

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, responses={503: {"model": HealthOut}})
def health(store: Store, runner: Runner, response: Response) -> HealthOut:
    """Published runs, the newest, jobs per state; `problems` names what is wrong (catalog unreadable or
    locked, the newest run's file missing, the job worker stopped or unable to record a job)."""
    problems = runner.problems()
    runs = jobs = None
    try:
        runs = store.catalog.runs()  # newest first; one catalog read, not one per figure
        jobs = runner.jobs.counts()
    except Unavailable as error:
        problems.append(f"catalog: {error}")
    if runs and not runs[0].path.is_file():
        problems.append(f"run {runs[0].run_id}: its features file is missing")
    if problems:
        response.status_code = 503
    return HealthOut(
        status="unhealthy" if problems else "ok",
        problems=problems,
        runs=None if runs is None else len(runs),
        newest_run=runs[0].run_id if runs else None,
        jobs=jobs,
    )
