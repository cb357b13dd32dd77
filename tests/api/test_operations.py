"""Running the service for months, against real servers: bounded queues (429), a bounded and paged job
history, retention that never takes a dataset's newest run nor one a reader pins, metrics for Prometheus,
and `asof gc` beside no server."""

import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from cli import app
from service.sample import SyntheticUniverse
from storage.catalog import Catalog
from tests.support.server import eventually, running_server, wait_for_job

UNIVERSE = SyntheticUniverse(n_symbols=6, n_bars=300, seed=61)
BACKFILL = {"lake": "sample/lake", "interval": "1d"}


def backfill(client: httpx.Client, **fields) -> dict:
    job = client.post("/backfill", json=BACKFILL | fields)
    assert job.status_code == 202, job.text
    return wait_for_job(client, job.json()["job_id"])


def test_queues_are_bounded_and_history_is_pruned_and_paged(backfilled) -> None:
    data_dir = backfilled(UNIVERSE, inside=True).data_dir
    limits = {"ASOF_MAX_QUEUED_JOBS": "1", "ASOF_MAX_JOB_HISTORY": "2", "ASOF_MAX_AUDITS": "1"}
    with running_server(data_dir, env=limits) as url, httpx.Client(base_url=url, timeout=60) as client:
        first = client.post("/backfill", json=BACKFILL | {"symbols": UNIVERSE.symbols[:2]}).json()
        full = client.post("/backfill", json=BACKFILL | {"symbols": UNIVERSE.symbols[:3]})
        assert full.status_code == 429 and "ASOF_MAX_QUEUED_JOBS" in full.json()["detail"]
        assert full.headers["retry-after"] == "30"
        wait_for_job(client, first["job_id"])
        for count in (3, 4, 5):
            assert backfill(client, symbols=UNIVERSE.symbols[:count])["status"] == "succeeded"
        jobs = client.get("/jobs").json()
        assert len(jobs) == 2  # the newest two finished jobs; the older ones were pruned
        first_page = client.get("/jobs", params={"limit": 1}).json()
        second_page = client.get("/jobs", params={"limit": 1, "before": first_page[0]["job_id"]}).json()
        assert [job["job_id"] for job in first_page + second_page] == [job["job_id"] for job in jobs]
        assert client.get("/jobs", params={"before": "nope"}).status_code == 404


def test_retention_keeps_the_newest_run_per_dataset_and_any_run_read_lately(backfilled) -> None:
    data_dir = backfilled(UNIVERSE, inside=True).data_dir
    [original] = Catalog(data_dir).runs()
    settings = {"ASOF_KEEP_RUNS": "1", "ASOF_PIN_SECONDS": "3600"}
    with running_server(data_dir, env=settings) as url, httpx.Client(base_url=url, timeout=60) as client:
        pinned = client.get("/features", params={"as_of": "2015-06-01", "run_id": original.run_id})
        assert pinned.status_code == 200  # a reader holds the original run
        second = backfill(client)["run_id"]
        third = backfill(client)["run_id"]
        kept = [run["run_id"] for run in client.get("/runs").json()]
        assert kept == [third, original.run_id]  # `second` went: neither newest nor read
        other = backfill(client, dataset="other")["run_id"]  # another dataset keeps its own newest
        assert other in [run["run_id"] for run in client.get("/runs").json()]
    assert not (data_dir / "runs" / second).exists() and original.path.exists()


def test_metrics_count_requests_jobs_and_dataset_age(backfilled) -> None:
    data_dir = backfilled(UNIVERSE, inside=True).data_dir
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        client.get("/features", params={"as_of": "2015-06-01"})
        backfill(client)
        finished = 'asof_job_seconds_count{kind="backfill",status="succeeded"} 1.0'

        def scraped() -> str | None:
            text = client.get("/metrics").text
            return text if finished in text else None

        text = eventually(scraped)
    assert re.search(r'asof_request_seconds_count\{method="GET",route="/features",status="200"\} 1\.0', text)
    assert 'asof_job_seconds_count{kind="backfill",status="succeeded"} 1.0' in text
    assert 'asof_jobs{status="succeeded"} 1.0' in text
    age = float(re.search(r'asof_dataset_age_seconds\{dataset="lake_1d"\} (\S+)', text).group(1))
    assert age > 3e8  # the sample's newest bar is from 2015


def test_gc_deletes_old_runs_reports_the_space_and_refuses_a_served_data_dir(backfilled) -> None:
    sample = backfilled(UNIVERSE)
    runner = CliRunner()
    for _ in range(2):
        assert runner.invoke(app, ["backfill", "--lake", str(sample.files.lake), "--interval", "1d",
                                   "--data-dir", str(sample.data_dir)]).exit_code == 0  # fmt: skip
    runs = Catalog(sample.data_dir).runs()
    size = sum(file.stat().st_size for run in runs[1:] for file in run.reads())
    result = runner.invoke(app, ["gc", "--keep", "1", "--data-dir", str(sample.data_dir)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"2 runs deleted, {size / 1e6:.1f} MB reclaimed"
    assert Catalog(sample.data_dir).runs() == runs[:1]
    assert sorted(path.name for path in (sample.data_dir / "runs").iterdir()) == [runs[0].run_id]
    with running_server(sample.data_dir):
        refused = runner.invoke(app, ["gc", "--data-dir", str(sample.data_dir)])
    assert refused.exit_code == 1 and "ASOF_KEEP_RUNS" in refused.stderr


@pytest.mark.parametrize("keep", ["0", "-1"])
def test_gc_keeps_at_least_one_run(keep: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["gc", "--keep", keep, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2 and "--keep" in result.stderr
