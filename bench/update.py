"""`asof update`, the whole process as a user runs it (a subprocess of the real CLI), beside a full
`asof backfill` of the same extended lake measured in the same run:

- daily: 1,000 symbols x 2,519 bars backfilled, then one bar more for every symbol (2,520): the update
  against a full backfill of the extended lake. Target: the update's own stages under 2 s, the whole
  process under 10% of the full backfill, revision detection included (every symbol's bars up to its
  last rated one are checked against the carried digest).
- intraday: 100 symbols x 100,000 one-minute bars, then one day more (1,440 bars each).

Then the same update again with nothing new (the steady cost of reading and checking the lake). Lakes are
seeded random walks written first (a scraper rewrites a file to append a bar), not timed; each line gives
the stages the command reports (read, clean, compute and write summed over its workers; publish wall time)
and its peak RSS.
"""

import os
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench.backfill import ASOF, Measured, backfill, measure

DAILY = (1_000, 2_520, "1d", 86_400)
MINUTE = (100, 100_000 + 1_440, "1m", 60)
ADDED = {"1d": 1, "1m": 1_440}


def main() -> None:
    print(f"  load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for symbols, bars, interval, seconds in (DAILY, MINUTE):
        with tempfile.TemporaryDirectory(prefix=f"asof-bench-update-{interval}-") as root:
            compare(Path(root), symbols, bars, interval, seconds)


def compare(root: Path, symbols: int, bars: int, interval: str, seconds: int) -> None:
    added = ADDED[interval]
    walks = random_walks(symbols, bars, seconds)
    lake = root / "lake"
    write_lake(lake, walks, bars - added, interval)
    print(f"{interval}: {symbols:,} symbols x {bars - added:,} bars, then {added:,} more for each")
    first = backfill(lake, interval, root / "data")
    print(f"  backfill of the first lake  : {first}")
    write_lake(lake, walks, bars, interval)
    updated = update(root / "data")
    full = backfill(lake, interval, root / "full")
    print(f"  asof update                 : {updated}")
    print(f"  asof backfill, extended lake: {full}")
    print(
        f"  update / full backfill      : {updated.seconds / full.seconds:.1%} of the wall time "
        f"(target < 10%), {updated.cpu / full.cpu:.1%} of the CPU time; the update's own work "
        f"{own_seconds(updated):.2f} s, start-up excluded (target < 2 s)"
    )
    again = update(root / "data")
    print(f"  asof update, nothing new    : {again}")


def update(data_dir: Path) -> Measured:
    return measure([ASOF, "update", "--data-dir", str(data_dir)])


def own_seconds(measured: Measured) -> float:
    """The update's wall time, start-up excluded, as it reports it (`read 0.51s, ...; 1.23s in all`)."""
    return float(measured.stages.rpartition("; ")[2].removesuffix("s in all"))


def random_walks(symbols: int, bars: int, seconds: int) -> dict[str, np.ndarray]:
    """Seeded walks (symbols x bars), consecutive bars from 2014-01-01 (a market open around the clock)."""
    rng = np.random.default_rng(13)
    start = np.datetime64("2014-01-01T00:00", "s").astype(np.int64)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (symbols, bars)), axis=1))
    open_ = np.concatenate([close[:, :1], close[:, :-1]], axis=1)
    spread = np.abs(rng.normal(0, 0.004, (2, symbols, bars)))
    return {
        "timestamp": np.broadcast_to(start + seconds * np.arange(bars, dtype=np.int64), (symbols, bars)),
        "open": open_,
        "high": np.maximum(open_, close) * (1 + spread[0]),
        "low": np.minimum(open_, close) * (1 - spread[1]),
        "close": close,
        "volume": rng.gamma(2.0, 50.0, (symbols, bars)) + 1,
    }


def write_lake(lake: Path, walks: dict[str, np.ndarray], bars: int, interval: str) -> None:
    """Each symbol's first `bars` bars as `SYNTH_Sxxxx_<interval>.parquet`, replacing what was there."""
    lake.mkdir(parents=True, exist_ok=True)
    for k in range(len(walks["close"])):
        table = pa.table({name: np.ascontiguousarray(values[k, :bars]) for name, values in walks.items()})
        pq.write_table(table, lake / f"SYNTH_S{k + 1:04d}_{interval}.parquet")
