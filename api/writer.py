"""The writer's role in a server: the one process that holds the data dir's writer lock runs the jobs and
retention. `asof serve --workers N` starts N processes of one server (one `serve_group`): the first to take
the lock writes, the others serve reads and stand by, taking the lock over if the writer goes. A process of
another server finds the lock held by a stranger and refuses to start, naming it."""

import logging
import threading

from api.settings import Settings
from service.jobs.runner import JobRunner
from storage.datadir import DataDirBusy, WriterLock
from storage.read import FeatureStore
from storage.retention import collect
from vocabulary.errors import Unavailable

logger = logging.getLogger(__name__)

STANDBY_SECONDS = 2.0
"""How often a standing-by worker tries the lock: the bound on how long jobs wait when a writer dies."""


class Writer:
    """Takes the writer role when it can (`begin`), and gives it up on shut-down (`end`)."""

    def __init__(self, settings: Settings, store: FeatureStore, runner: JobRunner) -> None:
        self.settings = settings
        self.store = store
        self.runner = runner
        self.lock = WriterLock(settings.data_dir)
        self._stopping = threading.Event()
        self._standby: threading.Thread | None = None

    @property
    def writing(self) -> bool:
        return self.lock.held

    def begin(self) -> None:
        """Take the lock and start the jobs, or, as a worker of a server whose writer is another process,
        stand by. DataDirBusy when another server holds the data dir."""
        if self._take():
            return
        self._standby = threading.Thread(target=self._stand_by, name="asof-standby", daemon=True)
        self._standby.start()

    def end(self) -> None:
        self._stopping.set()
        if self.writing:
            self.runner.stop()
        self.lock.release()

    def retain(self) -> None:
        """Retention (ASOF_KEEP_RUNS) after a publish: runs read lately or needed by a job are pinned.
        Housekeeping: a catalog that cannot be read now postpones it (/health says why)."""
        try:
            pinned = self.store.pinned(self.settings.pin_seconds) | self.runner.pinned()
            collected = collect(self.store.catalog, keep=self.settings.keep_runs, pinned=pinned)
        except Unavailable as error:
            logger.warning("retention postponed: %s", error)
            return
        if collected.runs or collected.swept:
            logger.info(
                "retention: deleted runs %s (%d bytes), swept %s",
                collected.runs,
                collected.bytes,
                collected.swept,
            )

    def _take(self) -> bool:
        """Whether this process took the writer role (and started the jobs)."""
        try:
            self.lock.acquire(
                url=f"http://{self.settings.bind_host}:{self.settings.port}",
                group=self.settings.serve_group,
                what_to_do="a data dir is served by one server at a time; use that one or another data dir",
            )
        except DataDirBusy as busy:
            if self.settings.serve_group is None or busy.holder.get("group") != self.settings.serve_group:
                raise
            return False
        self.retain()  # also sweeps what writers killed in a crash left behind
        self.runner.start()
        return True

    def _stand_by(self) -> None:
        while not self._stopping.wait(STANDBY_SECONDS):
            try:
                if self._take():
                    logger.warning("this worker took over the writer role (pid of the writer gone)")
                    return
            except DataDirBusy:  # a process of another server took the data dir meanwhile
                logger.exception("the data dir's writer lock went to another server")
                return
