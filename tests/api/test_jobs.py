"""Backfill jobs against real servers: duplicates, cancellation, reads while a backfill runs (never a mix),
and recovery after the server is killed (-9) mid-job. Plus the job table's state machine on its own."""

import shutil
import threading
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from service.backfill import HistoricalFeatureBackfill
from service.jobs.store import ACTIVE, JobNotFound, JobStatus, JobStore, utc_now
from service.ratings.engine import rate_frame
from service.sample import SyntheticUniverse
from service.sources.bars import clean_bars
from service.sources.lake import Lake
from storage.catalog import Catalog
from storage.read import FeatureStore
from tests.support.server import ServerProcess, eventually, running_server, wait_for_job
from vocabulary.features import FEATURES
from vocabulary.spec import AuditSpec, BackfillSpec

FIRST = SyntheticUniverse(n_symbols=8, n_bars=260, seed=3)
SECOND = SyntheticUniverse(n_symbols=8, n_bars=260, seed=4)  # same names, other prices: another answer
LARGE = SyntheticUniverse(n_symbols=60, n_bars=260, seed=5)
AS_OF = "2015-08-01"


def body(name: str, **extra) -> dict:
    return {"lake": f"{name}/lake", "interval": "1d", **extra}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A data dir holding the three sample lakes and one run published from FIRST; built once."""
    root = tmp_path_factory.mktemp("prepared")
    for name, universe in (("first", FIRST), ("second", SECOND), ("large", LARGE)):
        universe.write(root / name)
    HistoricalFeatureBackfill(root, BackfillSpec(lake=root / "first/lake", interval="1d")).run()
    return root


@pytest.fixture
def data_dir(prepared, tmp_path):
    """A fresh copy of the prepared data dir for each test."""
    return Path(shutil.copytree(prepared, tmp_path / "data"))


def answer(store: FeatureStore, run_id: str) -> dict:
    """What a cross-section at AS_OF of `run_id` holds, as comparable plain values."""
    section = store.cross_section(AS_OF, run_id=run_id)
    return {"rows": section.rows.astype(object).where(section.rows.notna(), None).to_dict("records")}


def served(body: dict) -> dict:
    """A JSON cross-section with its instants parsed, comparable with `answer`."""
    rows = [
        {k: pd.Timestamp(v) if k in ("ts", "available_at") else v for k, v in row.items()}
        for row in body["rows"]
    ]
    return {"rows": rows}


def wait_until_running(client: httpx.Client, job_id: str) -> None:
    """The worker takes a job at once; its backfill process then needs a second or more to start."""
    while (status := client.get(f"/jobs/{job_id}").json()["status"]) == "queued":
        pass
    assert status == "running"


def test_a_duplicate_request_is_a_conflict_naming_the_active_job(data_dir):
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        first = client.post("/backfill", json=body("large", symbols=LARGE.symbols[:50]))  # long: cancellable
        assert first.status_code == 202
        job_id = first.json()["job_id"]
        same = body("./large/../large", symbols=list(reversed(LARGE.symbols[:50])))  # spelled differently
        duplicate = client.post("/backfill", json=same)
        assert duplicate.status_code == 409
        assert duplicate.json()["job_id"] == job_id and job_id in duplicate.json()["detail"]
        assert duplicate.headers["location"] == f"/jobs/{job_id}"
        other = client.post("/backfill", json=body("second", symbols=SECOND.symbols[:4]))
        assert other.status_code == 202  # different parameters are a different job
        jobs = [job_id, other.json()["job_id"]]
        for job in jobs:
            assert client.delete(f"/jobs/{job}").status_code in {200, 202}
        assert [wait_for_job(client, job)["status"] for job in jobs] == ["cancelled", "cancelled"]
        again = client.post("/backfill", json=same)  # nothing identical is active any more
        assert again.status_code == 202
        client.delete(f"/jobs/{again.json()['job_id']}")


def test_cancel_stops_a_running_job_at_once_for_a_queued_one_and_publishes_nothing(data_dir):
    """And a graceful server stop ends a running job `interrupted`."""
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        runs = client.get("/runs").json()
        running = client.post("/backfill", json=body("large")).json()["job_id"]
        queued = client.post("/backfill", json=body("second")).json()["job_id"]
        wait_until_running(client, running)
        cancelled = client.delete(f"/jobs/{queued}")
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        stopping = client.delete(f"/jobs/{running}")
        assert (stopping.status_code, stopping.json()["status"]) == (202, "running")
        job = wait_for_job(client, running)
        assert job["status"] == "cancelled" and job["run_id"] is None and job["finished"]
        assert client.get("/runs").json() == runs
        again = client.delete(f"/jobs/{running}")
        assert again.status_code == 409 and again.json()["job_id"] == running
        eventually(lambda: client.get("/health").json()["jobs"]["cancelled"] == 2)
        last = client.post("/backfill", json=body("large")).json()["job_id"]
        wait_until_running(client, last)
    job = JobStore(Catalog(data_dir)).get(last)  # the server has stopped (SIGTERM) meanwhile
    assert (job.status, job.message, job.run_id) == (
        JobStatus.INTERRUPTED,
        "the server stopped during the job",
        None,
    )
    assert len(Catalog(data_dir).runs()) == len(runs)


def test_a_backfill_takes_its_rule_set_and_history_window_and_the_run_shows_them(data_dir):
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        response = client.post("/backfill", json=body("second", rules="legacy", history_bars=100))
        assert response.status_code == 202, response.text
        assert (response.json()["params"]["rules"], response.json()["params"]["history_bars"]) == (
            "legacy",
            100,
        )
        job = wait_for_job(client, response.json()["job_id"])
        assert job["status"] == "succeeded", job
        params = client.get(f"/runs/{job['run_id']}").json()["params"]
    assert (params["rules"], params["history_bars"]) == ("legacy", 100)
    symbol = SECOND.symbols[0]
    bars, _ = clean_bars(Lake(data_dir / "second/lake", "1d").read(symbol))
    expected = rate_frame(bars, rules="legacy", history_bars=100)
    stored = FeatureStore(data_dir).history(symbol, run_id=job["run_id"], features="all")
    assert stored["bars"].tolist() == expected["bars"].tolist() and stored["bars"].max() == 100
    for name in FEATURES:
        np.testing.assert_array_equal(stored[name].astype("float64"), expected[name], err_msg=name)


def test_reads_during_a_backfill_answer_the_previous_run_until_the_new_one_is_published(data_dir):
    store = FeatureStore(data_dir)
    previous = store.catalog.latest_run().run_id
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        job_id = client.post("/backfill", json=body("second")).json()["job_id"]
        seen: list[str] = []
        while True:
            status = client.get(f"/jobs/{job_id}").json()["status"]
            response = client.get("/features", params={"as_of": AS_OF}).json()
            assert served(response) == answer(store, response["run_id"])  # one run per response, all of it
            seen.append(response["run_id"])
            if status not in ACTIVE:
                break
        job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    assert seen[0] == previous and seen[-1] == job["run_id"] != previous
    switch = seen.index(job["run_id"])
    assert set(seen[:switch]) == {previous} and set(seen[switch:]) == {job["run_id"]}
    assert answer(store, previous) != answer(store, job["run_id"])


def test_a_job_running_when_the_server_is_killed_is_interrupted_and_nothing_is_lost(data_dir):
    store = FeatureStore(data_dir)
    previous = store.catalog.latest_run().run_id
    before = answer(store, previous)
    server = ServerProcess(data_dir)
    with httpx.Client(base_url=server.start(), timeout=60) as client:
        running = client.post("/backfill", json=body("large")).json()["job_id"]
        queued = client.post("/backfill", json=body("second")).json()["job_id"]
        wait_until_running(client, running)
        server.kill()  # its backfill process dies with it (else it would publish a third run below)
    restarted = ServerProcess(data_dir)
    with httpx.Client(base_url=restarted.start(), timeout=60) as client:
        try:
            job = client.get(f"/jobs/{running}").json()
            assert job["status"] == "interrupted" and job["run_id"] is None and job["finished"]
            response = client.get("/features", params={"as_of": AS_OF}).json()
            assert response["run_id"] == previous and served(response) == before
            resumed = wait_for_job(client, queued)  # queued jobs are resumed after a restart
            assert resumed["status"] == "succeeded", resumed
            assert [run["run_id"] for run in client.get("/runs").json()] == [resumed["run_id"], previous]
        finally:
            restarted.stop()
    assert answer(store, previous) == before


# --- the job table on its own -----------------------------------------------------------------------------


def test_job_states_change_only_from_the_expected_ones(tmp_path):
    jobs = JobStore(Catalog(tmp_path))
    job = jobs.create(BackfillSpec(lake="/data/lake", interval="1d", symbols=["A:B"]))
    assert (job.kind, job.status, job.done, job.total, job.errors) == (
        "backfill",
        JobStatus.QUEUED,
        0,
        None,
        [],
    )
    assert (
        jobs.find_active(BackfillSpec(lake="/data/lake", interval="1d", symbols=["A:B"])).job_id == job.job_id
    )
    assert jobs.find_active(AuditSpec(run_id="20240101T000000Z-abcdef")) is None
    running = jobs.transition(
        job.job_id, JobStatus.RUNNING, expect=frozenset({JobStatus.QUEUED}), started=utc_now()
    )
    assert running.status is JobStatus.RUNNING and running.started is not None
    assert jobs.transition(job.job_id, JobStatus.RUNNING, expect=frozenset({JobStatus.QUEUED})) is None
    assert jobs.update(job.job_id, done=3, total=7, errors=[{"symbol": "A:B"}]).errors == [{"symbol": "A:B"}]
    assert jobs.interrupt_running("server died") == [job.job_id]
    assert jobs.update(job.job_id, done=4) is None  # a finished job stays as it finished
    final = jobs.get(job.job_id)
    assert (final.status, final.done, final.message) == (JobStatus.INTERRUPTED, 3, "server died")
    assert jobs.find_active(job.work) is None
    assert jobs.counts() == dict.fromkeys(("queued", "running", "succeeded", "failed", "cancelled"), 0) | {
        "interrupted": 1
    }
    with pytest.raises(JobNotFound, match="nope"):
        jobs.get("nope")
    with pytest.raises(ValueError, match="status"):
        jobs.update(job.job_id, status="succeeded")


def test_threads_updating_one_job_at_once_all_succeed(tmp_path):
    """A cancel arriving while the worker records progress: in one process both write the same row, which
    DuckDB refuses as a write conflict unless the catalog's units of work take turns."""
    jobs = JobStore(Catalog(tmp_path))
    job = jobs.create(BackfillSpec(lake="/data/lake", interval="1d"))
    failures: list[BaseException] = []

    def record(field: str) -> None:
        try:
            for step in range(100):
                jobs.update(job.job_id, **{field: step})
        except BaseException as error:  # collected for the assertion
            failures.append(error)

    threads = [threading.Thread(target=record, args=(field,)) for field in ("done", "total")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    final = jobs.get(job.job_id)
    assert (final.done, final.total) == (99, 99)
