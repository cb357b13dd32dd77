"""`asof audit`, `asof pipeline`, `asof demo`: the Alpha Cycle (backfill, audit, backtest, report) in one
command, and the forensic lookahead audit on its own.

Errors print one line naming what was wrong and exit 1; a failed audit exits 1 after naming the rows at fault.
"""

import shutil
from contextlib import closing, nullcontext
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console
from rich.table import Table

from backtest.client import HttpFeatures, LocalFeatures
from backtest.engine import MODES
from backtest.report import write_report
from cli.app import app
from cli.console import DataDir, existing_data_dir, one_line_errors, progress_bar, symbol_table
from cli.trading import (
    CostBps,
    Lag,
    Lookback,
    MaxCorrelation,
    MaxStaleness,
    Optimizer,
    RankBy,
    RebalanceEvery,
    Returns,
    Strategy,
    Threshold,
    ThresholdOn,
    TopK,
    print_summary,
)
from service.audit import AuditReport, audit_run
from service.backfill import BackfillFailed, BackfillResult, HistoricalFeatureBackfill
from service.sources import read_candidates, read_returns
from service.universe import SyntheticUniverse
from storage.catalog import Catalog
from storage.export import export_matrix, matrix_path
from storage.time import interval_length


def summary_dir(data_dir: Path, run_id: str) -> Path:
    """Where a run's reports go: `artifacts/summaries/runs/<RUN_ID>/`, beside its exported matrix."""
    return matrix_path(data_dir, run_id).parent.parent


@app.command()
def audit(
    run_id: Annotated[str | None, typer.Option(help="The run to audit (default: the newest).")] = None,
    samples: Annotated[
        int, typer.Option(help="Samples per check: (symbol, T) pairs and as_of instants.")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the samples; the same seed audits the same rows.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for audit.json and audit.md (default: artifacts/summaries/runs/<RUN_ID>/)."
        ),
    ] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Audit a run for lookahead: truncation invariance, serving, and future poisoning of the backtest.

    1. Stored rows equal the features recomputed from the lake cut at the instant they were served.
    2. Every served row has available_at <= as_of and is the newest such row (checked independently).
    3. With every price and return after T replaced by garbage, no backtest decision at or before T changes.
    A violation names the row (symbol, ts, field, stored vs expected) and the command exits 1.

    Example: asof audit --run-id 20240301T120000Z-3f2a1c --samples 50 --data-dir data
    """
    with one_line_errors():
        report = audit_run(
            existing_data_dir(data_dir), run_id, samples=samples, seed=seed, progress=_announce
        )
        _finish_audit(report, out or summary_dir(data_dir, report.run_id))


@app.command()
def pipeline(
    lake: Annotated[Path, typer.Option(help="OHLCV lake: a folder of per-symbol files or one long file.")],
    returns: Returns,
    candidates: Annotated[
        Path | None,
        typer.Option(help="portfolio_candidates.json choosing the universe (default: the returns columns)."),
    ] = None,
    interval: Annotated[
        str, typer.Option(help="Bar interval of the lake and the returns rows.")
    ] = Strategy.interval,
    lag: Lag = Strategy.lag,
    keep_zero_volume: Annotated[
        bool, typer.Option(help="Keep zero-volume bars (dropped by default).")
    ] = False,
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
    console = Console(soft_wrap=False, highlight=False)
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
        # The run records where its inputs are, for the audit (now or later, from any directory) to find them.
        lake, returns = lake.resolve(), returns.resolve()
        candidates = candidates.resolve() if candidates is not None else None
        matrix = read_returns(returns)
        strategy.backtest("dynamic").schedule(
            matrix.index
        )  # too short a matrix fails now, not after the backfill

        console.print("[1/4] backfill")
        try:
            with progress_bar("backfill", "symbols") as progress:
                backfilled = HistoricalFeatureBackfill(
                    data_dir,
                    lake=lake,
                    interval=interval,
                    candidates=candidates,
                    returns=returns,
                    lag=pd.Timedelta(seconds=lag),
                    keep_zero_volume=keep_zero_volume,
                ).run(progress=progress)
        except BackfillFailed as failure:
            console.print(symbol_table(failure.statuses))
            raise
        _print_backfill(console, backfilled)
        run = backfilled.run
        folder = out or summary_dir(data_dir, run.run_id)
        universe = _universe(console, matrix, candidates, run.symbols)

        console.print(f"[2/4] audit of run {run.run_id} ({samples} samples per check, seed {seed})")
        report = audit_run(
            data_dir,
            run.run_id,
            samples=samples,
            seed=seed,
            backtest=strategy.backtest("dynamic"),
            returns=returns,
            symbols=universe,
            progress=_announce,
        )
        _finish_audit(report, folder)

        console.print("[3/4] backtest, dynamic and static")
        with (
            closing(HttpFeatures(service, run_id=run.run_id))
            if service
            else nullcontext(LocalFeatures(data_dir, run_id=run.run_id))
        ) as features:
            results = strategy.run(MODES, matrix, features, universe)

        console.print("[4/4] report")
        settings = {
            "run_id": run.run_id,
            "audit": f"{report.status} ({samples} samples per check, seed {seed}; audit.md)",
            "lake": lake,
            "returns": returns,
            "candidates": candidates,
            "features": service or data_dir,
            **strategy.settings(),
        }
        files = write_report(folder, results, settings=settings, title=f"Alpha Cycle of run {run.run_id}")
        matrix_file = export_matrix(Catalog(data_dir), run.run_id)
        if folder != summary_dir(data_dir, run.run_id):
            (folder / "data").mkdir(exist_ok=True)
            matrix_file = Path(shutil.copy2(matrix_file, folder / "data" / matrix_file.name))
        typer.echo(f"features matrix: {matrix_file}")
        print_summary(results, files.report)


@app.command()
def demo(
    symbols: Annotated[int, typer.Option(help="Symbols in the sample universe.")] = 60,
    years: Annotated[float, typer.Option(help="Years of daily bars.")] = 6.0,
    seed: Annotated[int, typer.Option(help="Seed of the sample universe.")] = 0,
    service: Annotated[
        str | None, typer.Option(help="Backtest through this feature service (default: read the data dir).")
    ] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Generate a sample universe into the data dir and run the Alpha Cycle on it: the first thing to try.

    The sample is what a real user brings: a lake of per-symbol Parquet files (tradingview-scraper naming),
    a returns matrix and a candidates file, under <data-dir>/sample/. Its symbols move through bull, bear
    and sideways regimes, list late, delist and skip untraded bars, so the ratings rotate.

    Example: asof demo --data-dir data
    """
    with one_line_errors():
        bars = round(years * pd.Timedelta(days=365.25) / interval_length("1d"))
        universe = SyntheticUniverse(n_symbols=symbols, n_bars=bars, seed=seed)
        files = universe.write(data_dir / "sample")
        typer.echo(f"sample universe: {symbols} symbols x {bars} daily bars in {files.lake.parent}")
    pipeline(
        lake=files.lake,
        returns=files.returns,
        candidates=files.candidates,
        service=service,
        data_dir=data_dir,
    )


