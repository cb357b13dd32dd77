"""`POST /backfill` and the jobs it creates (and audits, `api.routes.runs`): follow, list, cancel."""

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Response

from api.errors import ERROR_RESPONSES
from api.paths import public_spec, public_text
from api.schemas import BackfillIn, ConflictOut, JobOut, Kind, Progress
from api.state import Runner
from service.jobs.admission import admit_backfill
from service.jobs.runner import JobRunner
from service.jobs.store import Job, JobStatus, Work
from vocabulary.spec import BackfillSpec

router = APIRouter(tags=["jobs"])
Route = TypeVar("Route", bound=Callable[..., Any])


def starts_a_job(router: APIRouter, path: str, conflict: str) -> Callable[[Route], Route]:
    """A POST route that queues a job: 202 with the job, or 409 for `conflict`."""
    return router.post(
        path,
        status_code=202,
        response_model=JobOut,
        responses={**ERROR_RESPONSES, 409: {"model": ConflictOut, "description": conflict}},
    )


def job_out(job: Job, data_dir: Path) -> JobOut:
    """A job as clients see it: its paths relative to the data dir, never absolute."""
    errors = [
        error | {"reason": public_text(error.get("reason"), data_dir)} if "reason" in error else error
        for error in job.errors
    ]
    return JobOut(
        job_id=job.job_id,
        kind=job.kind,
        status=job.status,
        params=public_spec(job.work.to_dict(), data_dir),
        progress=Progress(done=job.done, total=job.total),
        errors=errors,
        report=job.report,
        run_id=job.run_id,
        created=job.created,
        started=job.started,
        finished=job.finished,
        message=public_text(job.message, data_dir),
    )


@starts_a_job(router, "/backfill", "an identical backfill is queued or running")
def backfill(body: BackfillIn, runner: Runner, response: Response) -> JobOut:
    """Queue a backfill of `lake` into a new run; follow it at the `Location` (`GET /jobs/{job_id}`).

    Paths are relative to the data directory and must stay inside it. The universe is `symbols`, else the
    `candidates` file, else the `returns` matrix's columns, else every symbol of the lake.
    """
    spec = BackfillSpec(**body.model_dump())
    return submit(runner, admit_backfill(runner.data_dir, spec), response)


def submit(runner: JobRunner, work: Work, response: Response) -> JobOut:
    """Queue `work` and answer as every job-starting route does: the job, with its `Location`."""
    job = runner.submit(work)
    response.headers["Location"] = f"/jobs/{job.job_id}"
    return job_out(job, runner.data_dir)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    runner: Runner,
    status: Annotated[JobStatus | None, Query(description="only jobs in this state")] = None,
    kind: Annotated[Kind | None, Query(description="only jobs of this kind")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[
        str | None, Query(max_length=64, description="the next page: jobs listed after this job id")
    ] = None,
) -> list[JobOut]:
    """Jobs, newest first, `limit` per page; pass the last job id of a page as `before` for the next."""
    statuses = None if status is None else frozenset({status})
    return [
        job_out(job, runner.data_dir)
        for job in runner.jobs.recent(statuses=statuses, kind=kind, limit=limit, before=before)
    ]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERROR_RESPONSES)
def get_job(job_id: str, runner: Runner) -> JobOut:
    """A job's state, progress (symbols done of total), per-symbol errors, and `run_id` once succeeded."""
    return job_out(runner.jobs.get(job_id), runner.data_dir)


@router.delete(
    "/jobs/{job_id}",
    response_model=JobOut,
    responses={
        **ERROR_RESPONSES,
        202: {
            "model": JobOut,
            "description": "running: cancellation requested, the job stops between chunks",
        },
        409: {"model": ConflictOut, "description": "the job has already finished"},
    },
)
def cancel_job(job_id: str, runner: Runner, response: Response) -> JobOut:
    """Cancel a job: a queued one at once (200), a running one cooperatively (202; it ends `cancelled`)."""
    job = runner.cancel(job_id)
    if job.status is JobStatus.RUNNING:
        response.status_code = 202
    return job_out(job, runner.data_dir)
