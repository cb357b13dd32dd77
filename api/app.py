"""The FastAPI application: `create_app()` (uvicorn's `--factory` target) wires settings, the feature store,
the job runner and the routes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api import errors
from api.routes import features, health, jobs, runs
from api.settings import Settings
from service.jobs.runner import JobRunner
from storage.read import FeatureStore

DESCRIPTION = """Point-in-time TradingView Technical Ratings.

`GET /features?as_of=T` answers, per symbol, the newest feature row whose `available_at <= T`: nothing that
was not knowable at T. Runs are immutable; `run_id=` pins one. `POST /backfill` computes a new run in the
background; follow it at `GET /jobs/{job_id}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service over one data directory (`Settings.from_env()` when no settings are given)."""
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runner.start()
        try:
            yield
        finally:
            await run_in_threadpool(app.state.runner.stop)

    app = FastAPI(title="asof", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = FeatureStore(settings.data_dir)
    app.state.runner = JobRunner(settings.data_dir)
    for module in (features, jobs, runs, health):
        app.include_router(module.router)
    errors.install(app)
    return app
