"""The service under load while it publishes: 8 clients for 30 s on `/features` and `/features/batch` while a
backfill of the same universe runs and publishes; then the same with three of the largest reads the
limits admit (ASOF_MAX_READ_CELLS, every feature) mixed in. Loopback only; it stops by itself.

Printed: errors (must be 0), mixed answers (a batch whose sections name different runs: must be 0), the
runs seen before and after the publish, p50/p99 per route, and the server's RSS before, after and at its
peak (VmHWM), which the read limits bound.
"""

import tempfile
import threading
import time
from collections import defaultdict
from itertools import islice
from pathlib import Path

import httpx
import numpy as np

from bench.http import instants
from service.sample import SyntheticUniverse
from tests.support.server import ServerProcess, wait_for_job

UNIVERSE = SyntheticUniverse(n_symbols=500, n_bars=2520, seed=0)
CLIENTS = 8
SECONDS = 30.0
BATCH = 130
FEATURES_ALL = 83


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="asof-bench-load-") as root:
        data_dir = Path(root) / "data"
        UNIVERSE.write(data_dir / "sample")
        server = ServerProcess(data_dir)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=600) as client:
                _publish(client)  # the run the readers start on
            for oversized in (0, 3):
                _round(server, oversized)
        finally:
            server.stop()


def _round(server: ServerProcess, oversized: int) -> None:
    as_ofs = list(islice(instants(), 0, 2000, 5))  # 400 instants over the run
    stop = threading.Event()
    times: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    mixed = 0
    runs_seen: set[str] = set()
    lock = threading.Lock()

    def reader(k: int) -> None:
        nonlocal mixed
        with httpx.Client(base_url=server.url, timeout=120) as client:
            i = 0
            while not stop.is_set():
                i += 1
                began = time.perf_counter()
                if k % 2:
                    route = "/features"
                    response = client.get(route, params={"as_of": as_ofs[(i * 7 + k) % len(as_ofs)]})
                    answer_runs = {response.json()["run_id"]} if response.status_code == 200 else set()
                else:
                    route = "/features/batch"
                    start = (i * 11 + k) % (len(as_ofs) - BATCH)
                    response = client.post(route, json={"as_of": as_ofs[start : start + BATCH]})
                    results = response.json()["results"] if response.status_code == 200 else []
                    answer_runs = {section["run_id"] for section in results}
                elapsed = time.perf_counter() - began
                with lock:
                    times[route].append(elapsed)
                    runs_seen.update(answer_runs)
                    mixed += len(answer_runs) > 1
                    if response.status_code != 200:
                        errors.append(f"{route} {response.status_code}: {response.text[:200]}")

    def giant() -> None:
        """One of the largest reads the limits admit: every feature of every symbol."""
        instants = max(1, 2_000_000 // (UNIVERSE.n_symbols * FEATURES_ALL))
        with httpx.Client(base_url=server.url, timeout=300) as client:
            began = time.perf_counter()
            response = client.post("/features/batch", json={"as_of": as_ofs[:instants], "features": ["all"]})
            with lock:
                times["/features/batch (largest admitted)"].append(time.perf_counter() - began)
                if response.status_code != 200:
                    errors.append(f"largest read {response.status_code}: {response.text[:200]}")

    before = _rss(server.pid)
    started = time.perf_counter()
    threads = [threading.Thread(target=reader, args=(k,)) for k in range(CLIENTS)]
    threads += [threading.Thread(target=giant) for _ in range(oversized)]
    for thread in threads:
        thread.start()
    with httpx.Client(base_url=server.url, timeout=600) as client:
        published = _publish(client)  # a new run lands while the clients read
    time.sleep(max(0.0, SECONDS - (time.perf_counter() - started)))
    stop.set()
    for thread in threads:
        thread.join()
    after, peak = _rss(server.pid), _peak(server.pid)
    label = f"{CLIENTS} clients" + (f" + {oversized} largest-admitted batches" if oversized else "")
    print(f"{label}, {SECONDS:.0f} s after a publish ({published}):")
    print(f"  errors {len(errors)}, mixed answers {mixed}, runs seen {len(runs_seen)}")
    for error in errors[:3]:
        print(f"    {error}")
    for route, seconds in sorted(times.items()):
        values = np.array(seconds) * 1000
        print(
            f"  {route:<36} {len(values):6d} requests  p50 {np.percentile(values, 50):8.1f} ms  "
            f"p99 {np.percentile(values, 99):8.1f} ms"
        )
    print(f"  server RSS before {before / 1e6:.0f} MB, after {after / 1e6:.0f} MB, peak {peak / 1e6:.0f} MB")


def _publish(client: httpx.Client) -> str:
    job = client.post("/backfill", json={"lake": "sample/lake", "interval": UNIVERSE.interval}).json()
    job = wait_for_job(client, job["job_id"], timeout=600)
    if job["status"] != "succeeded":
        raise RuntimeError(f"the load bench's backfill did not succeed: {job}")
    return job["run_id"]


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def _rss(pid: int) -> int:
    return _status(pid, "VmRSS")


def _peak(pid: int) -> int:
    return _status(pid, "VmHWM")
