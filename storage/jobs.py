"""Backfill jobs as rows of the catalog's `jobs` table, so a job outlives the process that ran it.

Every state change is a compare-and-set (`UPDATE ... WHERE status IN (...)`), so a cancel racing the worker
can never resurrect a finished job or finish a cancelled one. Instants are stored as naive UTC TIMESTAMPs.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import pandas as pd

from storage.catalog import Catalog


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})


class JobNotFound(LookupError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"unknown job {job_id!r}")
        self.job_id = job_id


@dataclass(frozen=True)
class Job:
    job_id: str
    status: JobStatus
    params: dict[str, Any]
    done: int
    total: int | None
    errors: list[dict[str, Any]]
    report: dict[str, Any]
    run_id: str | None
    created: pd.Timestamp
    started: pd.Timestamp | None
    finished: pd.Timestamp | None
    message: str | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id VARCHAR PRIMARY KEY,
    status VARCHAR NOT NULL,
    params VARCHAR NOT NULL,
    params_key VARCHAR NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    total BIGINT,
    errors VARCHAR NOT NULL DEFAULT '[]',
    report VARCHAR NOT NULL DEFAULT '{}',
    run_id VARCHAR,
    created TIMESTAMP NOT NULL,
    started TIMESTAMP,
    finished TIMESTAMP,
    message VARCHAR
)
"""
_COLUMNS = "job_id, status, params, done, total, errors, report, run_id, created, started, finished, message"
_UPDATABLE = frozenset({"done", "total", "errors", "report", "run_id", "started", "finished", "message"})
_JSON_FIELDS = frozenset({"errors", "report"})


def params_key(params: dict[str, Any]) -> str:
    """Canonical text of a job's parameters: two requests are duplicates iff their keys are equal."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def utc_now() -> datetime:
    """Now as the naive UTC datetime the table stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def _timestamp(value: datetime | None) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value, tz="UTC")


def _job(row: tuple) -> Job:
    job_id, status, params, done, total, errors, report, run_id, created, started, finished, message = row
    return Job(
        job_id=job_id,
        status=JobStatus(status),
        params=json.loads(params),
        done=done,
        total=total,
        errors=json.loads(errors),
        report=json.loads(report),
        run_id=run_id,
        created=_timestamp(created),
        started=_timestamp(started),
        finished=_timestamp(finished),
        message=message,
    )


class JobStore:
    """The `jobs` table of one catalog; each call opens its own short-lived connection."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        with catalog.connect() as connection:
            connection.execute(_SCHEMA)

    def create(self, params: dict[str, Any]) -> Job:
        job_id = uuid.uuid4().hex[:12]
        with self.catalog.connect() as connection:
            connection.execute(
                "INSERT INTO jobs (job_id, status, params, params_key, created) VALUES (?, ?, ?, ?, ?)",
                [job_id, JobStatus.QUEUED, json.dumps(params), params_key(params), utc_now()],
            )
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        with self.catalog.connect() as connection:
            row = connection.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", [job_id]).fetchone()
        if row is None:
            raise JobNotFound(job_id)
        return _job(row)

    def recent(self, *, statuses: frozenset[JobStatus] | None = None, limit: int | None = None) -> list[Job]:
        """Jobs newest first, optionally only those in `statuses`."""
        where, arguments = "", []
        if statuses is not None:
            where = f"WHERE status IN ({', '.join('?' * len(statuses))})"
            arguments = sorted(statuses)
        query = f"SELECT {_COLUMNS} FROM jobs {where} ORDER BY created DESC, job_id DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        with self.catalog.connect() as connection:
            return [_job(row) for row in connection.execute(query, arguments).fetchall()]

    def counts(self) -> dict[str, int]:
        """How many jobs are in each state (every state named, zeros included)."""
        with self.catalog.connect() as connection:
            rows = dict(connection.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall())
        return {status.value: rows.get(status.value, 0) for status in JobStatus}

    def find_active(self, params: dict[str, Any]) -> Job | None:
        """The queued or running job with exactly these parameters, if any."""
        with self.catalog.connect() as connection:
            row = connection.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE params_key = ? AND status IN (?, ?) "
                "ORDER BY created LIMIT 1",
                [params_key(params), *sorted(ACTIVE)],
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
