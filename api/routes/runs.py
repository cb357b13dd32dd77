"""Published runs: metadata and the wide feature matrix."""

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Response

from api.encode import json_response
from api.errors import ERROR_RESPONSES
from api.schemas import Features, RunOut, store_features
from api.state import Store
from service.audit import audit_run
from storage.catalog import RunInfo
from storage.export import feature_matrix

router = APIRouter(tags=["runs"])


def run_out(run: RunInfo) -> RunOut:
    return RunOut.model_validate({name: value for name, value in asdict(run).items() if name != "path"})


@router.get("/runs", response_model=list[RunOut])
def list_runs(store: Store) -> list[RunOut]:
    """Published runs, newest first."""
    return [run_out(run) for run in store.catalog.runs()]


@router.get("/runs/{run_id}", response_model=RunOut, responses=ERROR_RESPONSES)
def get_run(run_id: str, store: Store) -> RunOut:
    """One run: symbols, span, interval, lag, features, code version, creation time, parameters."""
    return run_out(store.catalog.run(run_id))


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


@router.get(
    "/runs/{run_id}/audit",
    responses={**ERROR_RESPONSES, 409: {"description": "the run's source data can no longer be read"}},
)
def get_audit(
    run_id: str,
    store: Store,
    samples: Annotated[int, Query(ge=1, le=1000, description="Samples per check.")] = 20,
    seed: Annotated[int, Query(ge=0, description="Seed of the samples, for a repeatable audit.")] = 0,
) -> Response:
    """The forensic lookahead audit of a run: truncation invariance, serving, future poisoning (the last
    skipped, with its reason, when the run was not backfilled from a returns matrix). `status` is `failed`
    and the violations name their rows when anything could have been seen early. Takes seconds: it
    recomputes sampled rows from the run's lake."""
    store.catalog.run(run_id)  # 404 before any work for an unknown run
    try:
        report = audit_run(store.catalog.data_dir, run_id, samples=samples, seed=seed)
    except (OSError, ValueError) as error:  # the lake or returns the run was made from moved or changed
        raise HTTPException(409, f"cannot audit run {run_id}: {error}") from None
    return json_response(report.to_dict())
