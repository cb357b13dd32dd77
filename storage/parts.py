"""A run's rows on their way in: staged in pieces by whoever computes them, then cut into the run's parts.

A *piece* is a table of RUN_SCHEMA rows as the engine gave them (by symbol, then ts), in record batches of
STAGE_BATCH_ROWS: an Arrow IPC file written by the Ray worker that computed it (`stage_table`), or a table a
thread hands over in memory (`piece`), which the writer holds until MEMORY_ROWS rows are held and spills to a
file after (`spill`): a small run never round-trips through the disk, and memory stays bounded whatever the
run's size. Its `Staged` summary (rows, each symbol's span, each batch's lowest and highest `available_at`,
and quantiles of its `available_at`) is all the publisher needs to plan.

A *part* (run layout 2) holds the rows whose `available_at` lies in one range `[low, high)`, sorted by
`(available_at, symbol)` in row groups of ROW_GROUP_ROWS. The ranges are consecutive, so the parts read in
order are one sequence sorted by `(available_at, symbol)` (the layout-1 contract, cut in pieces): an as-of
read touches the row groups near T of one or two parts. Each part is written by its own task
(`write_part`), which reads only the batches of each piece that overlap its range, so parts are written in
parallel and memory is bounded by a part, never by the run. Parts are compressed with LZ4: a third less
write time than zstd for 15% more bytes (floats hardly compress), and faster to read back.
"""

import math
import os
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.schema import ROW_GROUP_ROWS, RUN_SCHEMA, microseconds
from vocabulary.features import ROW_META

STAGE_BATCH_ROWS: Final = 4_096
"""Rows per record batch of a piece: the grain at which pieces are read. A batch holds a stretch of one or a
few symbols' histories, so a part reads the batches its range meets; smaller batches read less beside it
(measured: 16,384-row batches made the parts of 100 minute histories read 3 times their rows)."""
SAMPLE_STEP: Final = 1_024
"""A piece keeps 16 quantiles of its `available_at`, plus one for every SAMPLE_STEP rows: the publisher places
the parts' boundaries by them (each standing for its share of the piece's rows)."""
PART_ROWS: Final = 1 << 19
"""At most about this many rows per part (~150 MB, twice that while it is sorted and written): bounds a part
task's memory."""
PART_PREFIX: Final = "part-"
MEMORY_ROWS: Final = 1 << 19
"""Rows of in-memory pieces a writer keeps before it spills the next ones to files: about 240 MB, as a
piece's float columns are views of the engine's output (57 doubles a row), not copies."""

Span = tuple[int, int, int, int, int]
"""A symbol's stored rows: count, first and last `ts`, first and last `available_at` (microseconds)."""


@dataclass(frozen=True)
class Staged:
    """A piece: where (its file, or the table itself while it is held in memory), how many rows, each
    symbol's span, each batch's lowest and highest `available_at`, and a sample of them (microseconds)."""

    source: Path | pa.Table
    rows: int
    spans: dict[str, Span]
    batches: tuple[tuple[int, int], ...]
    sample: tuple[int, ...]


@dataclass(frozen=True)
class PartTask:
    """Write the rows with `low <= available_at < high` (None: unbounded) of the listed batches of each
    piece into `path`."""

    path: Path
    low: int | None
    high: int | None
    pieces: tuple[tuple[Path | pa.Table, tuple[int, ...]], ...]


def use_jemalloc() -> None:
    """Arrow's memory from jemalloc, where the build has it. Measured on this project's machines: with the
    default (mimalloc), a take or a concatenation of a few hundred MB into fresh memory takes 3 to 5 times
    as long, and so does numpy's next large copy; that was most of a backfill's write time. Called by each
    process that writes a run (the backfill, its Ray workers)."""
    with suppress(NotImplementedError):
        pa.set_memory_pool(pa.jemalloc_memory_pool())


