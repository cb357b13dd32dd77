"""A seeded synthetic universe for tests, benchmarks and the demo: realistic enough to exercise everything a
real lake does (regimes that move the ratings, late listings, delistings, untraded bars), small to describe.

Each symbol's log return per bar is `beta * market + own`, where the market and each symbol follow their own
regime chains (bull, bear, sideways: different drift and volatility, Student-t shocks), so ratings rotate
across symbols and over time. The first `flippers` symbols instead follow a known schedule, alternating bull
and bear every `flip_bars` bars (`regime_schedule()`), which tests use to prove rotation.
"""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from service.sources.bars import BAR_COLUMNS
from vocabulary.time import parse_instant, parse_interval


class Regime(NamedTuple):
    name: str
    drift: float  # mean log return per day
    volatility: float  # standard deviation of the log return per day


REGIMES = (Regime("bull", 0.0006, 0.010), Regime("bear", -0.0008, 0.018), Regime("sideways", 0.0, 0.006))
FLIPPER_VOLATILITY = 0.01  # per day
FLIPPER_TREND = 0.5  # drift per bar, in units of the bar's volatility: a trend no rating can miss
TAIL_DEGREES = 4  # Student-t shocks: fat tails like real returns


@dataclass(frozen=True)
class SampleFiles:
    """Where `SyntheticUniverse.write` put the sample inputs."""

    lake: Path
    returns: Path
    candidates: Path


class _Panel(NamedTuple):
    """Bars of every symbol on the common grid (symbols x bars), with each symbol's trading span."""

    ts: pd.DatetimeIndex
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    first: np.ndarray  # first traded bar
    last: np.ndarray  # last traded bar


