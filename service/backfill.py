"""The historical backfill: lake -> clean -> (resample) -> panel ratings -> one immutable run, published
atomically.

Ratings are computed over all the history the lake holds (warm-up first) and only the requested span is
stored, so a stored row is exactly what a backfill of the lake cut at that row would have computed. The
universe is cut into chunks (`service.chunks`: symbols whose lake rows fit a budget of bars x features, so
memory is bounded by the chunk, not the universe) that an executor runs in parallel, on this machine's
cores or on a Ray cluster (`service.executors`); each stages its rows as a piece of the run, and the run's
parts are then written from the pieces, in parallel too (`storage.parts`). One bad symbol fails on its own,
among them a symbol whose bars do not have the lake's interval (`service.sources.spacing`); a chunk whose
worker fails altogether is retried one symbol per task, so that a symbol that kills its worker fails alone.
Each chunk also hands back its symbols' carried states (`service.carried`), which the run stores and an
update (`service.update`: this backfill with a `Base`) continues from.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd
import pyarrow as pa

from service.carried import Carried
from service.carried import to_table as carried_table
from service.chunks import CHUNK_BARS, Chunk, ChunkResult, failed, plan_chunks, run_chunk, timed
from service.executors import Cancelled, Executor, executor_for, never, task_runner
from service.sources.lake import Lake, read_candidates, read_returns
from storage.catalog import RunInfo, SymbolStatus
from storage.runs import RunWriter
from vocabulary.errors import AsofError, InvalidInput
from vocabulary.spec import BackfillSpec

STAGES = ("read", "clean", "compute", "write", "publish")
"""The stages `BackfillResult.timings` splits the work into (seconds): read, clean, compute and write are
summed over the workers (so on several cores they add up to more than the wall time), publish (the parts,
the rename and the catalog) is wall time."""

Progress = Callable[[int, int], None]

CHUNKS_PER_WORKER = 4


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
class Base:
    """What an update continues: the parent run, and the state it carried for each of its symbols."""

    run: RunInfo
    carried: dict[str, Carried]

    def carried_of(self, symbols: tuple[str, ...]) -> dict[str, Carried]:
        return {symbol: self.carried[symbol] for symbol in symbols if symbol in self.carried}


@dataclass(frozen=True)
class Updated:
    """What an update did beyond a backfill's work. `revised`: symbols whose bars already rated changed in
    the lake, rated again in full (their parent's rows are not served by the new run), with the open time
    of the first bar that changed; `added`: symbols new to the run, backfilled in full; `kept`: symbols
    that could not be read this time, whose rows and state the run keeps as they were, and why;
    `published`: False when nothing changed (no new row, no revision), so no run was published and the
    parent is still the current one."""

    parent: str
    revised: dict[str, pd.Timestamp]
    added: list[str]
    kept: dict[str, str]
    published: bool = True


@dataclass(frozen=True)
class BackfillResult:
    """The run published (an update that found nothing new: its parent), how each symbol fared, the
    seconds of each stage (STAGES), and for an update what it did (`update`)."""

    run: RunInfo
    statuses: list[SymbolStatus]
    timings: dict[str, float]
    update: Updated | None = None


def located(data_dir: Path | str, path: str) -> Path:
    """Where a spec's path points: a relative path lies in the data dir (it was named over HTTP and
    admitted there), an absolute one is the CLI user's own file."""
    return Path(path) if Path(path).is_absolute() else Path(data_dir) / path


def open_lake(data_dir: Path | str, spec: BackfillSpec) -> Lake:
    """The spec's lake; one named inside the data dir reads no file that resolves outside it."""
    inside = None if Path(spec.lake).is_absolute() else Path(data_dir).resolve()
    return Lake(located(data_dir, spec.lake), spec.lake_interval, inside=inside)


