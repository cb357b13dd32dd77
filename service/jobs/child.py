"""The child process that does one job's work (a backfill, an update, a compaction or an audit) and
reports to the runner.

Why a child process and not a thread: both are CPU-bound pandas/numpy work that holds the GIL for long
stretches. In a thread of the server they would stall the event loop, and with it every feature read. The
child is started with `spawn` (no forked copy of the server's threads or DuckDB handles) and dies with the
server (PR_SET_PDEATHSIG on Linux; its `cancelled` callback also answers yes once the server is gone), so a
killed server never leaves a backfill publishing behind its back.
"""

import ctypes
import os
import signal
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from service.audit.run import AuditCancelled, audit_run
from service.backfill import (
    BackfillCancelled,
    BackfillFailed,
    BackfillResult,
    HistoricalFeatureBackfill,
    Updated,
)
from service.compaction import compact_run
from service.jobs.messages import Cancelled, Failed, Outcome, Progress, Succeeded
from service.jobs.store import Work
from service.update import update_run
from storage.catalog import SymbolStatus
from vocabulary.spec import AuditSpec, BackfillSpec, CompactSpec, UpdateSpec

_CLEANING_COUNTS = ("rows_in", "rows", "duplicates", "unsorted", "zero_volume", "refused")


def run_in_child(
    data_dir: str,
    work: Work,
    results: Connection,
    cancel: Event,
    parent_pid: int,
    ray_address: str | None = None,
) -> None:
    """The child's entry point: do `work`, sending Progress messages, then exactly one outcome."""
    _die_with_parent(parent_pid)

    def cancelled() -> bool:
        return cancel.is_set() or os.getppid() != parent_pid

    def progress(done: int, total: int) -> None:
        results.send(Progress(done, total))

    try:
        results.send(perform(Path(data_dir), work, progress, cancelled, ray_address))
    finally:
        results.close()


def perform(
    data_dir: Path,
    work: Work,
    progress: Callable[[int, int], None],
    cancelled: Callable[[], bool],
    ray_address: str | None = None,
) -> Outcome:
    """Do the work and say how it ended; any failure becomes the outcome's message (the process boundary)."""
    try:
        if isinstance(work, BackfillSpec):
            backfill = HistoricalFeatureBackfill(data_dir, work, ray_address=ray_address)
            result = backfill.run(progress=progress, cancelled=cancelled)
            return Succeeded(result.run.run_id, report(result), errors(result.statuses))
        if isinstance(work, UpdateSpec):
            result = update_run(
                data_dir, work, ray_address=ray_address, progress=progress, cancelled=cancelled
            )
            current = result.update is not None and not result.update.published
            message = f"run {result.run.run_id} is up to date: nothing new in the lake" if current else None
            return Succeeded(result.run.run_id, report(result), errors(result.statuses), message)
        if isinstance(work, CompactSpec):
            result = compact_run(data_dir, work, progress=progress, cancelled=cancelled)
            return Succeeded(result.run.run_id, report(result))
        if isinstance(work, AuditSpec):
            audit = audit_run(
                data_dir, work.run_id, work.samples, work.seed, progress=progress, cancelled=cancelled
            )
            return Succeeded(work.run_id, audit.to_dict(), message=f"audit {audit.status}")
        raise TypeError(f"no job does {type(work).__name__}")
    except (BackfillCancelled, AuditCancelled):
        return Cancelled()
    except BackfillFailed as error:
        return Failed(str(error), errors(error.statuses))
    except Exception as error:
        return Failed(f"{type(error).__name__}: {error}")


def errors(statuses: list[SymbolStatus]) -> list[dict[str, Any]]:
    """A job's per-symbol errors: the status (reason and cleaning counts) of every symbol that failed."""
    return [_status_record(status) for status in statuses if not status.ok]


def report(result: BackfillResult) -> dict[str, Any]:
    """A backfill job's report: cleaning counts and refusal reasons summed over symbols, and timings; an
    update's adds what it did (`update_report`)."""
    reasons: Counter[str] = Counter()
    for status in result.statuses:
        reasons.update(status.refused_reasons)
    summary = {
        "symbols": len(result.statuses),
        "failed": sum(not status.ok for status in result.statuses),
        **{name: sum(getattr(status, name) for status in result.statuses) for name in _CLEANING_COUNTS},
        "refused_reasons": dict(sorted(reasons.items())),
        "timings": result.timings,
    }
    return summary if result.update is None else summary | {"update": update_report(result.update)}


def update_report(update: Updated) -> dict[str, Any]:
    """What an update did: its parent, whether it published a run, the symbols revised (each with the open
    time of its first bar that changed), added, and kept as they were (with why)."""
    return {
        "parent": update.parent,
        "published": update.published,
        "revised": [
            {"symbol": symbol, "first_changed": at.isoformat()}
            for symbol, at in sorted(update.revised.items())
        ],
        "added": update.added,
        "kept": [{"symbol": symbol, "reason": reason} for symbol, reason in sorted(update.kept.items())],
    }


def _status_record(status: SymbolStatus) -> dict[str, Any]:
    record = asdict(status)
    for name in ("first_ts", "last_ts"):
        record[name] = None if record[name] is None else record[name].isoformat()
    return record


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when the server dies; a no-op elsewhere (the `cancelled` callback
    still notices the orphaning)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)
