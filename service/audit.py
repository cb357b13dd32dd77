"""The forensic audit (DESIGN.md "Audit"): three checks that would catch a lookahead if a run or a backtest
held one, each on a seeded sample, each naming the row at fault.

1. Truncation invariance: a stored row, served at its `available_at`, equals what the backfill's cleaning and
   engine compute from the lake cut at that instant (only bars whose close plus lag is at or before it).
2. Serving: a cross-section holds, per symbol, the newest row with `available_at <= as_of`, checked against
   an independent DuckDB query over the run's Parquet; and every stored `available_at` is `ts + interval +
   lag` (a full scan, not a sample: one early row is a lookahead).
3. Future poisoning: every price and return after an instant T replaced by garbage, the lake backfilled
   again into a scratch directory, the dynamic backtest decides exactly as before at every rebalance whose
   bar closed at or before T.
"""

import json
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pandas as pd

from backtest.client import LocalFeatures
from backtest.engine import Backtest, Rebalance
from service.backfill import HistoricalFeatureBackfill
from service.ohlcv import clean_bars
from service.ratings.engine import rate
from service.ratings.features import FEATURES, VALUES
from service.sources import Lake, read_returns
from storage.catalog import Catalog, RunInfo
from storage.read import CrossSection, FeatureStore
from storage.time import interval_length

CHECKS: Final = ("truncation", "serving", "poisoning")
VALUE_TOLERANCE: Final = 1e-9
"""Relative tolerance on values (votes, ratings, bars and warm must match exactly)."""
LISTED: Final = 50
"""Violations listed per check; the report counts the rest."""
MAX_STALENESS: Final = 5
"""Intervals after which the serving check expects a symbol to be listed as stale (the read's default)."""


@dataclass(frozen=True)
class Violation:
    """One wrong row: the check that caught it, the row (symbol, ts), the field, and both sides."""

    check: str
    symbol: str | None
    ts: pd.Timestamp | None
    field: str
    stored: object
    expected: object
    message: str

    def to_dict(self) -> dict:
        return {
            "check": self.check,
            "symbol": self.symbol,
            "ts": None if self.ts is None else self.ts.isoformat(),
            "field": self.field,
            "stored": _jsonable(self.stored),
            "expected": _jsonable(self.expected),
            "message": self.message,
        }


@dataclass(frozen=True)
class CheckResult:
    name: str
    sampled: list[str]  # what was drawn: "SYMBOL at T" pairs (1), as_of instants (2), the poisoned T (3)
    compared: int  # rows (checks 1 and 2) or decisions (check 3) compared
    violations: list[Violation]  # the first LISTED
    violation_count: int
    seconds: float
    detail: str  # what was sampled, in a sentence
    skipped: str | None = None  # why the check could not run

    @property
    def samples(self) -> int:
        return len(self.sampled)

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    @property
    def status(self) -> str:
        return "failed" if not self.passed else "skipped" if self.skipped else "passed"


