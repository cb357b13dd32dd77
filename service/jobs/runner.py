"""The job queue of one data directory and the single worker that runs it: backfills, updates, compactions
and audits, persisted in the catalog, one at a time, cancellable, restart-safe. Each job's work runs in a
child process (`service.jobs.child`), so reads stay fast while it computes.

- One writer: a single worker thread, in the server process that holds the data dir's writer lock, takes
  queued jobs from the catalog oldest first, so at most one job writes at a time. Any server process may
  queue a job or ask to cancel one (the request is recorded in the job's row); the worker notices within
  `POLL` seconds.
- Progress and per-symbol errors come from the child's typed messages (`service.jobs.messages`).
- Cancel: a queued job is cancelled at once; a running one cooperatively (the child polls between chunks
  or checks), and killed if it has not stopped within `cancel_grace` seconds: a killed backfill leaves only
  a staging directory the next writer sweeps, and an audit writes nothing. A backfill that publishes before
  it notices the cancel ends `succeeded`: its run is complete and immutable.
- Duplicates: a request for the same work as a queued or running job is refused with that job.
- Restart: jobs left `running` by a process that died become `interrupted` (they published nothing, so
  nothing is lost and the previous run is still served); jobs still `queued` are resumed in order, since they
  never started and the request that queued them still stands. A graceful stop cancels the running job and
  marks it `interrupted` too.
"""

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final

from service.jobs.child import run_in_child
from service.jobs.messages import Cancelled, Failed, Outcome, Progress, Succeeded
from service.jobs.store import ACTIVE, PUBLISHING, Job, JobStatus, JobStore, Work, utc_now
from storage.catalog import Catalog
from vocabulary.errors import Busy, Conflict, Unavailable
from vocabulary.spec import AuditSpec

logger = logging.getLogger(__name__)

POLL: Final = 0.5
"""Seconds between looks at the catalog for queued jobs and cancel requests from other server processes."""
_QUEUED = frozenset({JobStatus.QUEUED})
_RUNNING = frozenset({JobStatus.RUNNING})


class DuplicateJob(Conflict):
    """The same work is already queued or running; `job` is that job."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"an identical {job.kind} is already {job.status} as job {job.job_id}")
        self.job = job


class JobFinished(Conflict):
    """A finished job cannot be cancelled."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.job_id} has already finished ({job.status})")
        self.job = job


@dataclass(frozen=True)
class JobLimits:
    """Jobs queued or running at once (`queued`), audits among them (`audits`), finished jobs kept
    (`history`)."""

    queued: int = 16
    audits: int = 2
    history: int = 1_000


@dataclass
class _Active:
    job_id: str
    cancel: Event


