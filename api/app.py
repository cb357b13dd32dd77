"""The FastAPI application: `create_app()` (uvicorn's `--factory` target) wires settings, the feature store,
the job runner, the guards and the routes."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from api import errors
from api.answers import Answers
from api.guards import BodyLimit, TokenAuth
from api.metrics import Metrics, RequestTimer
from api.reads import ReadLimits
from api.routes import features, health, jobs, methods, metrics, runs
from api.settings import Settings
from api.watch import Watch
from api.writer import Writer
from service.jobs.runner import JobLimits, JobRunner
from storage.read import FeatureStore

DESCRIPTION = """Point-in-time TradingView Technical Ratings.

`GET /features?as_of=T` answers, per symbol, the newest feature row whose `available_at <= T`: nothing that
was not knowable at T. Runs are immutable; `run_id=` pins one. `POST /backfill` computes a new run in the
background; follow it at `GET /jobs/{job_id}`. When the server has a token, every endpoint but `/health`
needs `Authorization: Bearer <token>`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service over one data directory (`Settings.from_env()` when no settings are given).

    The process that holds the data dir's writer lock runs the jobs (`api.writer`): a second server on the
    same data dir fails to start, naming the first."""
    settings = settings or Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(app.state.writer.begin)
        await run_in_threadpool(app.state.watch.start)
        try:
            yield
        finally:
            app.state.watch.stop()
            await run_in_threadpool(app.state.writer.end)

    app = FastAPI(title="asof", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    store = FeatureStore(
        settings.data_dir,
        catalog_wait=settings.catalog_wait,
        default_dataset=settings.default_dataset,
        column_bytes=settings.column_bytes,
    )
    runner = JobRunner(
        settings.data_dir,
        catalog_wait=settings.catalog_wait,
        limits=JobLimits(settings.max_queued_jobs, settings.max_audits, settings.max_job_history),
        after_publish=lambda run_id: published(),
        after_job=lambda job: app.state.metrics.job_finished(job),
        ray_address=settings.ray_address,
    )
    app.state.store = store
    app.state.runner = runner
    app.state.writer = Writer(settings, store, runner)
    app.state.watch = Watch(store, runner)

    def published() -> None:
        """After a publish, before its job reads as done: retention, then what /runs and /health show."""
        app.state.writer.retain()
        app.state.watch.refresh()

    app.state.metrics = Metrics(runner, store)
    app.state.reads = ReadLimits(settings.max_read_cells, settings.max_concurrent_reads)
    app.state.answers = Answers(settings.answer_cache_bytes)
    for module in (features, jobs, runs, health, metrics, methods):
        app.include_router(module.router)
    errors.install(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(RequestTimer, metrics=app.state.metrics)
    if settings.api_token:
        app.add_middleware(TokenAuth, api_token=settings.api_token, read_token=settings.read_token)
    return app
