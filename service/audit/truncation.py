"""Check 1, truncation invariance: a stored row, served at its `available_at`, equals what the backfill's
cleaning, resampling and engine (under the run's rules and history window) compute from the lake cut at that
instant (only bars whose close plus lag is at or before it)."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from service.audit.compare import Found, differences, in_span
from service.audit.report import CheckResult, Violation
from service.backfill import open_lake
from service.ratings.engine import rate
from service.sources.bars import clean_bars
from service.sources.resample import resample
from storage.catalog import RunInfo
from storage.read import FeatureStore
from vocabulary.time import available_at, parse_interval


def check_truncation(
    data_dir: Path | str, run: RunInfo, samples: int, rng: np.random.Generator
) -> CheckResult:
    """Sample (symbol, stored row), round-robin over the symbols so each is audited when samples allow; at the
    row's `available_at` recompute the symbol from the lake cut there and compare every row served then."""
    lake = open_lake(data_dir, run.spec)
    store = FeatureStore(data_dir)
    stored_symbols = sorted(run.symbols)
    found = Found("truncation")
    compared = 0
    sampled = []
    order = rng.permutation(len(stored_symbols))
    for sample in range(samples):
        symbol = stored_symbols[order[sample % len(order)]]
        history = store.history(symbol, run_id=run.run_id, features="all")
        as_of = history["available_at"].iloc[int(rng.integers(len(history)))]
        sampled.append(f"{symbol} at {as_of.isoformat()}")
        raw = lake.read(symbol)
        cut = raw[available_at(raw["ts"], lake.interval, run.lag) <= as_of]
        # The refusal limit and the spacing check are verdicts on the whole file, which the backfill already
        # passed; per row, the same rules apply.
        bars, _ = clean_bars(cut, keep_zero_volume=run.spec.keep_zero_volume, max_refused=1.0)
        if run.spec.from_interval is not None:  # the cut holds every bar that closed by as_of - lag
            bars = resample(bars, parse_interval(run.interval), complete_until=as_of - run.lag)
        expected = rate({symbol: bars}, rules=run.spec.rules, history_bars=run.spec.history_bars)
        expected = expected.drop(columns="symbol")
        expected = expected[in_span(expected["ts"], run)]
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
    for position, name, stored, recomputed in differences(served.loc[common], expected.loc[common]):
        yield Violation(
            "truncation",
            symbol,
            common[position],
            name,
            stored,
            recomputed,
            f"stored value {at} differs from the recomputation on the truncated lake",
        )
