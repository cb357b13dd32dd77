"""Compaction: a run made by a chain of updates reads its ancestors' parts (one or more per update, and a
rewrite per revision), and a long chain makes reads open many small files. Compacting rewrites its rows
into fresh parts of a new, self-contained run of the same dataset, with the same rows (so every answer is
the same) and the same carried state (with the fingerprints its ancestors held, so it can be updated and
locate a revision alone). The new run becomes the dataset's current one; the old chain stays pinnable until
retention collects it, and its files go with the last run that reads them."""

from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq

from service.backfill import BackfillCancelled, BackfillResult, Progress
from service.carried import compacted
from service.chunks import timed
from service.executors import Cancelled, Executor, LocalExecutor, never, task_runner
from service.update import parent_of
from storage.catalog import Catalog
from storage.parts import piece, use_jemalloc
from storage.runs import RunWriter
from storage.schema import RUN_SCHEMA
from vocabulary.spec import CompactSpec


def compact_run(
    data_dir: Path | str,
    spec: CompactSpec,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> BackfillResult:
    """Rewrite the run `spec` names into a new run of its own parts; `progress(done, total)` counts the
    files read. BackfillCancelled when `cancelled()` turns true (nothing is published)."""
    use_jemalloc()
    source = parent_of(data_dir, spec.run_id, spec.dataset)
    catalog = Catalog(data_dir)
    statuses = catalog.symbol_status(source.run_id)
    workers = executor or LocalExecutor()
    stop = cancelled or never
    files = source.files()
    lineage = (source.run_id, *source.lineage)
    timings = dict.fromkeys(("read", "publish"), 0.0)
    try:
        with RunWriter(data_dir, source.spec, made_by="compact", lineage=lineage) as writer:
            with timed(timings, "read"):
                for done, file in enumerate(files, start=1):
                    if stop():
                        raise BackfillCancelled(f"compaction of run {source.run_id} cancelled")
                    writer.add_staged(piece(pq.read_table(file, schema=RUN_SCHEMA)))
                    if progress is not None:
                        progress(done, len(files))
                for status in statuses:
                    writer.add_status(status)
                if source.state_files:
                    writer.add_states(compacted(source.state_files))
            with timed(timings, "publish"):
                run = writer.publish(task_runner(workers, stop), workers.parallelism)
    except Cancelled as error:
        raise BackfillCancelled(f"compaction cancelled: {error}") from None
    finally:
        if executor is None:
            workers.close()
    return BackfillResult(run, statuses, timings)
