"""What a run carries to its updates, per symbol: the engine's state as of its last rated bar, a digest of
every bar it was rated from, and the fingerprints of the bars this run rated (with their open times).

An update reads the symbol's bars again (the lake may have corrected them) and compares the digest of
those up to the state's last bar with the carried one: equal, it rates only the bars after it from the
state; different, the symbol was *revised*, and it is rated again in full. The fingerprints, chained
through the state files of the run's ancestors back to the run that rated the symbol in full, locate the
first bar that changed, for the job's report.

A bar's fingerprint mixes the bits of its open time and of what the engine reads (`high low close volume`;
`open` is no input of the ratings) with splitmix64; the digest is their sum modulo 2^64, so an update adds
its new bars' fingerprints to it in O(new bars), and two inputs collide only with probability 2^-64. Stored
as columns beside the engine state's Arrow form (`service.ratings.state`), in the run's `state.parquet`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import NDArray

from service.ratings import state as engine_state
from service.ratings.engine import BAR_INPUTS, state_width
from service.ratings.pine import TOLERANCE
from service.ratings.state import SymbolState
from storage.runs import read_state
from vocabulary.spec import BackfillSpec

DIGEST: Final = "digest"
RATED_TS: Final = "rated_ts"
RATED: Final = "rated"
HISTORY: Final = (RATED_TS, RATED)
"""The columns of the fingerprints of the bars a run rated: read only to locate a revision."""

_RATED_TS_TYPE: Final = pa.timestamp("ns", tz="UTC")
_CANONICAL_NAN: Final = np.float64("nan").view(np.uint64)
_GOLDEN: Final = np.uint64(0x9E3779B97F4A7C15)


@dataclass(frozen=True, eq=False)
class Carried:
    """One symbol's carried state: the engine's `state`, the `digest` of every bar it was rated from, and
    the open times (`rated_ts`, int64 ns) and fingerprints (`rated`, uint64) of the bars this run rated
    (all of them when it rated the symbol in full, none when it had no new bar)."""

    state: SymbolState
    digest: int
    rated_ts: NDArray[np.int64]
    rated: NDArray[np.uint64]

    @classmethod
    def of(
        cls,
        state: SymbolState,
        rated_ts: NDArray[np.int64],
        rated: NDArray[np.uint64],
        before: "Carried | None" = None,
    ) -> "Carried":
        """The carried state after rating, to `state`, the bars of these open times and fingerprints: those
        after `before`'s, or all of a symbol's."""
        return cls(state, _add(before.digest if before else 0, rated), rated_ts, rated)

    def unchanged(self) -> "Carried":
        """This state carried into a run that rated none of the symbol's bars."""
        return Carried(self.state, self.digest, self.rated_ts[:0], self.rated[:0])


def fingerprints(bars: pd.DataFrame) -> NDArray[np.uint64]:
    """One uint64 per bar of its open time and of the engine's inputs (NaN volumes alike whatever their
    bits)."""
    mixed = _mix(nanoseconds(bars).view(np.uint64))
    for name in BAR_INPUTS:
        values = bars[name].to_numpy(dtype=np.float64)
        bits = np.where(np.isnan(values), _CANONICAL_NAN, values.view(np.uint64))
        mixed = _mix((mixed ^ bits) + _GOLDEN)
    return mixed


def digest(prints: NDArray[np.uint64]) -> int:
    """The digest of bars of these fingerprints: their sum modulo 2^64."""
    return _add(0, prints)


def nanoseconds(bars: pd.DataFrame) -> NDArray[np.int64]:
    return bars["ts"].array.as_unit("ns").asi8


def first_change(
    old_ts: NDArray[np.int64], old: NDArray[np.uint64], new_ts: NDArray[np.int64], new: NDArray[np.uint64]
) -> pd.Timestamp:
    """The open time of the first bar that differs between two rated inputs (a bar changed, added or
    removed): at the first position where their fingerprints differ, the earlier of the two bars there."""
    common = min(len(old), len(new))
    differ = np.flatnonzero(old[:common] != new[:common])
    at = int(differ[0]) if len(differ) else common
    candidates = [int(ts[at]) for ts in (old_ts, new_ts) if at < len(ts)]
    return pd.Timestamp(min(candidates), unit="ns", tz="UTC")


