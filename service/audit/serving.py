"""Check 2, serving: a cross-section holds, per symbol, the newest row with `available_at <= as_of`, checked
against an independent DuckDB query over the run's Parquet; and every stored `available_at` is `ts +
interval + lag` (a full scan, not a sample: one early row is a lookahead)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import duckdb
import numpy as np
import pandas as pd

from service.audit.compare import Found, differences, parquet
from service.audit.report import CheckResult, Violation
from storage.catalog import RunInfo
from storage.read import CrossSection, FeatureStore
from vocabulary.time import available_at, parse_interval

MAX_STALENESS: Final = 5
"""Intervals after which the serving check expects a symbol to be listed as stale (the read's default)."""


def check_serving(data_dir: Path | str, run: RunInfo, samples: int, rng: np.random.Generator) -> CheckResult:
    """Sampled as_of instants (a row's own `available_at`, one nanosecond before it, and uniform ones) served
    by both read paths (in-memory index and DuckDB) against an independent query; plus a scan of every
    stored `available_at`."""
    table = parquet(run)
    found = Found("serving")
    stores = {"index": FeatureStore(data_dir, index=True), "duckdb": FeatureStore(data_dir, index=False)}
    compared = 0
    with duckdb.connect() as connection:
        stored = connection.sql(f"SELECT symbol, ts, available_at FROM {table} ORDER BY symbol, ts").df()
        stored = stored.assign(
            ts=pd.to_datetime(stored["ts"], utc=True),
            available_at=pd.to_datetime(stored["available_at"], utc=True),
        )
        found.extend(_early_or_late_rows(stored, run))
        instants = pd.DatetimeIndex(stored["available_at"]).as_unit("ns")
        as_ofs = _sample_instants(instants, samples, rng, parse_interval(run.interval).length)
        for as_of in as_ofs:
            expected = _newest_visible(connection, table, as_of)
            for path, store in stores.items():
                section = store.cross_section(
                    as_of, run_id=run.run_id, features="all", max_staleness=MAX_STALENESS
                )
                compared += len(section.rows)
                found.extend(_compare_section(path, section, expected, run))
    return found.result(
        [as_of.isoformat() for as_of in as_ofs],
        compared,
        f"{len(as_ofs)} as_of instants served by the in-memory and DuckDB read paths, compared with an "
        "independent DuckDB query; every stored available_at checked against ts + interval + lag.",
    )


def _early_or_late_rows(stored: pd.DataFrame, run: RunInfo) -> Iterator[Violation]:
    """Every stored row (`symbol, ts, available_at` in UTC, by symbol and ts) whose `available_at` is not its
    bar's close plus lag; every repeated (symbol, ts)."""
    expected = available_at(stored["ts"], run.interval, run.lag)
    wrong = stored.assign(expected=expected)[stored["available_at"] != expected]
    copies = stored.groupby(["symbol", "ts"], sort=True).size()
    repeated = copies[copies > 1].rename("copies").reset_index()
    for row in wrong.itertuples(index=False):
        early = row.available_at < row.expected
        yield Violation(
            "serving",
            row.symbol,
            row.ts,
            "available_at",
            row.available_at,
            row.expected,
            f"available_at is {'before' if early else 'after'} the bar's close plus lag"
            + (": the row is visible before it is knowable" if early else ""),
        )
    for row in repeated.itertuples(index=False):
        yield Violation(
            "serving",
            row.symbol,
            row.ts,
            "row",
            f"{row.copies} copies",
            "1 copy",
            "the run stores the bar more than once",
        )


def _sample_instants(
    instants: pd.DatetimeIndex, samples: int, rng: np.random.Generator, bar: pd.Timedelta
) -> list[pd.Timestamp]:
    """A third exactly at a stored `available_at`, a third one nanosecond before one, a third uniform over
    the run's span and a few bars (of nominal length `bar`) past it."""
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
    path: str, section: CrossSection, expected: pd.DataFrame, run: RunInfo
) -> Iterator[Violation]:
    """A served cross-section (rows and stale list) against the independent answer, field by field."""
    served, stale, as_of = section.rows, section.stale, section.as_of
    at = f"as_of {as_of.isoformat()} ({path} read)"
    fresh_from = parse_interval(run.interval).fresh_from(as_of, MAX_STALENESS, run.lag)
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
    fresh = expected[expected["available_at"].dt.as_unit("ns").astype("int64") >= fresh_from]
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
    for position, name, stored, newest in differences(left, right, tolerance=0.0):
        yield Violation(
            "serving",
            common[position],
            right["ts"].iloc[position],
            name,
            stored,
            newest,
            f"served value differs from the stored row at {at}",
        )
