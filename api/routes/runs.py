"""Published runs: metadata, the wide feature matrix, and the jobs that start from a run: the forensic
audit, an update (keeping the run current) and a compaction."""

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from api.errors import ERROR_RESPONSES
from api.paths import public_spec
from api.responses import json_response
from api.routes.jobs import starts_a_job, submit
from api.schemas import AuditIn, CompactIn, Features, JobOut, RunOut, UpdateIn, store_features
from api.state import Runner, Store
from service.jobs.admission import admit_compaction, admit_update
from service.jobs.store import ACTIVE, JobStatus
from storage.catalog import RunInfo
from storage.export import feature_matrix
from vocabulary.errors import NotFound, Unavailable
from vocabulary.spec import AuditSpec, CompactSpec, UpdateSpec

router = APIRouter(tags=["runs"])


_FINISHED_WITH_REPORT = frozenset({JobStatus.SUCCEEDED})


class RunNotAudited(NotFound):
    """No audit of the run has finished yet."""


def run_out(run: RunInfo, data_dir: Path) -> RunOut:
    return RunOut(
        run_id=run.run_id,
        dataset=run.spec.dataset,
        interval=run.interval,
        lag=run.lag,
        created_at=run.created_at,
        code_version=run.code_version,
        symbols=run.symbols,
        start=run.start,
        end=run.end,
        rows=run.rows,
        features=run.features,
        params=public_spec(run.spec.to_dict(), data_dir),
        made_by=run.made_by,
        parent=run.parent,
        ancestors=list(run.lineage),
    )


@router.get("/runs", response_model=list[RunOut])
async def list_runs(
    request: Request, store: Store, dataset: Annotated[str | None, Query(max_length=64)] = None
) -> list[RunOut]:
    """Published runs, newest first (of `dataset` when given), as the watch last saw them (a publish shows
    here before its job reads as done)."""
    runs = _watched_runs(request)
    return [run_out(run, store.catalog.data_dir) for run in runs if dataset in (None, run.spec.dataset)]


@router.get("/runs/{run_id}", response_model=RunOut, responses=ERROR_RESPONSES)
def get_run(run_id: str, request: Request, store: Store) -> RunOut:
    """One run: symbols, span, interval, lag, features, code version, creation time, parameters."""
    run = next((run for run in _watched_runs(request) if run.run_id == run_id), None)
    return run_out(run or store.catalog.run(run_id), store.catalog.data_dir)


def _watched_runs(request: Request) -> list[RunInfo]:
    snapshot = request.app.state.watch.snapshot
    if snapshot.runs is None:
        raise Unavailable("; ".join(snapshot.problems))
    return snapshot.runs


@router.get(
    "/runs/{run_id}/matrix",
    response_class=Response,
    responses={**ERROR_RESPONSES, 200: {"content": {"application/vnd.apache.parquet": {}}}},
)
def get_matrix(run_id: str, store: Store, features: Annotated[Features, Query()] = None) -> Response:
    """The run as the seed's wide matrix (Parquet): index `ts`, columns `[symbol, feature]`, every row as
    known once the run's last bar closed; `features` as for `/features` (the three ratings by default)."""
    matrix = feature_matrix(store, run_id, features=store_features(features))
    return Response(
        matrix.to_parquet(),  # built per request: concurrent requests for other features cannot collide
        media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{run_id}.parquet"'},
    )


@starts_a_job(router, "/runs/{run_id}/audit", "the same audit is queued or running")
def start_audit(
    run_id: str, store: Store, runner: Runner, response: Response, body: AuditIn | None = None
) -> JobOut:
    """Start the forensic lookahead audit of a run as a background job; follow it at the `Location`
    (`GET /jobs/{job_id}`) and read its report at `GET /runs/{run_id}/audit` once it has finished.

    It checks truncation invariance, serving and future poisoning (the last skipped, with its reason, when
    the run was not backfilled from a returns matrix). Takes seconds to minutes: it recomputes sampled rows
    from the run's lake and backfills a poisoned copy."""
    store.catalog.run(run_id)  # 404 before queueing anything for an unknown run
    body = body or AuditIn()
    return submit(runner, AuditSpec(run_id, samples=body.samples, seed=body.seed), response)


@starts_a_job(
    router,
    "/runs/{run_id}/update",
    "the same update is queued or running, or the run carries no state to continue",
)
def start_update(
    run_id: str, store: Store, runner: Runner, response: Response, body: UpdateIn | None = None
) -> JobOut:
    """Keep a run current, as a job: a new run of its dataset that shares the run's rows and adds those of
    the bars its lake holds after each symbol's last one, rated from the state the run carries (exactly
    the rows a full backfill of the extended lake would store). `newest` names the newest run of the
    dataset (`dataset`, or the default one). Symbols new to its universe are backfilled in full; a symbol
    whose rated bars changed in the lake is rated again in full and listed in the job's report as revised,
    with its first changed bar. The new run is what unpinned reads follow once published; the old one
    still answers as before when pinned. When nothing is new, no run is published (the job says so)."""
    body = body or UpdateIn()
    spec = UpdateSpec(run_id, dataset=body.dataset, lake=body.lake, executor=body.executor)
    return submit(runner, admit_update(store, spec), response)


@starts_a_job(router, "/runs/{run_id}/compact", "the same compaction is queued or running")
def start_compaction(
    run_id: str, store: Store, runner: Runner, response: Response, body: CompactIn | None = None
) -> JobOut:
    """Rewrite a run (`newest`: of `dataset`, or the default one) made by a chain of updates into a new,
    self-contained run of its dataset with the same rows in fresh parts: every answer stays the same, and
    reads open fewer files. The chain stays pinnable until retention collects it."""
    spec = CompactSpec(run_id, dataset=(body or CompactIn()).dataset)
    return submit(runner, admit_compaction(store, spec), response)


@router.get(
    "/runs/{run_id}/audit",
    responses={
        **ERROR_RESPONSES,
        200: {"description": "the report of the run's newest finished audit (`status` passed or failed)"},
    },
)
def get_audit(run_id: str, store: Store, runner: Runner) -> Response:
    """The report of the newest finished audit of a run: `status` is `failed` and the violations name their
    rows when anything could have been seen early. 404 until an audit has finished (naming the one running,
    if any); while a newer audit runs, the previous report."""
    store.catalog.run(run_id)
    audits = runner.jobs.recent(kind="audit", run_id=run_id, statuses=_FINISHED_WITH_REPORT, limit=1)
    if audits:
        return json_response(audits[0].report)
    active = runner.jobs.recent(kind="audit", run_id=run_id, statuses=ACTIVE, limit=1)
    running = f"; audit job {active[0].job_id} is {active[0].status}" if active else ""
    raise RunNotAudited(
        f"run {run_id} has no finished audit yet{running}: start one with POST /runs/{run_id}/audit"
    )
