"""One chunk of a backfill or an update: a few symbols' whole histories read from the lake, cleaned,
(resampled,) rated and staged as one piece of the run, with each symbol's carried state as of its last
rated bar, by whichever worker runs it (a thread here, a Ray worker elsewhere).

A chunk holds symbols until their lake rows reach a budget of bars x features (`CHUNK_CELLS`), so a
worker's memory is bounded by the budget or by one symbol's history, whichever is larger, whatever the
universe or the history length. The unit is a symbol's whole history: the engine carries its state
through a symbol's bars in one pass. In an update a symbol comes with the state its parent run carried
(`service.carried`): its bars up to the state's last one are checked against the carried digest, and only
the bars after it are rated, from the state; a symbol whose earlier bars changed (a revision) is rated in
full, and the first bar that changed is found. A symbol that cannot be read, cleaned or rated fails on its
own, with its reason; the others go on.
"""

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa

from service.carried import Carried, digest, fingerprints, first_change, nanoseconds, rated_inputs
from service.carried import to_table as states_table
from service.ratings.engine import resume
from service.sources.bars import CleaningReport, SymbolRefused, clean_bars
from service.sources.lake import Lake
from service.sources.resample import resample
from service.sources.spacing import spacing_problem
from storage.catalog import SymbolStatus
from storage.parts import Staged, piece, stage_table, use_jemalloc
from storage.runs import to_table
from vocabulary.features import FEATURES
from vocabulary.spec import BackfillSpec
from vocabulary.time import available_at, iso, parse_interval

CHUNK_CELLS: Final = 1 << 24
"""Lake rows x features rated at once by one worker (16.8M cells: 294k bars of 57 features, about 130 MB of
engine output, 350 MB at the engine's peak). Panels of this size keep the engine near its best speed: 32
daily symbols at a time, or 2 or 3 minute histories of 100,000 bars (wider panels of long histories leave
the processor's caches and rate slower)."""

CHUNK_BARS: Final = CHUNK_CELLS // len(FEATURES)


@dataclass(frozen=True)
class Chunk:
    """Symbols to rate together, the span of bars to store (`start`, `end`: the spec's, or the returns
    matrix's), the lake they come from, and where to stage their rows (a file `name` unique in `pieces`, or
    a table in memory).
    `inside`: the data dir a relative lake must not leave (see `service.backfill.open_lake`)."""

    spec: BackfillSpec
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    lake: Path
    inside: Path | None
    symbols: tuple[str, ...]
    pieces: Path
    name: str
    in_memory: bool = False
    """Hand the rows over as a table (the worker shares the writer's memory), not as a piece file."""
    carried: Mapping[str, Carried] = field(default_factory=dict)
    """In an update, the states the parent run carried for these symbols (a symbol without one is new)."""
    lineage: tuple[Path, ...] = ()
    """In an update, the parent's state files, oldest first: where a revision is located."""
    source: Lake | None = field(default=None, compare=False, repr=False)
    """The driver's own Lake when the worker shares its memory: a long file is then read once, not again
    by every chunk (a worker elsewhere opens `lake` itself)."""


@dataclass(frozen=True)
class ChunkResult:
    """How each symbol fared, its stored rows (one piece, or None), the carried states of the symbols it
    rated (Arrow, `service.carried.to_table`), the revised symbols with the first bar that changed, and
    the seconds of each stage."""

    statuses: list[SymbolStatus]
    staged: Staged | None
    timings: dict[str, float] = field(default_factory=dict)
    states: pa.Table | None = None
    revised: dict[str, pd.Timestamp] = field(default_factory=dict)


def plan_chunks(symbols: list[str], rows: dict[str, int], budget: int = CHUNK_BARS) -> list[tuple[str, ...]]:
    """Consecutive symbols grouped until their rows reach `budget` (a symbol larger than it alone)."""
    chunks: list[tuple[str, ...]] = []
    current: list[str] = []
    filled = 0
    for symbol in symbols:
        size = rows.get(symbol, 0)
        if current and filled + size > budget:
            chunks.append(tuple(current))
            current, filled = [], 0
        current.append(symbol)
        filled += size
    if current:
        chunks.append(tuple(current))
    return chunks


