"""A real uvicorn server on a free loopback port for HTTP tests: `with running_server(data_dir) as base_url:`.

`ServerProcess` is the same with `kill()` (SIGKILL, for crash tests) and `stop()` (graceful);
`wait_for_job` polls a backfill job until it has finished.
"""

import time

import httpx

from api.process import ServerProcess, running_server

__all__ = ["ServerProcess", "running_server", "wait_for_job"]

FINISHED = frozenset({"succeeded", "failed", "cancelled", "interrupted"})


def wait_for_job(client: httpx.Client, job_id: str, *, timeout: float = 180.0) -> dict:
    """The job's JSON once it has finished (any final state); TimeoutError naming its last state."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/jobs/{job_id}").raise_for_status().json()
        if job["status"] in FINISHED:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(0.1)
