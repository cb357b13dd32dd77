"""Everything an operator can set: where the service keeps its data, where it listens, who may use it and how
much one client may take. Each field is an `ASOF_<NAME>` environment variable (flags of `asof serve`
override some); the README lists them with their defaults and reasons."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Self, get_args, get_type_hints

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    host: str | None = None
    """None: not given, so the server binds loopback only."""
    port: int = 8000
    api_token: str | None = None
    """When set, every endpoint but /health needs `Authorization: Bearer <token>`."""
    read_token: str | None = None
    """A second token that may read (GET, and POST /features/batch) but not start, cancel or audit."""
    max_body_bytes: int = 1_000_000
    """A request body above this is refused (413) before it is read: a batch of 1,000 instants is ~30 kB."""
    max_read_cells: int = 2_000_000
    """The work of one read: instants x symbols x features. 130 instants x 1,000 symbols x 3 ratings is
    390,000; the backtest client asks 64 instants at a time."""
    max_concurrent_reads: int = 4
    """Feature reads computed at once; the others wait. With `max_read_cells` this bounds read memory."""
    column_bytes: int = 1 << 30
    """Feature columns the read index holds in memory across runs (least recently used dropped first):
    with the runs' own arrays (about 40 bytes a row each, two runs at most) the bound on read memory."""
    answer_cache_bytes: int = 64_000_000
    """Recently encoded feature answers kept for repeats of the same question (runs are immutable)."""
    max_queued_jobs: int = 16
    """Jobs waiting or running at once; more is a 429."""
    max_audits: int = 2
    """Audits waiting or running at once; more is a 429 (each recomputes rows and backfills a copy)."""
    max_job_history: int = 1_000
    """Finished jobs kept; older ones are pruned (their runs stay)."""
    keep_runs: int | None = None
    """Retention: runs kept per dataset (newest first) after each publish; None keeps every run."""
    pin_seconds: float = 3600.0
    """A run read by a client within this many seconds is pinned: retention does not delete it."""
    default_dataset: str | None = None
    """The dataset an unnamed read follows when the data dir holds several."""
    catalog_wait: float = 1.0
    """Seconds a request waits for a catalog another process holds before answering 503."""
    serve_group: str | None = None
    """Set by `asof serve --workers N` for its worker processes (not for operators): a worker that finds the
    writer lock held by its own group serves reads, and takes over jobs if the writer goes."""
    ray_address: str | None = None
    """The Ray cluster backfills with `"executor": "ray"` run on (`ray://head:10001`); None starts a local
    one. The data dir must be on storage every node of the cluster reaches."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """Fields from `ASOF_<NAME>` variables (empty means unset), then `overrides` (flags) on top; a
        value that does not parse is a ValueError naming the variable."""
        environ = os.environ if environ is None else environ
        kinds = get_type_hints(cls)
        values: dict[str, object] = {}
        for field in fields(cls):
            name = f"ASOF_{field.name.upper()}"
            if environ.get(name, "") != "":
                values[field.name] = _parse(name, environ[name], kinds[field.name])
        values |= {name: value for name, value in overrides.items() if value is not None}
        return cls(**values)  # type: ignore[arg-type]

    @property
    def bind_host(self) -> str:
        return self.host or LOOPBACK


def _parse(name: str, raw: str, kind: object) -> object:
    """`raw` as the field's type (`int | None` reads as int): a Path, a non-negative number, or text."""
    options = get_args(kind) or (kind,)
    if Path in options:
        return Path(raw)
    number_type = next((option for option in (int, float) if option in options), None)
    if number_type is None:
        return raw
    try:
        number = number_type(raw)
    except ValueError:
        raise ValueError(f"{name}: cannot read {raw!r} as a number") from None
    if number < 0:
        raise ValueError(f"{name}: {raw!r} must not be negative")
    return number
