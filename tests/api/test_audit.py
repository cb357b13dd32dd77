"""The forensic audit as a background job of a real server: `POST /runs/{id}/audit` -> 202 -> the job
succeeds -> `GET /runs/{id}/audit` serves its report, the same report the audit gives when run directly;
feature reads keep their pace while it runs."""

import time

import httpx
import pytest

from service.audit.run import audit_run
from service.sample import SyntheticUniverse
from tests.support.server import running_server, wait_for_job

UNIVERSE = SyntheticUniverse(n_symbols=6, n_bars=400, seed=21)


@pytest.fixture(scope="module")
def served(backfilled):
    """A server over a data dir whose run was backfilled with a returns matrix (so all three checks run)."""
    sample = backfilled(UNIVERSE, returns=True)
    with running_server(sample.data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, sample.data_dir, sample.run.run_id


def without_timings(report: dict) -> dict:
    """A report without what differs between two audits of the same rows: when it ran and how long."""
    checks = [{key: value for key, value in check.items() if key != "seconds"} for check in report["checks"]]
    return {key: value for key, value in report.items() if key != "created_at"} | {"checks": checks}


def test_an_audit_runs_as_a_job_and_its_report_is_then_served(served):
    client, data_dir, run_id = served
    missing = client.get(f"/runs/{run_id}/audit")
    assert missing.status_code == 404 and "no finished audit" in missing.json()["detail"]

    started = client.post(f"/runs/{run_id}/audit", json={"samples": 3, "seed": 7})
    assert started.status_code == 202, started.text
    job = started.json()
    assert started.headers["location"] == f"/jobs/{job['job_id']}"
    assert (job["kind"], job["params"]) == ("audit", {"run_id": run_id, "samples": 3, "seed": 7})
    duplicate = client.post(f"/runs/{run_id}/audit", json={"samples": 3, "seed": 7})
    if duplicate.status_code != 202:  # the first may already have finished on a fast machine
        assert duplicate.status_code == 409 and duplicate.json()["job_id"] == job["job_id"]
    pending = client.get(f"/runs/{run_id}/audit")
    if pending.status_code == 404:
        assert job["job_id"] in pending.json()["detail"]

    finished = wait_for_job(client, job["job_id"])
    assert finished["status"] == "succeeded", finished
    assert (finished["run_id"], finished["message"]) == (run_id, "audit passed")
    served_report = client.get(f"/runs/{run_id}/audit")
    assert served_report.status_code == 200, served_report.text
    report = served_report.json()
    assert report["status"] == "passed"
    assert [check["status"] for check in report["checks"]] == ["passed", "passed", "passed"]
    direct = audit_run(data_dir, run_id, samples=3, seed=7).to_dict()
    assert without_timings(report) == without_timings(direct) and report == finished["report"]


def test_feature_reads_keep_their_pace_while_an_audit_runs(served):
    """The audit recomputes rows and backfills a poisoned copy for seconds; it runs in a child process, so a
    cross-section answers as it does when the server is idle (the old route ran it in a request thread)."""
    client, _, run_id = served
    job = client.post(f"/runs/{run_id}/audit", json={"samples": 6, "seed": 1}).raise_for_status().json()
    during: list[float] = []
    while client.get(f"/jobs/{job['job_id']}").json()["status"] in {"queued", "running"}:
        began = time.perf_counter()
        response = client.get("/features", params={"as_of": "2016-06-01"})
        during.append(time.perf_counter() - began)
        assert response.status_code == 200 and response.json()["run_id"] == run_id
    assert wait_for_job(client, job["job_id"])["status"] == "succeeded"
    assert len(during) >= 20, f"the audit finished after only {len(during)} reads; nothing was measured"
    typical = sorted(during)[len(during) // 2]
    assert typical < 0.5, f"reads took {typical:.2f} s (median) while the audit ran"


def test_bad_audit_requests_are_refused(served):
    client, _, run_id = served
    assert client.post("/runs/20000101T000000Z-000000/audit").status_code == 404
    assert client.get("/runs/20000101T000000Z-000000/audit").status_code == 404
    for body in ({"samples": 0}, {"samples": 5000}, {"seed": -1}, {"colour": "red"}):
        response = client.post(f"/runs/{run_id}/audit", json=body)
        assert response.status_code == 422, (body, response.text)
