"""Storage faults against real server processes: a catalog another process holds, a damaged catalog, run
files truncated or deleted, a second server on the same data dir. Each ends in a clear state: a quick 503
naming what is wrong (never a path of the server), a job that ends with its reason, a worker that goes on."""

import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest

from service.sample import SyntheticUniverse
from storage.catalog import CATALOG_FILE, Catalog
from tests.support.server import ServerProcess, eventually, running_server, wait_for_job

UNIVERSE = SyntheticUniverse(n_symbols=40, n_bars=1500, seed=31)
AS_OF = "2016-06-01"


@pytest.fixture
def served(backfilled) -> Path:
    """A data dir holding one run and, under `sample/`, its lake (for backfills over HTTP)."""
    return backfilled(UNIVERSE, inside=True).data_dir


def timed(call) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = call()
    return response, time.monotonic() - began


def test_a_locked_catalog_neither_kills_the_worker_nor_hangs_a_request(served: Path) -> None:
    """Defect 1 and 6: another process holds catalog.duckdb for 15 s while a backfill finishes."""
    with running_server(served) as url, httpx.Client(base_url=url, timeout=60) as client:
        job = client.post("/backfill", json={"lake": "sample/lake", "interval": "1d"}).json()
        while client.get(f"/jobs/{job['job_id']}").json()["status"] == "queued":
            time.sleep(0.05)
        holder = duckdb.connect(str(served / CATALOG_FILE))  # an exclusive lock on the file
        try:
            eventually(lambda: client.get("/health").status_code == 503)  # the watch looks twice a second
            for path in ("/health", "/runs", "/jobs"):
                response, seconds = timed(lambda path=path: client.get(path))
                assert response.status_code == 503, (path, response.text)
                assert seconds < 5, (path, seconds)
                assert "locked" in response.text and str(served) not in response.text
            refused, seconds = timed(
                lambda: client.post("/backfill", json={"lake": "sample/lake", "interval": "1d"})
            )
            assert (refused.status_code, seconds < 5) == (503, True), refused.text
            time.sleep(15)  # long enough for the backfill's publish to give up on the catalog
        finally:
            holder.close()
        finished = wait_for_job(client, job["job_id"], timeout=120)
        assert finished["status"] in {"failed", "succeeded"}
        if finished["status"] == "failed":
            assert "locked" in finished["message"]
        health = eventually(lambda: (answer := client.get("/health")).status_code == 200 and answer)
        assert health.json()["problems"] == [], health.text
        again = client.post("/backfill", json={"lake": "sample/lake", "interval": "1d"}).json()
        assert wait_for_job(client, again["job_id"])["status"] == "succeeded"  # the worker went on


def test_a_damaged_catalog_is_503_everywhere_and_health_says_why(served: Path) -> None:
    """Defect 6: garbage where catalog.duckdb was."""
    (served / CATALOG_FILE).write_bytes(os.urandom(4096))
    (served / f"{CATALOG_FILE}.wal").unlink(missing_ok=True)
    with running_server(served) as url, httpx.Client(base_url=url, timeout=30) as client:
        for method, path, body in (
            ("GET", "/health", None),
            ("GET", "/runs", None),
            ("GET", "/jobs", None),
            ("GET", "/features", None),
            ("POST", "/backfill", {"lake": "sample/lake", "interval": "1d"}),
        ):
            response = client.request(method, path, params={"as_of": AS_OF}, json=body)
            assert response.status_code == 503, (path, response.text)
            assert "catalog.duckdb cannot be" in response.text and str(served) not in response.text
        assert client.get("/health").json()["status"] == "unhealthy"


@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_damaged_run_file_is_503_naming_the_run_not_the_path(served: Path, damage: str) -> None:
    """Defect 6: the run's Parquet file cut in half, or gone."""
    run = Catalog(served).latest_run()
    for file in run.files():
        if damage == "truncated":
            content = file.read_bytes()
            file.write_bytes(content[: len(content) // 2])
        else:
            file.unlink()
    with running_server(served) as url, httpx.Client(base_url=url, timeout=30) as client:
        response = client.get("/features", params={"as_of": AS_OF})
        assert response.status_code == 503, response.text
        assert response.json()["detail"] == f"run {run.run_id}: its features file is missing or damaged"
        health = client.get("/health")
        if damage == "deleted":
            assert health.status_code == 503
            assert health.json()["problems"] == [
                f"run {run.run_id} (dataset {run.spec.dataset}): its features files are missing"
            ]


def test_an_empty_data_dir_is_healthy(tmp_path: Path) -> None:
    with running_server(tmp_path / "fresh") as url:
        health = httpx.get(f"{url}/health")
    assert health.status_code == 200
    assert health.json() | {"jobs": None, "pid": 0} == {
        "status": "ok",
        "problems": [],
        "pid": 0,
        "writer": True,
        "runs": 0,
        "newest_run": None,
        "datasets": {},
        "jobs": None,
    }


def test_a_second_server_and_a_cli_backfill_are_refused_naming_the_first(served: Path) -> None:
    """Defect 4: the data dir has one writer; the first server's running job is left alone."""
    first = ServerProcess(served)
    first.start()
    try:
        with httpx.Client(base_url=first.url, timeout=60) as client:
            job = client.post("/backfill", json={"lake": "sample/lake", "interval": "1d"}).json()
            second = ServerProcess(served)
            with pytest.raises(RuntimeError, match="the server exited") as refused:
                second.start()
            assert f"pid {first.pid}" in str(refused.value) and first.url in str(refused.value)
            asof = str(Path(sys.executable).with_name("asof"))
            lake = str(served / "sample/lake")
            backfill = subprocess.run(
                [asof, "backfill", "--lake", lake, "--interval", "1d", "--data-dir", str(served)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert backfill.returncode == 1
            assert f"held by an asof server (pid {first.pid}" in backfill.stderr
            assert "POST /backfill" in backfill.stderr
            assert wait_for_job(client, job["job_id"])["status"] == "succeeded"
    finally:
        first.stop()
