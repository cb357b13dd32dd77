"""`asof backtest`: re-select at every rebalance from the point-in-time features, and report.

Errors print one line naming what was wrong and exit 1, never a traceback.
"""

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from backtest.client import FeatureClient, HttpFeatures, LocalFeatures
from backtest.engine import MODES, Backtest, BacktestResult
from backtest.optimisers import OPTIMISERS
from backtest.report import LABELS, write_report
from backtest.selection import SelectionPolicy
from cli.app import app
from cli.console import one_line_errors, progress_bar
from service.sources import read_candidates, read_returns


class ModeChoice(StrEnum):
    dynamic = "dynamic"
    static = "static"
    both = "both"


@app.command()
def backtest(
    returns: Annotated[Path, typer.Option(help="returns_matrix.parquet: UTC index, one column per symbol.")],
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
    run_id: Annotated[
        str | None, typer.Option(help="Pin this run (default: the newest of --interval).")
    ] = None,
    interval: Annotated[str, typer.Option(help="Bar interval of the returns rows and the run.")] = "1d",
    lag: Annotated[int, typer.Option(help="Publication lag in seconds after each bar's close.")] = 0,
    rebalance_every: Annotated[int, typer.Option(help="Rows between rebalances.")] = 20,
    lookback: Annotated[int, typer.Option(help="Rows of trailing returns each decision sees.")] = 252,
    top_k: Annotated[int, typer.Option(help="Symbols held at most.")] = 10,
    threshold: Annotated[float, typer.Option(help="Keep symbols whose --threshold-on is above this.")] = 0.1,
    threshold_on: Annotated[str, typer.Option(help="Feature the threshold applies to.")] = "Recommend.All",
    rank_by: Annotated[
        str, typer.Option(help="Feature ranked from high to low (ties by symbol).")
    ] = "Recommend.All",
    max_correlation: Annotated[
        float | None, typer.Option(help="Skip a pick correlated above this with a better-ranked one.")
    ] = None,
    optimizer: Annotated[str, typer.Option(help=f"Weights on the window: {', '.join(OPTIMISERS)}.")] = "hrp",
    cost_bps: Annotated[float, typer.Option(help="Trading cost in basis points of the traded value.")] = 10.0,
    max_staleness: Annotated[int, typer.Option(help="Leave out symbols older than this many intervals.")] = 5,
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
        policy = SelectionPolicy(
            rank_by=rank_by,
            top_k=top_k,
            threshold=threshold,
            threshold_on=threshold_on,
            max_correlation=max_correlation,
        )
        settings = {
            "returns": returns,
            "features": service or data_dir,
            "interval": interval,
            "lag_seconds": lag,
            "rebalance_every": rebalance_every,
            "lookback": lookback,
            "selection": f"{threshold_on} > {threshold}, rank by {rank_by}, top {top_k}"
            + (f", max correlation {max_correlation}" if max_correlation is not None else ""),
            "optimizer": optimizer,
            "cost_bps": cost_bps,
        }
        features: FeatureClient = (
            HttpFeatures(service, run_id=run_id) if service else LocalFeatures(data_dir, run_id=run_id)
        )
        results: dict[str, BacktestResult] = {}
        for name in MODES if mode is ModeChoice.both else (mode.value,):
            engine = Backtest(
                interval=interval,
                lag=pd.Timedelta(seconds=lag),
                rebalance_every=rebalance_every,
                lookback=lookback,
                policy=policy,
                optimizer=optimizer,
                cost_bps=cost_bps,
                mode=name,
                max_staleness=max_staleness,
            )
            with progress_bar(f"backtest {name}", "rebalances", lines=10) as progress:
                results[name] = engine.run(matrix, features, symbols=symbols, progress=progress)
        files = write_report(out, results, settings={**settings, "run_id": features.run_id})
        print_summary(results, files.report)


def print_summary(results: dict[str, BacktestResult], report: Path) -> None:
    for mode, result in results.items():
        m = result.metrics
        timings = ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result.timings.items())
        typer.echo(
            f"{LABELS[mode]}: CAGR {m['cagr']:.2%}, Sharpe {m['sharpe']:.2f}, max drawdown "
            f"{m['max_drawdown']:.2%}, {m['rebalances']} rebalances ({timings})"
        )
    typer.echo(f"report: {report}")
