"""Background backfill jobs: persisted in the catalog, run one at a time, cancellable, restart-safe.

Why a child process and not a thread: a backfill is CPU-bound pandas/numpy work that holds the GIL for long
stretches. In a thread of the server it would stall the event loop, and with it every feature read (a
cross-section must answer in a few milliseconds). A child process keeps reads fast, and a backfill that
crashes or is killed for memory takes only itself down. The child is started with `spawn` (no forked copy of
the server's threads or DuckDB handles) and dies with the server (PR_SET_PDEATHSIG on Linux, and its
`cancelled` callback also answers yes once the server is gone), so a killed server never leaves a backfill
publishing behind its back.

- One writer: a single worker thread consumes the queue, so at most one backfill writes at a time.
- Progress and per-symbol errors come from the backfill's `progress` callback and its result's statuses.
- Cancel: a queued job is cancelled at once; a running one cooperatively, through the backfill's `cancelled`
  callback (polled between chunks): it stops, its staging is removed, nothing is published. A backfill that
  publishes before it notices the cancel ends `succeeded`: its run is complete and immutable.
- Duplicates: a request whose parameters equal those of a queued or running job is refused with that job.
- Restart: jobs left `running` by a process that died become `interrupted` (their backfill published nothing,
  so nothing is lost and the previous run is still served); jobs still `queued` are resumed in order, since
  they never started and the request that queued them still stands. A graceful stop cancels the running
  backfill and marks it `interrupted` too.
"""

import ctypes
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from service.backfill import (
    BackfillCancelled,
    BackfillFailed,
    BackfillResult,
    HistoricalFeatureBackfill,
    resolve_inside,
)
from service.sources import read_candidates
from storage.catalog import Catalog, SymbolStatus
from storage.jobs import ACTIVE, Job, JobStatus, JobStore, utc_now
from storage.runs import NO_LAG
from storage.time import interval_length, parse_instant

logger = logging.getLogger(__name__)

_QUEUED = frozenset({JobStatus.QUEUED})
_RUNNING = frozenset({JobStatus.RUNNING})
_CLEANING_COUNTS = ("rows_in", "rows", "duplicates", "unsorted", "zero_volume", "refused")


class InvalidRequest(ValueError):
    """A backfill parameter the service cannot accept; `field` names it for the 422 answer."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class DuplicateJob(Exception):
    """An identical backfill is already queued or running; `job` is that job."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"an identical backfill is already {job.status} as job {job.job_id}")
        self.job = job


class JobFinished(Exception):
    """A finished job cannot be cancelled."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.job_id} has already finished ({job.status})")
        self.job = job


def backfill_params(
    data_dir: Path | str,
    *,
    lake: str,
    interval: str,
    symbols: list[str] | None = None,
    candidates: str | None = None,
    returns: str | None = None,
    start: str | pd.Timestamp | None = None,
    end: str | pd.Timestamp | None = None,
    lag: pd.Timedelta = NO_LAG,
    keep_zero_volume: bool = False,
) -> dict[str, Any]:
    """Checked, canonical job parameters (JSON-able): paths resolved inside `data_dir` and existing, symbols
    sorted and unique, instants in UTC, so two requests for the same backfill have equal parameters.

    Raises InvalidRequest naming the field at fault.
    """
    try:
        interval_length(interval)
    except ValueError as error:
        raise InvalidRequest("interval", str(error)) from None
    if symbols is not None and candidates is not None:
        raise InvalidRequest("candidates", "give either candidates or symbols, not both")
    if symbols is not None and not symbols:
        raise InvalidRequest("symbols", "empty universe: give at least one symbol")
    if lag < NO_LAG or lag % pd.Timedelta(seconds=1):
        raise InvalidRequest("lag", f"must be a non-negative whole number of seconds, got {lag}")
    instants = {name: _instant(name, value) for name, value in (("start", start), ("end", end))}
    if instants["start"] is not None and instants["end"] is not None and instants["start"] > instants["end"]:
        raise InvalidRequest("end", f"end {instants['end']} is before start {instants['start']}")
    params: dict[str, Any] = {
        "lake": _existing_path(data_dir, "lake", lake),
        "interval": interval,
        "symbols": sorted(set(symbols)) if symbols is not None else None,
        "candidates": _existing_path(data_dir, "candidates", candidates),
        "returns": _existing_path(data_dir, "returns", returns),
        **{name: None if instant is None else instant.isoformat() for name, instant in instants.items()},
        "lag": lag.isoformat(),
        "keep_zero_volume": keep_zero_volume,
    }
    if params["candidates"] is not None:
        _check_candidates(Path(params["candidates"]))
    return params


def _instant(name: str, value: str | pd.Timestamp | None) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        return parse_instant(value, name=name)
    except ValueError as error:
        raise InvalidRequest(name, str(error)) from None


def _existing_path(data_dir: Path | str, name: str, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        path = resolve_inside(data_dir, value)
    except ValueError as error:
        raise InvalidRequest(name, str(error)) from None
    if not path.exists():
        raise InvalidRequest(name, f"{value!r} does not exist in the data directory")
    return str(path)


def _check_candidates(path: Path) -> None:
    try:
        universe = read_candidates(path)
    except (OSError, ValueError) as error:
        raise InvalidRequest("candidates", str(error)) from None
    if not universe:
        raise InvalidRequest("candidates", f"empty universe: {path.name} lists no symbol")


def _backfill(data_dir: str, params: dict[str, Any]) -> HistoricalFeatureBackfill:
    return HistoricalFeatureBackfill(data_dir, **params | {"lag": pd.Timedelta(params["lag"])})


def _status_record(status: SymbolStatus) -> dict[str, Any]:
    record = asdict(status)
    for name in ("first_ts", "last_ts"):
        record[name] = None if record[name] is None else record[name].isoformat()
    return record


def errors(statuses: list[SymbolStatus]) -> list[dict[str, Any]]:
    """A job's per-symbol errors: the status (reason and cleaning counts) of every symbol that failed."""
    return [_status_record(status) for status in statuses if not status.ok]


