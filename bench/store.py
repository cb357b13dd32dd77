"""Cross-section latency for 1000 symbols x 2520 daily bars, three ratings, at random `as_of`.

Three ways to answer the same question, measured in the same process on the same run: the in-memory index,
the DuckDB path (a predicate on available_at so only row groups near T are read), and a naive SQL baseline
(the newest row per symbol by a window function over all history up to T). The run is built once from the
panel engine on a seeded synthetic universe and cached under the temp dir; building is not timed.
"""

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from service.ratings.engine import rate
from service.sample import SyntheticUniverse
from service.sources.bars import clean_bars
from storage.catalog import RUN_LAYOUT, Catalog, RunInfo
from storage.read import FeatureStore, parquet_sql
from storage.runs import RunWriter
from storage.schema import ROW_GROUP_ROWS
from vocabulary.features import RATINGS, ROW_META
from vocabulary.spec import BackfillSpec
from vocabulary.time import available_at

UNIVERSE = SyntheticUniverse(n_symbols=1000, n_bars=2520, seed=0)
CACHE = Path(tempfile.gettempdir()) / "asof-bench-store"
SPEC = BackfillSpec(
    lake=f"(bench store: {UNIVERSE.n_symbols} x {UNIVERSE.n_bars} seed {UNIVERSE.seed}, "
    f"row groups of {ROW_GROUP_ROWS}, layout {RUN_LAYOUT})",
    interval=UNIVERSE.interval,
)
"""Names the parameters the cached run was built with, so a cache made with others is rebuilt."""
CHUNK = 100
QUERIES = {"in-memory": 2000, "duckdb": 300, "naive sql": 40}


def main() -> None:
    run = _cached_run()
    span = f"{run.start:%Y-%m-%d} .. {run.end:%Y-%m-%d}"
    print(f"run {run.run_id}: {len(run.symbols)} symbols, {run.rows:,} rows, {span}")
    print(f"  load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rng = np.random.default_rng(1)
    span = (run.end - run.start) // pd.Timedelta(1, "s")
    instants = [run.start + pd.Timedelta(int(s), "s") for s in rng.integers(0, span, max(QUERIES.values()))]
    memory, duck = FeatureStore(CACHE, index=True), FeatureStore(CACHE, index=False)
    for name, store in (("in-memory", memory), ("duckdb", duck)):
        began = time.perf_counter()
        store.cross_section(instants[0])
        print(f"  {name} first query (loads the run): {(time.perf_counter() - began) * 1e3:.0f} ms")
    for instant in instants[:20]:
        pd.testing.assert_frame_equal(memory.cross_section(instant).rows, duck.cross_section(instant).rows)
    naive = _naive(run)
    timings = {
        "in-memory": _measure(lambda t: memory.cross_section(t), instants[: QUERIES["in-memory"]]),
        "duckdb": _measure(lambda t: duck.cross_section(t), instants[: QUERIES["duckdb"]]),
        "naive sql": _measure(naive, instants[: QUERIES["naive sql"]]),
    }
    print(f"cross-section, {len(run.symbols)} symbols, {len(RATINGS)} ratings (p50 / p99, ms):")
    for name, seconds in timings.items():
        p50, p99 = np.percentile(seconds, [50, 99]) * 1e3
        print(f"  {name:<10} {p50:8.3f} / {p99:8.3f}   ({len(seconds)} queries)")
    baseline = np.median(timings["naive sql"])
    for name in ("in-memory", "duckdb"):
        print(f"  naive sql / {name}: {baseline / np.median(timings[name]):,.0f}x at p50")
    print(
        f"  duckdb / in-memory: {np.median(timings['duckdb']) / np.median(timings['in-memory']):,.1f}x at p50"
    )
    print("  targets: in-memory p50 <= 1 ms, duckdb p50 <= 10 ms")


def _naive(run: RunInfo) -> Callable[[pd.Timestamp], pd.DataFrame]:
    """The newest row per symbol by a window function over all history up to T, no pruning help."""
    connection = duckdb.connect()
    connection.execute("SET GLOBAL parquet_metadata_cache = true")
    columns = ", ".join(f'"{name}"' for name in (*ROW_META, *RATINGS))
    query = (
        f"SELECT {columns} FROM {parquet_sql(run.files())} WHERE available_at <= $as_of "
        "QUALIFY row_number() OVER (PARTITION BY symbol ORDER BY available_at DESC) = 1 ORDER BY symbol"
    )
    return lambda as_of: connection.sql(query, params={"as_of": as_of.to_pydatetime()}).df()


def _measure(query: Callable[[pd.Timestamp], object], instants: list[pd.Timestamp]) -> np.ndarray:
    for instant in instants[:3]:
        query(instant)
    seconds = []
    for instant in instants:
        began = time.perf_counter()
        query(instant)
        seconds.append(time.perf_counter() - began)
    return np.array(seconds)


def _cached_run() -> RunInfo:
    """The bench run, built on first use; a cache made with other parameters is rebuilt."""
    if CACHE.exists():
        latest = Catalog(CACHE).latest_run()
        if latest is not None and latest.spec == SPEC:
            return latest
        shutil.rmtree(CACHE)
    print(f"building the bench run under {CACHE} (once)...", flush=True)
    began = time.perf_counter()
    frames = {symbol: clean_bars(raw)[0] for symbol, raw in UNIVERSE.frames().items()}
    symbols = sorted(frames)
    with RunWriter(CACHE, SPEC) as writer:
        for first in range(0, len(symbols), CHUNK):
            rows = rate({symbol: frames[symbol] for symbol in symbols[first : first + CHUNK]})
            rows.insert(2, "available_at", available_at(rows["ts"], UNIVERSE.interval))
            writer.write(rows)
        run = writer.publish()
    print(f"  built in {time.perf_counter() - began:.0f} s", flush=True)
    return run
