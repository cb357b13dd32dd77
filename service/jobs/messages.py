"""What a job's child process tells the runner, one typed message at a time over a pipe: any number of
`Progress`, then exactly one outcome."""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Progress:
    done: int
    total: int


@dataclass(frozen=True)
class Succeeded:
    """`run_id`: the run a backfill published, or the run an audit examined; `report` the job's report."""

    run_id: str
    report: dict[str, Any]
    errors: list[dict[str, Any]] = field(default_factory=list)
    message: str | None = None


@dataclass(frozen=True)
class Cancelled:
    """The work stopped on request (or because the server went away) and published nothing."""


@dataclass(frozen=True)
class Failed:
    message: str
    errors: list[dict[str, Any]] = field(default_factory=list)


Outcome = Succeeded | Cancelled | Failed
Message = Progress | Outcome
