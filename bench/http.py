"""The feature service over HTTP, measured from a client on loopback against a real uvicorn server, beside
the stack's floor in the same run: the store answering in-process, and a static route (`/openapi.json`).

A 1000-symbol x 2520-bar daily run is made through `POST /backfill` (SyntheticUniverse, seeded). Every
request that could be answered from the answer cache asks a new instant (a cache miss, the honest figure),
unless its name says it repeats one. Printed per request kind: p50 and p99 against the target; then the
requests per second of 1, 4 and 16 concurrent clients, and the server's memory before and after it holds
every feature of 500 symbols.
"""

import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from service.sample import SyntheticUniverse
from storage.read import FeatureStore
from tests.support.server import ServerProcess, wait_for_job
from vocabulary.time import parse_interval

UNIVERSE = SyntheticUniverse(n_symbols=1000, n_bars=2520, seed=0)
REQUESTS = 300
BATCH = 130
HALF = ",".join(UNIVERSE.symbols[:500])


def instants() -> Iterator[str]:
    """Bar closes over the run's last seven eighths (after most listings), each once, then again."""
    bar = parse_interval(UNIVERSE.interval).length
    first = pd.Timestamp(UNIVERSE.start, tz="UTC")
    closes = [(first + bar * (k + 1)).isoformat() for k in range(UNIVERSE.n_bars // 8, UNIVERSE.n_bars)]
    while True:
        yield from closes


Request = Callable[[httpx.Client], httpx.Response]


def cases() -> dict[str, tuple[Request, float | None]]:
    """What is measured: a name, the request, the target p50 in ms (None: the floor, no target)."""
    new = instants()

    def section(**params: str) -> Request:
        return lambda client: client.get("/features", params={"as_of": next(new), **params})

    def batch(form: str) -> Request:
        return lambda client: client.post(
            "/features/batch", params={"format": form}, json={"as_of": [next(new) for _ in range(BATCH)]}
        )

    return {
        "GET /openapi.json (a static route: the floor)": (lambda client: client.get("/openapi.json"), None),
        "GET /health": (lambda client: client.get("/health"), 2.0),
        "GET /runs": (lambda client: client.get("/runs"), 5.0),
        "GET /features 1,000 symbols, 3 ratings, JSON": (section(), 2.0),
        "GET /features 1,000 symbols, 3 ratings, Arrow": (section(format="arrow"), None),
        "GET /features the same instant again (answer cache)": (
            lambda client: client.get("/features", params={"as_of": "2020-06-01"}),
            None,
        ),
        "GET /features one symbol, JSON": (section(symbols=UNIVERSE.symbols[7]), 1.0),
        "GET /features 500 symbols, all features, JSON": (section(symbols=HALF, features="all"), 8.0),
        f"POST /features/batch {BATCH} as_of, Arrow": (batch("arrow"), 50.0),
        f"POST /features/batch {BATCH} as_of, JSON": (batch("json"), 100.0),
    }


def measure(client: httpx.Client, request: Request, count: int) -> np.ndarray:
    for _ in range(5):
        request(client).raise_for_status()  # warm-up: runs and columns load on first use
    seconds = []
    for _ in range(count):
        began = time.perf_counter()
        request(client).raise_for_status()
        seconds.append(time.perf_counter() - began)
    return np.array(seconds)


def throughput(url: str, request: Request, clients: int, per_client: int = 100) -> float:
    """Requests per second of `clients` concurrent clients, each on its own keep-alive connection."""

    def run() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for _ in range(per_client):
                request(client).raise_for_status()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients * per_client / (time.perf_counter() - began)


def rss(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="asof-bench-http-") as root:
        UNIVERSE.write(Path(root) / "sample")
        server = ServerProcess(root)
        server.start()
        try:
            with httpx.Client(base_url=server.url, timeout=600) as client:
                began = time.perf_counter()
                job = client.post("/backfill", json={"lake": "sample/lake", "interval": "1d"}).json()
                job = wait_for_job(client, job["job_id"], timeout=600)
                print(
                    f"POST /backfill {UNIVERSE.n_symbols} x {UNIVERSE.n_bars} daily: {job['status']} in "
                    f"{time.perf_counter() - began:.1f} s; load average {os.getloadavg()[0]:.1f} on "
                    f"{os.cpu_count()} CPUs"
                )
                store = FeatureStore(root)
                floor = measure_store(store)
                print(f"  {'the store alone, in-process, 1,000 symbols x 3 ratings':<58} p50 {floor:8.2f} ms")
                before = rss(server.pid)
                for name, (request, target) in cases().items():
                    seconds = measure(client, request, REQUESTS if "batch" not in name else 20) * 1000
                    p50, p99 = np.percentile(seconds, [50, 99])
                    verdict = (
                        ""
                        if target is None
                        else f"  target <= {target:g} ms: " + ("met" if p50 <= target else "MISSED")
                    )
                    print(f"  {name:<58} p50 {p50:8.2f} ms  p99 {p99:8.2f} ms{verdict}")
                after = rss(server.pid)
            new = instants()
            section = lambda client: client.get("/features", params={"as_of": next(new)})  # noqa: E731
            rates = ", ".join(f"{n}: {throughput(server.url, section, n):.0f}" for n in (1, 4, 16))
            print(
                f"  GET /features 1,000 symbols, 3 ratings, JSON, requests/s by concurrent clients: {rates}"
            )
            print(
                f"  server RSS: {before:.0f} MB holding the three ratings, {after:.0f} MB after reading "
                "every feature of 500 symbols"
            )
        finally:
            server.stop()


def measure_store(store: FeatureStore) -> float:
    """p50 ms of the store's cross-section (1,000 symbols, 3 ratings), in-process: the answer's floor."""
    new = instants()
    store.cross_section(next(new))
    seconds = []
    for _ in range(REQUESTS):
        began = time.perf_counter()
        store.cross_section(next(new))
        seconds.append(time.perf_counter() - began)
    return float(np.percentile(seconds, 50) * 1000)
