"""Backtest: a 500-symbol, 10-year daily backtest end to end through the HTTP service.

A SyntheticUniverse (fixed seed) is written and backfilled into a scratch data directory, a real uvicorn
server serves it, and the dynamic backtest (threshold Recommend.All > 0.1, top 10, HRP, 10 bps) rebalances
about 126 times, fetching every cross-section with `POST /features/batch`. Prints the time split between
feature fetches, selection, optimiser and simulation (after one warm-up read that loads the run into the
server's index), then the same for the static mode, and the time to write the report.
"""

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd

from backtest.client import HttpFeatures
from backtest.engine import Backtest, BacktestResult
from backtest.report import write_report
from service.backfill import HistoricalFeatureBackfill
from service.sample import SyntheticUniverse
from service.sources.lake import read_returns
from tests.support.server import running_server
from vocabulary.spec import BackfillSpec

SYMBOLS, BARS, SEED = 500, 3652, 5  # ten years of a market that trades every day
LOOKBACK, EVERY = 252, 27  # (3652 - 1 - 252) / 27 -> 126 rebalances


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="asof-bench-backtest-") as scratch:
        root = Path(scratch)
        with _step("universe") as note:
            files = SyntheticUniverse(n_symbols=SYMBOLS, n_bars=BARS, seed=SEED).write(root)
            note.append(f"{SYMBOLS} symbols x {BARS} daily bars written")
        with _step("backfill") as note:
            job = HistoricalFeatureBackfill(
                root / "data", BackfillSpec(lake=files.lake, interval="1d", returns=files.returns)
            )
            run = job.run().run
            note.append(f"run {run.run_id}, {run.rows:,} rows")
        returns = read_returns(files.returns)
        with running_server(root / "data") as url:
            with _step("warm-up") as note:
                as_of = {"as_of": returns.index[-1].isoformat()}
                httpx.get(f"{url}/features", params=as_of, timeout=600).raise_for_status()
                note.append("first read (the server loads the run into its index)")
            results = {mode: _timed_run(returns, url, mode) for mode in ("dynamic", "static")}
        with _step("report") as note:
            write_report(root / "report", results)
            note.append("csv, json, 4 plots, markdown")


@contextmanager
def _step(label: str) -> Iterator[list[str]]:
    """Time the block and print one line: the label, what the block noted, the seconds."""
    note: list[str] = []
    started = time.perf_counter()
    yield note
    print(f"{label:8} : {', '.join(note)} in {time.perf_counter() - started:.2f} s", flush=True)


def _timed_run(returns: pd.DataFrame, url: str, mode: str) -> BacktestResult:
    engine = Backtest(rebalance_every=EVERY, lookback=LOOKBACK, optimizer="hrp", mode=mode)
    client = HttpFeatures(url)
    started = time.perf_counter()
    result = engine.run(returns, client)
    total = time.perf_counter() - started
    client.close()
    count = len(result.rebalances)
    split = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in result.timings.items())
    print(f"{mode:8} : {count} rebalances in {total:.2f} s ({total / count * 1000:.1f} ms each): {split}")
    features, optimiser = result.timings["features"], result.timings["optimiser"]
    print(
        f"{'':8}   per rebalance: features {features / count * 1000:.1f} ms ({features / total:.0%} of the "
        f"time), optimiser {optimiser / count * 1000:.1f} ms; Sharpe {result.metrics['sharpe']:.2f}"
    )
    return result
