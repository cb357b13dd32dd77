"""Updates and compactions over HTTP, against real servers: `POST /runs/{run_id}/update` (and `newest`) as
a job with a backfill's lifecycle (progress, report, duplicates, cancel, recovery after a kill), the run
chain on `GET /runs/{id}`, unpinned reads moving to the new run while the old one answers as before; and
`asof update` / `asof compact`, which refuse a served data dir and say what to do instead."""

import shutil
from pathlib import Path

import duckdb
import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from cli import app
from service.backfill import HistoricalFeatureBackfill
from service.sample import SyntheticUniverse
from storage.catalog import CATALOG_FILE, Catalog
from storage.read import FeatureStore
from tests.api.test_jobs import wait_until_running
from tests.service.test_update import T1_DAILY, universe, write_lake
from tests.support.server import ServerProcess, running_server, wait_for_job
from vocabulary.spec import BackfillSpec

MANY = SyntheticUniverse(n_symbols=60, n_bars=400, seed=5)
AS_OF = "2020-05-01"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A data dir holding the lake at T1 (`lake`, backfilled into the one run), the lake at T2 (`later`),
    and the lake at T2 with 60 more symbols (`grown`, whose update backfills them: long enough to cancel)."""
    root = tmp_path_factory.mktemp("updates")
    before, after, _ = universe("1d", 280, T1_DAILY)
    write_lake(root / "lake", before, "1d")
    write_lake(root / "later", after, "1d")
    shutil.copytree(root / "later", root / "grown")
    for file in MANY.write(root / "many").lake.iterdir():
        shutil.copy(file, root / "grown" / file.name)
    HistoricalFeatureBackfill(root, BackfillSpec(lake="lake", interval="1d")).run()
    return root


@pytest.fixture
def data_dir(prepared: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(prepared, tmp_path / "data"))


def section(client: httpx.Client, **params) -> dict:
    response = client.get("/features", params={"as_of": AS_OF, "features": "all", **params})
    assert response.status_code == 200, response.text
    return response.json()


def test_an_update_is_a_job_whose_run_becomes_the_datasets_newest(data_dir: Path) -> None:
    (parent,) = Catalog(data_dir).runs()
    _, _, revised_at = universe("1d", 280, T1_DAILY)
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        before = section(client)
        response = client.post("/runs/newest/update", json={"lake": "later"})
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/jobs/{job['job_id']}"
        assert (job["kind"], job["params"]) == (
            "update",
            {"run_id": "newest", "dataset": "lake_1d", "lake": "later", "executor": "local"},
        )
        duplicate = client.post("/runs/newest/update", json={"lake": "later"})
        assert duplicate.status_code == 409 and duplicate.json()["job_id"] == job["job_id"]
        done = wait_for_job(client, job["job_id"])
        assert done["status"] == "succeeded", done
        assert done["progress"]["done"] == done["progress"]["total"] == 6
        update = done["report"]["update"]
        assert update == {
            "parent": parent.run_id,
            "published": True,
            "revised": [{"symbol": "X:REV", "first_changed": revised_at.isoformat()}],
            "added": ["X:NEW"],
            "kept": [],
        }
        run = client.get(f"/runs/{done['run_id']}").json()
        assert (run["made_by"], run["parent"], run["ancestors"]) == ("update", parent.run_id, [parent.run_id])
        assert run["params"]["lake"] == "later" and run["dataset"] == "lake_1d"
        assert client.get(f"/runs/{parent.run_id}").json()["made_by"] == "backfill"
        assert section(client)["run_id"] == done["run_id"]  # unpinned reads follow the new run
        assert section(client, run_id=parent.run_id) == before  # the old one answers as it did
        again = wait_for_job(
            client, client.post("/runs/newest/update", json={"lake": "later"}).json()["job_id"]
        )
        assert (again["status"], again["run_id"], again["report"]["update"]["published"]) == (
            "succeeded",
            done["run_id"],
            False,
        )
        assert again["message"] == f"run {done['run_id']} is up to date: nothing new in the lake"
        compacted = wait_for_job(client, client.post(f"/runs/{done['run_id']}/compact").json()["job_id"])
        assert compacted["status"] == "succeeded" and compacted["kind"] == "compact", compacted
        run = client.get(f"/runs/{compacted['run_id']}").json()
        assert (run["made_by"], run["ancestors"]) == ("compact", [done["run_id"], parent.run_id])
        newest = section(client)
        assert newest["run_id"] == compacted["run_id"]
        assert newest["rows"] == section(client, run_id=done["run_id"])["rows"]
        assert [r["run_id"] for r in client.get("/runs").json()] == [
            compacted["run_id"],
            done["run_id"],
            parent.run_id,
        ]


def test_an_update_names_a_run_that_exists_carries_a_state_and_a_lake_inside(data_dir: Path) -> None:
    (run,) = Catalog(data_dir).runs()
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        unknown = client.post("/runs/20200101T000000Z-abcdef/update")
        assert unknown.status_code == 404 and "unknown run" in unknown.json()["detail"]
        assert client.post("/runs/newest/update", json={"dataset": "nope"}).status_code == 404
        outside = client.post(f"/runs/{run.run_id}/update", json={"lake": "../elsewhere"})
        assert outside.status_code == 422 and "lake" in str(outside.json()["detail"])
        wrong = client.post(f"/runs/{run.run_id}/update", json={"dataset": "other_1d"})
        assert wrong.status_code == 422 and "dataset" in str(wrong.json()["detail"])
        extra = client.post(f"/runs/{run.run_id}/update", json={"interval": "1h"})
        assert extra.status_code == 422
        assert client.post(f"/runs/{'x' * 65}/update").status_code == 422
        assert client.get("/jobs").json() == []
    with duckdb.connect(str(data_dir / CATALOG_FILE)) as connection:
        connection.execute("UPDATE runs SET states = []")  # as a run made before runs carried a state
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        stateless = client.post("/runs/newest/update")
        assert stateless.status_code == 409 and "carries no state" in stateless.json()["detail"]


def test_an_update_is_cancelled_or_interrupted_like_a_backfill_and_publishes_nothing(data_dir: Path) -> None:
    (parent,) = Catalog(data_dir).runs()
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        job_id = client.post("/runs/newest/update", json={"lake": "grown"}).json()["job_id"]
        wait_until_running(client, job_id)
        stopping = client.delete(f"/jobs/{job_id}")
        assert (stopping.status_code, stopping.json()["status"]) == (202, "running")
        job = wait_for_job(client, job_id)
        assert (job["status"], job["run_id"]) == ("cancelled", None)
        assert [run["run_id"] for run in client.get("/runs").json()] == [parent.run_id]
    server = ServerProcess(data_dir)
    with httpx.Client(base_url=server.start(), timeout=60) as client:
        running = client.post("/runs/newest/update", json={"lake": "grown"}).json()["job_id"]
        queued = client.post(f"/runs/{parent.run_id}/update", json={"lake": "later"}).json()["job_id"]
        wait_until_running(client, running)
        server.kill()  # its update process dies with it
    restarted = ServerProcess(data_dir)
    with httpx.Client(base_url=restarted.start(), timeout=60) as client:
        try:
            job = client.get(f"/jobs/{running}").json()
            assert (job["status"], job["run_id"]) == ("interrupted", None)
            resumed = wait_for_job(client, queued)
            assert resumed["status"] == "succeeded", resumed
            assert [run["run_id"] for run in client.get("/runs").json()] == [resumed["run_id"], parent.run_id]
        finally:
            restarted.stop()


def test_the_cli_updates_and_compacts_a_data_dir_no_server_holds_and_refuses_a_served_one(
    data_dir: Path,
) -> None:
    runner = CliRunner()
    (parent,) = Catalog(data_dir).runs()
    lake = str(data_dir / "later")
    with running_server(data_dir):
        refused = runner.invoke(app, ["update", "--lake", lake, "--data-dir", str(data_dir)])
        assert refused.exit_code == 1 and "POST /runs/newest/update" in refused.stderr
        refused = runner.invoke(app, ["compact", "--data-dir", str(data_dir)])
        assert refused.exit_code == 1 and "POST /runs/newest/compact" in refused.stderr
    assert Catalog(data_dir).runs() == [parent]

    updated = runner.invoke(app, ["update", "--lake", lake, "--data-dir", str(data_dir)])

    assert updated.exit_code == 0, updated.output
    run = Catalog(data_dir).latest_run()
    lines = updated.stdout.splitlines()
    assert lines[0].startswith(f"run {run.run_id}: update of {parent.run_id}, ")
    assert "revised X:REV: its bars changed from " in updated.stdout and "added X:NEW" in updated.stdout
    assert lines[-1].startswith("time: read ")
    compacted = runner.invoke(app, ["compact", "--data-dir", str(data_dir)])
    assert compacted.exit_code == 0, compacted.output
    final = Catalog(data_dir).latest_run()
    assert compacted.stdout.startswith(f"run {final.run_id}: compaction of {run.run_id}, {run.rows} rows in ")
    store = FeatureStore(data_dir)
    for as_of in (AS_OF, "2020-09-01"):
        ours = store.cross_section(as_of, features="all", run_id=final.run_id).rows
        pd.testing.assert_frame_equal(
            ours, store.cross_section(as_of, features="all", run_id=run.run_id).rows
        )
