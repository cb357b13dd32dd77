"""Where a backfill's tasks run: this machine's cores (`LocalExecutor`) or a Ray cluster (`RayExecutor`).

A task is a module-level function and one picklable argument; it reads its inputs from, and writes its
output to, paths both sides reach (the lake, the run's staging folder), and returns a small summary. Both
executors hand back each task's result or exception as the tasks finish, and stop between polls once
`cancelled()` is true: the local one runs no further task and waits for the running ones (each one chunk,
so seconds at most), the Ray one cancels every unfinished task (`ray.cancel(force=True)`) and waits until
Ray reports them ended. Either way `Cancelled` is raised, and nothing a task wrote is published.

Why threads and not processes locally: the ratings kernels release the GIL (numba `nogil`) and so do
Arrow's readers and writers, so threads use every core without starting (and importing the engine into)
one process per core, without copying chunks between processes, and a cancelled thread leaves no orphan.
"""

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol

from storage.runs import RunTasks
from vocabulary.errors import AsofError, InvalidInput, Unavailable

POLL_SECONDS = 0.1
"""How often a waiting executor asks `cancelled()`."""

Task = Callable[[Any], Any]


class Cancelled(AsofError):
    """`cancelled()` turned true; every task has stopped."""


class Executor(Protocol):
    parallelism: int
    """How many tasks it runs at once."""
    shares_memory: bool
    """Whether its tasks run in this process, so a task's result may hold rows (else they go by files)."""

    def as_completed(
        self, function: Task, tasks: Sequence[Any], cancelled: Callable[[], bool]
    ) -> Iterator[tuple[int, Any]]:
        """(position, result or the exception it raised) of every task, as they finish."""
        ...

    def close(self) -> None: ...


def results(
    executor: Executor, function: Task, tasks: Sequence[Any], cancelled: Callable[[], bool]
) -> list[Any]:
    """Every task's result in the tasks' order; the first exception a task raised is raised."""
    found: dict[int, Any] = {}
    for position, outcome in executor.as_completed(function, tasks, cancelled):
        if isinstance(outcome, BaseException):
            raise outcome
        found[position] = outcome
    return [found[position] for position in range(len(tasks))]


def task_runner(executor: Executor, cancelled: Callable[[], bool]) -> RunTasks:
    """How a RunWriter runs its part writers here: `results` on `executor`, stopping when `cancelled()`."""
    return lambda function, tasks: results(executor, function, tasks, cancelled)


def never() -> bool:
    """The cancellation callback when the caller gives none."""
    return False


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LocalExecutor:
    """Tasks on threads, one per core of this machine (or `workers`)."""

    shares_memory = True

    def __init__(self, workers: int | None = None) -> None:
        self.parallelism = workers or cores()
        self._pool = ThreadPoolExecutor(self.parallelism, thread_name_prefix="asof-task")

    def as_completed(
        self, function: Task, tasks: Sequence[Any], cancelled: Callable[[], bool]
    ) -> Iterator[tuple[int, Any]]:
        futures: dict[Future, int] = {self._pool.submit(function, task): k for k, task in enumerate(tasks)}
        pending = set(futures)
        try:
            while pending:
                if cancelled():
                    raise Cancelled(f"cancelled with {len(pending)} of {len(tasks)} tasks unfinished")
                done, pending = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                for future in done:  # forgotten once handed over: a result may hold a chunk's rows
                    error = future.exception()
                    yield futures.pop(future), future.result() if error is None else error
                del done
        finally:
            for future in pending:
                future.cancel()
            wait(pending)  # the running ones finish their chunk; nothing of theirs is published

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Tasks on a Ray cluster: the one at `address` (`ray://host:10001`, `host:6379`, `auto`), or with
    none a local one started for this process (or the one this process already joined). Ray is imported
    only here, so it is needed only when asked for (`pip install asof[ray]`)."""

    shares_memory = False

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise InvalidInput(
                "the ray executor needs Ray: install asof with its extra, asof[ray]", field="executor"
            ) from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": worker_environment()},
                )
            except (ConnectionError, RuntimeError, ValueError) as error:
                raise Unavailable(
                    f"cannot reach the Ray cluster at {address or 'a local one'}: {error}"
                ) from None
            self._started = True
        self.parallelism = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def as_completed(
        self, function: Task, tasks: Sequence[Any], cancelled: Callable[[], bool]
    ) -> Iterator[tuple[int, Any]]:
        ray = self._ray
        remote = ray.remote(function).options(num_cpus=1, max_retries=0)
        refs = {remote.remote(task): k for k, task in enumerate(tasks)}
        pending = list(refs)
        try:
            while pending:
                if cancelled():
                    raise Cancelled(f"cancelled with {len(pending)} of {len(tasks)} tasks unfinished")
                done, pending = ray.wait(pending, num_returns=1, timeout=POLL_SECONDS)
                for ref in done:
                    position = refs.pop(ref)  # forgotten once handed over: a result may be large
                    try:
                        outcome = ray.get(ref)
                    except ray.exceptions.RayTaskError as error:  # the task raised: its own exception
                        outcome = error.as_instanceof_cause()
                    except ray.exceptions.RayError as error:  # the worker died, or Ray lost the task
                        outcome = error
                    yield position, outcome
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            _await_ended(ray, pending)

    def close(self) -> None:
        if self._started:
            self._ray.shutdown()


def _await_ended(ray: Any, refs: list, timeout: float = 30.0) -> None:
    """Wait until Ray reports every cancelled task ended (cancelled, failed or finished)."""
    deadline = time.monotonic() + timeout
    while refs and time.monotonic() < deadline:
        _, refs = ray.wait(refs, num_returns=len(refs), timeout=POLL_SECONDS)


def worker_environment() -> dict[str, str]:
    """What Ray workers need to import asof the way this process does: its folder on PYTHONPATH (a
    checkout; an installed asof is found anyway), and the numba cache, so workers load the compiled engine
    instead of compiling it."""
    root = str(Path(__file__).resolve().parents[1])
    path = os.pathsep.join(part for part in (root, os.environ.get("PYTHONPATH", "")) if part)
    environment = {"PYTHONPATH": path}
    if "NUMBA_CACHE_DIR" in os.environ:
        environment["NUMBA_CACHE_DIR"] = os.environ["NUMBA_CACHE_DIR"]
    return environment


def executor_for(name: str, ray_address: str | None = None) -> Executor:
    """The executor a spec names; `ray_address` is the operator's (a setting or a CLI flag), never a
    request's."""
    if name == "ray":
        return RayExecutor(ray_address)
    return LocalExecutor()
