"""A backfill run by an asof server, as any client runs one: `POST /backfill`, then follow the job. The Alpha
Cycle uses it when a server holds the data dir, so the server stays the one writer."""

import time
from collections.abc import Callable

import httpx

from backtest.client import bearer
from service.backfill import BackfillFailed, BackfillResult
from service.jobs.store import FINISHED
from storage.catalog import Catalog
from vocabulary.errors import Unavailable
from vocabulary.spec import BackfillSpec


class ServiceError(Unavailable):
    """The server could not be reached, or answered what a backfill cannot go on from."""


class RemoteBackfill:
    """Backfills through the server at `base_url`, whose data dir is `data_dir` here too (a shared volume):
    the spec's paths are relative to it. Sends `ASOF_API_TOKEN` from the environment unless `token` is
    given."""

    def __init__(self, base_url: str, data_dir: str, *, token: str | None = None, poll: float = 0.5) -> None:
        self.base_url = base_url.rstrip("/")
        self.catalog = Catalog(data_dir)
        self.poll = poll
        self._http = httpx.Client(base_url=self.base_url, headers=bearer(token), timeout=30.0)

    def run(self, spec: BackfillSpec, progress: Callable[[int, int], None]) -> BackfillResult:
        """Start the backfill and follow its job to the end: the published run, its symbols' statuses and
        the job's timings. BackfillFailed when the job did not succeed."""
        with self._http:
            job = self._call("POST", "/backfill", json=_body(spec))
            while job["status"] not in FINISHED:
                time.sleep(self.poll)
                job = self._call("GET", f"/jobs/{job['job_id']}")
                if job["progress"]["total"]:
                    progress(job["progress"]["done"], job["progress"]["total"])
        if job["status"] != "succeeded":
            raise BackfillFailed(f"backfill job {job['job_id']} {job['status']}: {job['message']}", [])
        run = self.catalog.run(job["run_id"])
        return BackfillResult(run, self.catalog.symbol_status(run.run_id), job["report"].get("timings", {}))

    def _call(self, method: str, path: str, **kwargs: object) -> dict:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServiceError(f"cannot reach the asof service at {self.base_url}: {error}") from None
        if response.status_code >= 400:
            raise ServiceError(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        return response.json()


def _body(spec: BackfillSpec) -> dict:
    """The spec as `POST /backfill` takes it (every field but none left at its default)."""
    return {name: value for name, value in spec.to_dict().items() if value is not None}
