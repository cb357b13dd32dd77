"""The rebalance loop: at each rebalance row k, read the features as of bar k's close, re-select, optimise.

Decision at row k: `as_of = ts_k + interval + lag`, the returns of rows <= k only (the engine cuts the matrix
before any stage sees it), and its weights earn rows k+1 ... (see `simulation`). `mode="static"` ranks every
rebalance on one cross-section, the newest one the returns allow (as of the close of the last row): it looks
ahead on purpose, to show the regime mismatch of selecting a past portfolio from today's scanner.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Literal

import pandas as pd

from backtest.client import CrossSectionLike, FeatureClient, PinnedRun
from backtest.metrics import performance, periods_per_year
from backtest.optimisers import check_optimiser, optimise
from backtest.selection import Selection, SelectionPolicy, select
from backtest.simulation import Trade, simulate
from vocabulary.time import NO_LAG, available_at, check_lag, parse_interval

Mode = Literal["dynamic", "static"]
MODES: Final[tuple[Mode, ...]] = ("dynamic", "static")
DEFAULT_POLICY: Final = SelectionPolicy()


@dataclass(frozen=True)
class Rebalance:
    row: int  # k, the position of the decision bar in the returns matrix
    ts: pd.Timestamp  # the decision bar's open time, ts_k
    as_of: pd.Timestamp  # the instant the features were read at
    run_id: str
    selection: Selection
    weights: pd.Series  # target weights, best-ranked first; empty when nothing was selected (all cash)
    fallback: str | None  # why the optimiser fell back to equal weight
    entered: list[str]
    exited: list[str]
    turnover: float
    cost: float


@dataclass(frozen=True)
class BacktestResult:
    mode: Mode
    returns: pd.Series  # net return per row, from the first rebalance row to the last row
    rebalances: list[Rebalance]
    periods_per_year: float
    # seconds spent on features, selection, optimiser, simulation
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def equity(self) -> pd.Series:
        """Growth of 1 invested at the close of the first rebalance bar (its cost already paid)."""
        return (1.0 + self.returns).cumprod().rename("equity")

    @property
    def metrics(self) -> dict[str, float]:
        turnover = pd.Series([rebalance.turnover for rebalance in self.rebalances])
        return performance(self.returns, periods_per_year=self.periods_per_year, turnover=turnover)

    @property
    def holdings(self) -> pd.DataFrame:
        """Target weights per rebalance: rows as_of, columns each symbol ever held (sorted), 0 if not held."""
        frame = pd.DataFrame([rebalance.weights for rebalance in self.rebalances])
        frame.index = pd.DatetimeIndex([rebalance.as_of for rebalance in self.rebalances], name="as_of")
        return frame.reindex(columns=sorted(frame.columns)).fillna(0.0)


class Backtest:
    """A long-only rating-selection backtest over a returns matrix, with features read point in time.

    >>> backtest = Backtest(rebalance_every=20, lookback=252, optimizer="hrp")
    >>> result = backtest.run(read_returns("returns_matrix.parquet"), HttpFeatures("http://localhost:8000"))
    """

    def __init__(
        self,
        *,
        interval: str = "1d",
        lag: pd.Timedelta = NO_LAG,
        rebalance_every: int = 20,
        lookback: int = 252,
        policy: SelectionPolicy = DEFAULT_POLICY,
        optimizer: str = "hrp",
        cost_bps: float = 10.0,
        mode: Mode = "dynamic",
        max_staleness: int = 5,
    ) -> None:
        self.interval = interval
        self.lag = check_lag(lag)
        self.rebalance_every = rebalance_every
        self.lookback = lookback
        self.policy = policy
        self.optimizer = check_optimiser(optimizer)
        self.cost_bps = cost_bps
        self.mode = mode
        self.max_staleness = max_staleness
        parse_interval(interval)
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {', '.join(MODES)}")
        if rebalance_every < 1 or lookback < 2:
            raise ValueError(
                f"rebalance_every must be >= 1 and lookback >= 2, got {rebalance_every}, {lookback}"
            )
        if cost_bps < 0:
            raise ValueError(f"cost_bps must not be negative, got {cost_bps}")

    def schedule(self, index: pd.DatetimeIndex) -> list[int]:
        """Rebalance rows: the first after `lookback` rows, then every `rebalance_every`, each with a row to
        earn after it."""
        if len(index) < self.lookback + 2:
            raise ValueError(
                f"the returns matrix has {len(index)} rows; a lookback of {self.lookback} needs at least "
                f"{self.lookback + 2} (the window, a decision row and a row to earn)"
            )
        return list(range(self.lookback, len(index) - 1, self.rebalance_every))

    def as_of(self, ts: pd.Timestamp) -> pd.Timestamp:
        """The close of the bar opened at `ts` plus the publication lag: when its features become knowable."""
        return available_at(ts, self.interval, self.lag)

    def run(
        self,
        returns: pd.DataFrame,
        features: FeatureClient,
        *,
        symbols: Sequence[str] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> BacktestResult:
        """Decide at every scheduled row and simulate the book; `symbols` narrows the universe (default: every
        returns column); `progress(done, total)` is called after each decision."""
        universe = _universe(returns, symbols)
        matrix = returns[universe]
        schedule = self.schedule(returns.index)
        timings = dict.fromkeys(("features", "selection", "optimiser", "simulation"), 0.0)
        started = time.perf_counter()
        _check_run(features.pin(self.interval), universe, self.interval, self.lag)
        sections = self._cross_sections(features, returns.index, schedule, universe)
        timings["features"] = time.perf_counter() - started
        decisions: list[Rebalance] = []
        previous: list[str] = []
        for done, (k, section) in enumerate(zip(schedule, sections, strict=True), start=1):
            clock = time.perf_counter()
            window = matrix.iloc[k - self.lookback + 1 : k + 1]
            selection = select(section.rows, section.stale, window, self.policy)
            selected_at = time.perf_counter()
            weights, fallback = self._weights(window, selection.selected)
            timings["selection"] += selected_at - clock
            timings["optimiser"] += time.perf_counter() - selected_at
            decisions.append(
                Rebalance(
                    row=k,
                    ts=returns.index[k],
                    as_of=section.as_of,
                    run_id=section.run_id,
                    selection=selection,
                    weights=weights,
                    fallback=fallback,
                    entered=[s for s in selection.selected if s not in previous],
                    exited=[s for s in previous if s not in selection.selected],
                    turnover=0.0,
                    cost=0.0,
                )
            )
            previous = selection.selected
            if progress is not None:
                progress(done, len(schedule))
        clock = time.perf_counter()
        book = simulate(matrix, [Trade(d.row, d.weights) for d in decisions], cost_bps=self.cost_bps)
        timings["simulation"] = time.perf_counter() - clock
        decisions = [
            replace(decision, turnover=turnover, cost=cost)
            for decision, turnover, cost in zip(decisions, book.turnover, book.costs, strict=True)
        ]
        return BacktestResult(
            self.mode, book.returns, decisions, periods_per_year(returns.index, self.interval), timings
        )

    def _cross_sections(
        self, features: FeatureClient, index: pd.DatetimeIndex, schedule: list[int], universe: list[str]
    ) -> list[CrossSectionLike]:
        """One cross-section per decision: as of its own bar's close (dynamic), or for all of them the newest
        one the returns allow, as of the last bar's close (static)."""
        static = self.mode == "static"
        as_ofs = [self.as_of(index[-1])] if static else [self.as_of(index[k]) for k in schedule]
        sections = features.cross_sections(
            as_ofs, self.policy.features, universe, max_staleness=self.max_staleness
        )
        return sections * len(schedule) if static else sections

    def _weights(self, window: pd.DataFrame, selected: list[str]) -> tuple[pd.Series, str | None]:
        if not selected:
            return pd.Series(dtype=float, name="weight"), None
        allocation = optimise(self.optimizer, window[selected])
        return allocation.weights, allocation.fallback


