"""Published runs: metadata and the wide feature matrix."""

from dataclasses import asdict

from fastapi import APIRouter
from fastapi.responses import FileResponse

from api.errors import ERROR_RESPONSES
from api.schemas import Features, RunOut, store_features
from api.state import Store
from storage.catalog import RunInfo
from storage.export import export_matrix

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
    response_class=FileResponse,
    responses={**ERROR_RESPONSES, 200: {"content": {"application/vnd.apache.parquet": {}}}},
)
def get_matrix(run_id: str, store: Store, features: Features = None) -> FileResponse:
    """The run as the seed's wide matrix (Parquet): index `ts`, columns `[symbol, feature]`, every row as
    known once the run's last bar closed; `features` as for `/features` (the three ratings by default)."""
    path = export_matrix(store, run_id, features=store_features(features))
    return FileResponse(path, media_type="application/vnd.apache.parquet", filename=f"{run_id}.parquet")
