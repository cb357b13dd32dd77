"""The historical backfill: lake -> clean -> (resample) -> panel ratings -> one immutable run, published
atomically.

Ratings are computed over all the history the lake holds (warm-up first) and only the requested span is
stored, so a stored row is exactly what a backfill of the lake cut at that row would have computed. Symbols
are rated in chunks so memory is bounded by the chunk, not the universe; one bad symbol fails on its own,
among them a symbol whose bars do not have the lake's interval (`service.sources.spacing`).
"""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import batched
from pathlib import Path

import pandas as pd

from service.ratings.engine import rate
from service.sources.bars import CleaningReport, SymbolRefused, clean_bars
from service.sources.lake import Lake, read_candidates, read_returns
from service.sources.resample import resample
from service.sources.spacing import spacing_problem
from storage.catalog import RunInfo, SymbolStatus
from storage.runs import RunWriter
from vocabulary.errors import AsofError, InvalidInput
from vocabulary.features import FEATURES, ROW_META
from vocabulary.spec import BackfillSpec
from vocabulary.time import available_at, iso, parse_interval

STAGES = ("read", "clean", "compute", "write", "publish")
"""The stages `BackfillResult.timings` splits the wall time into (seconds)."""

Progress = Callable[[int, int], None]


class BackfillCancelled(AsofError):
    """`cancelled()` turned true between two chunks; the run was aborted and nothing is visible."""


class BackfillFailed(AsofError):
    """Nothing could be stored (every symbol failed, or none has a bar in the span); nothing is published.

    `statuses` keeps every symbol's reason so a caller (CLI, job) can report them.
    """

    def __init__(self, message: str, statuses: list[SymbolStatus]):
        super().__init__(message)
        self.statuses = statuses


@dataclass(frozen=True)
class BackfillResult:
    run: RunInfo
    statuses: list[SymbolStatus]
    timings: dict[str, float]


def located(data_dir: Path | str, path: str) -> Path:
    """Where a spec's path points: a relative path lies in the data dir (it was named over HTTP and
    admitted there), an absolute one is the CLI user's own file."""
    return Path(path) if Path(path).is_absolute() else Path(data_dir) / path


def open_lake(data_dir: Path | str, spec: BackfillSpec) -> Lake:
    """The spec's lake; one named inside the data dir reads no file that resolves outside it."""
    inside = None if Path(spec.lake).is_absolute() else Path(data_dir).resolve()
    return Lake(located(data_dir, spec.lake), spec.lake_interval, inside=inside)


