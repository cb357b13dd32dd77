"""What a backfill is asked to do, as one typed value: built from a request or the CLI, stored with the job,
handed to the child process, recorded with the run, and read back by the audit to rebuild the run."""

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import PurePath
from typing import Any, ClassVar, Final, Self

import pandas as pd

from vocabulary.errors import InvalidInput
from vocabulary.rules import DEFAULT_RULES, check_history_bars, check_rules
from vocabulary.time import NO_LAG, Interval, check_lag, parse_instant, parse_interval

DATASET_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
EXECUTORS: Final = ("local", "ray")
"""Where a backfill computes: `local`, this machine's cores; `ray`, tasks on a Ray cluster."""


def check_dataset(name: str) -> str:
    """A dataset name: 1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit."""
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a dataset name: 1 to 64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
            field="dataset",
        )
    return name


def default_dataset(lake: str, interval: str, rules: str = DEFAULT_RULES) -> str:
    """`<lake folder or file name>_<interval>`, plus `_<rules>` for rules other than the scanner's (a dataset
    holds one interval and one rule set), with characters a dataset name cannot hold replaced."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", PurePath(lake).stem).strip("._-")[:48] or "lake"
    return f"{stem}_{interval}" + ("" if rules == DEFAULT_RULES else f"_{rules}")


class _Spec:
    """Serialisation shared by the specs: JSON-able fields, and a canonical key for duplicate detection."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> Self:
        """The spec `to_dict` wrote; unknown keys are an error (a newer writer, or a typo)."""
        unknown = set(record) - {spec_field.name for spec_field in fields(cls)}  # type: ignore[arg-type]
        if unknown:
            raise InvalidInput(f"unknown field(s) {', '.join(sorted(unknown))} in a {cls.__name__}")
        return cls(**record)

    execution: ClassVar[tuple[str, ...]] = ()
    """Fields that say how the work is done, not what it produces: left out of `key`."""

    def key(self) -> str:
        """Canonical text: two requests are duplicates iff their keys are equal."""
        record = {name: value for name, value in self.to_dict().items() if name not in self.execution}
        return json.dumps(record, sort_keys=True, separators=(",", ":"))

    def _set(self, name: str, value: object) -> None:
        """Normalise a field while validating (the dataclasses are frozen)."""
        object.__setattr__(self, name, value)