def _universe(
    console: Console, returns: pd.DataFrame, candidates: Path | None, stored: list[str]
) -> list[str]:
    """The symbols to backtest: the candidates (or returns columns) the run stores; the others are named."""
    wanted = read_candidates(candidates) if candidates is not None else [str(c) for c in returns.columns]
    held = set(stored)
    left_out = [symbol for symbol in wanted if symbol not in held or symbol not in returns.columns]
    if left_out:
        shown = ", ".join(left_out[:5]) + (f" (+{len(left_out) - 5} more)" if len(left_out) > 5 else "")
        console.print(f"left out of the backtest (no stored rows or no returns column): {shown}")
    universe = [symbol for symbol in wanted if symbol not in left_out]
    if not universe:
        raise ValueError("no symbol is both stored by the run and in the returns matrix; nothing to backtest")
    return universe


def _print_backfill(console: Console, result: BackfillResult) -> None:
    """One line for the run, and a table of the symbols that failed (the per-symbol counts of every symbol
    are in the catalog: `GET /runs/{run_id}`)."""
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
        console.print(symbol_table(failed))


def _announce(check: str) -> None:
    typer.echo(f"audit: {check} check ...", err=True)


def _finish_audit(report: AuditReport, folder: Path) -> None:
    """Write audit.json and audit.md, print the checks and any violations; exit 1 when the audit failed."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "audit.json").write_text(report.to_json())
    (folder / "audit.md").write_text(report.to_markdown())
    console = Console(soft_wrap=False, highlight=False)
    table = Table(
        "check", "status", "samples", "compared", "violations", "seconds", title=f"audit of {report.run_id}"
    )
    for check in report.checks:
        table.add_row(
            check.name,
            check.status + (f": {check.skipped}" if check.skipped else ""),
            str(check.samples),
            str(check.compared),
            str(check.violation_count),
            f"{check.seconds:.2f}",
        )
    console.print(table)
    for violation in report.violations[:10]:
        ts = violation.ts.isoformat() if violation.ts is not None else "-"
        typer.echo(
            f"violation ({violation.check}): {violation.symbol or '-'} at {ts}, {violation.field}: stored "
            f"{violation.stored!s} vs expected {violation.expected!s}; {violation.message}"
        )
    typer.echo(f"audit {report.status}: {folder / 'audit.md'}")
    if not report.passed:
        raise typer.Exit(1)
