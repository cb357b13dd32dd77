"""`asof pipeline`: the Alpha Cycle (backfill, audit, backtest, report) in one command, on the terminal.

Errors print one line naming what was wrong and exit 1; a failed audit exits 1 after naming the rows at fault.
"""

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from backtest.strategy import Strategy
from cli.audit import print_audit
from cli.backtest import (
    CostBps,
    Lag,
    Lookback,
    MaxCorrelation,
    Optimizer,
    RankBy,
    RebalanceEvery,
    Returns,
    Threshold,
    ThresholdOn,
    TopK,
    print_summary,
)
from cli.console import (
    INTERVALS_HELP,
    DataDir,
    KeepZeroVolume,
    MaxStaleness,
    one_line_errors,
    progress_bar,
    symbol_table,
)
from cli.root import app
from service.audit.report import AuditReport
from service.backfill import BackfillFailed, BackfillResult
from service.cycle import Progress, alpha_cycle
from vocabulary.spec import BackfillSpec


@app.command()
def pipeline(
    lake: Annotated[Path, typer.Option(help="OHLCV lake: a folder of per-symbol files or one long file.")],
    returns: Returns,
    candidates: Annotated[
        Path | None,
        typer.Option(help="portfolio_candidates.json choosing the universe (default: the returns columns)."),
    ] = None,
    interval: Annotated[
        str, typer.Option(help=f"Bar interval of the lake and the returns rows: {INTERVALS_HELP}.")
    ] = Strategy.interval,
    lag: Lag = Strategy.lag,
    keep_zero_volume: KeepZeroVolume = False,
    service: Annotated[
        str | None, typer.Option(help="Backtest through this feature service (default: read the data dir).")
    ] = None,
    rebalance_every: RebalanceEvery = Strategy.rebalance_every,
    lookback: Lookback = Strategy.lookback,
    top_k: TopK = Strategy.top_k,
    threshold: Threshold = Strategy.threshold,
    threshold_on: ThresholdOn = Strategy.threshold_on,
    rank_by: RankBy = Strategy.rank_by,
    max_correlation: MaxCorrelation = Strategy.max_correlation,
    optimizer: Optimizer = Strategy.optimizer,
    cost_bps: CostBps = Strategy.cost_bps,
    max_staleness: MaxStaleness = Strategy.max_staleness,
    samples: Annotated[int, typer.Option(help="Audit samples per check.")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the audit samples.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the report (default: <data-dir>/artifacts/summaries/runs/<RUN_ID>/)."),
    ] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """The Alpha Cycle: backfill the lake, audit the run for lookahead, backtest (dynamic and static), report.

    The backfill comes before any validation, as the seed describes; a failed audit stops the cycle with exit
    status 1 before the backtest runs. The report folder gets the audit (audit.json, audit.md), the
    backtest of both modes (report.md, metrics.json, equity.csv, rebalances.csv, plots) and the run's
    wide matrix (data/features_matrix.parquet).

    Example: asof pipeline --lake data/lake --returns data/returns_matrix.parquet
    --candidates data/portfolio_candidates.json --top-k 10 --optimizer hrp --data-dir data
    """
    with one_line_errors():
        strategy = Strategy(
            interval=interval,
            lag=lag,
            rebalance_every=rebalance_every,
            lookback=lookback,
            top_k=top_k,
            threshold=threshold,
            threshold_on=threshold_on,
            rank_by=rank_by,
            max_correlation=max_correlation,
            optimizer=optimizer,
            cost_bps=cost_bps,
            max_staleness=max_staleness,
        )
        spec = BackfillSpec(
            lake=_recorded(lake, data_dir, service),
            interval=interval,
            candidates=None if candidates is None else _recorded(candidates, data_dir, service),
            returns=_recorded(returns, data_dir, service),
            lag=pd.Timedelta(seconds=lag),
            keep_zero_volume=keep_zero_volume,
        )
        observer = ConsoleObserver()
        try:
            result = alpha_cycle(
                data_dir, spec, strategy, observer, samples=samples, seed=seed, out=out, service=service
            )
        except BackfillFailed as failure:
            observer.console.print(symbol_table(failure.statuses))
            raise
        if not result.audit.passed:
            raise typer.Exit(1)
        typer.echo(f"features matrix: {result.matrix}")
        print_summary(result.backtests, result.report)


def _recorded(path: Path, data_dir: Path, service: str | None) -> str:
    """A path as the run records it: absolute, so the audit finds it later from any directory; relative to
    the data dir when a server backfills (it reads only inside its data dir, which it shares with us)."""
    if service is None:
        return str(path.resolve())
    if not path.resolve().is_relative_to(data_dir.resolve()):
        raise ValueError(
            f"{path}: with --service, inputs must be inside the data dir the server uses ({data_dir})"
        )
    return path.resolve().relative_to(data_dir.resolve()).as_posix()


class ConsoleObserver:
    """The cycle on the terminal: step titles, progress bars, the backfill line and the audit table."""

    def __init__(self) -> None:
        self.console = Console(soft_wrap=False, highlight=False)

    def step(self, title: str) -> None:
        self.console.print(title)

    def progress(self, label: str, unit: str, lines: int | None = None) -> AbstractContextManager[Progress]:
        return progress_bar(label, unit, lines=lines)

    def backfilled(self, result: BackfillResult) -> None:
        """One line for the run, and a table of the symbols that failed (the per-symbol counts of every
        symbol are in the catalog: `GET /runs/{run_id}`)."""
        run, statuses = result.run, result.statuses
        failed = [status for status in statuses if not status.ok]
        dropped = sum(status.duplicates + status.zero_volume for status in statuses)
        refused = sum(status.refused for status in statuses)
        typer.echo(
            f"run {run.run_id}: {len(statuses) - len(failed)} of {len(statuses)} symbols ok, {run.rows} rows "
            f"from {run.start:%Y-%m-%d} to {run.end:%Y-%m-%d}, {dropped} bars dropped, {refused} refused "
            f"({sum(result.timings.values()):.1f} s)"
        )
        if failed:
            self.console.print(symbol_table(failed))

    def left_out(self, symbols: list[str]) -> None:
        shown = ", ".join(symbols[:5]) + (f" (+{len(symbols) - 5} more)" if len(symbols) > 5 else "")
        self.console.print(f"left out of the backtest (no stored rows or no returns column): {shown}")

    def audited(self, report: AuditReport, markdown: Path) -> None:
        print_audit(report, markdown)