@dataclass(frozen=True)
class BackfillSpec(_Spec):
    """One backfill of `lake` at `interval` into a new run.

    The universe is, first found: `symbols`, the `candidates` file, the columns of the `returns` matrix, every
    symbol of the lake. Bars whose open time `ts` lies in `[start, end]` are stored (default: the span of
    `returns` when given, else all history). Ratings follow the rule set `rules` and use all the history
    the lake holds, or with `history_bars` N only the N bars up to each bar; records written before these
    two fields existed read back with their defaults (scanner rules, all history). Paths are kept as given:
    where they must resolve (inside the data directory, for HTTP requests) is the caller's rule.
    Construction validates every field and normalises it (symbols sorted and unique, instants UTC), so two
    specs of the same backfill are equal and have the same `key`.

    With `from_interval` the lake holds bars of that finer interval (its files carry its suffix), and the
    interval's bars are built from them (`service.sources.resample`); it must tile the interval (1h into 4h,
    1d into 1W or 1M, not 1W into 1M).
    """

    lake: str
    interval: str
    symbols: tuple[str, ...] | None = None
    candidates: str | None = None
    returns: str | None = None
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    lag: pd.Timedelta = field(default=NO_LAG)
    keep_zero_volume: bool = False
    dataset: str | None = None
    """The line of runs this one joins; default `<lake folder name>_<interval>[_<rules>]`."""
    from_interval: str | None = None
    rules: str = DEFAULT_RULES
    history_bars: int | None = None
    executor: str = "local"
    """Where it computes (EXECUTORS). An execution option: every executor builds the same run, so it is no
    part of `key` (a request that differs only in it is a duplicate) nor of the dataset; the run records it
    as provenance."""

    execution: ClassVar[tuple[str, ...]] = ("executor",)

    def __post_init__(self) -> None:
        _check_executor(self.executor)
        target = parse_interval(self.interval)
        if self.from_interval is not None:
            source = parse_interval(self.from_interval, field="from_interval")
            if not source.tiles(target):
                raise InvalidInput(
                    f"cannot build {target} bars from {source} bars: it must be a finer interval whose bars "
                    f"tile each {target} bar (e.g. 1h into 4h, 1d into 1W or 1M; weeks do not tile months)",
                    field="from_interval",
                )
        if not str(self.lake):
            raise InvalidInput("give the lake to backfill", field="lake")
        if self.symbols is not None and self.candidates is not None:
            raise InvalidInput("give either candidates or symbols, not both", field="candidates")
        if self.symbols is not None:
            symbols = tuple(sorted(set(self.symbols)))
            if not symbols or not all(isinstance(symbol, str) and symbol for symbol in symbols):
                raise InvalidInput(
                    "empty universe: give at least one symbol, each a non-empty name", field="symbols"
                )
            self._set("symbols", symbols)
        for name in ("lake", "candidates", "returns"):
            value = getattr(self, name)
            if value is not None:
                self._set(name, str(value))
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None:
                self._set(name, parse_instant(value, name=name))
        if self.start is not None and self.end is not None and self.start > self.end:
            raise InvalidInput(
                f"end {self.end.isoformat()} is before start {self.start.isoformat()}", field="end"
            )
        self._set("lag", check_lag(self.lag))
        if not isinstance(self.keep_zero_volume, bool):
            raise InvalidInput("must be true or false", field="keep_zero_volume")
        check_rules(self.rules)
        self._set("history_bars", check_history_bars(self.history_bars))
        dataset = self.dataset or default_dataset(str(self.lake), self.interval, self.rules)
        self._set("dataset", check_dataset(dataset))

    @property
    def lake_interval(self) -> Interval:
        """The interval of the lake's bars: `from_interval` when the bars are resampled, else `interval`."""
        return parse_interval(self.from_interval or self.interval)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields: instants and the lag in ISO-8601, symbols as a list."""
        record = asdict(self)
        record["symbols"] = None if self.symbols is None else list(self.symbols)
        for name in ("start", "end"):
            record[name] = None if record[name] is None else record[name].isoformat()
        record["lag"] = self.lag.isoformat()
        return record


@dataclass(frozen=True)
class AuditSpec(_Spec):
    """One forensic audit of run `run_id`: `samples` per check, drawn with `seed` (the same seed audits the
    same rows)."""

    run_id: str
    samples: int = 20
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.run_id, str) or not self.run_id:
            raise InvalidInput("name the run to audit", field="run_id")
        if (
            isinstance(self.samples, bool)
            or not isinstance(self.samples, int)
            or not 1 <= self.samples <= 1000
        ):
            raise InvalidInput(
                f"must be a whole number from 1 to 1000, not {self.samples!r}", field="samples"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInput(f"must be a non-negative whole number, not {self.seed!r}", field="seed")


NEWEST: Final = "newest"
"""The run id that names the newest run of a dataset (of the default one when none is named)."""


@dataclass(frozen=True)
class UpdateSpec(_Spec):
    """One update of run `run_id` (`newest`: the newest run of `dataset`, found when the update starts) into
    a new run of its dataset: the run's own spec read again from `lake` (default: the run's lake) for the
    bars after each symbol's carried state. `executor` as a backfill's (an execution option)."""

    run_id: str = NEWEST
    dataset: str | None = None
    lake: str | None = None
    executor: str = "local"

    execution: ClassVar[tuple[str, ...]] = ("executor",)

    def __post_init__(self) -> None:
        _check_run_id(self.run_id)
        if self.dataset is not None:
            check_dataset(self.dataset)
        if self.lake is not None:
            if not str(self.lake):
                raise InvalidInput("name the lake, or leave it out to read the run's own", field="lake")
            self._set("lake", str(self.lake))
        _check_executor(self.executor)


@dataclass(frozen=True)
class CompactSpec(_Spec):
    """One compaction of run `run_id` (`newest` as for an update): its rows, which a chain of updates
    spread over its ancestors' files, rewritten into fresh parts of a new run of its dataset."""

    run_id: str = NEWEST
    dataset: str | None = None

    def __post_init__(self) -> None:
        _check_run_id(self.run_id)
        if self.dataset is not None:
            check_dataset(self.dataset)


def _check_run_id(run_id: object) -> None:
    if not isinstance(run_id, str) or not 0 < len(run_id) <= 64:
        raise InvalidInput(f"name a run (1 to 64 characters) or {NEWEST!r}", field="run_id")


def _check_executor(executor: object) -> None:
    if executor not in EXECUTORS:
        raise InvalidInput(
            f"unknown executor {executor!r}; expected one of {', '.join(EXECUTORS)}", field="executor"
        )
