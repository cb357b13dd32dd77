"""Check 3, future poisoning: every price and return after an instant T replaced by garbage, the lake
backfilled again into a scratch directory, the dynamic backtest decides exactly as before at every rebalance
whose bar closed at or before T."""

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.client import LocalFeatures
from backtest.engine import Backtest, Rebalance
from service.audit.compare import Found
from service.audit.report import CheckResult, Violation, skipped
from service.backfill import HistoricalFeatureBackfill, located, open_lake
from service.sources.lake import Lake, read_returns
from storage.catalog import RunInfo
from vocabulary.errors import InvalidInput
from vocabulary.time import Interval, available_at


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
    if returns is None and run.spec.returns is not None:
        returns = located(data_dir, run.spec.returns)
    if returns is None:
        return skipped("poisoning", "the run records no returns matrix and none was given")
    if backtest.mode != "dynamic":
        raise InvalidInput(
            "the poisoning check audits the dynamic backtest; static mode looks ahead by design"
        )
    matrix = read_returns(returns)
    stored = sorted(run.symbols)
    universe = symbols if symbols is not None else [s for s in matrix.columns if s in run.symbols]
    try:
        schedule = backtest.schedule(matrix.index)
    except ValueError as error:
        return skipped("poisoning", str(error))
    if len(schedule) < 2:
        return skipped("poisoning", "the backtest has fewer than two rebalances; nothing comes after T")
    middle = schedule[len(schedule) // 4 : max(len(schedule) // 4 + 1, 3 * len(schedule) // 4)]
    decision = middle[int(rng.integers(len(middle)))]
    poison_after = available_at(matrix.index[decision], run.interval, run.lag)

    def knowable(ts: pd.Series | pd.DatetimeIndex, interval: str | Interval) -> np.ndarray:
        """Which bars (by open time) of `interval` were knowable at the poisoning instant."""
        return np.asarray(available_at(ts, interval, run.lag) <= poison_after)

    clean = backtest.run(matrix, LocalFeatures(data_dir, run_id=run.run_id), symbols=universe)
    with tempfile.TemporaryDirectory(prefix="asof-poison-") as scratch:
        poisoned_returns = _poisoned_returns(matrix, knowable(matrix.index, run.interval), rng)
        poisoned_returns.to_parquet(Path(scratch) / "returns_matrix.parquet")
        lake = _poisoned_lake(open_lake(data_dir, run.spec), stored, Path(scratch) / "lake", knowable, rng)
        store = Path(scratch) / "data"
        spec = replace(
            run.spec,
            lake=str(lake),
            symbols=tuple(stored),
            candidates=None,
            returns=str(Path(scratch) / "returns_matrix.parquet") if run.spec.returns else None,
            executor="local",  # every executor builds the same run; the audit needs no cluster
        )
        HistoricalFeatureBackfill(store, spec).run()
        poisoned = backtest.run(poisoned_returns, LocalFeatures(store), symbols=universe)
    before = [d for d in clean.rebalances if knowable(pd.DatetimeIndex([d.ts]), run.interval)[0]]
    after = {d.row: d for d in poisoned.rebalances}
    found = Found("poisoning")
    for decision_clean in before:
        found.extend(_compare_decisions(decision_clean, after.get(decision_clean.row), poison_after))
    return found.result(
        [poison_after.isoformat()],
        len(before),
        f"prices and returns after {poison_after.isoformat()} replaced by garbage; the {len(before)} "
        f"decisions whose bar closed by then compared ({len(clean.rebalances)} rebalances in all).",
    )


def _poisoned_returns(returns: pd.DataFrame, known: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """The rows not `known` replaced by uniform garbage."""
    poisoned = returns.copy()
    unknown = ~known
    poisoned.loc[unknown] = rng.uniform(-0.5, 0.5, size=(int(unknown.sum()), returns.shape[1]))
    return poisoned


def _poisoned_lake(
    lake: Lake,
    symbols: list[str],
    folder: Path,
    knowable: Callable[[pd.Series, Interval], np.ndarray],
    rng: np.random.Generator,
) -> Path:
    """A lake folder of the symbols with every bar not `knowable` at the poisoning instant replaced by a
    valid garbage bar (a wild random walk, independent per symbol, so the ratings after T scramble)."""
    folder.mkdir(parents=True)
    for symbol in symbols:
        bars = lake.read(symbol)
        unknown = ~knowable(bars["ts"], lake.interval)
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
