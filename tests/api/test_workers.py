"""`asof serve --workers 2`, as a real process tree: one worker holds the writer lock and runs every job, the
other serves reads, queues jobs and asks for cancels through the catalog, and takes over when the writer
dies."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.sample import SyntheticUniverse
from tests.support.server import free_port, wait_for_job

UNIVERSE = SyntheticUniverse(n_symbols=60, n_bars=1500, seed=81)
BACKFILL = {"lake": "sample/lake", "interval": "1d"}


@pytest.fixture
def served(backfilled) -> Iterator[str]:
    data_dir = backfilled(UNIVERSE, inside=True).data_dir
    port = free_port()
    command = [str(Path(sys.executable).with_name("asof")), "serve", "--workers", "2", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--data-dir", str(data_dir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while len(workers(url, tries=10)) < 2:  # both workers up, one of them writing
            assert time.monotonic() < deadline and process.poll() is None, "the server did not start"
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def workers(url: str, tries: int = 40) -> dict[int, bool]:
    """pid -> writer, from /health over fresh connections (the kernel spreads them over the workers)."""
    seen = {}
    for _ in range(tries):
        try:
            health = httpx.get(f"{url}/health", timeout=5, headers={"Connection": "close"}).json()
        except httpx.TransportError:
            continue
        seen[health["pid"]] = health["writer"]
    return seen


def test_one_worker_writes_the_others_read_queue_and_cancel(served: str) -> None:
    seen = workers(served)
    assert len(seen) == 2 and sorted(seen.values()) == [False, True], seen
    jobs = []
    for symbols in (UNIVERSE.symbols[:5], UNIVERSE.symbols[:6], UNIVERSE.symbols[:7]):
        response = httpx.post(
            f"{served}/backfill", json=BACKFILL | {"symbols": symbols}, headers={"Connection": "close"}
        )
        assert response.status_code == 202
        jobs.append(response.json()["job_id"])
    with httpx.Client(base_url=served, timeout=60) as client:
        assert [wait_for_job(client, job_id)["status"] for job_id in jobs] == ["succeeded"] * 3
        long = client.post("/backfill", json=BACKFILL).json()["job_id"]
        while client.get(f"/jobs/{long}").json()["status"] == "queued":
            time.sleep(0.05)
    for _ in range(2):  # through both workers: whichever takes the request records it in the catalog
        httpx.delete(f"{served}/jobs/{long}", headers={"Connection": "close"})
    with httpx.Client(base_url=served, timeout=60) as client:
        assert wait_for_job(client, long)["status"] == "cancelled"


def test_a_standing_by_worker_takes_over_when_the_writer_dies(served: str) -> None:
    writer = next(pid for pid, writes in workers(served).items() if writes)
    os.kill(writer, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while not any(writes for pid, writes in workers(served, tries=5).items() if pid != writer):
        assert time.monotonic() < deadline, "no worker took the writer role over"
        time.sleep(0.5)
    with httpx.Client(base_url=served, timeout=60) as client:
        job = client.post("/backfill", json=BACKFILL | {"symbols": UNIVERSE.symbols[:3]}).json()
        assert wait_for_job(client, job["job_id"])["status"] == "succeeded"