@dataclass(frozen=True)
class AuditReport:
    run_id: str
    interval: str
    samples: int
    seed: int
    checks: list[CheckResult]
    created_at: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def violations(self) -> list[Violation]:
        return [violation for check in self.checks for violation in check.violations]

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "run_id": self.run_id,
            "interval": self.interval,
            "samples": self.samples,
            "seed": self.seed,
            "created_at": self.created_at.isoformat(),
            "checks": [
                {
                    "name": check.name,
                    "status": check.status,
                    "samples": check.samples,
                    "sampled": check.sampled,
                    "compared": check.compared,
                    "violation_count": check.violation_count,
                    "seconds": round(check.seconds, 3),
                    "detail": check.detail,
                    "skipped": check.skipped,
                    "violations": [violation.to_dict() for violation in check.violations],
                }
                for check in self.checks
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# Lookahead audit of run {self.run_id}: {self.status.upper()}",
            "",
            f"Interval {self.interval}, {self.samples} samples per check, seed {self.seed}, "
            f"audited {self.created_at.isoformat()}.",
            "",
            "| check | status | samples | compared | violations | seconds |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for check in self.checks:
            lines.append(
                f"| {check.name} | {check.status} | {check.samples} | {check.compared} | "
                f"{check.violation_count} | {check.seconds:.2f} |"
            )
        lines.append("")
        for check in self.checks:
            lines.append(
                f"- **{check.name}**: {check.detail}"
                + (f" Skipped: {check.skipped}" if check.skipped else "")
            )
        if self.violations:
            lines += [
                "",
                "## Violations",
                "",
                "| check | symbol | ts | field | stored | expected | what |",
                "|---|---|---|---|---|---|---|",
            ]
            for v in self.violations:
                ts = "" if v.ts is None else v.ts.isoformat()
                lines.append(
                    f"| {v.check} | {v.symbol or ''} | {ts} | {v.field} | {_shown(v.stored)} | "
                    f"{_shown(v.expected)} | {v.message} |"
                )
            for check in self.checks:
                if check.violation_count > len(check.violations):
                    lines.append(
                        f"\n{check.name}: {check.violation_count - len(check.violations)} more not listed."
                    )
        return "\n".join(lines) + "\n"


def audit_run(
    data_dir: Path | str,
    run_id: str | None = None,
    samples: int = 20,
    seed: int = 0,
    *,
    backtest: Backtest | None = None,
    returns: Path | str | None = None,
    symbols: list[str] | None = None,
    checks: tuple[str, ...] = CHECKS,
    progress: Callable[[str], None] | None = None,
) -> AuditReport:
    """Audit a published run (default: the newest); `progress(check)` is called as each check starts.

    Check 3 backtests with `backtest` (default: the backtest defaults on the run's interval and lag) over
    `returns` (default: the matrix the run was backfilled from) and `symbols` (default: the returns columns
    the run holds); without a returns matrix it is skipped, and the report says why.
    """
    if samples < 1:
        raise ValueError(f"samples: must be at least 1, got {samples}")
    unknown = [name for name in checks if name not in CHECKS]
    if unknown:
        raise ValueError(f"unknown audit check(s) {', '.join(unknown)}; expected some of {', '.join(CHECKS)}")
    catalog = Catalog(data_dir)
    run = catalog.run(run_id) if run_id is not None else catalog.latest_run()
    if run is None:
        raise LookupError(f"no published run in {data_dir} to audit")
    results = []
    for position, name in enumerate(CHECKS):
        if name not in checks:
            continue
        rng = np.random.default_rng([seed, position])
        if progress is not None:
            progress(name)
        began = time.perf_counter()
        if name == "truncation":
            result = check_truncation(data_dir, run, samples, rng)
        elif name == "serving":
            result = check_serving(data_dir, run, samples, rng)
        else:
            result = check_poisoning(data_dir, run, rng, backtest=backtest, returns=returns, symbols=symbols)
        results.append(replace(result, seconds=time.perf_counter() - began))
    return AuditReport(run_id=run.run_id, interval=run.interval, samples=samples, seed=seed, checks=results)


# --- check 1: truncation invariance -------------------------------------------------------------------------


def check_truncation(
    data_dir: Path | str, run: RunInfo, samples: int, rng: np.random.Generator
) -> CheckResult:
    """Sample (symbol, stored row), round-robin over the symbols so each is audited when samples allow; at the
    row's `available_at` recompute the symbol from the lake cut there and compare every row served then."""
    lake = Lake(run.params["lake"], run.interval)
    store = FeatureStore(data_dir)
    keep_zero_volume = bool(run.params.get("keep_zero_volume", False))
    delay = interval_length(run.interval) + run.lag
    stored_symbols = sorted(run.symbols)
    found = _Found("truncation")
    compared = 0
    sampled = []
    order = rng.permutation(len(stored_symbols))
    for sample in range(samples):
        symbol = stored_symbols[order[sample % len(order)]]
        history = store.history(symbol, run_id=run.run_id, features="all")
        as_of = history["available_at"].iloc[int(rng.integers(len(history)))]
        sampled.append(f"{symbol} at {as_of.isoformat()}")
        raw = lake.read(symbol)
        cut = raw[raw["ts"] + delay <= as_of]
        # The refusal limit is a verdict on the whole file, which the backfill already passed; per row, the
        # same rules apply.
        bars, _ = clean_bars(cut, keep_zero_volume=keep_zero_volume, max_refused=1.0)
        expected = rate({symbol: bars}).drop(columns="symbol")
        expected = expected[_in_span(expected["ts"], run)]
        served = store.history(symbol, run_id=run.run_id, features="all", as_of=as_of)
        compared += len(served)
        found.extend(_compare_rows(symbol, served, expected, as_of))
    return found.result(
        sampled,
        compared,
        f"{samples} (symbol, T) pairs over {len(stored_symbols)} symbols; at each T every row served then "
        "was recomputed from the lake cut at T.",
    )


def _compare_rows(
    symbol: str, served: pd.DataFrame, expected: pd.DataFrame, as_of: pd.Timestamp
) -> Iterator[Violation]:
    """Row by row on ts: presence, then bars, warm and each feature (values to tolerance, others exactly)."""
    at = f"served at {as_of.isoformat()}"
    served = served.set_index("ts")
    expected = expected.set_index("ts")
    for ts in served.index.difference(expected.index):
        yield Violation(
            "truncation",
            symbol,
            ts,
            "row",
            "present",
            "absent",
            f"row {at} but not computable from the bars closed by then",
        )
    for ts in expected.index.difference(served.index):
        yield Violation(
            "truncation",
            symbol,
            ts,
            "row",
            "absent",
            "present",
            f"row computable from the bars closed by {as_of.isoformat()} but not served then",
        )
    common = served.index.intersection(expected.index)
    for position, name, stored, recomputed in _differences(served.loc[common], expected.loc[common]):
        yield Violation(
            "truncation",
            symbol,
            common[position],
            name,
            stored,
            recomputed,
            f"stored value {at} differs from the recomputation on the truncated lake",
        )


# --- check 2: serving ---------------------------------------------------------------------------------------


def check_serving(data_dir: Path | str, run: RunInfo, samples: int, rng: np.random.Generator) -> CheckResult:
    """Sampled as_of instants (a row's own `available_at`, one nanosecond before it, and uniform ones) served
    by both read paths (in-memory index and DuckDB) against an independent query; plus a scan of every
    stored `available_at`."""
    parquet = _parquet(run)
    found = _Found("serving")
    found.extend(_early_or_late_rows(parquet, interval_length(run.interval) + run.lag))
    with duckdb.connect() as connection:
        instants = connection.sql(f"SELECT available_at FROM {parquet}").df()["available_at"]
    instants = pd.DatetimeIndex(instants).tz_convert("UTC").as_unit("ns")
    as_ofs = _sample_instants(instants, samples, rng, interval_length(run.interval))
    stores = {"index": FeatureStore(data_dir, index=True), "duckdb": FeatureStore(data_dir, index=False)}
    compared = 0
    with duckdb.connect() as connection:
        for as_of in as_ofs:
            expected = _newest_visible(connection, parquet, as_of)
            for path, store in stores.items():
                section = store.cross_section(
                    as_of, run_id=run.run_id, features="all", max_staleness=MAX_STALENESS
                )
                compared += len(section.rows)
                found.extend(_compare_section(path, section, expected, interval_length(run.interval)))
    return found.result(
        [as_of.isoformat() for as_of in as_ofs],
        compared,
        f"{len(as_ofs)} as_of instants served by the in-memory and DuckDB read paths, compared with an "
        "independent DuckDB query; every stored available_at checked against ts + interval + lag.",
    )


def _early_or_late_rows(parquet: str, delay: pd.Timedelta) -> Iterator[Violation]:
    """Every stored row whose `available_at` is not its bar's close plus lag; every repeated (symbol, ts)."""
    micros = delay // pd.Timedelta(microseconds=1)
    with duckdb.connect() as connection:
        wrong = connection.sql(
            f"SELECT symbol, ts, available_at, ts + to_microseconds({micros}) AS expected "
            f"FROM {parquet} WHERE available_at <> ts + to_microseconds({micros}) "
            "ORDER BY symbol, ts"
        ).df()
        repeated = connection.sql(
            f"SELECT symbol, ts, count(*) AS copies FROM {parquet} "
            "GROUP BY symbol, ts HAVING count(*) > 1 ORDER BY symbol, ts"
        ).df()
    for row in wrong.itertuples(index=False):
        early = row.available_at < row.expected
        yield Violation(
            "serving",
            row.symbol,
            _utc(row.ts),
            "available_at",
            _utc(row.available_at),
            _utc(row.expected),
            f"available_at is {'before' if early else 'after'} the bar's close plus lag"
            + (": the row is visible before it is knowable" if early else ""),
        )
    for row in repeated.itertuples(index=False):
        yield Violation(
            "serving",
            row.symbol,
            _utc(row.ts),
            "row",
            f"{row.copies} copies",
            "1 copy",
            "the run stores the bar more than once",
        )


def _sample_instants(
    instants: pd.DatetimeIndex, samples: int, rng: np.random.Generator, bar: pd.Timedelta
) -> list[pd.Timestamp]:
    """A third exactly at a stored `available_at`, a third one nanosecond before one, a third uniform over
    the run's span and a few bars past it."""
    low, high = instants.min().value, (instants.max() + 3 * bar).value
    chosen = []
    for sample in range(samples):
        if sample % 3 == 2:
            chosen.append(pd.Timestamp(int(rng.integers(low, high)) // 1000 * 1000, tz="UTC"))
        else:
            instant = instants[int(rng.integers(len(instants)))]
            chosen.append(instant - pd.Timedelta(nanoseconds=sample % 3))
    return chosen


def _newest_visible(connection: duckdb.DuckDBPyConnection, parquet: str, as_of: pd.Timestamp) -> pd.DataFrame:
    """Per symbol, the row with the newest available_at at or before `as_of` (floored to the microsecond),
    the newest bar first should two rows share it."""
    return connection.execute(
        f"WITH newest AS (SELECT symbol, max(available_at) AS available_at FROM {parquet} "
        "WHERE available_at <= $bound GROUP BY symbol) "
        f"SELECT stored.* FROM {parquet} stored JOIN newest USING (symbol, available_at) "
        "QUALIFY row_number() OVER (PARTITION BY stored.symbol ORDER BY stored.ts DESC) = 1 ORDER BY symbol",
        {"bound": as_of.floor("us").to_pydatetime()},
    ).df()


def _compare_section(
    path: str, section: CrossSection, expected: pd.DataFrame, bar: pd.Timedelta
) -> Iterator[Violation]:
    """A served cross-section (rows and stale list) against the independent answer, field by field."""
    served, stale, as_of = section.rows, section.stale, section.as_of
    at = f"as_of {as_of.isoformat()} ({path} read)"
    limit = MAX_STALENESS * bar
    expected = expected.assign(
        available_at=pd.to_datetime(expected["available_at"], utc=True),
        ts=pd.to_datetime(expected["ts"], utc=True),
    ).set_index("symbol")
    bound = as_of.floor("us")
    for position in np.flatnonzero(served["available_at"] > bound):
        yield Violation(
            "serving",
            served["symbol"].iloc[position],
            served["ts"].iloc[position],
            "available_at",
            served["available_at"].iloc[position],
            f"<= {bound.isoformat()}",
            f"served a row not yet available at {at}",
        )
    fresh = expected[as_of - expected["available_at"] <= limit]
    want_stale = sorted(expected.index.difference(fresh.index))
    for symbol in sorted(set(want_stale) ^ set(stale)):
        yield Violation(
            "serving",
            symbol,
            None,
            "stale",
            symbol in stale,
            symbol in want_stale,
            f"stale list wrong at {at}",
        )
    served = served.set_index("symbol")
    for symbol in served.index.difference(fresh.index):
        yield Violation(
            "serving",
            symbol,
            served.at[symbol, "ts"],
            "row",
            "served",
            "not served",
            f"served a symbol that has no fresh visible row at {at}",
        )
    for symbol in fresh.index.difference(served.index):
        yield Violation(
            "serving",
            symbol,
            fresh.at[symbol, "ts"],
            "row",
            "not served",
            "served",
            f"left out the newest visible row at {at}",
        )
    common = served.index.intersection(fresh.index)
    left, right = served.loc[common], fresh.loc[common]
    for name in ("ts", "available_at"):
        wrong = pd.DatetimeIndex(left[name]).as_unit("us") != pd.DatetimeIndex(right[name]).as_unit("us")
        for position in np.flatnonzero(wrong):
            yield Violation(
                "serving",
                common[position],
                right["ts"].iloc[position],
                name,
                left[name].iloc[position],
                right[name].iloc[position],
                f"served row is not the newest visible row at {at}",
            )
    for position, name, stored, newest in _differences(left, right, tolerance=0.0):
        yield Violation(
            "serving",
            common[position],
            right["ts"].iloc[position],
            name,
            stored,
            newest,
            f"served value differs from the stored row at {at}",
        )


# --- check 3: future poisoning ------------------------------------------------------------------------------


def check_poisoning(
    data_dir: Path | str,
    run: RunInfo,
    rng: np.random.Generator,
    *,
    backtest: Backtest | None = None,
    returns: Path | str | None = None,
    symbols: list[str] | None = None,
) -> CheckResult:
    """Poison every bar and return not knowable at T (a seeded rebalance instant in the middle of the
    schedule), backfill the poisoned lake into a scratch directory with the run's parameters, and compare the
    backtest's decisions at or before T: eligible, passed, ranked and selected names, and weights."""
    backtest = backtest or Backtest(interval=run.interval, lag=run.lag)
    returns = returns if returns is not None else run.params.get("returns")
    if returns is None:
        return _skipped("poisoning", "the run records no returns matrix and none was given")
    if backtest.mode != "dynamic":
        raise ValueError("the poisoning check audits the dynamic backtest; static mode looks ahead by design")
    matrix = read_returns(returns)
    stored = sorted(run.symbols)
    universe = symbols if symbols is not None else [s for s in matrix.columns if s in run.symbols]
    try:
        schedule = backtest.schedule(matrix.index)
    except ValueError as error:
        return _skipped("poisoning", str(error))
    if len(schedule) < 2:
        return _skipped("poisoning", "the backtest has fewer than two rebalances; nothing comes after T")
    delay = interval_length(run.interval) + run.lag
    middle = schedule[len(schedule) // 4 : max(len(schedule) // 4 + 1, 3 * len(schedule) // 4)]
    decision = middle[int(rng.integers(len(middle)))]
    poison_after = matrix.index[decision] + delay
    clean = backtest.run(matrix, LocalFeatures(data_dir, run_id=run.run_id), symbols=universe)
    with tempfile.TemporaryDirectory(prefix="asof-poison-") as scratch:
        poisoned_returns = _poisoned_returns(matrix, poison_after, delay, rng)
        poisoned_returns.to_parquet(Path(scratch) / "returns_matrix.parquet")
        lake = _poisoned_lake(
            Lake(run.params["lake"], run.interval),
            stored,
            Path(scratch) / "lake",
            poison_after,
            delay,
            rng,
        )
        store = Path(scratch) / "data"
        HistoricalFeatureBackfill(
            store,
            lake=lake,
            interval=run.interval,
            symbols=stored,
            returns=Path(scratch) / "returns_matrix.parquet" if run.params.get("returns") else None,
            start=run.params.get("start"),
            end=run.params.get("end"),
            lag=run.lag,
            keep_zero_volume=bool(run.params.get("keep_zero_volume", False)),
        ).run()
        poisoned = backtest.run(poisoned_returns, LocalFeatures(store), symbols=universe)
    before = [d for d in clean.rebalances if d.ts + delay <= poison_after]
    after = {d.row: d for d in poisoned.rebalances}
    found = _Found("poisoning")
    for decision_clean in before:
        found.extend(_compare_decisions(decision_clean, after.get(decision_clean.row), poison_after))
    return found.result(
        [poison_after.isoformat()],
        len(before),
        f"prices and returns after {poison_after.isoformat()} replaced by garbage; the {len(before)} "
        f"decisions whose bar closed by then compared ({len(clean.rebalances)} rebalances in all).",
    )


def _poisoned_returns(
    returns: pd.DataFrame, after: pd.Timestamp, delay: pd.Timedelta, rng: np.random.Generator
) -> pd.DataFrame:
    poisoned = returns.copy()
    unknown = returns.index + delay > after
    poisoned.loc[unknown] = rng.uniform(-0.5, 0.5, size=(int(unknown.sum()), returns.shape[1]))
    return poisoned


def _poisoned_lake(
    lake: Lake,
    symbols: list[str],
    folder: Path,
    after: pd.Timestamp,
    delay: pd.Timedelta,
    rng: np.random.Generator,
) -> Path:
    """A lake folder of the symbols with every bar not knowable at `after` replaced by a valid garbage bar (a
    wild random walk, independent per symbol, so the ratings after T scramble)."""
    folder.mkdir(parents=True)
    for symbol in symbols:
        bars = lake.read(symbol)
        unknown = (bars["ts"] + delay > after).to_numpy()
        count = int(unknown.sum())
        if count:
            close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.3, count)))
            open_ = close * np.exp(rng.normal(0.0, 0.1, count))
            spread = np.exp(np.abs(rng.normal(0.0, 0.1, (2, count))))
            bars = bars.copy()
            bars.loc[unknown, "open"] = open_
            bars.loc[unknown, "close"] = close
            bars.loc[unknown, "high"] = np.maximum(open_, close) * spread[0]
            bars.loc[unknown, "low"] = np.minimum(open_, close) / spread[1]
            bars.loc[unknown, "volume"] = rng.uniform(1.0, 1e9, count)
        exchange, _, ticker = symbol.partition(":")
        bars.to_parquet(folder / f"{exchange}_{ticker}_{lake.interval}.parquet", index=False)
    return folder


def _compare_decisions(
    clean: Rebalance, poisoned: Rebalance | None, after: pd.Timestamp
) -> Iterator[Violation]:
    at = f"decision at bar {clean.ts.isoformat()} changed when data after {after.isoformat()} was poisoned"
    if poisoned is None:
        yield Violation("poisoning", None, clean.ts, "rebalance", "present", "absent", at)
        return
    for stage in ("eligible", "passed", "ranked", "selected"):
        left, right = getattr(clean.selection, stage), getattr(poisoned.selection, stage)
        if left != right:
            yield Violation("poisoning", _first_difference(left, right), clean.ts, stage, right, left, at)
    weights = pd.concat([clean.weights.rename("clean"), poisoned.weights.rename("poisoned")], axis=1).fillna(
        0.0
    )
    for symbol, row in weights[(weights["clean"] - weights["poisoned"]).abs() > 1e-12].iterrows():
        yield Violation("poisoning", str(symbol), clean.ts, "weight", row["poisoned"], row["clean"], at)


def _first_difference(left: list[str], right: list[str]) -> str | None:
    """The first name at which two rankings part, to name the row at fault."""
    for a, b in zip(left, right, strict=False):
        if a != b:
            return a
    longer = left if len(left) > len(right) else right
    return longer[min(len(left), len(right))] if longer else None


# --- shared -------------------------------------------------------------------------------------------------


class _Found:
    """Violations of one check, deduplicated on (symbol, ts, field), the first LISTED kept."""

    def __init__(self, check: str) -> None:
        self.check = check
        self.listed: list[Violation] = []
        self.seen: set[tuple] = set()

    def extend(self, violations: Iterator[Violation]) -> None:
        for violation in violations:
            key = (violation.symbol, violation.ts, violation.field)
            if key in self.seen:
                continue
            self.seen.add(key)
            if len(self.listed) < LISTED:
                self.listed.append(violation)

    def result(self, sampled: list[str], compared: int, detail: str) -> CheckResult:
        return CheckResult(self.check, sampled, compared, self.listed, len(self.seen), 0.0, detail)


def _skipped(check: str, reason: str) -> CheckResult:
    return CheckResult(check, [], 0, [], 0, 0.0, "not run.", skipped=reason)


def _parquet(run: RunInfo) -> str:
    """The run's Parquet file as a DuckDB table expression."""
    return "read_parquet('{}')".format(str(run.path).replace("'", "''"))


def _in_span(ts: pd.Series, run: RunInfo) -> pd.Series:
    keep = pd.Series(True, index=ts.index)
    if run.start is not None:
        keep &= ts >= run.start
    if run.end is not None:
        keep &= ts <= run.end
    return keep


def _differences(
    left: pd.DataFrame, right: pd.DataFrame, *, tolerance: float = VALUE_TOLERANCE
) -> Iterator[tuple[int, str, float, float]]:
    """(position, column, left, right) wherever two aligned frames differ in `bars`, `warm` or a feature:
    NA equals NA, values (VALUES) within `tolerance` relative, everything else exactly."""
    for name in ("bars", "warm", *FEATURES):
        a, b = _floats(left[name]), _floats(right[name])
        allowed = tolerance if name in VALUES else 0.0
        with np.errstate(invalid="ignore"):
            same = (
                (np.isnan(a) & np.isnan(b))
                | (a == b)
                | (np.abs(a - b) <= allowed * np.maximum(np.abs(a), np.abs(b)))
            )
        for position in np.flatnonzero(~same):
            yield int(position), name, a[position], b[position]


def _floats(column: pd.Series) -> np.ndarray:
    """Votes (nullable Int8), booleans, counts and floats alike as float64 with NaN for NA."""
    return column.to_numpy(dtype="float64", na_value=np.nan)


def _utc(value: object) -> pd.Timestamp:
    instant = pd.Timestamp(value)
    return instant.tz_localize("UTC") if instant.tzinfo is None else instant.tz_convert("UTC")


def _jsonable(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    return value


def _shown(value: object) -> str:
    shown = _jsonable(value)
    if isinstance(shown, list):
        return " ".join(map(str, shown)) or "(none)"
    return "NA" if shown is None else str(shown)