def report(result: BackfillResult) -> dict[str, Any]:
    """A job's report: cleaning counts and refusal reasons summed over symbols, and the backfill's timings."""
    reasons: Counter[str] = Counter()
    for status in result.statuses:
        reasons.update(status.refused_reasons)
    return {
        "symbols": len(result.statuses),
        "failed": sum(not status.ok for status in result.statuses),
        **{name: sum(getattr(status, name) for status in result.statuses) for name in _CLEANING_COUNTS},
        "refused_reasons": dict(sorted(reasons.items())),
        "timings": result.timings,
    }


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when the server dies; a no-op elsewhere (the `cancelled` callback
    still notices the orphaning between chunks)."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)


def run_in_child(
    data_dir: str, params: dict[str, Any], results: Connection, cancel: Event, parent_pid: int
) -> None:
    """The child process: run one backfill and send ("progress", done, total) messages, then exactly one
    of ("succeeded", run_id, errors, report), ("cancelled",) or ("failed", message, errors)."""
    _die_with_parent(parent_pid)

    def cancelled() -> bool:
        return cancel.is_set() or os.getppid() != parent_pid

    try:
        result = _backfill(data_dir, params).run(
            progress=lambda done, total: results.send(("progress", done, total)), cancelled=cancelled
        )
    except BackfillCancelled:
        results.send(("cancelled",))
    except BackfillFailed as error:
        results.send(("failed", str(error), errors(error.statuses)))
    except Exception as error:  # the process boundary: any failure becomes the job's message
        results.send(("failed", f"{type(error).__name__}: {error}", []))
    else:
        results.send(("succeeded", result.run.run_id, errors(result.statuses), report(result)))
    finally:
        results.close()


@dataclass
class _Active:
    job_id: str
    cancel: Event
    cancel_requested: bool = False