def piece(table: pa.Table) -> Staged:
    """`table` (RUN_SCHEMA, in any order) as an in-memory piece. Each symbol's rows must all be in one piece
    (a backfill rates a symbol's whole history at once; `RunWriter` checks the rare case of a symbol in
    several pieces)."""
    available = microseconds(table["available_at"])
    symbols = spans(table)
    if table.num_rows < STAGE_BATCH_ROWS * len(symbols):
        # Histories shorter than a batch: a batch would hold a few whole histories and meet every part's
        # range. Ordered by available_at, each batch holds a narrow range (long histories already do).
        order = np.argsort(available, kind="stable")
        table, available = table.take(order), available[order]
    return Staged(
        source=table,
        rows=table.num_rows,
        spans=symbols,
        batches=tuple(
            (int(batch.min()), int(batch.max()))
            for batch in (
                available[first : first + STAGE_BATCH_ROWS]
                for first in range(0, len(available), STAGE_BATCH_ROWS)
            )
        ),
        sample=tuple(_quantiles(available).tolist()),
    )


def spill(staged: Staged, path: Path) -> Staged:
    """An in-memory piece written to `path` (an Arrow IPC file, batch for batch), which then stands for it."""
    table = staged.source
    assert isinstance(table, pa.Table), "only an in-memory piece spills"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, RUN_SCHEMA) as writer:
        for first in range(0, table.num_rows, STAGE_BATCH_ROWS):
            writer.write_table(table.slice(first, STAGE_BATCH_ROWS), max_chunksize=STAGE_BATCH_ROWS)
    return replace(staged, source=path)


def stage_table(directory: Path, name: str, table: pa.Table) -> Staged:
    """`table` as the piece file `<directory>/<name>.arrow` (see `piece`): how a worker on another machine
    hands its rows over."""
    return spill(piece(table), directory / f"{name}.arrow")


def spans(table: pa.Table) -> dict[str, Span]:
    """Each symbol's span in `table`."""
    grouped = table.select(["symbol", "ts", "available_at"]).group_by("symbol", use_threads=False)
    summary = grouped.aggregate(
        [("ts", "count"), ("ts", "min"), ("ts", "max"), ("available_at", "min"), ("available_at", "max")]
    )
    columns = [
        summary[name] for name in ("ts_count", "ts_min", "ts_max", "available_at_min", "available_at_max")
    ]
    values = [columns[0].to_numpy(), *(microseconds(column) for column in columns[1:])]
    return {
        symbol: tuple(int(column[k]) for column in values)  # type: ignore[misc]
        for k, symbol in enumerate(summary["symbol"].to_pylist())
    }


def plan_parts(directory: Path, staged: list[Staged], parallelism: int) -> list[PartTask]:
    """Cut the staged rows at `available_at` boundaries into a multiple of `parallelism` parts (so every
    worker writes as many) of at most about PART_ROWS rows, placed by the pieces' samples; rows sharing an
    `available_at` stay in one part. Ranges without rows get no part."""
    total = sum(piece.rows for piece in staged)
    parallelism = max(parallelism, 1)
    count = parallelism * math.ceil(total / (PART_ROWS * parallelism))  # every worker busy to the end
    values = np.array([value for piece in staged for value in piece.sample], dtype=np.int64)
    weights = np.array([piece.rows / len(piece.sample) for piece in staged for _ in piece.sample])
    order = np.argsort(values, kind="stable")
    values, cumulative = values[order], np.cumsum(weights[order])
    cuts = np.searchsorted(cumulative, total * np.arange(1, count) / count, side="left")
    boundaries = np.unique(values[np.minimum(cuts, len(values) - 1)]) if len(values) else values
    edges: list[int | None] = [None, *(int(b) for b in boundaries if b > values[0]), None]
    tasks = []
    for index, (low, high) in enumerate(pairwise(edges)):
        pieces = tuple(
            (piece.source, batches)
            for piece in staged
            if (batches := tuple(k for k, bounds in enumerate(piece.batches) if _overlaps(bounds, low, high)))
        )
        if pieces:
            tasks.append(PartTask(directory / f"{PART_PREFIX}{index:05d}.parquet", low, high, pieces))
    return tasks


