"""Keeping a run current: a new run of the same dataset that shares the parent run's parts and adds the
rows of the bars the lake holds after each symbol's carried state, rated from that state, so that the work
grows with the new bars, not the history.

The parent's spec is kept (rules, history window, span, lag, the universe's source), read again: symbols new
to the universe are backfilled in full, a symbol whose lake file has no new bar (delisted, halted) simply
gets no row, and every symbol the parent holds stays. A symbol whose bars already rated have changed in the
lake (a vendor's correction) is *revised*: rated again in full, its parent rows left out of the new run, and
listed with the first bar that changed. The rows of the new run are, value for value, those a full backfill
of the extended lake would store (`service.chunks`, `service.carried`); the parent run still answers what it
answered. When nothing changed, no run is published.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from service.backfill import BackfillResult, Base, HistoricalFeatureBackfill, Progress
from service.carried import read_carried
from service.chunks import CHUNK_BARS
from service.executors import Executor
from storage.catalog import RunInfo
from storage.read import FeatureStore
from vocabulary.errors import Conflict
from vocabulary.spec import NEWEST, UpdateSpec


class CarriesNoState(Conflict):
    """The run was made before runs carried their state (or by a version that did not store it)."""

    def __init__(self, run: RunInfo) -> None:
        super().__init__(
            f"run {run.run_id} carries no state to continue from (it was made before updates existed): "
            "backfill its dataset again, then update that run"
        )


def parent_of(data_dir: Path | str, run_id: str, dataset: str | None = None) -> RunInfo:
    """The run named, or with NEWEST the newest run of `dataset` (default: the only dataset); NotFound
    for an unknown run or dataset, InvalidInput for a run of another dataset than the one named."""
    return FeatureStore(data_dir, index=False).run(None if run_id == NEWEST else run_id, dataset)


def updatable(run: RunInfo) -> RunInfo:
    """`run`, when it carries the state an update continues from; CarriesNoState otherwise."""
    if not run.state_files:
        raise CarriesNoState(run)
    return run


def update_run(
    data_dir: Path | str,
    spec: UpdateSpec,
    *,
    chunk_bars: int = CHUNK_BARS,
    ray_address: str | None = None,
    executor: Executor | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> BackfillResult:
    """Update the run `spec` names into a new run (see the module docstring); its `update` says what was
    revised, added and kept, and whether a run was published. Raises as `HistoricalFeatureBackfill.run`."""
    parent = updatable(parent_of(data_dir, spec.run_id, spec.dataset))
    own = replace(parent.spec, lake=spec.lake or parent.spec.lake, executor=spec.executor)
    base = Base(parent, read_carried(parent.state_files[-1], own))
    backfill = HistoricalFeatureBackfill(
        data_dir, own, chunk_bars=chunk_bars, ray_address=ray_address, executor=executor, base=base
    )
    return backfill.run(progress=progress, cancelled=cancelled)
