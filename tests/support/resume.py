"""Rating a universe in pieces, as a service that lives on does: each symbol's bars cut at given points, and
each piece rated by `engine.resume` from the states the previous piece left, optionally through their Arrow
form and Parquet, as a run stores them."""

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from service.ratings import engine, pine
from service.ratings import state as carried_state
from service.ratings.state import SymbolState
from vocabulary.features import FEATURES


def rate_resumed(
    frames: Mapping[str, pd.DataFrame],
    cuts: Mapping[str, Sequence[int]],
    *,
    stored: bool = False,
    **parameters,
) -> pd.DataFrame:
    """The rows of every bar of `frames`, rated piece by piece: symbol s cut before each bar position in
    cuts[s], the k-th pieces of all symbols rated in one call (an empty piece included) from the states of
    the (k-1)-th; with `stored` the states go through Parquet between calls. In `rate`'s row order."""
    bounds = {symbol: [0, *cuts.get(symbol, ()), len(bars)] for symbol, bars in frames.items()}
    states: dict[str, SymbolState] = {}
    pieces = []
    for k in range(max(len(bound) for bound in bounds.values()) - 1):
        piece = {
            symbol: frames[symbol].iloc[bound[k] : bound[k + 1]]
            if k + 1 < len(bound)
            else frames[symbol].iloc[:0]
            for symbol, bound in bounds.items()
        }
        rows, states = engine.resume(piece, states, **parameters)
        pieces.append(rows)
        if stored:
            states = through_parquet(states, **parameters)
    return pd.concat(pieces).sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)


def through_parquet(states: Mapping[str, SymbolState], **parameters) -> dict[str, SymbolState]:
    """The states written to Parquet (as `state.parquet`) and read back."""
    buffer = io.BytesIO()
    pq.write_table(carried_state.to_arrow(states), buffer)
    history_bars = parameters.get("history_bars")
    return carried_state.from_arrow(
        pq.read_table(io.BytesIO(buffer.getvalue())),
        rules=parameters.get("rules", "scanner"),
        history_bars=history_bars,
        tolerance=parameters.get("tolerance", pine.TOLERANCE),
        width=engine.state_width(history_bars),
    )


def assert_same_rows(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal to the bit: the same symbols, times, `bars` and `warm`, and every feature the same float64
    (na where na, and the same sign of zero)."""
    assert list(actual.columns) == list(expected.columns)
    for column in ("symbol", "ts", "bars", "warm"):
        assert actual[column].tolist() == expected[column].tolist(), column
    for name in FEATURES:
        ours, theirs = actual[name].to_numpy(), expected[name].to_numpy()
        assert np.array_equal(ours, theirs, equal_nan=True), name
        assert np.array_equal(np.signbit(np.nan_to_num(ours)), np.signbit(np.nan_to_num(theirs))), name
