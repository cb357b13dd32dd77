"""Backfill end to end (read, clean, compute, write, publish) for 1000 symbols x 2520 daily bars.

The lake is generated first (SyntheticUniverse, seeded) and its generation is not timed.
"""

import tempfile
import time
from pathlib import Path

from service.backfill import HistoricalFeatureBackfill
from service.sample import SyntheticUniverse
from vocabulary.spec import BackfillSpec

UNIVERSE = SyntheticUniverse(n_symbols=1000, n_bars=2520, seed=0)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="asof-bench-backfill-") as root:
        files = UNIVERSE.write(Path(root) / "sample")
        began = time.perf_counter()
        result = HistoricalFeatureBackfill(
            Path(root) / "data", BackfillSpec(lake=files.lake, interval="1d")
        ).run()
        wall = time.perf_counter() - began
    bars = sum(status.rows_in for status in result.statuses)
    print(
        f"backfill {UNIVERSE.n_symbols} symbols x {UNIVERSE.n_bars} daily bars: {bars:,} bars in, "
        f"{result.run.rows:,} rows stored"
    )
    for stage, seconds in result.timings.items():
        print(f"  {stage:<8} {seconds:7.2f} s  {seconds / wall:6.1%}")
    other = wall - sum(result.timings.values())
    print(f"  {'other':<8} {other:7.2f} s  {other / wall:6.1%}")
    print(f"  {'total':<8} {wall:7.2f} s  {bars / wall:,.0f} bars/s")
