"""Seeded synthetic feature rows for the storage tests, shaped like the panel engine's output plus
`available_at`, and a helper that publishes them as a run through the real RunWriter."""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from storage.catalog import RunInfo, SymbolStatus
from storage.runs import RunWriter
from vocabulary.features import FEATURES, RATINGS, ROW_META, VOTES
from vocabulary.spec import BackfillSpec
from vocabulary.time import NO_LAG, available_at


def daily(start: str, periods: int, *, skip: Sequence[int] = ()) -> pd.DatetimeIndex:
    """`periods` daily bar open times from `start`, without the positions in `skip` (a halt)."""
    days = pd.date_range(start, periods=periods, freq="D", tz="UTC", unit="ns")
    return days.delete(list(skip))


def feature_rows(
    bars: Mapping[str, pd.DatetimeIndex],
    *,
    interval: str = "1d",
    lag: pd.Timedelta = NO_LAG,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (symbol, bar): votes in {-1, 0, 1} with some NaN, ratings in [-1, 1] with some NaN, values
    float; columns and order as the backfill hands them to RunWriter."""
    rng = np.random.default_rng(seed)
    frames = []
    for symbol, ts in bars.items():
        n = len(ts)
        frame = pd.DataFrame({"symbol": pd.Series([symbol] * n, dtype="str"), "ts": ts})
        frame["available_at"] = available_at(frame["ts"], interval, lag)
        frame["bars"] = np.arange(1, n + 1, dtype=np.int64)
        frame["warm"] = frame["bars"] > 3
        for name in FEATURES:
            if name in VOTES:
                values = rng.integers(-1, 2, n).astype(np.float64)
            elif name in RATINGS:
                values = rng.uniform(-1, 1, n)
            else:
                values = rng.normal(100, 10, n)
            values[rng.random(n) < 0.1] = np.nan
            frame[name] = values
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)[[*ROW_META, *FEATURES]]


def spec(interval: str = "1d", lag: pd.Timedelta = NO_LAG) -> BackfillSpec:
    """The spec a run of generated rows records: no lake of its own."""
    return BackfillSpec(lake="(generated rows)", interval=interval, lag=lag)


def publish(
    data_dir: Path,
    rows: pd.DataFrame,
    *,
    interval: str = "1d",
    lag: pd.Timedelta = NO_LAG,
    chunk_symbols: int = 7,
    statuses: Sequence[SymbolStatus] = (),
) -> RunInfo:
    """Write `rows` in chunks of symbols through RunWriter and publish them."""
    symbols = list(dict.fromkeys(rows["symbol"]))
    with RunWriter(data_dir, spec(interval, lag)) as writer:
        for first in range(0, len(symbols), chunk_symbols):
            writer.write(rows[rows["symbol"].isin(symbols[first : first + chunk_symbols])])
        for status in statuses:
            writer.add_status(status)
        return writer.publish()
