"""A run's rows on their way in: staged in pieces by whoever computes them, then cut into the run's parts.

A *piece* is an Arrow IPC file of RUN_SCHEMA rows sorted by `available_at`, in record batches of
STAGE_BATCH_ROWS, written by the thread or Ray worker that computed it (`stage_table`); its `Staged` summary
(rows, each symbol's span, each batch's first and last `available_at`) is all the publisher needs to plan.

A *part* (run layout 2) holds the rows whose `available_at` lies in one range `[low, high)`, sorted by
`(available_at, symbol)` in row groups of ROW_GROUP_ROWS. The ranges are consecutive, so the parts read in
order are one sequence sorted by `(available_at, symbol)` (the layout-1 contract, cut in pieces): an as-of
read touches the row groups near T of one or two parts. Each part is written by its own task
(`write_part`), which reads only the batches of each piece that overlap its range, so parts are written in
parallel and memory is bounded by a part, never by the run.
"""

import math
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from storage.schema import ROW_GROUP_ROWS, RUN_SCHEMA

STAGE_BATCH_ROWS: Final = 16_384
"""Rows per record batch of a piece: the grain at which parts are planned and pieces read."""
PART_ROWS: Final = 1 << 20
"""At most about this many rows per part (~300 MB in memory while it is written): bounds a part task."""
PART_PREFIX: Final = "part-"

Span = tuple[int, int, int, int, int]
"""A symbol's stored rows: count, first and last `ts`, first and last `available_at` (microseconds)."""


@dataclass(frozen=True)
class Staged:
    """A piece written by `stage_table`: where, how many rows, each symbol's span, and each batch's first
    and last `available_at` (microseconds)."""

    path: Path
    rows: int
    spans: dict[str, Span]
    batches: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class PartTask:
    """Write the rows with `low <= available_at < high` (None: unbounded) of the listed batches of each
    piece into `path`."""

    path: Path
    low: int | None
    high: int | None
    pieces: tuple[tuple[Path, tuple[int, ...]], ...]


def stage_table(directory: Path, name: str, table: pa.Table) -> Staged:
    """Write `table` (RUN_SCHEMA, any order) as the piece `<directory>/<name>.arrow`, sorted by
    `available_at`; each symbol's rows must all be in one piece (a backfill rates a symbol's whole history
    at once; `RunWriter` checks the rare case of a symbol in several pieces)."""
    available = _microseconds(table["available_at"])
    order = np.argsort(available, kind="stable")
    table = table.take(order)
    available = available[order]
    path = directory / f"{name}.arrow"
    bounds = []
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, RUN_SCHEMA) as writer:
        for first in range(0, table.num_rows, STAGE_BATCH_ROWS):
            last = min(first + STAGE_BATCH_ROWS, table.num_rows) - 1
            writer.write_table(table.slice(first, last - first + 1), max_chunksize=STAGE_BATCH_ROWS)
            bounds.append((int(available[first]), int(available[last])))
    return Staged(path=path, rows=table.num_rows, spans=spans(table), batches=tuple(bounds))


def spans(table: pa.Table) -> dict[str, Span]:
    """Each symbol's span in `table`."""
    grouped = table.select(["symbol", "ts", "available_at"]).group_by("symbol", use_threads=False)
    summary = grouped.aggregate(
        [("ts", "count"), ("ts", "min"), ("ts", "max"), ("available_at", "min"), ("available_at", "max")]
    )
    columns = [
        summary[name] for name in ("ts_count", "ts_min", "ts_max", "available_at_min", "available_at_max")
    ]
    values = [columns[0].to_numpy(), *(_microseconds(column) for column in columns[1:])]
    return {
        symbol: tuple(int(column[k]) for column in values)  # type: ignore[misc]
        for k, symbol in enumerate(summary["symbol"].to_pylist())
    }


def plan_parts(directory: Path, staged: list[Staged], parallelism: int) -> list[PartTask]:
    """Cut the staged rows at `available_at` boundaries into at least `parallelism` parts (so every worker
    writes one) of at most about PART_ROWS rows; boundaries fall between batches, so rows sharing an
    `available_at` stay in one part. Ranges without rows get no part."""
    total = sum(piece.rows for piece in staged)
    count = max(parallelism, math.ceil(total / PART_ROWS), 1)
    firsts = np.array([first for piece in staged for first, _ in piece.batches], dtype=np.int64)
    weights = np.array(
        [
            min(STAGE_BATCH_ROWS, piece.rows - k * STAGE_BATCH_ROWS)
            for piece in staged
            for k in range(len(piece.batches))
        ],
        dtype=np.int64,
    )
    order = np.argsort(firsts, kind="stable")
    cumulative = np.cumsum(weights[order])
    cuts = np.searchsorted(cumulative, total * np.arange(1, count) / count, side="right")
    boundaries = np.unique(firsts[order][np.minimum(cuts, len(order) - 1)]) if len(order) else []
    edges: list[int | None] = [None, *(int(b) for b in boundaries if b > firsts.min()), None]
    tasks = []
    for index, (low, high) in enumerate(pairwise(edges)):
        pieces = tuple(
            (piece.path, batches)
            for piece in staged
            if (batches := tuple(k for k, bounds in enumerate(piece.batches) if _overlaps(bounds, low, high)))
        )
        if pieces:
            tasks.append(PartTask(directory / f"{PART_PREFIX}{index:05d}.parquet", low, high, pieces))
    return tasks


def write_part(task: PartTask) -> int:
    """Write one part (see the module docstring); returns its rows."""
    slices = []
    for path, batches in task.pieces:
        with pa.OSFile(str(path), "rb") as source:
            reader = pa.ipc.open_file(source)
            for k in batches:
                batch = reader.get_batch(k)
                available = _microseconds(batch.column("available_at"))
                first = 0 if task.low is None else int(np.searchsorted(available, task.low, side="left"))
                last = (
                    len(available)
                    if task.high is None
                    else int(np.searchsorted(available, task.high, "left"))
                )
                if last > first:
                    slices.append(batch.slice(first, last - first))
    rows = pa.Table.from_batches(slices, RUN_SCHEMA).combine_chunks()
    order = pc.sort_indices(rows, [("available_at", "ascending"), ("symbol", "ascending")])
    with pq.ParquetWriter(
        task.path, RUN_SCHEMA, compression="zstd", use_dictionary=["symbol"], write_statistics=STATISTICS
    ) as writer:
        for first in range(0, rows.num_rows, ROW_GROUP_ROWS):
            writer.write_table(
                rows.take(order[first : first + ROW_GROUP_ROWS]), row_group_size=ROW_GROUP_ROWS
            )
    return rows.num_rows


STATISTICS: Final = ["symbol", "ts", "available_at", "bars", "warm"]
"""Columns whose row-group statistics are written: what reads filter on (the features are never filtered
on, and their statistics cost write time)."""


def _overlaps(bounds: tuple[int, int], low: int | None, high: int | None) -> bool:
    first, last = bounds
    return (low is None or last >= low) and (high is None or first < high)


def _microseconds(instants: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return instants.cast(pa.int64()).to_numpy()
