"""Ratings: the vectorised panel engine against the per-asset pandas-ta oracle, same universe, same run.

500 symbols x 2520 daily bars (SyntheticUniverse, fixed seed), cleaned by `clean_bars`, on one core (the
process is pinned to one CPU where the OS allows it). Prints bar-ratings per second for each engine, their
ratio, whether the outputs agree (votes and ratings exactly, values to 1e-9 relative) and peak memory.
Rates are per CPU second of this process (on its one core), so other work on the machine does not distort
them; wall time and the load average are printed alongside. Targets (issue 2): panel >= 20x the oracle and
>= 2M bar-ratings/s.

Then carried state (issue 13), in the same run: 1,000 symbols of 2,520 daily bars get one new bar, and 100
symbols of two weeks of 1-minute bars get a day (1,440), each rated by resuming from the states their
histories left, beside the full re-rate of their whole histories (whose last rows it must equal, to the
bit); and the states' size in `state.parquet` (zstd, as runs are written) and the time to write and read it.
"""

import os
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import pyarrow.parquet as pq

from service.ratings import engine, oracle, pine
from service.ratings import state as carried_state
from service.sample import SyntheticUniverse
from service.sources.bars import clean_bars

SYMBOLS, BARS, SEED = 500, 2520, 2
UPDATES = (("1d", 1000, 2520, 1), ("1m", 100, 20_160, 1440))
"""Carried state: (interval, symbols, bars already rated, new bars)."""
ORACLE_SYMBOLS = int(os.environ.get("ASOF_BENCH_ORACLE_SYMBOLS", SYMBOLS))
"""The oracle takes about 35 CPU seconds on all 500; fewer times it on a subset, extrapolated per bar."""


def main() -> None:
    if not hasattr(os, "sched_setaffinity"):
        run("not pinned (no sched_setaffinity on this OS)")
        return
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})
    try:
        run(f"pinned to CPU {min(cpus)}")
    finally:
        os.sched_setaffinity(0, cpus)  # later bench sections run in this process


def run(core: str) -> None:
    universe = SyntheticUniverse(n_symbols=SYMBOLS, n_bars=BARS, seed=SEED)
    frames = {symbol: clean_bars(raw)[0] for symbol, raw in universe.frames().items()}
    bars = sum(len(frame) for frame in frames.values())
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        f"universe: {len(frames)} symbols, {bars:,} cleaned bars (seed {SEED}); {core}; load average {load}"
    )

    engine.rate(dict(list(frames.items())[:2]))  # warm-up: imports and loading the compiled code
    with Stopwatch() as first:  # a fresh process's first large call also pays the OS for new memory
        panel = engine.rate(frames)
    steady = []
    for _ in range(3):  # a service or backfill rates chunk after chunk: the steady state is what it pays
        with Stopwatch() as watch:
            engine.rate(frames)
        steady.append(watch)
    watch = min(steady, key=lambda stopwatch: stopwatch.cpu)
    panel_rate = bars / watch.cpu
    print(f"panel engine : {watch}  {panel_rate:12,.0f} bar-ratings/s (best of 3 after the first call)")
    print(f"  first call : {first}  {bars / first.cpu:12,.0f} bar-ratings/s (fresh process)")

    theirs = {
        symbol: rows.drop(columns="symbol").reset_index(drop=True) for symbol, rows in panel.groupby("symbol")
    }
    timed = dict(list(frames.items())[:ORACLE_SYMBOLS])
    timed_bars = sum(len(frame) for frame in timed.values())
    watch, problems = Stopwatch(), []
    for symbol, frame in timed.items():  # each symbol compared as soon as it is rated, then dropped
        with watch:
            ours = oracle.rate_frame(frame)
        problems += [f"{symbol} {line}" for line in oracle.disagreements(theirs[symbol], ours)]
    oracle_rate = timed_bars / watch.cpu
    subset = "" if len(timed) == len(frames) else f" (timed on {len(timed)} symbols, {timed_bars:,} bars)"
    print(f"pandas-ta    : {watch}  {oracle_rate:12,.0f} bar-ratings/s{subset}")
    ratio = panel_rate / oracle_rate
    meets = "meets" if panel_rate >= 2e6 else "misses"
    print(
        f"ratio        : panel is {ratio:,.1f}x the oracle (target >= 20x); "
        f"panel {meets} the 2M bar-ratings/s target"
    )
    checked = f"{len(timed)} symbols, {timed_bars:,} bars"
    print(
        f"identical    : {'yes' if not problems else 'NO'} ({checked}; votes and ratings exact, values 1e-9)"
    )
    for problem in problems[:20]:
        print(f"  {problem}")
    del theirs, panel

    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    engine.rate(frames)
    _, panel_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"memory       : process peak RSS {peak_rss:,.0f} MiB (ru_maxrss: data, both engines, comparison); "
        f"panel engine peak allocation {panel_peak / 2**20:,.0f} MiB (tracemalloc, untimed rerun)"
    )
    for interval, symbols, bars, new in UPDATES:
        resuming(interval, symbols, bars, new)