def _universe(returns: pd.DataFrame, symbols: Sequence[str] | None) -> list[str]:
    """The symbols to trade: the returns columns, or the given ones, each of which needs a returns column."""
    if symbols is None:
        return [str(column) for column in returns.columns]
    missing = [symbol for symbol in symbols if symbol not in returns.columns]
    if missing:
        raise ValueError(f"{len(missing)} symbol(s) have no column in the returns matrix: {_head(missing)}")
    return list(dict.fromkeys(symbols))


def _check_run(run: PinnedRun, universe: list[str], interval: str, lag: pd.Timedelta) -> None:
    """The pinned run must hold the backtest's interval, publish with its lag and hold every symbol it trades.

    A backtest lag longer than the run's would decide at row k on bars published after row k+1 began, yet
    earn row k+1: lookahead. A shorter one would read a bar before it was published."""
    if run.interval != interval:
        raise ValueError(f"run {run.run_id} holds {run.interval} bars but the backtest is on {interval} bars")
    if run.lag != lag:
        published, decided = run.lag.total_seconds(), lag.total_seconds()
        raise ValueError(
            f"run {run.run_id} publishes bars {published:g} s after their close but the backtest decides "
            f"{decided:g} s after; give the run's lag (--lag {published:g})"
        )
    stored = set(run.symbols)
    missing = [symbol for symbol in universe if symbol not in stored]
    if missing:
        raise ValueError(f"{len(missing)} symbol(s) absent from run {run.run_id}: {_head(missing)}")


def _head(symbols: list[str], shown: int = 5) -> str:
    more = f" (+{len(symbols) - shown} more)" if len(symbols) > shown else ""
    return ", ".join(symbols[:shown]) + more
