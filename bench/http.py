"""The feature service over HTTP, measured from a client on loopback against a real uvicorn server.

A 1000-symbol x 2520-bar daily run is made through `POST /backfill` (SyntheticUniverse, seeded). Then: the
latency of a 1000-symbol cross-section (three ratings) in JSON and Arrow, p50/p99 with 1 and 4 concurrent
clients (each its own keep-alive connection) and the requests per second they reach; and a batch of 130
as_of instants in one call. Targets: JSON p50 <= 5 ms, a batch of 130 <= 150 ms.
"""

import os
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from service.sample import SyntheticUniverse
from tests.support.server import running_server
from vocabulary.time import parse_interval

UNIVERSE = SyntheticUniverse(n_symbols=1000, n_bars=2520, seed=0)
REQUESTS_PER_CLIENT = 200
CLIENTS = (1, 4)
BATCH_SIZE = 130
BATCH_REPEATS = 10
TARGETS_MS = {"json p50": 5.0, "batch": 150.0}


def schedule(count: int) -> list[str]:
    """`count` bar closes spread over the run's last seven eighths (after most listings)."""
    bar = parse_interval(UNIVERSE.interval).length
    first = pd.Timestamp(UNIVERSE.start, tz="UTC")
    positions = np.linspace(UNIVERSE.n_bars // 8, UNIVERSE.n_bars - 1, count).astype(int)
    return [(first + bar * (position + 1)).isoformat() for position in positions]


def backfill(client: httpx.Client) -> tuple[dict, float]:
    began = time.perf_counter()
    job_id = client.post("/backfill", json={"lake": "sample/lake", "interval": UNIVERSE.interval}).json()[
        "job_id"
    ]
    while (job := client.get(f"/jobs/{job_id}").json())["status"] in {"queued", "running"}:
        time.sleep(0.5)
    if job["status"] != "succeeded":
        raise RuntimeError(f"the bench backfill did not succeed: {job}")
    return job, time.perf_counter() - began


def latencies(url: str, form: str, clients: int, as_ofs: list[str]) -> tuple[np.ndarray, float, int]:
    """Per-request seconds over every client, requests per second overall, and the rows of one answer."""
    samples: list[list[float]] = [[] for _ in range(clients)]
    rows = []

    def run(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(REQUESTS_PER_CLIENT):
                params = {"as_of": as_ofs[(i * clients + k) % len(as_ofs)], "format": form}
                began = time.perf_counter()
                response = client.get("/features", params=params)
                samples[k].append(time.perf_counter() - began)
                response.raise_for_status()
                if i == 0 and k == 0 and form == "json":
                    rows.append(len(response.json()["rows"]))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    return np.concatenate(samples), clients * REQUESTS_PER_CLIENT / wall, rows[0] if rows else 0


def batch(client: httpx.Client, form: str, as_ofs: list[str]) -> tuple[np.ndarray, int]:
    """Seconds per call of one batch of `as_ofs`, and the size of its answer in bytes."""
    seconds, size = [], 0
    for _ in range(BATCH_REPEATS):
        began = time.perf_counter()
        response = client.post("/features/batch", params={"format": form}, json={"as_of": as_ofs})
        seconds.append(time.perf_counter() - began)
        size = len(response.raise_for_status().content)
    return np.array(seconds), size


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.2f} ms"


def report_reads(url: str, as_ofs: list[str]) -> float:
    """Print cross-section latencies per format and client count; returns the JSON p50 of one client."""
    print(f"GET /features, 3 ratings, {REQUESTS_PER_CLIENT} requests per client:")
    p50s = {}
    for form in ("json", "arrow"):
        for clients in CLIENTS:
            seconds, rate, rows = latencies(url, form, clients, as_ofs)
            p50, p99 = np.percentile(seconds, [50, 99])
            p50s[form, clients] = p50
            shown = f", {rows} rows" if rows else ""
            print(f"  {form:<5} {clients} client(s): p50 {ms(p50)}  p99 {ms(p99)}  {rate:6.0f} req/s{shown}")
    return p50s["json", 1]


def report_batches(client: httpx.Client, as_ofs: list[str]) -> dict[str, float]:
    """Print the latency of one batch call per format; returns the p50 per format."""
    print(f"POST /features/batch, {len(as_ofs)} as_of instants in one call, {BATCH_REPEATS} calls:")
    p50s = {}
    for form in ("json", "arrow"):
        seconds, size = batch(client, form, as_ofs)
        p50s[form], worst = np.percentile(seconds, [50, 100])
        print(f"  {form:<5} p50 {ms(p50s[form])}  max {ms(worst)}  {size / 1e6:6.1f} MB")
    return p50s


def main() -> None:
    as_ofs = schedule(BATCH_SIZE)
    with tempfile.TemporaryDirectory(prefix="asof-bench-http-") as root:
        UNIVERSE.write(Path(root) / "sample")
        with running_server(root) as url, httpx.Client(base_url=url, timeout=300) as client:
            job, wall = backfill(client)
            print(
                f"POST /backfill {UNIVERSE.n_symbols} symbols x {UNIVERSE.n_bars} daily bars: "
                f"succeeded in {wall:.1f} s (run {job['run_id']})"
            )
            for form in ("json", "arrow"):  # warm-up: the first read loads the run into memory
                client.get("/features", params={"as_of": as_ofs[-1], "format": form}).raise_for_status()
            print(f"load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
            json_p50 = report_reads(url, as_ofs)
            batch_p50 = report_batches(client, as_ofs)
    batches = ", ".join(f"{form} {seconds * 1000:.0f} ms" for form, seconds in batch_p50.items())
    print(
        f"targets: JSON p50 {json_p50 * 1000:.2f} ms (<= {TARGETS_MS['json p50']:g}); "
        f"batch of {BATCH_SIZE}: {batches} (<= {TARGETS_MS['batch']:g})"
    )