class HistoricalFeatureBackfill:
    """Backfill a lake into a new run of `data_dir` as `spec` says; `chunk_size` symbols are rated at once,
    which bounds memory."""

    def __init__(self, data_dir: Path | str, spec: BackfillSpec, *, chunk_size: int = 200):
        if chunk_size < 1:
            raise InvalidInput(f"must be at least 1, got {chunk_size}", field="chunk_size")
        self.data_dir = Path(data_dir)
        self.spec = spec
        self.chunk_size = chunk_size

    def run(
        self, *, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None
    ) -> BackfillResult:
        """Compute, store and publish the run; `progress(done, total)` after each chunk of symbols.

        Raises BackfillCancelled when `cancelled()` is true between chunks and BackfillFailed
        when nothing can be stored; either way the run is aborted and the store is unchanged.
        """
        timings = dict.fromkeys(STAGES, 0.0)
        progress = progress or _ignore
        lake = open_lake(self.data_dir, self.spec)
        universe, origin, (start, end) = self._universe(lake)
        if not universe:
            raise InvalidInput(f"the universe is empty: {origin} names no symbols")
        known = set(lake.symbols())
        statuses: dict[str, SymbolStatus] = {}
        with RunWriter(self.data_dir, self.spec) as writer:
            progress(0, len(universe))
            for chunk in batched(universe, self.chunk_size):
                if cancelled is not None and cancelled():
                    raise BackfillCancelled(f"backfill cancelled after {len(statuses)} symbols")
                frames, reports = {}, {}
                for symbol in chunk:
                    loaded = self._load(lake, symbol, known, origin, timings)
                    if isinstance(loaded, SymbolStatus):
                        statuses[symbol] = loaded
                    else:
                        frames[symbol], reports[symbol] = loaded
                with _timed(timings, "compute"):
                    rows = self._rows(frames, start, end)
                with _timed(timings, "write"):
                    if len(rows):
                        writer.write(rows)
                    for status in _stored_statuses(reports, rows):
                        statuses[status.symbol] = status
                progress(len(statuses), len(universe))
            ordered = [statuses[symbol] for symbol in universe]
            for status in ordered:
                writer.add_status(status)
            _check_something_stored(ordered, start, end)
            if cancelled is not None and cancelled():
                raise BackfillCancelled("backfill cancelled before publishing")
            with _timed(timings, "publish"):
                run = writer.publish()
        return BackfillResult(run=run, statuses=ordered, timings=timings)

    def _universe(self, lake: Lake) -> tuple[list[str], str, tuple[pd.Timestamp | None, pd.Timestamp | None]]:
        """The symbols to backfill (deduplicated, in order), where they came from, and the stored span."""
        spec = self.spec
        start, end = spec.start, spec.end
        returns = read_returns(located(self.data_dir, spec.returns)) if spec.returns is not None else None
        if returns is not None and len(returns.index):
            start = returns.index[0] if start is None else start
            end = returns.index[-1] if end is None else end
            if start > end:
                raise InvalidInput(f"start {start.isoformat()} is after end {end.isoformat()}", field="start")
        if spec.symbols is not None:
            symbols, origin = list(spec.symbols), "the symbols given"
        elif spec.candidates is not None:
            candidates = located(self.data_dir, spec.candidates)
            symbols, origin = read_candidates(candidates), f"candidates file {spec.candidates}"
        elif returns is not None:
            symbols, origin = [str(column) for column in returns.columns], f"returns matrix {spec.returns}"
        else:
            symbols, origin = lake.symbols(), f"lake {spec.lake}"
        return list(dict.fromkeys(symbols)), origin, (start, end)

    def _load(
        self, lake: Lake, symbol: str, known: set[str], origin: str, timings: dict[str, float]
    ) -> tuple[pd.DataFrame, CleaningReport] | SymbolStatus:
        """The symbol's bars at the run's interval (cleaned, then resampled when the lake is finer) and its
        cleaning report (about the lake's rows), or its failed status saying why there are none."""
        spec = self.spec
        if symbol not in known:
            return _failed(symbol, f"not found in lake {spec.lake} (named by {origin})")
        try:
            with _timed(timings, "read"):
                raw = lake.read(symbol)
            with _timed(timings, "clean"):
                bars, report = clean_bars(raw, keep_zero_volume=spec.keep_zero_volume)
                problem = spacing_problem(raw["ts"], lake.interval)
        except SymbolRefused as error:
            return _failed(symbol, str(error), error.report)
        except (ValueError, OSError) as error:  # OHLCVError, and anything else a broken file raises
            return _failed(symbol, str(error) or type(error).__name__)
        if problem is not None:
            return _failed(symbol, problem, report)
        if bars.empty:
            return _failed(symbol, "no bars left after cleaning", report)
        if spec.from_interval is not None:
            # The lake's coverage: its newest row, or `end` when that says the data is complete further.
            newest = raw["ts"].max()
            covered = newest if spec.end is None else max(newest, spec.end)
            with _timed(timings, "clean"):
                bars = resample(bars, parse_interval(spec.interval), complete_until=covered)
            if bars.empty:
                return _failed(
                    symbol,
                    f"no complete {spec.interval} period: the newest {spec.from_interval} bar opens at "
                    f"{iso(newest)}, before the first period ends (an `end` past it says the data is "
                    "complete)",
                    report,
                )
        return bars, report

    def _rows(
        self, frames: dict[str, pd.DataFrame], start: pd.Timestamp | None, end: pd.Timestamp | None
    ) -> pd.DataFrame:
        """Rate the chunk's bars under the spec's rules, keep those in `[start, end]`, and stamp their
        `available_at`. With `history_bars` N a stored row reads only the N bars up to it, so bars before
        that (and after `end`) are not rated at all: each rated bar costs N bars of work."""
        if not frames:
            return pd.DataFrame(columns=[*ROW_META, *FEATURES])
        history_bars = self.spec.history_bars
        if history_bars is not None:
            frames = {symbol: _bars_needed(bars, start, end, history_bars) for symbol, bars in frames.items()}
        rated = rate(frames, rules=self.spec.rules, history_bars=history_bars)
        keep = pd.Series(True, index=rated.index)
        if start is not None:
            keep &= rated["ts"] >= start
        if end is not None:
            keep &= rated["ts"] <= end
        rows = rated[keep].reset_index(drop=True)
        rows.insert(2, "available_at", available_at(rows["ts"], self.spec.interval, self.spec.lag))
        return rows[[*ROW_META, *FEATURES]]


def _bars_needed(
    bars: pd.DataFrame, start: pd.Timestamp | None, end: pd.Timestamp | None, history_bars: int
) -> pd.DataFrame:
    """The bars the stored rows of `[start, end]` read when each is rated from its last `history_bars`."""
    first = 0 if start is None else max(0, int(bars["ts"].searchsorted(start)) - history_bars + 1)
    last = len(bars) if end is None else int(bars["ts"].searchsorted(end, side="right"))
    return bars.iloc[first:last]


def _stored_statuses(reports: dict[str, CleaningReport], rows: pd.DataFrame) -> Iterator[SymbolStatus]:
    """One ok status per rated symbol, with the count and span of the rows it stored."""
    stored = rows.groupby("symbol")["ts"].agg(["size", "min", "max"])
    for symbol, report in reports.items():
        count = int(stored.at[symbol, "size"]) if symbol in stored.index else 0
        yield SymbolStatus(
            symbol=symbol,
            ok=True,
            reason=None,
            rows=count,
            first_ts=stored.at[symbol, "min"] if count else None,
            last_ts=stored.at[symbol, "max"] if count else None,
            **_counts(report),
        )


def _failed(symbol: str, reason: str, report: CleaningReport | None = None) -> SymbolStatus:
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


def _check_something_stored(
    statuses: list[SymbolStatus], start: pd.Timestamp | None, end: pd.Timestamp | None
) -> None:
    """Publishing an empty run would shadow the previous one; refuse it and say why."""
    if not any(status.ok for status in statuses):
        reasons = "; ".join(f"{status.symbol}: {status.reason}" for status in statuses[:5])
        more = f" (and {len(statuses) - 5} more)" if len(statuses) > 5 else ""
        raise BackfillFailed(f"every symbol failed, nothing published: {reasons}{more}", statuses)
    if not any(status.rows for status in statuses):
        first = start.isoformat() if start is not None else "the start"
        last = end.isoformat() if end is not None else "the end"
        raise BackfillFailed(f"no symbol has a bar between {first} and {last}, nothing published", statuses)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    began = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] += time.perf_counter() - began


def _ignore(done: int, total: int) -> None:
    """The progress callback when the caller gives none."""
