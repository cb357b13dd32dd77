"""`GET /health`: liveness and the catalog's state."""

from fastapi import APIRouter

from api.schemas import HealthOut
from api.state import Runner, Store

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
def health(store: Store, runner: Runner) -> HealthOut:
    """Answers while the server is up: published runs, the newest, and jobs per state."""
    newest = store.catalog.latest_run()
    return HealthOut(
        runs=len(store.catalog.runs()),
        newest_run=None if newest is None else newest.run_id,
        jobs=runner.jobs.counts(),
    )
