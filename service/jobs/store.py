"""Jobs as rows of the catalog's `jobs` table, so a job outlives the process that ran it.

A job has a kind (`backfill`, `audit`, `update`, `compact`) and the spec of its work, stored as JSON and
read back typed. Every state change is a compare-and-set (`UPDATE ... WHERE status IN (...)`), so a cancel
racing the worker can never resurrect a finished job or finish a cancelled one. Instants are stored as
naive UTC TIMESTAMPs. The table's schema belongs to the catalog file (`storage.catalog`), which versions it.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import pandas as pd

from storage.catalog import Catalog
from vocabulary.errors import NotFound
from vocabulary.spec import NEWEST, AuditSpec, BackfillSpec, CompactSpec, UpdateSpec

Work = BackfillSpec | AuditSpec | UpdateSpec | CompactSpec
"""What a job does: the spec of its backfill, audit, update or compaction."""
KINDS: Final[dict[str, type[Work]]] = {
    "backfill": BackfillSpec,
    "audit": AuditSpec,
    "update": UpdateSpec,
    "compact": CompactSpec,
}
PUBLISHING: Final = frozenset({"backfill", "update", "compact"})
"""The kinds of job whose success publishes a run (retention follows them)."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
FINISHED = frozenset(JobStatus) - ACTIVE


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown job {job_id!r}")
        self.job_id = job_id


def kind_of(work: Work) -> str:
    return next(kind for kind, spec in KINDS.items() if isinstance(work, spec))


def needs(work: Work) -> str | None:
    """The published run a job's work reads, which retention must keep: the run an audit examines, the
    run an update or a compaction starts from (when named: a dataset's newest run is never collected)."""
    if isinstance(work, AuditSpec):
        return work.run_id
    if isinstance(work, UpdateSpec | CompactSpec) and work.run_id != NEWEST:
        return work.run_id
    return None


@dataclass(frozen=True)
class Job:
    job_id: str
    status: JobStatus
    work: Work
    done: int
    total: int | None
    errors: list[dict[str, Any]]
    report: dict[str, Any]
    run_id: str | None
    created: pd.Timestamp
    started: pd.Timestamp | None
    finished: pd.Timestamp | None
    message: str | None
    cancel_requested: bool = False

    @property
    def kind(self) -> str:
        return kind_of(self.work)


_COLUMNS = (
    "job_id, kind, status, params, done, total, errors, report, run_id, created, started, finished, message, "
    "cancel_requested"
)
_UPDATABLE = frozenset(
    {"done", "total", "errors", "report", "run_id", "started", "finished", "message", "cancel_requested"}
)
_JSON_FIELDS = frozenset({"errors", "report"})