def write_part(task: PartTask) -> int:
    """Write one part (see the module docstring); returns its rows (0: no rows in its range, no file)."""
    use_jemalloc()
    slices = []
    for source, batches in task.pieces:
        for batch in _batches(source, batches):
            available = microseconds(batch.column("available_at"))
            inside = np.ones(len(available), dtype=bool)
            if task.low is not None:
                inside &= available >= task.low
            if task.high is not None:
                inside &= available < task.high
            slices.append(batch if inside.all() else batch.filter(pa.array(inside)))
    rows = pa.concat_tables(
        [pa.Table.from_batches([part]) if isinstance(part, pa.RecordBatch) else part for part in slices]
        or [RUN_SCHEMA.empty_table()]
    )
    if not rows.num_rows:  # the range's batches held rows on both sides of it only: no part
        return 0
    symbols = pc.dictionary_encode(rows["symbol"]).combine_chunks()
    rank = np.argsort(np.argsort(symbols.dictionary.to_numpy(zero_copy_only=False), kind="stable"))
    order = np.lexsort((rank[symbols.indices.to_numpy()], microseconds(rows["available_at"])))
    _write(rows.take(order), task.path)
    return rows.num_rows


@dataclass(frozen=True)
class RewriteTask:
    """Copy the part `source` (another run's) to `path` without the rows of `symbols`, if it holds any."""

    source: Path
    path: Path
    symbols: frozenset[str]


def rewrite_part(task: RewriteTask) -> int | None:
    """Write `task.source` without the rows of `task.symbols` (still sorted: a filter keeps the order) and
    return the rows written (0: none left, no file); None, writing nothing, when it holds no row of them,
    so that it can be shared as it is."""
    use_jemalloc()
    dropped = pc.is_in(
        pq.read_table(task.source, columns=["symbol"])["symbol"], value_set=pa.array(sorted(task.symbols))
    )
    if not pc.any(dropped).as_py():
        return None
    rows = pq.read_table(task.source, schema=RUN_SCHEMA).filter(pc.invert(dropped))
    if rows.num_rows:
        _write(rows, task.path)
    return rows.num_rows


def _write(rows: pa.Table, path: Path) -> None:
    """A part's rows (sorted by (available_at, symbol)) as the run's Parquet, flushed to the disk here, so
    that parts reach it in parallel too."""
    pq.write_table(
        rows,
        path,
        compression=COMPRESSION,
        use_dictionary=["symbol"],
        write_statistics=STATISTICS,
        row_group_size=ROW_GROUP_ROWS,
    )
    fsync(path)


COMPRESSION: Final = "lz4"
STATISTICS: Final = list(ROW_META)
"""Columns whose row-group statistics are written: what reads filter on (the features are never filtered
on, and their statistics cost write time)."""


def fsync(path: Path) -> None:
    """Flush a file or a folder to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _batches(source: Path | pa.Table, chosen: tuple[int, ...]) -> Iterator[pa.RecordBatch | pa.Table]:
    """The chosen batches of a piece, read from its file or sliced from its table."""
    if isinstance(source, pa.Table):
        for k in chosen:
            yield source.slice(k * STAGE_BATCH_ROWS, STAGE_BATCH_ROWS)
        return
    with pa.OSFile(str(source), "rb") as file:
        reader = pa.ipc.open_file(file)
        for k in chosen:
            yield reader.get_batch(k)


def _quantiles(available: np.ndarray) -> np.ndarray:
    """Evenly spaced order statistics of `available`: 16, plus one per SAMPLE_STEP values."""
    count = min(len(available), 16 + len(available) // SAMPLE_STEP)
    return np.sort(available)[np.linspace(0, len(available) - 1, count).astype(np.int64)]


def _overlaps(bounds: tuple[int, int], low: int | None, high: int | None) -> bool:
    first, last = bounds
    return (low is None or last >= low) and (high is None or first < high)
