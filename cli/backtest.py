"""`asof backtest`: re-select at every rebalance from the point-in-time features, and report.

The strategy options are shared with `asof pipeline` (the option types below, gathered in
`backtest.strategy.Strategy`).
Errors print one line naming what was wrong and exit 1, never a traceback.
"""

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, closing
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from backtest.client import open_features
from backtest.engine import MODES, BacktestResult
from backtest.optimisers import OPTIMISERS
from backtest.report import LABELS, write_report
from backtest.strategy import Strategy
from cli.console import (
    INTERVALS_HELP,
    DatasetOption,
    MaxStaleness,
    dataset_or_default,
    one_line_errors,
    progress_bar,
    timings_text,
)
from cli.root import app
from service.sources.lake import read_candidates, read_returns


class ModeChoice(StrEnum):
    dynamic = "dynamic"
    static = "static"
    both = "both"


Returns = Annotated[Path, typer.Option(help="returns_matrix.parquet: UTC index, one column per symbol.")]
Lag = Annotated[int, typer.Option(help="Publication lag in seconds after each bar's close.")]
RebalanceEvery = Annotated[int, typer.Option(help="Rows between rebalances.")]
Lookback = Annotated[int, typer.Option(help="Rows of trailing returns each decision sees.")]
TopK = Annotated[int, typer.Option(help="Symbols held at most.")]
Threshold = Annotated[float, typer.Option(help="Keep symbols whose --threshold-on is above this.")]
ThresholdOn = Annotated[str, typer.Option(help="Feature the threshold applies to.")]
RankBy = Annotated[str, typer.Option(help="Feature ranked from high to low (ties by symbol).")]
MaxCorrelation = Annotated[
    float | None, typer.Option(help="Skip a pick correlated above this with a better-ranked one.")
]
Optimizer = Annotated[str, typer.Option(help=f"Weights on the window: {', '.join(OPTIMISERS)}.")]
CostBps = Annotated[float, typer.Option(help="Trading cost in basis points of the traded value.")]


@app.command()
def backtest(
    returns: Returns,
    out: Annotated[
        Path, typer.Option(help="Folder for equity.csv, rebalances.csv, metrics.json, plots, report.")
    ],
    candidates: Annotated[
        Path | None,
        typer.Option(help="portfolio_candidates.json narrowing the universe (default: every column)."),
    ] = None,
    service: Annotated[
        str | None, typer.Option(help="Feature service base URL, e.g. http://localhost:8000.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Read features from this data directory instead.")
    ] = None,
    dataset: DatasetOption = None,
    run_id: Annotated[
        str | None, typer.Option(help="Pin this run (default: the newest of the dataset).")
    ] = None,
    interval: Annotated[
        str, typer.Option(help=f"Bar interval of the returns rows and the run: {INTERVALS_HELP}.")
    ] = Strategy.interval,
    lag: Lag = Strategy.lag,
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
    mode: Annotated[
        ModeChoice,
        typer.Option(help="dynamic (point in time), static (newest cross-section: looks ahead), both."),
    ] = ModeChoice.dynamic,
) -> None:
    """Backtest a rating strategy that re-selects at every rebalance from the features as of that instant.

    At row k of the returns matrix the decision reads the features as of the close of bar k
    (ts_k + interval + lag) and the returns of rows <= k, and its weights earn rows k+1 onward.
    --mode static ranks every rebalance on the newest cross-section instead (lookahead, for comparison).

    Example: asof backtest --returns data/returns_matrix.parquet --service http://localhost:8000
    --rebalance-every 20 --top-k 10 --optimizer hrp --mode both --out reports/backtest
    """
    with one_line_errors():
        if (service is None) == (data_dir is None):
            raise ValueError("give exactly one of --service URL or --data-dir DIR")
        matrix = read_returns(returns)
        symbols = read_candidates(candidates) if candidates is not None else None
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
        settings = {"returns": returns, "features": service or data_dir, **strategy.settings()}
        # A server follows its own default dataset; a data dir read here follows this environment's.
        chosen = dataset if service else dataset_or_default(dataset)
        features = open_features(service, data_dir, run_id=run_id, dataset=chosen)
        with closing(features):
            results = strategy.run(
                MODES if mode is ModeChoice.both else (mode.value,),
                matrix,
                features,
                symbols,
                progress=backtest_progress,
            )
        files = write_report(out, results, settings={**settings, "run_id": features.run_id})
        print_summary(results, files.report)


def backtest_progress(label: str) -> AbstractContextManager[Callable[[int, int], None]]:
    """A backtest's progress: a bar on a terminal, about ten lines in a log."""
    return progress_bar(label, "rebalances", lines=10)


def print_summary(results: Mapping[str, BacktestResult], report: Path) -> None:
    for mode, result in results.items():
        m = result.metrics
        typer.echo(
            f"{LABELS[mode]}: CAGR {m['cagr']:.2%}, Sharpe {m['sharpe']:.2f}, max drawdown "
            f"{m['max_drawdown']:.2%}, {m['rebalances']} rebalances ({timings_text(result.timings)})"
        )
    typer.echo(f"report: {report}")
