"""`asof backfill`: a lake's ratings into a new run, from the command line.

Errors print one line naming what was wrong and exit 1, never a traceback.
"""

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.console import Console

from cli.console import (
    INTERVALS_HELP,
    ChunkBars,
    DataDir,
    Executor,
    HistoryBars,
    KeepZeroVolume,
    RayAddress,
    Rules,
    names,
    one_line_errors,
    progress_bar,
    span_text,
    symbol_table,
    timings_text,
)
from cli.root import app
from service.backfill import BackfillFailed, BackfillResult, HistoricalFeatureBackfill
from service.chunks import CHUNK_BARS
from storage.datadir import refuse_if_served
from vocabulary.rules import DEFAULT_RULES
from vocabulary.spec import BackfillSpec


@app.command()
def backfill(
    lake: Annotated[Path, typer.Option(help="OHLCV lake: a folder of per-symbol files or one long file.")],
    interval: Annotated[str, typer.Option(help=f"Bar interval to rate: {INTERVALS_HELP}.")],
    candidates: Annotated[
        Path | None, typer.Option(help="portfolio_candidates.json choosing the symbols.")
    ] = None,
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols, e.g. BINANCE:BTCUSDT.")
    ] = None,
    returns: Annotated[
        Path | None,
        typer.Option(
            help="returns_matrix.parquet: its columns are the universe (without --candidates or "
            "--symbols) and its span the default stored span."
        ),
    ] = None,
    start: Annotated[str | None, typer.Option(help="First bar open time to store (ISO-8601, UTC).")] = None,
    end: Annotated[str | None, typer.Option(help="Last bar open time to store (ISO-8601, UTC).")] = None,
    lag: Annotated[int, typer.Option(help="Publication lag in seconds added to each bar's close.")] = 0,
    keep_zero_volume: KeepZeroVolume = False,
    dataset: Annotated[
        str | None,
        typer.Option(help="The line of runs this one joins (default: <lake name>_<interval>[_<rules>])."),
    ] = None,
    from_interval: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Build the --interval bars from this finer interval's lake files (e.g. --interval 1W "
            "--from 1d); only periods the lake covers completely are stored.",
        ),
    ] = None,
    rules: Rules = DEFAULT_RULES,
    history_bars: HistoryBars = None,
    executor: Executor = "local",
    ray_address: RayAddress = None,
    chunk_bars: ChunkBars = CHUNK_BARS,
    data_dir: DataDir = Path("data"),
) -> None:
    """Backfill the ratings of a lake into a new run, published only when complete.

    Ratings use all the history in the lake (warm-up first), or with --history-bars N only the N bars up
    to each bar; bars opening in [--start, --end] are stored.

    A symbol that cannot be read or cleaned, or whose bars are not of the lake's interval (off its grid,
    closer than it, or a median spacing other than it), fails on its own; the summary names its reason.

    Example: asof backfill --lake data/lake --candidates data/candidates.json --interval 1d --start 2020-01-01

    Example: asof backfill --lake data/lake --interval 1M --from 1d --rules legacy

    Example: asof backfill --lake /shared/lake --interval 1m --executor ray --ray-address ray://head:10001
    """
    with one_line_errors():
        refuse_if_served(
            data_dir,
            "start the backfill through it (POST /backfill, with paths relative to its data dir) or stop it",
        )
        # Absolute, so the run records where its inputs are for the audit (later, from any directory).
        spec = BackfillSpec(
            lake=lake.resolve(),
            interval=interval,
            symbols=names(symbols),
            candidates=None if candidates is None else candidates.resolve(),
            returns=None if returns is None else returns.resolve(),
            start=start,
            end=end,
            lag=pd.Timedelta(seconds=lag),
            keep_zero_volume=keep_zero_volume,
            dataset=dataset,
            from_interval=from_interval,
            rules=rules,
            history_bars=history_bars,
            executor=executor,
        )
        job = HistoricalFeatureBackfill(data_dir, spec, chunk_bars=chunk_bars, ray_address=ray_address)
        out = Console(soft_wrap=False)
        try:
            with progress_bar("backfill", "symbols") as progress:
                result = job.run(progress=progress)
        except BackfillFailed as failure:
            out.print(symbol_table(failure.statuses))
            raise
        _print_result(out, result)


def _print_result(out: Console, result: BackfillResult) -> None:
    run, statuses = result.run, result.statuses
    ok = sum(status.ok for status in statuses)
    out.print(f"run {run.run_id}: {ok} of {len(statuses)} symbols ok, {run.rows} rows, {span_text(run)}")
    out.print(symbol_table(statuses))
    out.print(f"time: {timings_text(result.timings)}")
