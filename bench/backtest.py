"""Backtest: a 500-symbol, 10-year daily backtest end to end through the HTTP service.

A SyntheticUniverse (fixed seed) is written and backfilled into a scratch data directory, a real uvicorn
server serves it, and the dynamic backtest (threshold Recommend.All > 0.1, top 10, HRP, 10 bps) rebalances
about 126 times, fetching every cross-section with `POST /features/batch`. Prints the time split between
feature fetches, selection, optimiser and simulation, then the same for the static mode and the report.
"""

import tempfile
import time
from pathlib import Path

from api.process import running_server
from backtest.client import HttpFeatures
from backtest.engine import Backtest, BacktestResult
from backtest.report import write_report
from service.backfill import HistoricalFeatureBackfill
from service.sources import read_returns
from service.universe import SyntheticUniverse

SYMBOLS, BARS, SEED = 500, 3652, 5  # ten years of a market that trades every day
LOOKBACK, EVERY = 252, 27  # (3652 - 1 - 252) / 27 -> 126 rebalances


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="asof-bench-backtest-") as scratch:
        root = Path(scratch)
        started = time.perf_counter()
        files = SyntheticUniverse(n_symbols=SYMBOLS, n_bars=BARS, seed=SEED).write(root)
        seconds = time.perf_counter() - started
        print(f"universe : {SYMBOLS} symbols x {BARS} daily bars, written in {seconds:.1f} s")
        started = time.perf_counter()
        run = HistoricalFeatureBackfill(
            root / "data", lake=files.lake, interval="1d", returns=files.returns
        ).run()
        print(
            f"backfill : run {run.run.run_id}, {run.run.rows:,} rows in {time.perf_counter() - started:.1f} s"
        )
        returns = read_returns(files.returns)
        with running_server(root / "data") as url:
            results = {mode: _timed_run(returns, url, mode) for mode in ("dynamic", "static")}
        started = time.perf_counter()
        write_report(root / "report", results)
        print(f"report   : {time.perf_counter() - started:.2f} s (csv, json, 4 plots, markdown)")


def _timed_run(returns, url: str, mode: str) -> BacktestResult:
    engine = Backtest(rebalance_every=EVERY, lookback=LOOKBACK, optimizer="hrp", mode=mode)
    client = HttpFeatures(url)
    started = time.perf_counter()
    result = engine.run(returns, client)
    total = time.perf_counter() - started
    client.close()
    count = len(result.rebalances)
    split = ", ".join(f"{stage} {seconds:.2f} s" for stage, seconds in result.timings.items())
    print(f"{mode:8} : {count} rebalances in {total:.2f} s ({total / count * 1000:.1f} ms each): {split}")
    features = result.timings["features"]
    print(
        f"{'':8}   features {features / total:.0%} of the time, {features / count * 1000:.1f} ms per "
        f"cross-section; optimiser {result.timings['optimiser'] / count * 1000:.1f} ms per rebalance; "
        f"Sharpe {result.metrics['sharpe']:.2f}"
    )
    return result
