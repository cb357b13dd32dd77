"""Higher-interval bars built from lower-interval ones, as TradingView aggregates them: a lake often holds one
interval only (1m or 1d), and the scanner rates ten.

A period's bar is the open of its first bar, the highest high, the lowest low, the close of its last bar and
the summed volume (unknown, NaN, when any of its bars' volume is). Only complete periods are kept: a bar
that a later snapshot of the lake could still change must not be stored, since its `available_at` would
claim it was final. A partial *first* period (a listing mid-week) is kept, as TradingView shows it.
"""

import numpy as np
import pandas as pd

from service.sources.bars import BAR_COLUMNS
from vocabulary.time import Interval


def resample(bars: pd.DataFrame, interval: Interval, *, complete_until: pd.Timestamp) -> pd.DataFrame:
    """The bars of `interval` built from cleaned finer `bars` (strictly increasing `ts`, each bar inside one
    period, which the finer interval tiling `interval` ensures), keeping the periods that close at or before
    `complete_until`, the instant up to which the data is known to be complete."""
    if bars.empty:
        return bars[list(BAR_COLUMNS)].copy()
    opens = interval.open_of(pd.DatetimeIndex(bars["ts"])).as_unit("ns")
    key = opens.asi8
    first = np.flatnonzero(np.append(True, key[1:] != key[:-1]))
    last = np.append(first[1:], len(key)) - 1
    values = {name: bars[name].to_numpy(dtype="float64") for name in BAR_COLUMNS[1:]}
    periods = pd.DataFrame(
        {
            "ts": opens[first],
            "open": values["open"][first],
            "high": np.maximum.reduceat(values["high"], first),
            "low": np.minimum.reduceat(values["low"], first),
            "close": values["close"][last],
            "volume": np.add.reduceat(values["volume"], first),
        }
    )
    return periods[(interval.close(periods["ts"]) <= complete_until).to_numpy()].reset_index(drop=True)