class HistoricalFeatureBackfill:
    """Backfill a lake into a new run of `data_dir` as `spec` says. `chunk_bars` lake rows are rated at once
    per worker, which bounds memory; `ray_address` is the Ray cluster of `spec.executor == "ray"` (None: a
    local one); `executor` overrides both (tests, benchmarks). With a `base`, the run is an update of
    `base.run` (`service.update`): it shares the parent's parts and rates only the bars after each
    symbol's carried state, plus the symbols new to the universe and those revised in full."""

    def __init__(
        self,
        data_dir: Path | str,
        spec: BackfillSpec,
        *,
        chunk_bars: int = CHUNK_BARS,
        ray_address: str | None = None,
        executor: Executor | None = None,
        base: Base | None = None,
    ):
        if chunk_bars < 1:
            raise InvalidInput(f"must be at least 1, got {chunk_bars}", field="chunk_bars")
        self.data_dir = Path(data_dir)
        self.spec = spec
        self.chunk_bars = chunk_bars
        self.ray_address = ray_address
        self.executor = executor
        self.base = base

    def run(
        self, *, progress: Progress | None = None, cancelled: Callable[[], bool] | None = None
    ) -> BackfillResult:
        """Compute, store and publish the run; `progress(done, total)` as chunks of symbols finish.

        Raises BackfillCancelled when `cancelled()` turns true (every task is stopped first) and
        BackfillFailed when nothing can be stored; either way the run is aborted and the store is unchanged.
        """
        timings = dict.fromkeys(STAGES, 0.0)
        progress = progress or _ignore
        cancelled = cancelled or never
        lake = open_lake(self.data_dir, self.spec)
        universe, origin, (start, end) = self._universe(lake)
        base = self.base
        if base is not None:  # an update keeps every symbol its parent carries, and adds the universe's
            named = set(universe)
            universe += [symbol for symbol in sorted(base.carried) if symbol not in named]
        if not universe:
            raise InvalidInput(f"the universe is empty: {origin} names no symbols")
        spec = self.spec
        known = set(lake.symbols())
        statuses = {
            symbol: failed(symbol, f"not found in lake {spec.lake} (named by {origin})")
            for symbol in universe
            if symbol not in known
        }
        present = [symbol for symbol in universe if symbol in known]
        executor = self.executor or executor_for(spec.executor, self.ray_address)
        made_by, lineage = (
            ("backfill", ()) if base is None else ("update", (base.run.run_id, *base.run.lineage))
        )
        try:
            with RunWriter(self.data_dir, spec, made_by=made_by, lineage=lineage) as writer:
                progress(0, len(universe))
                chunks = [
                    Chunk(
                        spec,
                        start,
                        end,
                        lake.path,
                        lake.inside,
                        symbols,
                        writer.pieces,
                        f"chunk-{k:06d}",
                        in_memory=executor.shares_memory,
                        carried={} if base is None else base.carried_of(symbols),
                        lineage=() if base is None else base.run.state_files,
                        source=lake if executor.shares_memory else None,
                    )
                    for k, symbols in enumerate(self._plan(lake, present, executor.parallelism))
                ]
                states: list[pa.Table] = []
                revised: dict[str, pd.Timestamp] = {}
                new_rows = 0
                for chunk_result in self._rate(executor, chunks, cancelled):
                    statuses |= {status.symbol: status for status in chunk_result.statuses}
                    if chunk_result.staged is not None:
                        writer.add_staged(chunk_result.staged)
                        new_rows += chunk_result.staged.rows
                    if chunk_result.states is not None:
                        states.append(chunk_result.states)
                    revised |= chunk_result.revised
                    for stage, seconds in chunk_result.timings.items():
                        timings[stage] += seconds
                    progress(len(statuses), len(universe))
                ordered = [statuses[symbol] for symbol in universe]
                if base is None:
                    for status in ordered:
                        writer.add_status(status)
                    _check_something_stored(ordered, start, end)
                    updated = None
                else:
                    updated = _continue(writer, base, ordered, revised, states)
                    if not new_rows and not revised:  # nothing a reader would see changed: no new run
                        return BackfillResult(base.run, ordered, timings, replace(updated, published=False))
                for table in states:
                    writer.add_states(table)
                if cancelled():
                    raise BackfillCancelled("backfill cancelled before publishing")
                with timed(timings, "publish"):
                    run = writer.publish(
                        task_runner(executor, cancelled),
                        executor.parallelism if base is None else 1,  # an update's few rows: few parts
                    )
        except Cancelled as error:
            raise BackfillCancelled(f"backfill cancelled: {error}") from None
        finally:
            if self.executor is None:
                executor.close()
        return BackfillResult(run=run, statuses=ordered, timings=timings, update=updated)

    def _plan(self, lake: Lake, symbols: list[str], parallelism: int) -> list[tuple[str, ...]]:
        """The chunks: at most `chunk_bars` lake rows each, and at least CHUNKS_PER_WORKER per worker when the
        universe allows, so that one worker's reading and cleaning (which hold the GIL) overlap another's
        rating (which does not), and the workers finish together."""
        rows = lake.rows(symbols)
        budget = min(self.chunk_bars, max(1, sum(rows.values()) // (CHUNKS_PER_WORKER * parallelism)))
        return plan_chunks(symbols, rows, budget)

    def _rate(
        self, executor: Executor, chunks: list[Chunk], cancelled: Callable[[], bool]
    ) -> Iterator[ChunkResult]:
        """Every chunk's result as it finishes; a chunk whose task failed as a whole (its worker died) is
        run again one symbol per task, and a symbol that fails alone too fails with the reason."""
        retried: list[Chunk] = []
        for position, outcome in executor.as_completed(run_chunk, chunks, cancelled):
            if isinstance(outcome, BaseException):
                chunk = chunks[position]
                retried += [
                    replace(chunk, symbols=(symbol,), name=f"{chunk.name}-{k:06d}")
                    for k, symbol in enumerate(chunk.symbols)
                ]
            else:
                yield outcome
        for position, outcome in executor.as_completed(run_chunk, retried, cancelled):
            if isinstance(outcome, BaseException):
                (symbol,) = retried[position].symbols
                reason = f"the worker rating it failed: {type(outcome).__name__}: {outcome}"
                yield ChunkResult([failed(symbol, reason)], None)
            else:
                yield outcome

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


def _continue(
    writer: RunWriter,
    base: Base,
    statuses: list[SymbolStatus],
    revised: dict[str, pd.Timestamp],
    states: list[pa.Table],
) -> Updated:
    """Make the writer's run an update of `base.run`: it inherits the parent's rows but the revised
    symbols'; a symbol the parent carries that could not be read or rated now keeps its rows, status and
    state as they were (it is `kept`, with why); every other symbol's status is this run's."""
    kept = {
        status.symbol: status.reason or "not updated"
        for status in statuses
        if not status.ok and status.symbol in base.carried and status.symbol not in revised
    }
    for status in statuses:
        if status.symbol not in kept:
            writer.add_status(status)
    writer.inherit(base.run, without=revised)
    if kept:
        states.append(carried_table({symbol: base.carried[symbol].unchanged() for symbol in kept}))
    added = [status.symbol for status in statuses if status.rows and status.symbol not in base.carried]
    return Updated(base.run.run_id, revised, added, kept)


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


def _ignore(done: int, total: int) -> None:
    """The progress callback when the caller gives none."""