def utc_now() -> datetime:
    """Now as the naive UTC datetime the table stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def _timestamp(value: datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value, tz="UTC")


def _job(row: tuple) -> Job:
    job_id, kind, status, params, done, total, errors, report, run_id, created, started, finished = row[:12]
    message, cancel_requested = row[12:]
    return Job(
        job_id=job_id,
        status=JobStatus(status),
        work=KINDS[kind].from_dict(json.loads(params)),
        done=done,
        total=total,
        errors=json.loads(errors),
        report=json.loads(report),
        run_id=run_id,
        created=_timestamp(created),
        started=_timestamp(started),
        finished=_timestamp(finished),
        message=message,
        cancel_requested=bool(cancel_requested),
    )


class JobStore:
    """The `jobs` table of one catalog; each call opens its own short-lived connection."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def create(self, work: Work) -> Job:
        """A queued job; an audit names its run from the start, a backfill once it has published one."""
        job_id = uuid.uuid4().hex[:12]
        run_id = work.run_id if isinstance(work, AuditSpec) else None
        with self.catalog.connect() as connection:
            connection.execute(
                "INSERT INTO jobs (job_id, kind, status, params, params_key, run_id, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    job_id,
                    kind_of(work),
                    JobStatus.QUEUED,
                    json.dumps(work.to_dict()),
                    work.key(),
                    run_id,
                    utc_now(),
                ],
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.catalog.connect() as connection:
            row = connection.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    def recent(
        self,
        *,
        statuses: frozenset[JobStatus] | None = None,
        kind: str | None = None,
        run_id: str | None = None,
        limit: int | None = None,
        before: str | None = None,
    ) -> list[Job]:
        """Jobs newest first, optionally only those in `statuses`, of `kind`, about `run_id`, or listed
        after job `before` (the page after the one that ended with it; JobNotFound if it is unknown)."""
        conditions, arguments = [], []
        if before is not None:
            last = self.get(before)
            conditions.append("(created, job_id) < (?, ?)")
            arguments += [last.created.tz_convert(None).to_pydatetime(), before]
        if statuses is not None:
            conditions.append(f"status IN ({', '.join('?' * len(statuses))})")
            arguments += sorted(statuses)
        for column, value in (("kind", kind), ("run_id", run_id)):
            if value is not None:
                conditions.append(f"{column} = ?")
                arguments.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        query = f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY created DESC, job_id DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.catalog.connect() as connection:
            return [_job(row) for row in connection.execute(query, arguments).fetchall()]

    def active(self, kind: str | None = None) -> int:
        """How many jobs (of `kind`) are queued or running."""
        with self.catalog.connect() as connection:
            (count,) = connection.execute(
                "SELECT count(*) FROM jobs WHERE status IN (?, ?) AND (? IS NULL OR kind = ?)",
                [*sorted(ACTIVE), kind, kind],
            ).fetchone()
        return count

    def prune(self, keep: int) -> int:
        """Delete finished jobs beyond the newest `keep`, except each run's newest succeeded audit (its
        report is what GET /runs/{id}/audit serves). Returns how many went."""
        finished = f"status NOT IN ({', '.join('?' * len(ACTIVE))})"
        with self.catalog.connect() as connection:
            deleted = connection.execute(
                f"WITH kept AS (SELECT job_id FROM jobs WHERE {finished} ORDER BY created DESC, job_id DESC "
                "LIMIT ?), reports AS (SELECT arg_max(job_id, created) AS job_id FROM jobs "
                "WHERE kind = 'audit' AND status = ? GROUP BY run_id) "
                f"DELETE FROM jobs WHERE {finished} AND job_id NOT IN (SELECT job_id FROM kept) "
                "AND job_id NOT IN (SELECT job_id FROM reports) RETURNING 1",
                [*sorted(ACTIVE), keep, JobStatus.SUCCEEDED, *sorted(ACTIVE)],
            ).fetchall()
        return len(deleted)

    def needed(self) -> frozenset[str]:
        """The runs queued or running jobs need (`needs`): pinned against retention."""
        return frozenset(run_id for job in self.recent(statuses=ACTIVE) if (run_id := needs(job.work)))

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state (every state named, zeros included)."""
        with self.catalog.connect() as connection:
            rows = dict(connection.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
        return {status.value: rows.get(status.value, 0) for status in JobStatus}

    def next_queued(self) -> Job | None:
        """The job queued first, if any: jobs run in the order they were asked for."""
        with self.catalog.connect() as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE status = ? ORDER BY created, job_id LIMIT 1",
                [JobStatus.QUEUED],
            ).fetchone()
        return None if row is None else _job(row)

    def find_active(self, work: Work) -> Job | None:
        """The queued or running job doing exactly this work, if any."""
        with self.catalog.connect() as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE kind = ? AND params_key = ? AND status IN (?, ?) "
                "ORDER BY created LIMIT 1",
                [kind_of(work), work.key(), *sorted(ACTIVE)],
            ).fetchone()
        return None if row is None else _job(row)

    def transition(
        self, job_id: str, status: JobStatus, *, expect: frozenset[JobStatus], **fields: Any
    ) -> Job | None:
        """Move a job to `status` (and set `fields`) only if it is in one of `expect`; None if it was not."""
        return self._update(job_id, {"status": status, **self._encode(fields)}, expect)

    def update(self, job_id: str, **fields: Any) -> Job | None:
        """Set `fields` of a job that is still active; None if it has finished meanwhile."""
        return self._update(job_id, self._encode(fields), ACTIVE)

    def interrupt_running(self, message: str) -> list[str]:
        """Mark every `running` job `interrupted`: at start-up they are left over from a process that died."""
        with self.catalog.connect() as connection:
            rows = connection.execute(
                "UPDATE jobs SET status = ?, finished = ?, message = ? WHERE status = ? RETURNING job_id",
                [JobStatus.INTERRUPTED, utc_now(), message, JobStatus.RUNNING],
            ).fetchall()
        return sorted(job_id for (job_id,) in rows)

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, Any]:
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"jobs: cannot update {', '.join(sorted(unknown))}")
        return {name: json.dumps(value) if name in _JSON_FIELDS else value for name, value in fields.items()}

    def _update(self, job_id: str, values: dict[str, Any], expect: frozenset[JobStatus]) -> Job | None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        query = (
            f"UPDATE jobs SET {assignments} WHERE job_id = ? "
            f"AND status IN ({', '.join('?' * len(expect))}) RETURNING {_COLUMNS}"
        )
        with self.catalog.connect() as connection:
            row = connection.execute(query, [*values.values(), job_id, *sorted(expect)]).fetchone()
        return None if row is None else _job(row)