def run_chunk(chunk: Chunk) -> ChunkResult:
    """Read, clean, rate and stage one chunk; every symbol ends with a status."""
    use_jemalloc()
    spec = chunk.spec
    timings = dict.fromkeys(("read", "clean", "compute", "write"), 0.0)
    lake = chunk.source or Lake(chunk.lake, spec.lake_interval, inside=chunk.inside)
    statuses: dict[str, SymbolStatus] = {}
    inputs: dict[str, pd.DataFrame] = {}
    reports: dict[str, CleaningReport] = {}
    for symbol in chunk.symbols:
        loaded = _load(lake, spec, symbol, timings)
        if isinstance(loaded, SymbolStatus):
            statuses[symbol] = loaded
        else:
            inputs[symbol], reports[symbol] = _rated_input(chunk, loaded[0]), loaded[1]
    with timed(timings, "compute"):
        prints = {symbol: fingerprints(bars) for symbol, bars in inputs.items()}
        frames, carried, revised = _continued(chunk, inputs, prints)
        rows, states, failures = _rated(chunk, frames, carried, reports)
        statuses |= failures
        after = {}
        for symbol, state in states.items():  # a frame rated is its input, or the input's bars after a state
            rated = prints[symbol][len(inputs[symbol]) - len(frames[symbol]) :]
            after[symbol] = Carried.of(state, nanoseconds(frames[symbol]), rated, carried.get(symbol))
    staged = None
    with timed(timings, "write"):
        if rows is not None and len(rows):
            table = to_table(rows, spec)
            staged = piece(table) if chunk.in_memory else stage_table(chunk.pieces, chunk.name, table)
        states_after = states_table(after) if after else None
    spans = staged.spans if staged is not None else {}
    for symbol, report in reports.items():
        if symbol not in statuses:
            statuses[symbol] = _stored(symbol, report, spans.get(symbol))
    return ChunkResult(
        [statuses[symbol] for symbol in chunk.symbols],
        staged,
        timings,
        states=states_after,
        revised=revised,
    )


def _continued(
    chunk: Chunk, inputs: dict[str, pd.DataFrame], prints: dict[str, np.ndarray]
) -> tuple[dict[str, pd.DataFrame], dict[str, Carried], dict[str, pd.Timestamp]]:
    """What to rate: each symbol's bars after its carried state's last one, from that state, when the bars
    up to it are those it was rated from (the digest of their fingerprints `prints` is the carried one);
    else all its bars, from its first, and, for a revised symbol, the open time of its first bar that
    changed."""
    frames, carried, changed = dict(inputs), {}, {}
    for symbol, bars in inputs.items():
        before = chunk.carried.get(symbol)
        if before is None:
            continue
        seen = int(bars["ts"].searchsorted(before.state.last_ts, side="right"))
        if digest(prints[symbol][:seen]) == before.digest:
            frames[symbol], carried[symbol] = bars.iloc[seen:], before
        else:
            changed[symbol] = (nanoseconds(bars)[:seen], prints[symbol][:seen])
    old = rated_inputs(chunk.lineage, sorted(changed)) if changed else {}
    revised = {symbol: first_change(*old[symbol], *new) for symbol, new in changed.items()}
    return frames, carried, revised


def _load(
    lake: Lake, spec: BackfillSpec, symbol: str, timings: dict[str, float]
) -> tuple[pd.DataFrame, CleaningReport] | SymbolStatus:
    """The symbol's bars at the run's interval (cleaned, then resampled when the lake is finer) and its
    cleaning report (about the lake's rows), or its failed status saying why there are none."""
    try:
        with timed(timings, "read"):
            raw = lake.read(symbol)
        with timed(timings, "clean"):
            bars, report = clean_bars(raw, keep_zero_volume=spec.keep_zero_volume)
            problem = spacing_problem(raw["ts"], lake.interval)
    except SymbolRefused as error:
        return failed(symbol, str(error), error.report)
    except Exception as error:  # a symbol's own fault (OHLCVError, a broken file) fails that symbol only
        return failed(symbol, str(error) or type(error).__name__)
    if problem is not None:
        return failed(symbol, problem, report)
    if bars.empty:
        return failed(symbol, "no bars left after cleaning", report)
    if spec.from_interval is not None:
        # The lake's coverage: its newest row, or `end` when that says the data is complete further.
        newest = raw["ts"].max()
        covered = newest if spec.end is None else max(newest, spec.end)
        with timed(timings, "clean"):
            bars = resample(bars, parse_interval(spec.interval), complete_until=covered)
        if bars.empty:
            return failed(
                symbol,
                f"no complete {spec.interval} period: the newest {spec.from_interval} bar opens at "
                f"{iso(newest)}, before the first period ends (an `end` past it says the data is "
                "complete)",
                report,
            )
    return bars, report


