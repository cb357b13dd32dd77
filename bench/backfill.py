"""`asof backfill`, the whole process as a user runs it (a subprocess of the real CLI), beside its baselines
measured in the same run:

- daily: 500 symbols x 2520 bars (SyntheticUniverse, seeded) against a per-symbol pandas-ta script on the
  same lake (`bench.baseline`: the project's oracle per symbol, one Parquet file). Target >= 10x (20x).
- intraday: 100 symbols x 100,000 one-minute bars (seeded random walks, generated with numpy) in bar-ratings
  per second, with the process's peak RSS, beside the floor: pyarrow writing the run's own rows (its width
  and length) as one Parquet file with the run's settings. Target >= 1M bar-ratings/s (2M).

Each line gives the stages the backfill reports (read, clean, compute and write summed over its workers;
publish is wall time) and the process's peak RSS (`wait4`'s max RSS of that one child). Lakes are generated
first and not timed.
"""

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from service.sample import SyntheticUniverse
from storage.parts import STATISTICS
from storage.schema import ROW_GROUP_ROWS

DAILY = SyntheticUniverse(n_symbols=500, n_bars=2520, seed=0)
MINUTE_SYMBOLS, MINUTE_BARS = 100, 100_000
ASOF = str(Path(sys.executable).with_name("asof"))


def main() -> None:
    print(f"  load average before measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="asof-bench-backfill-") as root:
        daily(Path(root))
    with tempfile.TemporaryDirectory(prefix="asof-bench-intraday-") as root:
        intraday(Path(root))


def daily(root: Path) -> None:
    lake = DAILY.write(root / "sample").lake
    bars = DAILY.n_symbols * DAILY.n_bars
    print(f"daily: {DAILY.n_symbols} symbols x {DAILY.n_bars} bars (seed {DAILY.seed})")
    script = measure([sys.executable, "-m", "bench.baseline", str(lake), str(root / "baseline.parquet")])
    print(f"  per-symbol pandas-ta script : {script}")
    ours = backfill(lake, "1d", root / "data")
    print(f"  asof backfill               : {ours}")
    print(f"  speed-up                    : {script.seconds / ours.seconds:.1f}x (target >= 10x, 20x)")
    print(f"  CPU seconds                 : {script.cpu / ours.cpu:.1f}x fewer")
    rates = f"script {bars / script.seconds:,.0f}, asof {bars / ours.seconds:,.0f}"
    print(f"  bar-ratings/s               : {rates}")


def intraday(root: Path) -> None:
    lake = minute_lake(root / "lake")
    bars = MINUTE_SYMBOLS * MINUTE_BARS
    print(f"intraday: {MINUTE_SYMBOLS} symbols x {MINUTE_BARS:,} one-minute bars ({bars:,} bars)")
    ours = backfill(lake, "1m", root / "data")
    rate = bars / ours.seconds
    print(f"  asof backfill : {ours}  {rate:,.0f} bar-ratings/s (target >= 1M, 2M)")
    floor, rows = write_floor(root / "data", root / "floor.parquet")
    print(
        f"  floor         : pyarrow writes the run's {rows:,} rows as one file in {floor:.2f} s, "
        f"{rows / floor:,.0f} rows/s: the backfill (read, rate, write, publish) runs at "
        f"{rate / (rows / floor):.2f}x the speed of that write alone"
    )


class Measured:
    """One process's wall seconds, CPU seconds (user + system: what it costs whatever else the machine
    runs), peak RSS and the stage line it printed."""

    def __init__(self, seconds: float, cpu: float, max_rss_mib: float, stages: str) -> None:
        self.seconds, self.cpu, self.max_rss_mib, self.stages = seconds, cpu, max_rss_mib, stages

    def __str__(self) -> str:
        stages = f"; {self.stages}" if self.stages else ""
        return f"{self.seconds:7.2f} s ({self.cpu:.2f} CPU s), peak RSS {self.max_rss_mib:,.0f} MiB{stages}"


def measure(command: list[str]) -> Measured:
    """Run `command` to its end; its wall time, its own peak RSS, and the backfill's `time:` line."""
    began = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}:\n{output[-2000:]}")
    lines = output.splitlines()
    stages = next((line.removeprefix("time: ") for line in lines if line.startswith("time: ")), "")
    return Measured(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, stages)


def backfill(lake: Path, interval: str, data_dir: Path) -> Measured:
    command = [ASOF, "backfill", "--lake", str(lake), "--interval", interval, "--data-dir", str(data_dir)]
    return measure(command)


def minute_lake(lake: Path) -> Path:
    """Seeded one-minute random walks, consecutive minutes from 2024-01-01 (a market open around the
    clock), one `SYNTH_Sxxxx_1m.parquet` per symbol."""
    lake.mkdir(parents=True)
    rng = np.random.default_rng(7)
    start = np.datetime64("2024-01-01T00:00", "s").astype(np.int64)
    timestamps = start + 60 * np.arange(MINUTE_BARS, dtype=np.int64)
    for k in range(1, MINUTE_SYMBOLS + 1):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0008, MINUTE_BARS)))
        open_ = np.concatenate([[close[0]], close[:-1]])
        spread = np.abs(rng.normal(0, 0.0004, (2, MINUTE_BARS)))
        columns = {
            "timestamp": timestamps,
            "open": open_,
            "high": np.maximum(open_, close) * (1 + spread[0]),
            "low": np.minimum(open_, close) * (1 - spread[1]),
            "close": close,
            "volume": rng.gamma(2.0, 50.0, MINUTE_BARS) + 1,
        }
        pq.write_table(pa.table(columns), lake / f"SYNTH_S{k:04d}_1m.parquet")
    return lake


def write_floor(data_dir: Path, target: Path) -> tuple[float, int]:
    """Seconds pyarrow takes to write the published run's rows as one Parquet file, with the run's
    compression, dictionary, statistics and row groups (the rows are loaded first, untimed)."""
    (run,) = (data_dir / "runs").iterdir()
    table = pa.concat_tables([pq.read_table(file) for file in sorted(run.glob("part-*.parquet"))])
    began = time.perf_counter()
    pq.write_table(
        table,
        target,
        compression="zstd",
        use_dictionary=["symbol"],
        write_statistics=STATISTICS,
        row_group_size=ROW_GROUP_ROWS,
    )
    return time.perf_counter() - began, table.num_rows