class JobRunner:
    """The queue of backfill jobs of one data directory and the single worker that runs them."""

    def __init__(self, data_dir: Path | str, *, progress_every: float = 0.25) -> None:
        self.data_dir = Path(data_dir)
        self.jobs = JobStore(Catalog(self.data_dir))
        self.progress_every = progress_every
        self._context = multiprocessing.get_context("spawn")
        self._queue: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._active: _Active | None = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self) -> list[str]:
        """Recover from a previous process (see the module docstring), then start the worker. Returns the
        ids of the jobs marked `interrupted`."""
        interrupted = self.jobs.interrupt_running("the server stopped while this job was running")
        for job in reversed(self.jobs.recent(statuses=_QUEUED)):
            self._queue.put(job.job_id)
        self._worker = threading.Thread(target=self._work, name="asof-backfill-worker", daemon=True)
        self._worker.start()
        return interrupted

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; a running backfill is cancelled and its job marked `interrupted`."""
        self._stopping.set()
        self._queue.put(None)
        with self._lock:
            if self._active is not None:
                self._active.cancel.set()
        if self._worker is not None:
            self._worker.join(timeout)

    def submit(self, params: dict[str, Any]) -> Job:
        """Queue a backfill with parameters from `backfill_params`; DuplicateJob if an identical one is
        queued or running."""
        with self._lock:
            existing = self.jobs.find_active(params)
            if existing is not None:
                raise DuplicateJob(existing)
            job = self.jobs.create(params)
        self._queue.put(job.job_id)
        return job

    def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, or ask a running one to stop; JobFinished if it already ended,
        JobNotFound if there is no such job."""
        with self._lock:
            job = self.jobs.transition(
                job_id,
                JobStatus.CANCELLED,
                expect=_QUEUED,
                finished=utc_now(),
                message="cancelled before start",
            )
            if job is not None:
                return job
            job = self.jobs.get(job_id)
            if job.status not in ACTIVE:
                raise JobFinished(job)
            if self._active is not None and self._active.job_id == job_id:
                self._active.cancel_requested = True
                self._active.cancel.set()
        return self.jobs.update(job_id, message="cancellation requested") or self.jobs.get(job_id)

    def _work(self) -> None:
        while (job_id := self._queue.get()) is not None and not self._stopping.is_set():
            with self._lock:
                job = self.jobs.transition(job_id, JobStatus.RUNNING, expect=_QUEUED, started=utc_now())
                if job is None:  # cancelled while queued
                    continue
                self._active = _Active(job_id, self._context.Event())
            try:
                self._finish(job_id, self._supervise(job, self._active.cancel))
            except Exception as error:  # the worker must outlive any one job
                logger.exception("backfill job %s failed in the worker", job_id)
                self._finish(job_id, ("failed", f"internal error: {type(error).__name__}: {error}", []))
            finally:
                with self._lock:
                    self._active = None

    def _supervise(self, job: Job, cancel: Event) -> tuple:
        """Run the job's backfill in a child process, recording its progress; returns its final message."""
        receiver, sender = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=run_in_child,
            args=(str(self.data_dir), job.params, sender, cancel, os.getpid()),
            name=f"asof-backfill-{job.job_id}",
            daemon=True,
        )
        child.start()
        sender.close()
        outcome: tuple = ("failed", "the backfill process ended without a result", [])
        last_progress = 0.0
        with receiver:
            while True:
                try:
                    if not receiver.poll(0.2):
                        continue
                    message = receiver.recv()
                except EOFError:
                    break
                if message[0] != "progress":
                    outcome = message
                    break
                if time.monotonic() - last_progress >= self.progress_every or message[1] == message[2]:
                    last_progress = time.monotonic()
                    try:  # best effort: a busy catalog must not leave the child unsupervised
                        self.jobs.update(job.job_id, done=message[1], total=message[2])
                    except (OSError, duckdb.Error) as error:
                        logger.warning("job %s: progress not recorded: %s", job.job_id, error)
        child.join(5.0)
        if child.is_alive():
            child.kill()
            child.join()
        if outcome[0] == "failed" and child.exitcode:
            outcome = ("failed", f"{outcome[1]} (exit code {child.exitcode})", outcome[2])
        return outcome

    def _finish(self, job_id: str, outcome: tuple) -> None:
        kind, *details = outcome
        fields: dict[str, Any] = {"finished": utc_now()}
        if kind == "succeeded":
            run_id, symbol_errors, summary = details
            status = JobStatus.SUCCEEDED
            fields |= {"run_id": run_id, "errors": symbol_errors, "report": summary, "message": None}
            fields |= {"done": summary["symbols"], "total": summary["symbols"]}
        elif kind == "cancelled":
            with self._lock:
                by_client = self._active is not None and self._active.cancel_requested
            status = JobStatus.CANCELLED if by_client else JobStatus.INTERRUPTED
            fields["message"] = "cancelled on request" if by_client else "the server stopped during the job"
        else:
            status = JobStatus.FAILED
            fields["message"], fields["errors"] = details
        self.jobs.transition(job_id, status, expect=_RUNNING, **fields)