class JobRunner:
    """The queue of jobs of one data directory and the single worker that runs them."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        progress_every: float = 0.25,
        cancel_grace: float = 30.0,
        catalog_wait: float = 10.0,
        limits: JobLimits = JobLimits(),
        after_publish: Callable[[str], None] | None = None,
        after_job: Callable[[Job], None] | None = None,
        ray_address: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.ray_address = ray_address
        """The Ray cluster of backfills that ask for the ray executor (None: a local one)."""
        self.limits = limits
        self.after_publish = after_publish
        self.after_job = after_job
        self.jobs = JobStore(Catalog(self.data_dir, lock_timeout=catalog_wait))
        self.progress_every = progress_every
        self.cancel_grace = cancel_grace
        self._blocked: tuple[str, float, str] | None = None
        """While the worker cannot write a job's state: (job id, since when, why)."""
        self._context = multiprocessing.get_context("spawn")
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._active: _Active | None = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        """Start the worker (only in the process that holds the data dir's writer lock); it first recovers
        from a previous process (see the module docstring), waiting for the catalog if it cannot be read yet
        (`problems()` says so meanwhile)."""
        self._worker = threading.Thread(target=self._work, name="asof-job-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; a running one is cancelled and marked `interrupted`."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            if self._active is not None:
                self._active.cancel.set()
        if self._worker is not None:
            self._worker.join(timeout)

    def submit(self, work: Work) -> Job:
        """Queue `work` (paths already admitted); DuplicateJob if the same work is queued or running, Busy
        when the queue (or, for an audit, the audits) is full."""
        with self._lock:
            existing = self.jobs.find_active(work)
            if existing is not None:
                raise DuplicateJob(existing)
            if self.jobs.active() >= self.limits.queued:
                raise Busy(f"{self.limits.queued} jobs are already queued or running (ASOF_MAX_QUEUED_JOBS)")
            if isinstance(work, AuditSpec) and self.jobs.active("audit") >= self.limits.audits:
                raise Busy(f"{self.limits.audits} audits are already queued or running (ASOF_MAX_AUDITS)")
            job = self.jobs.create(work)
        self._wake.set()
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
                self._active.cancel.set()
        # Recorded for whichever server process runs the job: it polls for the request.
        requested = self.jobs.update(job_id, cancel_requested=True, message="cancellation requested")
        return requested or self.jobs.get(job_id)

    def problems(self) -> list[str]:
        """What keeps the worker from doing its work, for /health: empty when all is well."""
        if self._worker is not None and not self._worker.is_alive() and not self._stopping.is_set():
            return ["the job worker has stopped"]
        blocked = self._blocked
        if blocked is not None and time.monotonic() - blocked[1] > 2.0:
            job_id, since, why = blocked
            return [f"the job worker cannot record job {job_id} for {time.monotonic() - since:.0f} s: {why}"]
        return []

    def _work(self) -> None:
        """Recover, then run queued jobs oldest first, as the catalog lists them (any server process may
        have queued them), waking on a local submit or every `POLL` seconds."""
        try:
            interrupted = self._recorded(
                "(recovery)",
                lambda: self.jobs.interrupt_running("the server stopped while this job was running"),
            )
        except Unavailable:  # stopping while the catalog was still unavailable
            return
        if interrupted:
            logger.warning("jobs left running by a previous process marked interrupted: %s", interrupted)
        while not self._stopping.is_set():
            try:
                job = self.jobs.next_queued()
            except Unavailable as error:
                logger.warning("the job queue cannot be read yet: %s", error)
                job = None
            if job is None:
                self._wake.wait(POLL)
                self._wake.clear()
                continue
            try:
                self._run(job.job_id)
            except Exception:  # the worker outlives anything one job throws at it
                logger.exception("job %s: the worker could not run it", job.job_id)

    def _run(self, job_id: str) -> None:
        with self._lock:  # active before it runs, so a cancel from now on reaches it
            active = self._active = _Active(job_id, self._context.Event())
        try:
            job = self._recorded(
                job_id,
                lambda: self.jobs.transition(job_id, JobStatus.RUNNING, expect=_QUEUED, started=utc_now()),
            )
            if job is None:  # cancelled while queued
                return
            try:
                outcome = self._supervise(job, active.cancel)
            except Exception as error:
                logger.exception("job %s failed in the worker", job_id)
                outcome = Failed(f"internal error: {type(error).__name__}: {error}")
            self._finish(job, outcome)
        finally:
            with self._lock:
                self._active = None

    def _recorded[T](self, job_id: str, write: Callable[[], T]) -> T:
        """`write()` to the job table, retried with backoff while the catalog is unavailable (locked by
        another process, or unreadable for a while): the job's state lives in memory until it lands, and
        `problems()` reports the wait. Gives up only when the runner stops."""
        pause = 0.1
        while True:
            try:
                result = write()
            except Unavailable as error:
                if self._stopping.is_set():
                    raise
                if self._blocked is None:
                    self._blocked = (job_id, time.monotonic(), str(error))
                logger.warning("job %s: cannot record its state yet: %s", job_id, error)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            self._blocked = None
            return result

    def _supervise(self, job: Job, cancel: Event) -> Outcome:
        """Run the job's work in a child process, recording its progress; returns its outcome."""
        receiver, sender = self._context.Pipe(duplex=False)
        child = self._context.Process(
            target=run_in_child,
            args=(str(self.data_dir), job.work, sender, cancel, os.getpid(), self.ray_address),
            name=f"asof-{job.kind}-{job.job_id}",
            daemon=True,
        )
        child.start()
        sender.close()
        outcome: Outcome = Failed(f"the {job.kind} process ended without a result")
        last_progress = last_check = 0.0
        cancelled_at: float | None = None
        with receiver:
            while True:
                if time.monotonic() - last_check >= POLL:
                    last_check = time.monotonic()
                    if self._cancel_requested(job.job_id):
                        cancel.set()  # asked for from another server process
                if cancel.is_set():
                    cancelled_at = cancelled_at or time.monotonic()
                    if time.monotonic() - cancelled_at > self.cancel_grace:
                        child.kill()
                        outcome = Cancelled()
                        break
                try:
                    if not receiver.poll(0.2):
                        continue
                    message = receiver.recv()
                except EOFError:
                    break
                if not isinstance(message, Progress):
                    outcome = message
                    break
                if time.monotonic() - last_progress >= self.progress_every or message.done == message.total:
                    last_progress = time.monotonic()
                    self._record_progress(job.job_id, message)
        child.join(5.0)
        if child.is_alive():
            child.kill()
            child.join()
        if isinstance(outcome, Failed) and child.exitcode:
            outcome = Failed(f"{outcome.message} (exit code {child.exitcode})", outcome.errors)
        return outcome

    def _cancel_requested(self, job_id: str) -> bool:
        """Best effort, like progress: a busy catalog only delays noticing the request."""
        try:
            return self.jobs.get(job_id).cancel_requested
        except Unavailable:
            return False

    def _record_progress(self, job_id: str, progress: Progress) -> None:
        """Best effort: a busy catalog must not leave the child unsupervised."""
        try:
            self.jobs.update(job_id, done=progress.done, total=progress.total)
        except Unavailable as error:
            logger.warning("job %s: progress not recorded: %s", job_id, error)

    def _finish(self, job: Job, outcome: Outcome) -> None:
        job_id = job.job_id
        fields: dict[str, Any] = {"finished": utc_now()}
        if isinstance(outcome, Succeeded):
            status = JobStatus.SUCCEEDED
            fields |= {"run_id": outcome.run_id, "errors": outcome.errors, "report": outcome.report}
            fields["message"] = outcome.message
        elif isinstance(outcome, Cancelled):
            by_client = not self._stopping.is_set()
            status = JobStatus.CANCELLED if by_client else JobStatus.INTERRUPTED
            fields["message"] = "cancelled on request" if by_client else "the server stopped during the job"
        else:
            status = JobStatus.FAILED
            fields |= {"message": outcome.message, "errors": outcome.errors}
        if isinstance(outcome, Succeeded) and job.kind in PUBLISHING and self.after_publish is not None:
            # before the job reads as done, so a client that sees it done sees what follows a publish too
            self._housekeeping(job_id, self.after_publish, outcome.run_id)
        final = self._recorded(
            job_id, lambda: self.jobs.transition(job_id, status, expect=_RUNNING, **fields)
        )
        try:  # history is bounded; a busy catalog only delays the pruning to the next job
            self.jobs.prune(self.limits.history)
        except Unavailable as error:
            logger.warning("job history not pruned: %s", error)
        if final is not None and self.after_job is not None:
            self._housekeeping(job_id, self.after_job, final)

    @staticmethod
    def _housekeeping[T](job_id: str, hook: Callable[[T], None], argument: T) -> None:
        """Run a hook (retention, metrics) that must not fail the job it follows."""
        try:
            hook(argument)
        except Exception:
            logger.exception("after job %s: housekeeping failed", job_id)

    def pinned(self) -> frozenset[str]:
        """The runs queued or running jobs need (`store.needs`)."""
        return self.jobs.needed()
