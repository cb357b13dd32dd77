"""Who writes a data directory. One server holds its writer lock for its whole life, so a second server, or
a command that writes (backfill, gc) from beside it, is refused with the holder's name instead of racing it
for the job table and the catalog."""

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Final

import pandas as pd

from vocabulary.errors import Conflict

LOCK_FILE: Final = ".asof.lock"


def try_lock(path: Path) -> int | None:
    """An exclusive flock on `path` (created if needed), or None when a live process holds it."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        return None
    return descriptor


class DataDirBusy(Conflict):
    """Another process holds the data dir's writer lock; `holder` says who (pid, host, url, since)."""

    def __init__(self, data_dir: Path, holder: dict, what_to_do: str) -> None:
        since = holder.get("since", "?")
        where = f" at {holder['url']}" if holder.get("url") else ""
        super().__init__(
            f"data dir {data_dir} is held by an asof server (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')}{where}, since {since}); {what_to_do}"
        )
        self.holder = holder


class WriterLock:
    """The data dir's exclusive writer lock (`flock` on `<data_dir>/.asof.lock`): released when the holder
    closes it or its process dies, so a crash never leaves the directory locked."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self._descriptor: int | None = None

    def acquire(
        self, *, url: str | None = None, group: str | None = None, what_to_do: str = "stop it first"
    ) -> None:
        """Take the lock and record who holds it (`group`: the server the process is a worker of);
        DataDirBusy naming the holder if another process has it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = try_lock(self.path)
        if descriptor is None:
            raise DataDirBusy(self.data_dir, holder(self.data_dir) or {}, what_to_do)
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "url": url,
            "group": group,
            "since": pd.Timestamp.now(tz="UTC").isoformat(timespec="seconds"),
        }
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, json.dumps(record).encode(), 0)
        self._descriptor = descriptor

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def holder(data_dir: Path | str) -> dict | None:
    """Who holds the data dir's writer lock (what the holder recorded), or None when nobody does."""
    path = Path(data_dir) / LOCK_FILE
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                return json.loads(os.pread(descriptor, 4096, 0) or b"{}")
            except ValueError:
                return {}
        return None
    finally:
        os.close(descriptor)


def refuse_if_served(data_dir: Path | str, what_to_do: str) -> None:
    """For a command that writes: DataDirBusy (naming the server and `what_to_do`) when a server holds the
    data dir."""
    found = holder(data_dir)
    if found is not None:
        raise DataDirBusy(Path(data_dir), found, what_to_do)
