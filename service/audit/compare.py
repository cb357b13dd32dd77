"""What the checks share: collecting violations, comparing rows field by field, and where a run's rows are."""

from collections.abc import Iterator
from typing import Final

import numpy as np
import pandas as pd

from service.audit.report import LISTED, CheckResult, Violation
from storage.catalog import RunInfo
from storage.read import parquet_sql
from vocabulary.features import FEATURES, VALUES

VALUE_TOLERANCE: Final = 1e-9
"""Relative tolerance on values (votes, ratings, bars and warm must match exactly)."""


class Found:
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


def parquet(run: RunInfo) -> str:
    """The run's Parquet files as a DuckDB table expression."""
    return parquet_sql(run.files())


def in_span(ts: pd.Series, run: RunInfo) -> pd.Series:
    keep = pd.Series(True, index=ts.index)
    if run.start is not None:
        keep &= ts >= run.start
    if run.end is not None:
        keep &= ts <= run.end
    return keep


def differences(
    left: pd.DataFrame, right: pd.DataFrame, *, tolerance: float = VALUE_TOLERANCE
) -> Iterator[tuple[int, str, float, float]]:
    """(position, column, left, right) wherever two aligned frames differ in `bars`, `warm` or a feature:
    NA equals NA, values (VALUES) within `tolerance` relative, everything else exactly."""
    for name in ("bars", "warm", *FEATURES):
        a, b = floats(left[name]), floats(right[name])
        allowed = tolerance if name in VALUES else 0.0
        with np.errstate(invalid="ignore"):
            same = (
                (np.isnan(a) & np.isnan(b))
                | (a == b)
                | (np.abs(a - b) <= allowed * np.maximum(np.abs(a), np.abs(b)))
            )
        for position in np.flatnonzero(~same):
            yield int(position), name, a[position], b[position]


def floats(column: pd.Series) -> np.ndarray:
    """Votes (nullable Int8), booleans, counts and floats alike as float64 with NaN for NA."""
    return column.to_numpy(dtype="float64", na_value=np.nan)
