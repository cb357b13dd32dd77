"""The FastAPI application: `create_app()` (uvicorn's `--factory` target) wires settings, the feature store,
the job runner, the guards and the routes."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api import errors
from api.guards import BodyLimit, TokenAuth
from api.reads import ReadLimits
from api.routes import features, health, jobs, methods, runs
from api.settings import Settings
from service.jobs.runner import JobLimits, JobRunner
from storage.datadir import WriterLock
from storage.read import FeatureStore
from storage.retention import collect

logger = logging.getLogger("asof")

DESCRIPTION = """Point-in-time TradingView Technical Ratings.

`GET /features?as_of=T` answers, per symbol, the newest feature row whose `available_at <= T`: nothing that
was not knowable at T. Runs are immutable; `run_id=` pins one. `POST /backfill` computes a new run in the
background; follow it at `GET /jobs/{job_id}`. When the server has a token, every endpoint but `/health`
needs `Authorization: Bearer <token>`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service over one data directory (`Settings.from_env()` when no settings are given).

    It holds the data dir's writer lock from start-up to shut-down: a second server on the same data dir
    fails to start, naming the first."""
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = WriterLock(settings.data_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        lock.acquire(
            url=f"http://{settings.bind_host}:{settings.port}",
            what_to_do="a data dir is served by one server at a time; use that one or another data dir",
        )
        try:
            await run_in_threadpool(retain)  # also sweeps what writers killed in a crash left behind
            app.state.runner.start()
            try:
                yield
            finally:
                await run_in_threadpool(app.state.runner.stop)
        finally:
            lock.release()

    app = FastAPI(title="asof", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.store = FeatureStore(
        settings.data_dir, catalog_wait=settings.catalog_wait, default_dataset=settings.default_dataset
    )
    store = app.state.store

    def retain() -> None:
        """Retention after each publish (ASOF_KEEP_RUNS); runs read lately or needed by a job are pinned."""
        pinned = store.pinned(settings.pin_seconds) | app.state.runner.pinned()
        collected = collect(store.catalog, keep=settings.keep_runs, pinned=pinned)
        if collected.runs or collected.swept:
            logger.info(
                "retention: deleted runs %s (%d bytes), swept %s",
                collected.runs,
                collected.bytes,
                collected.swept,
            )

    limits = JobLimits(settings.max_queued_jobs, settings.max_audits, settings.max_job_history)
    app.state.runner = JobRunner(
        settings.data_dir,
        catalog_wait=settings.catalog_wait,
        limits=limits,
        after_publish=retain,
        ray_address=settings.ray_address,
    )
    app.state.reads = ReadLimits(settings.max_read_cells, settings.max_concurrent_reads)
    for module in (features, jobs, runs, health, methods):
        app.include_router(module.router)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    if settings.api_token:
        app.add_middleware(TokenAuth, api_token=settings.api_token, read_token=settings.read_token)
    return app