def to_table(carried: Mapping[str, Carried]) -> pa.Table:
    """The carried states as one Arrow table, a row per symbol (sorted): the engine state's columns
    (`state.to_arrow`), `digest`, and the `rated_ts` and `rated` lists."""
    symbols = sorted(carried)
    table = engine_state.to_arrow({symbol: carried[symbol].state for symbol in symbols})
    rows = [carried[symbol] for symbol in symbols]
    return (
        table.append_column(DIGEST, pa.array([row.digest for row in rows], pa.uint64()))
        .append_column(RATED_TS, _lists([row.rated_ts for row in rows], _RATED_TS_TYPE))
        .append_column(RATED, _lists([row.rated for row in rows], pa.uint64()))
    )


def read_carried(file: Path, spec: BackfillSpec) -> dict[str, Carried]:
    """The carried states of a run of `spec` (without the fingerprints of the bars it rated, which only
    locating a revision reads); ValueError naming the difference when they cannot resume such a run."""
    table = _without_history(file)
    states = engine_state.from_arrow(
        table,
        rules=spec.rules,
        history_bars=spec.history_bars,
        tolerance=TOLERANCE,
        width=state_width(spec.history_bars),
    )
    empty_ts, empty = np.empty(0, np.int64), np.empty(0, np.uint64)
    return {
        symbol: Carried(states[symbol], int(value), empty_ts, empty)
        for symbol, value in zip(table["symbol"].to_pylist(), table[DIGEST].to_pylist(), strict=True)
    }


def rated_inputs(
    state_files: Sequence[Path], symbols: Sequence[str]
) -> dict[str, tuple[NDArray[np.int64], NDArray[np.uint64]]]:
    """Each symbol's open times and fingerprints of every bar it was rated from, gathered from the state
    files of a run's lineage (oldest first): back from the newest to the run that rated it in full."""
    gathered: dict[str, list[tuple[NDArray[np.int64], NDArray[np.uint64]]]] = {}
    open_ = set(symbols)
    for file in reversed(state_files):
        if not open_:
            break
        table = read_state(file, columns=["symbol", "bars", *HISTORY], symbols=open_)
        for k, symbol in enumerate(table["symbol"].to_pylist()):
            ts = table[RATED_TS][k].values.cast(pa.int64()).to_numpy(zero_copy_only=False)
            prints = table[RATED][k].values.to_numpy(zero_copy_only=False)
            gathered.setdefault(symbol, []).append((ts, prints))
            if table["bars"][k].as_py() == len(prints):  # rated in full here: nothing earlier
                open_.discard(symbol)
    return {
        symbol: (
            np.concatenate([ts for ts, _ in reversed(pieces)]),
            np.concatenate([prints for _, prints in reversed(pieces)]),
        )
        for symbol, pieces in gathered.items()
    }


def _without_history(file: Path) -> pa.Table:
    """A state file's every column but the fingerprints of the bars its run rated (the bulk of a full
    rating's file, read only to locate a revision)."""
    return read_state(file, columns=[name for name in pq.read_schema(file).names if name not in HISTORY])


def _lists(arrays: Sequence[np.ndarray], kind: pa.DataType) -> pa.ListArray:
    """Arrays of int64 or uint64 as one Arrow list array of `kind` (timestamps from int64 nanoseconds)."""
    offsets = np.concatenate([[0], np.cumsum([len(array) for array in arrays], dtype=np.int64)])
    values = np.concatenate(arrays) if arrays else np.empty(0, np.int64)
    flat = pa.array(values).cast(kind)
    return pa.LargeListArray.from_arrays(pa.array(offsets), flat)


def _mix(x: NDArray[np.uint64]) -> NDArray[np.uint64]:
    """splitmix64's finaliser, element-wise (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _add(total: int, prints: NDArray[np.uint64]) -> int:
    """`total` plus the fingerprints, modulo 2^64 (an array's sum wraps, Python's ints do not)."""
    return (total + int(prints.sum(dtype=np.uint64))) % (1 << 64)


def compacted(state_files: Sequence[Path]) -> pa.Table:
    """The carried state of a run whose rows are rewritten into a run of their own (a compaction): the
    newest state file's states, each with the fingerprints of every bar it was rated from, so that the
    compacted run locates a revision without its ancestors' files."""
    table = _without_history(state_files[-1])
    symbols = table["symbol"].to_pylist()
    history = rated_inputs(state_files, symbols)
    return table.append_column(
        RATED_TS, _lists([history[s][0] for s in symbols], _RATED_TS_TYPE)
    ).append_column(RATED, _lists([history[s][1] for s in symbols], pa.uint64()))
