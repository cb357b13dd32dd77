"""The Alpha Cycle as one use case: backfill the lake, audit the run for lookahead (stopping there if it
fails), backtest both modes, write the report and the wide matrix. `asof pipeline` and `asof demo` call it;
what the user sees along the way is the observer's business."""

import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager, closing
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pandas as pd

from backtest.client import open_features
from backtest.engine import MODES, BacktestResult
from backtest.report import write_report
from backtest.strategy import Strategy
from service.audit.report import AuditReport
from service.audit.run import audit_run
from service.backfill import BackfillResult, HistoricalFeatureBackfill, located
from service.remote import RemoteBackfill
from service.sources.lake import read_candidates, read_returns
from storage.catalog import Catalog
from storage.export import export_matrix, summary_dir
from vocabulary.errors import InvalidInput
from vocabulary.spec import BackfillSpec

Progress = Callable[[int, int], None]


class CycleObserver(Protocol):
    """What the cycle tells whoever runs it, in order."""

    def step(self, title: str) -> None:
        """A step begins: `[n/4] what`."""

    def progress(self, label: str, unit: str, lines: int | None = None) -> AbstractContextManager[Progress]:
        """The `progress(done, total)` callback of one long stage."""

    def backfilled(self, result: BackfillResult) -> None: ...

    def left_out(self, symbols: list[str]) -> None:
        """Candidates the backtest cannot trade: no stored rows, or no returns column."""

    def audited(self, report: AuditReport, markdown: Path) -> None:
        """The audit's report, written as audit.json and audit.md (`markdown`)."""


@dataclass(frozen=True)
class CycleResult:
    backfill: BackfillResult
    audit: AuditReport
    folder: Path
    backtests: dict[str, BacktestResult]
    """Empty when the audit failed: the cycle stops before backtesting a run that could look ahead."""
    report: Path | None
    matrix: Path | None


def alpha_cycle(
    data_dir: Path,
    spec: BackfillSpec,
    strategy: Strategy,
    observer: CycleObserver,
    *,
    samples: int = 20,
    seed: int = 0,
    out: Path | None = None,
    service: str | None = None,
) -> CycleResult:
    """Run the cycle on `spec` (which must name a returns matrix). With `service`, the server at that URL,
    which holds `data_dir`, backfills (the spec's paths relative to the data dir) and serves the backtest;
    otherwise all happens here. The report goes to `out` (default: the run's summary folder,
    `artifacts/summaries/runs/<RUN_ID>/`)."""
    if spec.returns is None:
        raise InvalidInput("the Alpha Cycle backtests over a returns matrix; give one", field="returns")
    returns = located(data_dir, spec.returns)
    matrix = read_returns(returns)
    dynamic = strategy.backtest("dynamic")
    dynamic.schedule(matrix.index)  # too short a matrix fails now, not after the backfill

    observer.step("[1/4] backfill")
    with observer.progress("backfill", "symbols") as progress:
        if service is None:
            backfilled = HistoricalFeatureBackfill(data_dir, spec).run(progress=progress)
        else:  # the server holds the data dir: it does the writing
            backfilled = RemoteBackfill(service, data_dir).run(spec, progress)
    observer.backfilled(backfilled)
    run = backfilled.run
    folder = out or summary_dir(data_dir, run.run_id)
    candidates = None if spec.candidates is None else located(data_dir, spec.candidates)
    universe = _universe(observer, matrix, candidates, run.symbols)

    observer.step(f"[2/4] audit of run {run.run_id} ({samples} samples per check, seed {seed})")
    with observer.progress("audit", "checks") as progress:
        audit = audit_run(
            data_dir,
            run.run_id,
            samples=samples,
            seed=seed,
            backtest=dynamic,
            returns=returns,
            symbols=universe,
            progress=progress,
        )
    observer.audited(audit, audit.write(folder))
    if not audit.passed:
        return CycleResult(backfilled, audit, folder, {}, None, None)

    observer.step("[3/4] backtest, dynamic and static")
    with closing(open_features(service, data_dir, run_id=run.run_id)) as features:
        backtests = strategy.run(
            MODES,
            matrix,
            features,
            universe,
            progress=lambda label: observer.progress(label, "rebalances", 10),
        )

    observer.step("[4/4] report")
    settings = {
        "run_id": run.run_id,
        "audit": f"{audit.status} ({samples} samples per check, seed {seed}; audit.md)",
        "lake": spec.lake,
        "returns": spec.returns,
        "candidates": spec.candidates,
        "features": service or data_dir,
        **strategy.settings(),
    }
    files = write_report(folder, backtests, settings=settings, title=f"Alpha Cycle of run {run.run_id}")
    matrix_file = export_matrix(Catalog(data_dir), run.run_id)
    if folder != summary_dir(data_dir, run.run_id):
        (folder / "data").mkdir(exist_ok=True)
        matrix_file = Path(shutil.copy2(matrix_file, folder / "data" / matrix_file.name))
    return CycleResult(backfilled, audit, folder, backtests, files.report, matrix_file)


def _universe(
    observer: CycleObserver, returns: pd.DataFrame, candidates: Path | None, stored: list[str]
) -> list[str]:
    """The symbols to backtest: the candidates (or returns columns) the run stores."""
    wanted = read_candidates(candidates) if candidates is not None else [str(c) for c in returns.columns]
    held = set(stored)
    left_out = [symbol for symbol in wanted if symbol not in held or symbol not in returns.columns]
    if left_out:
        observer.left_out(left_out)
    universe = [symbol for symbol in wanted if symbol not in left_out]
    if not universe:
        raise InvalidInput(
            "no symbol is both stored by the run and in the returns matrix; nothing to backtest"
        )
    return universe
