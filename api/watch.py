"""What `/health` and `/runs` report, kept current by a background thread so that answering them reads no
storage: the published runs, the jobs per state, and what is wrong with storage (a catalog that cannot be
read or stays locked, a dataset's newest run file gone). A publish refreshes it before its job reads as
done; otherwise it is at most `every` seconds (plus one catalog read) old."""

import logging
import threading
import time
from dataclasses import dataclass, field

from service.jobs.runner import JobRunner
from storage.catalog import RunInfo
from storage.read import FeatureStore
from vocabulary.errors import Unavailable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    runs: list[RunInfo] | None  # newest first; None while the catalog cannot be read
    jobs: dict[str, int] | None
    problems: list[str]
    datasets: dict[str, RunInfo] = field(default_factory=dict)  # each dataset's newest run, by name
    taken: float = field(default_factory=time.monotonic)


class Watch:
    """Takes a Snapshot now (`refresh`) and every `every` seconds once started."""

    def __init__(self, store: FeatureStore, runner: JobRunner, *, every: float = 0.5) -> None:
        self.store = store
        self.runner = runner
        self.every = every
        self._snapshot = Snapshot(None, None, ["not looked at yet"])
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshing = threading.Lock()

    @property
    def snapshot(self) -> Snapshot:
        """The newest snapshot; when the thread has not refreshed it for long, that is a problem too."""
        current = self._snapshot
        late = time.monotonic() - current.taken
        if self._thread is not None and late > 10 * self.every + 5:
            stuck = f"storage not checked for {late:.0f} s"
            return Snapshot(
                current.runs, current.jobs, [*current.problems, stuck], current.datasets, current.taken
            )
        return current

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="asof-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()

    def refresh(self) -> None:
        with self._refreshing:
            try:
                runs = self.store.catalog.runs()
                jobs = self.runner.jobs.counts()
            except Unavailable as error:
                self._snapshot = Snapshot(None, None, [f"catalog: {error}"])
                return
            datasets = _newest_per_dataset(runs)
            missing = [
                f"run {run.run_id} (dataset {name}): its features files are missing"
                for name, run in datasets.items()
                if not (files := run.files()) or not all(file.is_file() for file in files)
            ]
            self._snapshot = Snapshot(runs, jobs, missing, datasets)

    def _watch(self) -> None:
        while not self._stopping.wait(self.every):
            try:
                self.refresh()
            except Exception:  # the watch must outlive anything one look throws
                logger.exception("storage check failed")


def _newest_per_dataset(runs: list[RunInfo]) -> dict[str, RunInfo]:
    """Each dataset's newest run (`runs` come newest first), by dataset name."""
    newest: dict[str, RunInfo] = {}
    for run in runs:
        newest.setdefault(run.spec.dataset, run)
    return dict(sorted(newest.items()))
