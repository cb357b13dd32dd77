"""What every `asof` command shares: the data-dir and rating options, the intervals' help, one-line errors,
progress, the per-symbol table, comma-separated name options."""

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from storage.catalog import RunInfo, SymbolStatus
from vocabulary.errors import AsofError
from vocabulary.time import INTERVALS, iso

DatasetOption = Annotated[
    str | None,
    typer.Option(help="Dataset whose newest run to read (default: the only one, or ASOF_DEFAULT_DATASET)."),
]

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir", envvar="ASOF_DATA_DIR", help="Data directory holding the catalog and the runs."
    ),
]

INTERVALS_HELP = f"one of {' '.join(INTERVALS)}; case-sensitive: 1m is a minute, 1M a month"
"""What an --interval option accepts, for its help."""


Rules = Annotated[
    str,
    typer.Option(
        help="TradingView's rules: scanner (the screener's since December 2024), chart (the chart "
        "indicator's library) or legacy (the screener's before December 2024)."
    ),
]
HistoryBars = Annotated[
    int | None,
    typer.Option(
        help="Rate each bar from at most this many bars up to it, warm-up included (the scanner's intraday "
        "window); costs this many bars of work per bar. All history when absent.",
        show_default=False,
    ),
]


MaxStaleness = Annotated[int, typer.Option(help="Leave out symbols older than this many intervals.")]
KeepZeroVolume = Annotated[bool, typer.Option(help="Keep zero-volume bars (dropped by default).")]
Executor = Annotated[
    str, typer.Option(help="Where to compute: local (this machine's cores) or ray (tasks on a Ray cluster).")
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        envvar="ASOF_RAY_ADDRESS",
        help="The Ray cluster of --executor ray (e.g. ray://head:10001); default: a local one. The lake "
        "and the data dir must be on storage every node reaches.",
    ),
]
ChunkBars = Annotated[
    int,
    typer.Option(
        help="Lake rows one worker reads and rates at once (a whole symbol at least); bounds memory."
    ),
]
RunOfDataset = Annotated[
    str, typer.Option("--run-id", help="The run; newest: the newest run of --dataset (or the default).")
]
DatasetOfNewest = Annotated[
    str | None,
    typer.Option(help="With --run-id newest: the dataset (default: the only one, or ASOF_DEFAULT_DATASET)."),
]


def dataset_or_default(dataset: str | None) -> str | None:
    """The dataset named, else ASOF_DEFAULT_DATASET (None: the data dir's only dataset)."""
    return dataset or os.environ.get("ASOF_DEFAULT_DATASET")


def timings_text(timings: Mapping[str, float]) -> str:
    """Seconds per stage, as the commands print them: `read 1.20s, compute 3.40s`."""
    return ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in timings.items())


def span_text(run: RunInfo) -> str:
    """The run's first and last bar, or `-` when it holds none."""
    return f"{iso(run.start)} .. {iso(run.end)}" if run.start is not None and run.end is not None else "-"


def existing_data_dir(data_dir: Path) -> Path:
    """The data dir back, or a ValueError saying how to point at one."""
    if not data_dir.is_dir():
        raise ValueError(f"data directory {str(data_dir)!r} does not exist (set --data-dir or ASOF_DATA_DIR)")
    return data_dir


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn the errors a user can cause into `error: <message>` on stderr and exit status 1."""
    try:
        yield
    except (AsofError, ValueError, LookupError, OSError, duckdb.Error) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        typer.echo("error: interrupted; nothing was published", err=True)
        raise typer.Exit(130) from None


@contextmanager
def progress_bar(label: str, unit: str, *, lines: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A `progress(done, total)` callback: a live bar on a terminal; otherwise (logs, pipes) plain
    `label: done/total unit` lines, on every call or, with `lines`, about that many in all."""
    console = Console(stderr=True)
    if not console.is_terminal:

        def report(done: int, total: int) -> None:
            if lines is None or done == total or done % max(1, total // lines) == 0:
                print(f"{label}: {done}/{total} {unit}", file=sys.stderr, flush=True)

        yield report
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn(unit), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(label, total=None)

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield report


def symbol_table(statuses: list[SymbolStatus]) -> Table:
    """Per symbol: ok or failed, rows stored, rows dropped (duplicates, zero volume), refused, reason."""
    table = Table("symbol", "status", "rows", "dropped", "refused", "reason")
    for status in statuses:
        table.add_row(
            Text(status.symbol),
            "ok" if status.ok else "failed",
            str(status.rows),
            str(status.duplicates + status.zero_volume),
            str(status.refused),
            Text(status.reason or ""),  # plain text: a reason may hold brackets rich would read as markup
        )
    return table


def names(value: str | None) -> list[str] | None:
    """A comma-separated option as a list (None when not given); empty items are an error."""
    if value is None:
        return None
    parts = [part.strip() for part in value.split(",")]
    if not all(parts):
        raise ValueError(f"empty name in {value!r}")
    return parts


def feature_names(value: str | None) -> list[str] | str | None:
    """--features: None (the three ratings), "all", or a list of names."""
    return value if value == "all" else names(value)
