"""`GET /metrics` in Prometheus' text format: request latency by route, the job queue's depth, job durations
and outcomes, and how old each dataset's newest bar is. One registry per app, so two apps in one process
(tests) keep their own figures."""

import time
from collections.abc import Iterator

import pandas as pd
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.jobs.runner import JobRunner
from service.jobs.store import Job
from storage.read import FeatureStore
from vocabulary.errors import Unavailable
from vocabulary.time import available_at

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
JOB_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200)


class Metrics:
    """The app's registry and the figures the service records as it works."""

    def __init__(self, runner: JobRunner, store: FeatureStore) -> None:
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "asof_request_seconds",
            "Time to answer a request, by method, route and status.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.jobs = Histogram(
            "asof_job_seconds",
            "Time a job ran, by kind and final status.",
            ["kind", "status"],
            buckets=JOB_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_StateCollector(runner, store))

    def job_finished(self, job: Job) -> None:
        if job.started is not None and job.finished is not None:
            seconds = (job.finished - job.started).total_seconds()
            self.jobs.labels(job.kind, job.status.value).observe(seconds)


class _StateCollector(Collector):
    """Figures read at scrape time: the queue and the datasets (cheap: the store caches the catalog)."""

    def __init__(self, runner: JobRunner, store: FeatureStore) -> None:
        self.runner = runner
        self.store = store

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.runner.jobs.counts()
            datasets = self.store.datasets()
        except Unavailable:
            return  # /health says why; a scrape without these figures is the signal here
        queue = GaugeMetricFamily("asof_jobs", "Jobs in each state.", labels=["status"])
        for status, count in counts.items():
            queue.add_metric([status], count)
        yield queue
        age = GaugeMetricFamily(
            "asof_dataset_age_seconds",
            "Seconds since the newest bar of each dataset's newest run became knowable.",
            labels=["dataset"],
        )
        now = pd.Timestamp.now(tz="UTC")
        for name, run in datasets.items():
            if run.end is not None:
                age.add_metric([name], (now - available_at(run.end, run.interval, run.lag)).total_seconds())
        yield age


class RequestTimer:
    """ASGI middleware observing each request's latency under its route's path template."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        began = time.perf_counter()
        status = 500

        async def noted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, noted)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "(unmatched)")
            self.metrics.requests.labels(scope["method"], template, str(status)).observe(
                time.perf_counter() - began
            )
