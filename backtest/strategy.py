"""A rating strategy as a user states it, in the units they state it in: the one place the `asof backtest`
and `asof pipeline` options become backtests."""

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import pandas as pd

from backtest.client import FeatureClient
from backtest.engine import Backtest, BacktestResult
from backtest.selection import SelectionPolicy

Progress = Callable[[int, int], None]
ProgressFactory = Callable[[str], AbstractContextManager[Progress | None]]
"""Given a label, a context that yields the `progress(done, total)` callback of one backtest (or None)."""


def _no_progress(label: str) -> AbstractContextManager[Progress | None]:
    return nullcontext(None)


@dataclass(frozen=True)
class Strategy:
    """What a backtest decides with; the defaults are the commands' defaults. `lag` is in whole seconds."""

    interval: str = "1d"
    lag: int = 0
    rebalance_every: int = 20
    lookback: int = 252
    top_k: int = 10
    threshold: float = 0.1
    threshold_on: str = "Recommend.All"
    rank_by: str = "Recommend.All"
    max_correlation: float | None = None
    optimizer: str = "hrp"
    cost_bps: float = 10.0
    max_staleness: int = 5

    def backtest(self, mode: str) -> Backtest:
        policy = SelectionPolicy(
            rank_by=self.rank_by,
            top_k=self.top_k,
            threshold=self.threshold,
            threshold_on=self.threshold_on,
            max_correlation=self.max_correlation,
        )
        return Backtest(
            interval=self.interval,
            lag=pd.Timedelta(seconds=self.lag),
            rebalance_every=self.rebalance_every,
            lookback=self.lookback,
            policy=policy,
            optimizer=self.optimizer,
            cost_bps=self.cost_bps,
            mode=mode,
            max_staleness=self.max_staleness,
        )

    def run(
        self,
        modes: Sequence[str],
        returns: pd.DataFrame,
        features: FeatureClient,
        symbols: list[str] | None,
        *,
        progress: ProgressFactory = _no_progress,
    ) -> dict[str, BacktestResult]:
        """Each mode's backtest; `progress(f"backtest {mode}")` wraps each one."""
        results = {}
        for mode in modes:
            with progress(f"backtest {mode}") as report:
                results[mode] = self.backtest(mode).run(returns, features, symbols=symbols, progress=report)
        return results

    def settings(self) -> dict[str, object]:
        """The strategy as the report lists it."""
        selection = f"{self.threshold_on} > {self.threshold}, rank by {self.rank_by}, top {self.top_k}"
        if self.max_correlation is not None:
            selection += f", max correlation {self.max_correlation}"
        return {
            "interval": self.interval,
            "lag_seconds": self.lag,
            "rebalance_every": self.rebalance_every,
            "lookback": self.lookback,
            "selection": selection,
            "optimizer": self.optimizer,
            "cost_bps": self.cost_bps,
            "max_staleness": self.max_staleness,
        }
