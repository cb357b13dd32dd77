"""Carried state: what the panel engine needs to continue a symbol's ratings from its last rated bar, and
its Arrow form (one row per symbol), which a run stores as `state.parquet` next to its rows.

Over all history a state is every primitive's carried values in the kernel's call order (`pine.Carry`):
the EMA and RMA averages and their seed progress, the compensated prefix sums and last inputs of the
windows, the previous values the votes look back on. With `history_bars` N each bar is rated afresh from
the N bars up to it, so the state is the last N - 1 bars' high, low, close and volume. Either way resuming
from it gives, bit for bit, the rows a full run over the old and new bars gives for the new ones
(docs/RATINGS.md, "Carried state").
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

FORMAT: Final = 1
"""The state's format version: bump it whenever the kernel's state layout changes (a primitive, a period,
the order of the calls), so that a stored state of another layout is refused rather than misread."""


@dataclass(frozen=True, eq=False)
class SymbolState:
    """One symbol's ratings state as of its last rated bar: the run parameters it was rated under, `bars`
    (how many bars it has been rated over, the next bar's position), `last_ts` (the last bar's open time)
    and `values` (the numbers the engine carries; read-only)."""

    rules: str
    history_bars: int | None
    tolerance: float
    bars: int
    last_ts: pd.Timestamp
    values: NDArray[np.float64]


def to_arrow(states: Mapping[str, SymbolState]) -> pa.Table:
    """The states as one Arrow table, a row per symbol (sorted): `symbol`, `last_ts`, `bars`, the run's
    `rules`, `history_bars` (null: all history), `tolerance` and state `format`, and `values`, a list of
    float64 of one length. Every state must come from one run (the same parameters and size)."""
    symbols = sorted(states)
    runs = {_parameters(state) for state in states.values()}
    if len(runs) > 1:
        raise ValueError(f"states of different runs cannot share a table: {sorted(runs, key=str)}")
    rules, history_bars, tolerance, width = runs.pop() if runs else ("", None, 0.0, 0)
    values = np.stack([states[symbol].values for symbol in symbols]) if symbols else np.empty((0, width))
    last_ts = pd.DatetimeIndex([states[symbol].last_ts for symbol in symbols], tz="UTC").as_unit("ns")
    count = len(symbols)
    return pa.table(
        {
            "symbol": pa.array(symbols, type=pa.string()),
            "last_ts": pa.array(last_ts, type=pa.timestamp("ns", tz="UTC")),
            "bars": pa.array([states[symbol].bars for symbol in symbols], type=pa.int64()),
            "rules": pa.array([rules] * count, type=pa.string()),
            "history_bars": pa.array([history_bars] * count, type=pa.int64()),
            "tolerance": pa.array([tolerance] * count, type=pa.float64()),
            "format": pa.array([FORMAT] * count, type=pa.int32()),
            "values": pa.ListArray.from_arrays(
                pa.array(np.arange(count + 1, dtype=np.int32) * width),
                pa.array(values.ravel(), type=pa.float64()),
            ),
        }
    )


def from_arrow(
    table: pa.Table, *, rules: str, history_bars: int | None, tolerance: float, width: int
) -> dict[str, SymbolState]:
    """The states of a `to_arrow` table, for a run rated under these parameters with states of `width`
    values (`engine.state_width`); ValueError naming the difference when the table holds states of
    another format, rule set, history window, tolerance or size."""
    expected = {"rules": rules, "history_bars": history_bars, "tolerance": tolerance, "format": FORMAT}
    for name, value in expected.items():
        found = set(table.column(name).to_pylist())
        if found - {value}:
            shown = ", ".join(repr(v) for v in sorted(found, key=str))
            raise ValueError(f"state of {name} {shown} cannot resume a run of {name} {value!r}")
    values = table.column("values").combine_chunks()
    sizes = set(pc.list_value_length(values).to_pylist())
    if sizes - {width}:
        shown = ", ".join(str(size) for size in sorted(sizes, key=str))
        raise ValueError(f"state of {shown} values a symbol cannot resume an engine that carries {width}")
    values = values.flatten().to_numpy(zero_copy_only=False)
    values = values.reshape(table.num_rows, width)
    values.flags.writeable = False
    last_ts = pd.DatetimeIndex(table.column("last_ts").to_numpy()).tz_localize("UTC")
    return {
        symbol: SymbolState(rules, history_bars, tolerance, bars, ts, values[k])
        for k, (symbol, bars, ts) in enumerate(
            zip(table.column("symbol").to_pylist(), table.column("bars").to_pylist(), last_ts, strict=True)
        )
    }


def _parameters(state: SymbolState) -> tuple[str, int | None, float, int]:
    return state.rules, state.history_bars, state.tolerance, len(state.values)