@dataclass(frozen=True)
class SyntheticUniverse:
    """`n_symbols` symbols `EXCHANGE:S0001`... on a grid of `n_bars` bars of `interval` from the first bar
    opening at or after `start` (a Monday for 1W, the 1st for 1M); the
    same parameters always give the same bars. Drift and volatility scale with the bar length. Shares of
    symbols are rounded up, so a positive share gives at least one late listing or delisting."""

    n_symbols: int = 50
    n_bars: int = 2520
    interval: str = "1d"
    seed: int = 0
    start: str = "2015-01-01"
    exchange: str = "SYNTH"
    late_listing_share: float = 0.2  # of the non-flippers: list after bar 0 (within the first half)
    delisted_share: float = 0.05  # of the non-flippers: stop trading before the last bar
    zero_volume_share: float = 0.002  # of the traded bars: untraded (zero volume, price unchanged)
    mean_regime_bars: float = 120.0  # mean length of a regime spell
    flippers: int = 2  # symbols on the known bull/bear schedule (the first ones)
    flip_bars: int = 250  # length of a flipper's spell

    def __post_init__(self) -> None:
        parse_interval(self.interval)
        parse_instant(self.start, name="start")
        if self.n_bars < 8:
            raise ValueError(f"n_bars: at least 8 bars, got {self.n_bars}")
        if not 0 <= self.flippers <= self.n_symbols:
            raise ValueError(f"flippers: between 0 and n_symbols ({self.n_symbols}), got {self.flippers}")
        for name in ("late_listing_share", "delisted_share", "zero_volume_share"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name}: a share between 0 and 1, got {getattr(self, name)}")
        if self.mean_regime_bars < 1 or self.flip_bars < 1:
            raise ValueError("mean_regime_bars and flip_bars: at least 1")

    @property
    def symbols(self) -> list[str]:
        width = max(4, len(str(self.n_symbols)))
        return [f"{self.exchange}:S{k:0{width}d}" for k in range(1, self.n_symbols + 1)]

    def frames(self) -> dict[str, pd.DataFrame]:
        """Symbol -> its raw bars over its trading span (the columns `read_bars` gives)."""
        panel = self._panel()
        return {
            symbol: pd.DataFrame(
                {
                    "ts": panel.ts[first : last + 1],
                    **{name: getattr(panel, name)[k, first : last + 1] for name in BAR_COLUMNS[1:]},
                }
            )
            for k, (symbol, first, last) in enumerate(zip(self.symbols, panel.first, panel.last, strict=True))
        }

    def returns(self) -> pd.DataFrame:
        """Wide returns: row t is close_t / close_{t-1} - 1; NaN where the symbol does not trade."""
        return self._returns(self._panel())

    def regime_schedule(self) -> pd.DataFrame:
        """The flippers' known spells: one row per spell, `symbol`, `ts` (its first bar), `regime`."""
        ts = self._grid()
        starts = range(0, self.n_bars, self.flip_bars)
        rows = [
            (symbol, ts[start], "bull" if _flipper_bull(k, spell) else "bear")
            for k, symbol in enumerate(self.symbols[: self.flippers])
            for spell, start in enumerate(starts)
        ]
        return pd.DataFrame(rows, columns=["symbol", "ts", "regime"])

    def write(self, root: Path | str) -> SampleFiles:
        """Write the lake folder (tradingview-scraper naming, epoch-second `timestamp`), the returns matrix
        and the candidates file (every symbol, delisted ones included: no survivorship) under `root`."""
        root = Path(root)
        files = SampleFiles(
            root / "lake", root / "returns_matrix.parquet", root / "portfolio_candidates.json"
        )
        files.lake.mkdir(parents=True, exist_ok=True)
        panel = self._panel()
        seconds = panel.ts.asi8 // 1_000_000_000
        for k, symbol in enumerate(self.symbols):
            span = slice(panel.first[k], panel.last[k] + 1)
            columns = {
                "timestamp": seconds[span],
                **{name: getattr(panel, name)[k, span] for name in BAR_COLUMNS[1:]},
            }
            exchange, ticker = symbol.split(":", 1)
            pq.write_table(pa.table(columns), files.lake / f"{exchange}_{ticker}_{self.interval}.parquet")
        self._returns(panel).to_parquet(files.returns)
        files.candidates.write_text(json.dumps([{"symbol": symbol} for symbol in self.symbols], indent=1))
        return files

    def _grid(self) -> pd.DatetimeIndex:
        start = parse_instant(self.start, name="start")
        return parse_interval(self.interval).opens(start, self.n_bars).rename("ts").as_unit("ns")

    def _panel(self) -> _Panel:
        rng = np.random.default_rng(self.seed)
        shape = (self.n_symbols, self.n_bars)
        days = parse_interval(self.interval).length / pd.Timedelta(days=1)
        drift = np.array([regime.drift for regime in REGIMES])
        volatility = np.array([regime.volatility for regime in REGIMES])

        market = self._regimes(rng, (1, self.n_bars))
        own = self._regimes(rng, shape)
        beta = rng.uniform(0.5, 1.5, (self.n_symbols, 1))
        own_scale = rng.lognormal(0.0, 0.3, (self.n_symbols, 1))
        market_returns = drift[market] * days + volatility[market] * math.sqrt(days) * _shocks(
            rng, market.shape
        )
        own_vol = volatility[own] * own_scale * math.sqrt(days)
        log_returns = beta * market_returns + drift[own] * days + own_vol * _shocks(rng, shape)
        bar_vol = np.sqrt((beta * volatility[market]) ** 2 * days + own_vol**2)

        flip = self._flipper_returns(rng, days)
        log_returns[: self.flippers] = flip
        bar_vol[: self.flippers] = FLIPPER_VOLATILITY * math.sqrt(days)

        first, last = self._spans(rng)
        close = np.exp(
            rng.uniform(np.log(5), np.log(500), (self.n_symbols, 1)) + np.cumsum(log_returns, axis=1)
        )
        open_ = close * np.exp(-log_returns + rng.normal(0, 0.1, shape) * bar_vol)
        high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.5, shape)) * bar_vol)
        low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.5, shape)) * bar_vol)
        typical = np.exp(rng.uniform(np.log(1e4), np.log(1e7), (self.n_symbols, 1)))
        surprise = np.abs(log_returns) / bar_vol  # volume rises with the size of the move
        volume = np.round(typical * np.exp(0.5 * surprise + rng.normal(0, 0.3, shape)))

        bar = np.arange(self.n_bars)
        untraded = rng.random(shape) < self.zero_volume_share
        untraded &= bar > first[:, None]
        untraded[: self.flippers] = False
        # An untraded bar repeats the last traded close on all four prices; the move shows on the next bar.
        last_traded = np.maximum.accumulate(np.where(untraded, 0, bar), axis=1)
        held = np.take_along_axis(close, last_traded, axis=1)
        open_, high, low, close = (np.where(untraded, held, prices) for prices in (open_, high, low, close))
        volume[untraded] = 0.0
        return _Panel(self._grid(), open_, high, low, close, volume, first, last)

    def _regimes(self, rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        """Regime indices of a Markov chain that leaves its regime with probability 1/mean_regime_bars."""
        leaves = rng.random(shape) < 1 / self.mean_regime_bars
        steps = np.where(leaves, rng.integers(1, len(REGIMES), shape), 0)
        start = rng.integers(0, len(REGIMES), (shape[0], 1))
        return (start + np.cumsum(steps, axis=1)) % len(REGIMES)

    def _flipper_returns(self, rng: np.random.Generator, days: float) -> np.ndarray:
        """Log returns of the flippers: a strong trend whose sign follows `regime_schedule`."""
        spell = np.arange(self.n_bars) // self.flip_bars
        sign = np.where(_flipper_bull(np.arange(self.flippers)[:, None], spell), 1.0, -1.0)
        shocks = _shocks(rng, (self.flippers, self.n_bars))
        return FLIPPER_VOLATILITY * math.sqrt(days) * (FLIPPER_TREND * sign + shocks)

    def _spans(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """First and last traded bar per symbol: some list late (first half), some delist, each trading at
        least a quarter of the bars; flippers trade throughout."""
        first = np.zeros(self.n_symbols, dtype=np.int64)
        last = np.full(self.n_symbols, self.n_bars - 1, dtype=np.int64)
        others = np.arange(self.flippers, self.n_symbols)
        late = rng.permutation(others)[: math.ceil(self.late_listing_share * len(others))]
        first[late] = rng.integers(1, self.n_bars // 2, len(late), endpoint=True)
        delisted = rng.permutation(others)[: math.ceil(self.delisted_share * len(others))]
        lowest = first[delisted] + self.n_bars // 4
        last[delisted] = rng.integers(lowest, self.n_bars - 2, endpoint=True)
        return first, last

    def _returns(self, panel: _Panel) -> pd.DataFrame:
        returns = np.full(panel.close.shape, np.nan)
        returns[:, 1:] = panel.close[:, 1:] / panel.close[:, :-1] - 1
        bar = np.arange(self.n_bars)
        trading = (bar > panel.first[:, None]) & (bar <= panel.last[:, None])
        return pd.DataFrame(np.where(trading, returns, np.nan).T, index=panel.ts, columns=self.symbols)


def _shocks(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Unit-variance Student-t draws."""
    return rng.standard_t(TAIL_DEGREES, shape) / math.sqrt(TAIL_DEGREES / (TAIL_DEGREES - 2))


def _flipper_bull(flipper, spell):  # ints or numpy arrays
    """Even flippers start bull, odd ones bear, and every spell swaps: neighbours are always opposite."""
    return (flipper + spell) % 2 == 0