def resuming(interval: str, symbols: int, bars: int, new: int) -> None:
    """Rate `new` bars of each symbol by resuming from its carried state, and by re-rating all its bars."""
    universe = SyntheticUniverse(n_symbols=symbols, n_bars=bars + new, interval=interval, seed=SEED)
    frames = {symbol: clean_bars(raw)[0] for symbol, raw in universe.frames().items()}
    listed = {symbol: frame for symbol, frame in frames.items() if len(frame) > new}  # before the update
    history = {symbol: frame.iloc[:-new] for symbol, frame in listed.items()}
    update = {symbol: frame.iloc[-new:] for symbol, frame in listed.items()}
    states = engine.resume(history).states  # what the backfill stored with its run
    full, resumed = Stopwatch(), []
    with full:
        rows = engine.rate(listed)
    for _ in range(3):
        with Stopwatch() as watch:
            resumed_rows = engine.resume(update, states).rows
        resumed.append(watch)
    watch = min(resumed, key=lambda stopwatch: stopwatch.cpu)
    last = rows.groupby("symbol", sort=False).tail(new).reset_index(drop=True)
    identical = last.equals(resumed_rows)  # NaN where NaN, every other value exact
    print(
        f"resume {interval:<5} : {len(listed):,} symbols (a grid of {bars:,} bars) + {new:,} new bars each; "
        f"identical to the full re-rate's rows: {'yes' if identical else 'NO'}"
    )
    print(f"  full re-rate : {full}  ({sum(map(len, listed.values())):,} bars)")
    print(f"  resumed      : {watch}  {full.cpu / watch.cpu:,.0f}x less CPU (best of 3)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.parquet"
        with Stopwatch() as written:
            pq.write_table(carried_state.to_arrow(states), path, compression="zstd")
        with Stopwatch() as read:
            carried_state.from_arrow(
                pq.read_table(path),
                rules="scanner",
                history_bars=None,
                tolerance=pine.TOLERANCE,
                width=engine.state_width(),
            )
        size = path.stat().st_size
    print(
        f"  state        : {engine.state_width():,} values a symbol ({8 * engine.state_width():,} bytes); "
        f"state.parquet {size / len(states):,.0f} bytes a symbol ({size / 2**20:,.1f} MiB), "
        f"written in {written.wall:.3f} s, read in {read.wall:.3f} s (wall)"
    )


class Stopwatch:
    """CPU seconds of this process (the rates' basis) and wall seconds, summed over the blocks it times."""

    def __init__(self) -> None:
        self.cpu = self.wall = 0.0

    def __enter__(self) -> "Stopwatch":
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu += time.process_time() - self._cpu
        self.wall += time.perf_counter() - self._wall

    def __str__(self) -> str:
        return f"{self.cpu:8.3f} cpu s ({self.wall:8.3f} wall s)"