def _rated(
    chunk: Chunk,
    frames: dict[str, pd.DataFrame],
    carried: dict[str, Carried],
    reports: dict[str, CleaningReport],
) -> tuple[pd.DataFrame | None, dict, dict[str, SymbolStatus]]:
    """The stored rows of the chunk (None: no symbol was rated), the engine's states after them, and the
    symbols the engine could not rate: if rating them together fails, each is rated alone, so one symbol's
    failure is its own."""
    if not frames:
        return None, {}, {}
    try:
        return *_rows(chunk, frames, carried), {}
    except Exception:
        pass  # find the symbol at fault below
    rows, states, failures = [], {}, {}
    for symbol, frame in frames.items():
        try:
            symbol_rows, symbol_states = _rows(chunk, {symbol: frame}, carried)
        except Exception as error:
            failures[symbol] = failed(
                symbol, f"rating failed: {type(error).__name__}: {error}", reports[symbol]
            )
        else:
            rows.append(symbol_rows)
            states |= symbol_states
    return (pd.concat(rows, ignore_index=True) if rows else None), states, failures


def _rows(
    chunk: Chunk, frames: dict[str, pd.DataFrame], carried: dict[str, Carried]
) -> tuple[pd.DataFrame, dict]:
    """Rate the bars of `frames` under the spec's rules (from the carried states where there are), keep
    the rows in `[start, end]`, and stamp their `available_at`; and the engine's states after them."""
    spec = chunk.spec
    rated, states = resume(
        frames,
        {symbol: before.state for symbol, before in carried.items() if symbol in frames},
        rules=spec.rules,
        history_bars=spec.history_bars,
    )
    ts = rated["ts"]
    keep = pd.Series(True, index=rated.index)
    if chunk.start is not None:
        keep &= ts >= chunk.start
    if chunk.end is not None:
        keep &= ts <= chunk.end
    rows = rated[keep.to_numpy()] if not keep.all() else rated
    rows = rows.reset_index(drop=True)
    rows.insert(2, "available_at", available_at(rows["ts"], spec.interval, spec.lag))
    return rows, states


def _rated_input(chunk: Chunk, bars: pd.DataFrame) -> pd.DataFrame:
    """The bars a symbol's stored rows are rated from: all of them; with `history_bars` N only those the
    rows of `[start, end]` read (each rated bar costs N bars of work, so bars before that, and after `end`,
    are not rated at all)."""
    history_bars = chunk.spec.history_bars
    return bars if history_bars is None else _bars_needed(bars, chunk.start, chunk.end, history_bars)


def _bars_needed(
    bars: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, history_bars: int
) -> pd.DataFrame:
    """The bars the stored rows of `[start, end]` read when each is rated from its last `history_bars`."""
    first = 0 if start is None else max(0, int(bars["ts"].searchsorted(start)) - history_bars + 1)
    last = len(bars) if end is None else int(bars["ts"].searchsorted(end, side="right"))
    return bars.iloc[first:last]


def _stored(symbol: str, report: CleaningReport, span: tuple | None) -> SymbolStatus:
    """A rated symbol's ok status, with the count and span of the rows it stored."""
    count = span[0] if span is not None else 0
    return SymbolStatus(
        symbol=symbol,
        ok=True,
        reason=None,
        rows=count,
        first_ts=pd.Timestamp(span[1], unit="us", tz="UTC") if count else None,
        last_ts=pd.Timestamp(span[2], unit="us", tz="UTC") if count else None,
        **_counts(report),
    )


def failed(symbol: str, reason: str, report: CleaningReport | None = None) -> SymbolStatus:
    return SymbolStatus(
        symbol=symbol, ok=False, reason=reason, rows=0, first_ts=None, last_ts=None, **_counts(report)
    )


def _counts(report: CleaningReport | None) -> dict:
    """The cleaning counts a SymbolStatus carries (zeros when the symbol never got as far as cleaning)."""
    if report is None:
        return {
            "rows_in": 0,
            "duplicates": 0,
            "unsorted": 0,
            "zero_volume": 0,
            "refused": 0,
            "refused_reasons": {},
        }
    return {
        "rows_in": report.rows_in,
        "duplicates": report.duplicates,
        "unsorted": report.unsorted,
        "zero_volume": report.zero_volume,
        "refused": report.refused,
        "refused_reasons": dict(report.refused_reasons),
    }


@contextmanager
def timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the time the block takes to `timings[stage]`."""
    began = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] += time.perf_counter() - began
