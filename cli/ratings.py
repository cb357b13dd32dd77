"""`asof ratings FILE`: one OHLCV file in, its feature rows out, for quick checks against a chart."""

import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import pandas as pd
import typer

from cli.console import INTERVALS_HELP, HistoryBars, Rules
from cli.root import app
from service.ratings.engine import rate_frame
from service.sources.bars import CleaningReport, OHLCVError, clean_bars, read_bars
from service.sources.spacing import spacing_problem
from vocabulary.errors import InvalidInput
from vocabulary.features import FEATURES, VOTES
from vocabulary.rules import DEFAULT_RULES, check_history_bars, check_rules
from vocabulary.time import available_at, parse_interval

OUTPUT_SUFFIXES = (".csv", ".parquet")


@app.command(
    epilog="Example: asof ratings BINANCE_BTCUSDT_1d.csv -o btc.parquet; "
    "asof ratings BINANCE_BTCUSDT_15m.csv --interval 15m --rules chart --history-bars 700"
)
def ratings(
    file: Annotated[
        Path,
        typer.Argument(
            help="OHLCV file, .csv or .parquet: `timestamp` (epoch seconds, epoch milliseconds or ISO-8601; "
            "naive means UTC), `open high low close`, optional `volume`.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write the rows here, as Parquet or CSV by extension.", show_default=False
        ),
    ] = None,
    interval: Annotated[
        str, typer.Option(help=f"Bar interval, {INTERVALS_HELP}; each row's available_at is its bar's close.")
    ] = "1d",
    keep_zero_volume: Annotated[
        bool, typer.Option("--keep-zero-volume", help="Keep zero-volume bars (TradingView drops them).")
    ] = False,
    rules: Rules = DEFAULT_RULES,
    history_bars: HistoryBars = None,
) -> None:
    """Rate every bar of one OHLCV file: TradingView's Technical Ratings, 26 votes and indicator values.

    The bars are cleaned as a backfill cleans them (sorted, last of duplicated timestamps kept, zero-volume
    bars dropped, bad rows refused) and rated by the panel engine under --rules, over all the file's
    history or, with --history-bars N, over the N bars up to each bar. Out comes one row per bar: ts (bar
    open, UTC), available_at, bars (the bars it was rated from), warm and every feature; CSV on stdout
    unless -o is given. A one-line summary of the cleaning goes to stderr, and a warning when the bars do
    not look like --interval bars (off its grid, closer than it, or another median spacing), which a
    backfill would refuse. Bad input exits with status 1 and names the column and row at fault.
    """
    if output is not None and output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise typer.BadParameter(f"{output.name}: expected a .csv or .parquet file", param_hint="'--output'")
    for check, value, option in (
        (parse_interval, interval, "--interval"),
        (check_rules, rules, "--rules"),
        (check_history_bars, history_bars, "--history-bars"),
    ):
        try:
            check(value)
        except InvalidInput as error:
            raise typer.BadParameter(error.message, param_hint=f"'{option}'") from None
    bar = parse_interval(interval)
    try:
        raw = read_bars(file)
        bars, report = clean_bars(raw, keep_zero_volume=keep_zero_volume)
    except OHLCVError as error:
        _fail(str(error))
    if bars.empty:
        _fail(f"{file.name}: no bars left after cleaning")
    problem = spacing_problem(raw["ts"], bar)
    if problem is not None:
        typer.echo(f"asof ratings: warning: {file.name}: {problem}", err=True)
    rows = rate_frame(bars, rules=rules, history_bars=history_bars)
    rows.insert(1, "available_at", available_at(rows["ts"], bar))
    rows = rows.astype(dict.fromkeys(VOTES, "Int8"))[["ts", "available_at", "bars", "warm", *FEATURES]]
    _write(rows, output)
    typer.echo(_summary(file, report, output), err=True)


def _write(rows: pd.DataFrame, output: Path | None) -> None:
    if output is None:
        try:
            rows.to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader (head, less) stopped early: not an error
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    try:
        if output.suffix.lower() == ".csv":
            rows.to_csv(output, index=False)
        else:
            rows.to_parquet(output, index=False)
    except OSError as error:
        _fail(f"cannot write {output}: {error.strerror or error}")


def _summary(file: Path, report: CleaningReport, output: Path | None) -> str:
    dropped = {
        "duplicated": report.duplicates,
        "zero-volume": report.zero_volume,
        "refused": report.refused,
    }
    dropped_text = ", ".join(f"{count} {what}" for what, count in dropped.items() if count) or "none"
    sorted_text = f"; {report.unsorted} out-of-order rows sorted" if report.unsorted else ""
    refused_text = f"; refused: {report.refusals()}" if report.refused else ""
    target = f" -> {output}" if output is not None else ""
    return (
        f"{file.name}: {report.rows_out} bars rated of {report.rows_in} rows "
        f"(dropped: {dropped_text}{sorted_text}{refused_text}){target}"
    )


def _fail(message: str) -> NoReturn:
    typer.echo(f"asof ratings: {message}", err=True)
    raise typer.Exit(1)
