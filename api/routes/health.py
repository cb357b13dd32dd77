"""`GET /health`: liveness and the catalog's state."""

from fastapi import APIRouter

from api.schemas import HealthOut
from api.state import Runner, Store

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health(store: Store, runner: Runner) -> HealthOut:
    """Answers while the server is up: published runs, the newest, and jobs per state."""
    runs = store.catalog.runs()  # newest first; one catalog read, not one per figure
    return HealthOut(
        runs=len(runs),
        newest_run=runs[0].run_id if runs else None,
        jobs=runner.jobs.counts(),
    )
