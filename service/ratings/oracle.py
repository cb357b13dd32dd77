"""Per-asset TradingView Technical Ratings built from pandas-ta: the independent oracle.

One symbol at a time, indicator by indicator, written from RATINGS_SPEC.md sections 3-6 (scanner rules,
current) so that it can be held against the vectorised panel engine (`engine.py`), which it shares no code
with. It is also the baseline the ratings benchmark measures the panel engine against.

pandas-ta 0.4.71b0 without TA-Lib (`talib=False` is passed wherever a function takes it). What is used
from it, and how it is made to match Pine:

* `ta.ema(x, n, presma=True)`: SMA seed on the n-th value, then `ewm(span=n, adjust=False)`, which is
  Pine's ema up to rounding. Pine skips na inputs, so it runs on the non-na values only (`_on_valid`).
  Used for EMA10..200, the EMA13 of Bull/Bear Power, the EMA50 trend filter and both MACD lines.
* MACD: `ta.macd`'s own composition (ema12 - ema26, signal = presma ema9 of the line from its first valid
  value, which is Pine's SMA seed on the first 9 line values), rebuilt from `ta.ema` because `ta.macd`
  returns nothing below 34 bars while Pine already has the line from bar 25.
* `ta.rsi`, `ta.rma`, `ta.adx` and `ta.dm` are not used: `ta.rma` is `ewm(alpha=1/n)` seeded with the
  first value, where Pine seeds with the SMA of the first n values and steps (r (n - 1) + x) / n, which
  rounds differently (see `rma`, written here); `ta.adx` uses `ta.atr`'s range with an epsilon added to
  zero ranges, and none has the scanner's DMI (DM = 0 on bar 0, DI through fixnan, `sum == 0 ? 1 : sum`).
* `ta.wma` and `ta.hma(close, 9)`: Pine's wma up to rounding (it multiplies by 2 / (n(n+1)) where Pine
  divides); hma's inner lengths are `int(9 / 2) = 4` and `int(sqrt(9)) = 3`, Pine v6's
  `wma3(2 wma4 - wma9)`.
* `ta.mom(close, 10)`: close - close[10].
* `ta.donchian(high, low, n, n)`: lowest/highest over n bars, for Stochastic (%K), Williams %R and the
  Stoch RSI range (fed R, R). `ta.midprice(high, low, n)` = 0.5 (lowest + highest) for the Ichimoku
  conversion line, base line and span B on the current bar (`ta.ichimoku` shifts the spans; the scanner
  rule does not).
* `ta.hl2`, `ta.hlc3`: the AO and CCI sources (CCI runs on hlc3, as on the scanner).

Written here in plain pandas, because pandas-ta has no primitive that matches:

* sma: `ta.sma` is `np.convolve` with weights 1/n, which rounds every product, and pandas' rolling mean
  returns the value itself on a window of equal values; Pine divides its compensated window sum by n, so
  a flat window's sma is the value or an ulp off it. pandas' rolling sum (compensated) over n, divided by
  n, is used, on the non-na values only; UO's sums are the same rolling sums. AO and VWMA follow `ta.ao` /
  `ta.vwma` (sma(hl2, 5) - sma(hl2, 34); sma(C V, 20) / sma(V, 20)) on it.
* rma: Pine's (r (n - 1) + x) / n from the sum of the first n values over n, a plain loop on the non-na
  values. Used for RSI's up/down averages and DMI's true range, +DM, -DM and DX.
* stoch: `ta.stoch` and `ta.stochrsi` add an epsilon to a zero range (`non_zero_range`); Pine divides by
  zero and gets na. Written as `100 (src - lowest) / (highest - lowest)`.
* CCI: `ta.cci` divides only the mean by the deviation (`tp - mean / (c * mad)`), and `ta.mad` takes the
  deviation around each window's own numpy mean; Pine's is around the sma. Written as
  `(s - sma) / (0.015 MD)` with MD the mean of |s[i] - sma_t| over the window.
* RSI: `100 - 100 / (1 + U / D)` on that rma, as Pine computes it: no special case, so 100 when D = 0,
  0 when U = 0, na when both are, and a flat stretch's last-digit wobble is left for Stoch RSI to divide.
* Williams %R: the scanner's `(highest - close) / (highest - lowest) * -100`; `ta.willr` rearranges it
  as `100 ((C - LL) / (HH - LL) - 1)`, which loses the digits of values near 0.
* UO: the scanner form. `ta.uo` has a true range on bar 0 (where the scanner's `ta.tr` is na) and no
  guard against zero sums.

Pine comparisons use an absolute tolerance (`a > b` iff a - b > tol, `a == b` iff |a - b| <= tol); a
comparison with na is false. `ta.crossover` is exact in Pine, so the AO cross is too. A division by zero
(±inf or 0/0) is na. The tolerance is absolute, so above a price of about 1e5 (where 1e-10 is a few ulp)
an average that equals close in exact arithmetic (a flat window) can vote either way in any floating-point
implementation, this one and Pine's included.
"""

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pandas_ta as ta

from vocabulary.features import FEATURES, MA_LENGTHS, MA_VOTES, OSCILLATOR_VOTES, RATINGS, VALUES, VOTES

BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def rate_frame(frame: pd.DataFrame, *, tolerance: float = 1e-10) -> pd.DataFrame:
    """One symbol's cleaned bars in; ts, bars, warm and every feature out, one row per bar."""
    missing = [column for column in BAR_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {', '.join(missing)}")
    bars = frame.reset_index(drop=True)
    high, low, close, volume = (bars[name].astype("float64") for name in ("high", "low", "close", "volume"))
    features = _Ratings(high, low, close, volume, tolerance=tolerance).features()
    out = pd.DataFrame({"ts": bars["ts"], "bars": np.arange(1, len(bars) + 1, dtype="int64")})
    out["warm"] = features[list(MA_VOTES + OSCILLATOR_VOTES)].notna().all(axis=1)
    return pd.concat([out, features[list(FEATURES)]], axis=1)


# Primitives ---------------------------------------------------------------------------------------


def _complete(values: pd.Series | None, index: pd.Index) -> pd.Series:
    """pandas-ta returns None when a series is shorter than its window; every value is na then."""
    if values is None:
        return pd.Series(np.nan, index=index, dtype="float64")
    return values.astype("float64")


def _on_valid(x: pd.Series, compute: Callable[[pd.Series], pd.Series | None]) -> pd.Series:
    """Pine's moving averages skip na inputs: compute on the non-na values, na on the na bars."""
    valid = x.dropna()
    return _complete(compute(valid), valid.index).reindex(x.index)


def sma(x: pd.Series, n: int) -> pd.Series:
    """Pine's sum / length: pandas' compensated rolling sum over n, divided by n (its rolling mean returns
    the value itself on a window of equal values, a special case Pine does not have)."""
    return _on_valid(x, lambda v: v.rolling(n).sum() / n)


def rolling_sum(x: pd.Series, n: int) -> pd.Series:
    return _on_valid(x, lambda v: v.rolling(n).sum())


def ema(x: pd.Series, n: int) -> pd.Series:
    return _on_valid(x, lambda v: ta.ema(v, length=n, presma=True, talib=False))


def rma(x: pd.Series, n: int) -> pd.Series:
    """Wilder's average in Pine's operation order, (r * (n - 1) + x) / n, seeded with the sma of the first
    n values (their exact sum, rounded, over n), on the non-na values only. A plain loop: pandas-ta's rma is
    `ewm(alpha=1/n)`, which rounds (1 - 1/n) r + x/n differently, and along a flat stretch Stoch RSI divides
    by RSI's last digits."""

    def wilder(values: pd.Series) -> pd.Series:
        x = values.to_numpy()
        out = np.full(len(x), np.nan)
        if len(x) >= n:
            out[n - 1] = state = math.fsum(x[:n]) / n
            for k in range(n, len(x)):
                out[k] = state = (state * (n - 1) + x[k]) / n
        return pd.Series(out, index=values.index)

    return _on_valid(x, wilder)


def lowest_highest(high: pd.Series, low: pd.Series, n: int) -> tuple[pd.Series, pd.Series]:
    channel = ta.donchian(high, low, lower_length=n, upper_length=n)
    if channel is None:
        return _complete(None, high.index), _complete(None, high.index)
    return channel[f"DCL_{n}_{n}"], channel[f"DCU_{n}_{n}"]


def midprice(high: pd.Series, low: pd.Series, n: int) -> pd.Series:
    return _complete(ta.midprice(high, low, length=n, talib=False), high.index)


def divide(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Pine's division: by zero it is na (and na() also holds for ±inf)."""
    quotient = numerator / denominator
    return quotient.where(np.isfinite(quotient))


def stoch(source: pd.Series, high: pd.Series, low: pd.Series, n: int) -> pd.Series:
    lowest, highest = lowest_highest(high, low, n)
    return divide(100 * (source - lowest), highest - lowest)


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """`ta.tr` (= tr(false)): na on the first bar, where there is no previous close."""
    previous = close.shift(1)
    ranges = pd.concat([high - low, (high - previous).abs(), (low - previous).abs()], axis=1)
    return ranges.max(axis=1, skipna=False)


def rsi(x: pd.Series, n: int) -> pd.Series:
    """100 - 100 / (1 + U / D) on Pine's rma, with no special case: 100 when D = 0 (U / D is +inf), 0 when
    U = 0, na when both are (0 / 0)."""
    change = x.diff()
    return 100 - 100 / (1 + rma(change.clip(lower=0), n) / rma((-change).clip(lower=0), n))


def cci(source: pd.Series, n: int) -> pd.Series:
    """(s - sma) / (0.015 MD), MD the mean of |s[i] - sma_t| over the window around the current sma; na
    where MD is 0 (0 / 0)."""
    mean = sma(source, n)
    deviation = pd.Series(np.nan, index=source.index)
    if len(source) >= n:
        windows = np.lib.stride_tricks.sliding_window_view(source.to_numpy(), n)
        deviation.iloc[n - 1 :] = np.abs(windows - mean.to_numpy()[n - 1 :, None]).sum(axis=1) / n
    return divide(source - mean, 0.015 * deviation)


# The ratings --------------------------------------------------------------------------------------


class _Ratings:
    """Indicators, votes and the two group means for one symbol, in the order of RATINGS_SPEC 4-6."""

    def __init__(
        self, high: pd.Series, low: pd.Series, close: pd.Series, volume: pd.Series, *, tolerance: float
    ):
        self.high, self.low, self.close, self.volume = high, low, close, volume
        self.tol = tolerance
        self.index = close.index
        ema50 = ema(close, 50)
        self.up_trend, self.down_trend = self.gt(close, ema50), self.lt(close, ema50)

    # Pine comparisons with the absolute tolerance; na compares false.
    def gt(self, a: pd.Series, b: pd.Series | float) -> pd.Series:
        return pd.Series((a - b) > self.tol, index=self.index)

    def lt(self, a: pd.Series, b: pd.Series | float) -> pd.Series:
        return pd.Series((b - a) > self.tol, index=self.index)

    def eq(self, a: pd.Series, b: pd.Series | float) -> pd.Series:
        return pd.Series((a - b).abs() <= self.tol, index=self.index)

    def vote(self, buy: pd.Series, sell: pd.Series, *counted: pd.Series) -> pd.Series:
        """Pine's `buy ? 1 : sell ? -1 : 0`, na unless every `counted` series is non-na."""
        value = pd.Series(np.where(buy, 1.0, np.where(sell, -1.0, 0.0)), index=self.index)
        return value.where(pd.concat(counted, axis=1).notna().all(axis=1))

    def ma_vote(self, average: pd.Series) -> pd.Series:
        """+1 when the average is below close, -1 above, 0 equal; na when either is na."""
        return self.vote(self.lt(average, self.close), self.gt(average, self.close), average, self.close)

    def features(self) -> pd.DataFrame:
        columns = {"close": self.close, **self.moving_averages(), **self.oscillators()}
        columns["Recommend.MA"] = mean_of_counted([columns[name] for name in MA_VOTES])
        columns["Recommend.Other"] = mean_of_counted([columns[name] for name in OSCILLATOR_VOTES])
        both = pd.concat([columns["Recommend.MA"], columns["Recommend.Other"]], axis=1)
        columns["Recommend.All"] = both.sum(axis=1, min_count=1) / both.notna().sum(axis=1)
        return pd.DataFrame(columns, index=self.index)

    def moving_averages(self) -> dict[str, pd.Series]:
        high, low, close = self.high, self.low, self.close
        out: dict[str, pd.Series] = {}
        for n in MA_LENGTHS:
            out[f"SMA{n}"], out[f"Rec.SMA{n}"] = (average := sma(close, n)), self.ma_vote(average)
        for n in MA_LENGTHS:
            out[f"EMA{n}"], out[f"Rec.EMA{n}"] = (average := ema(close, n)), self.ma_vote(average)
        hull = _complete(ta.hma(close, length=9, mamode="wma"), self.index)
        out["HullMA9"], out["Rec.HullMA9"] = hull, self.ma_vote(hull)
        vwma = divide(sma(close * self.volume, 20), sma(self.volume, 20))
        out["VWMA"], out["Rec.VWMA"] = vwma, self.ma_vote(vwma)
        conversion, base, span_b = midprice(high, low, 9), midprice(high, low, 26), midprice(high, low, 52)
        span_a = (conversion + base) / 2
        buy = (
            self.gt(span_a, span_b)
            & self.gt(base, span_a)
            & self.gt(conversion, base)
            & self.gt(close, conversion)
        )
        sell = (
            self.lt(span_a, span_b)
            & self.lt(base, span_a)
            & self.lt(conversion, base)
            & self.lt(close, conversion)
        )
        out["Ichimoku.BLine"] = base
        out["Rec.Ichimoku"] = self.vote(buy, sell, span_a, span_b, base, conversion, close, close.shift(1))
        return out

    def oscillators(self) -> dict[str, pd.Series]:
        return {
            **self.rsi(),
            **self.stochastic(),
            **self.cci(),
            **self.adx(),
            **self.awesome(),
            **self.momentum(),
            **self.macd(),
            **self.stoch_rsi(),
            **self.williams(),
            **self.bull_bear_power(),
            **self.ultimate(),
        }

    def rsi(self) -> dict[str, pd.Series]:
        value = rsi(self.close, 14)
        prev = value.shift(1)
        buy = self.lt(value, 30) & self.gt(value, prev)
        sell = self.gt(value, 70) & self.lt(value, prev)
        return {"RSI": value, "Rec.RSI": self.vote(buy, sell, value, prev)}

    def _k_d_vote(self, k: pd.Series, d: pd.Series, buy_if: pd.Series, sell_if: pd.Series) -> pd.Series:
        """Both lines beyond the band with %K on the turning side of %D (Stochastic, Stoch RSI)."""
        buy = buy_if & self.lt(k, 20) & self.lt(d, 20) & self.gt(k, d)
        sell = sell_if & self.gt(k, 80) & self.gt(d, 80) & self.lt(k, d)
        return self.vote(buy, sell, k, d, k.shift(1), d.shift(1))

    def stochastic(self) -> dict[str, pd.Series]:
        k = sma(stoch(self.close, self.high, self.low, 14), 3)
        d = sma(k, 3)
        always = pd.Series(True, index=self.index)
        return {"Stoch.K": k, "Stoch.D": d, "Rec.Stoch.K": self._k_d_vote(k, d, always, always)}

    def cci(self) -> dict[str, pd.Series]:
        typical = _complete(ta.hlc3(self.high, self.low, self.close, talib=False), self.index)
        value = cci(typical, 20)
        prev = value.shift(1)
        buy = self.lt(value, -100) & self.gt(value, prev)
        sell = self.gt(value, 100) & self.lt(value, prev)
        return {"CCI20": value, "Rec.CCI20": self.vote(buy, sell, value, prev)}

    def adx(self) -> dict[str, pd.Series]:
        """The scanner's dirmov/adx: DM is 0 (not na) on bar 0, each DI goes through fixnan."""
        up, down = self.high.diff(), -self.low.diff()
        plus_dm = up.where(self.gt(up, down) & self.gt(up, 0), 0.0)
        minus_dm = down.where(self.gt(down, up) & self.gt(down, 0), 0.0)
        average_range = rma(true_range(self.high, self.low, self.close), 14)
        plus = divide(100 * rma(plus_dm, 14), average_range).ffill()
        minus = divide(100 * rma(minus_dm, 14), average_range).ffill()
        total = plus + minus
        value = 100 * rma((plus - minus).abs() / total.mask(self.eq(total, 0), 1.0), 14)
        rising = self.gt(value, value.shift(1))
        buy = self.gt(value, 20) & rising & self.gt(plus, minus)
        sell = self.gt(value, 20) & rising & self.lt(plus, minus)
        return {
            "ADX": value,
            "ADX+DI": plus,
            "ADX-DI": minus,
            "Rec.ADX": self.vote(buy, sell, value, plus, minus, plus.shift(1), minus.shift(1)),
        }

    def awesome(self) -> dict[str, pd.Series]:
        median = _complete(ta.hl2(self.high, self.low), self.index)
        value = sma(median, 5) - sma(median, 34)
        prev, prev2 = value.shift(1), value.shift(2)
        cross_up = (value > 0) & (prev <= 0)  # ta.crossover compares exactly
        cross_down = (value < 0) & (prev >= 0)
        saucer_up = self.gt(value, 0) & self.gt(prev, 0) & self.gt(value, prev) & self.gt(prev2, prev)
        saucer_down = self.lt(value, 0) & self.lt(prev, 0) & self.lt(value, prev) & self.lt(prev2, prev)
        vote = self.vote(cross_up | saucer_up, cross_down | saucer_down, value, prev)
        return {"AO": value, "Rec.AO": vote}

    def momentum(self) -> dict[str, pd.Series]:
        value = _complete(ta.mom(self.close, length=10, talib=False), self.index)
        prev = value.shift(1)
        return {"Mom": value, "Rec.Mom": self.vote(self.gt(value, prev), self.lt(value, prev), value, prev)}

    def macd(self) -> dict[str, pd.Series]:
        line = ema(self.close, 12) - ema(self.close, 26)
        signal = ema(line, 9)
        vote = self.vote(self.gt(line, signal), self.lt(line, signal), line, signal)
        return {"MACD.macd": line, "MACD.signal": signal, "Rec.MACD": vote}

    def stoch_rsi(self) -> dict[str, pd.Series]:
        """Stoch RSI (3, 3, 14, 14); it buys only in a down trend and sells only in an up trend."""
        strength = rsi(self.close, 14)
        k = sma(stoch(strength, strength, strength, 14), 3)
        d = sma(k, 3)
        return {"Stoch.RSI.K": k, "Rec.Stoch.RSI": self._k_d_vote(k, d, self.down_trend, self.up_trend)}

    def williams(self) -> dict[str, pd.Series]:
        lowest, highest = lowest_highest(self.high, self.low, 14)
        value = divide(highest - self.close, highest - lowest) * -100
        prev = value.shift(1)
        buy = self.lt(value, -80) & self.gt(value, prev)
        sell = self.gt(value, -20) & self.lt(value, prev)
        return {"W.R": value, "Rec.WR": self.vote(buy, sell, value, prev)}

    def bull_bear_power(self) -> dict[str, pd.Series]:
        average = ema(self.close, 13)
        bull, bear = self.high - average, self.low - average
        buy = self.up_trend & self.lt(bear, 0) & self.gt(bear, bear.shift(1))
        sell = self.down_trend & self.gt(bull, 0) & self.lt(bull, bull.shift(1))
        vote = self.vote(buy, sell, bull, bear, bull.shift(1), bear.shift(1))
        return {"BBPower": bull + bear, "Rec.BBPower": vote}

    def ultimate(self) -> dict[str, pd.Series]:
        """The scanner's uo(7, 14, 28): true low = close[1] if close[1] < low, na unless every TR sum != 0."""
        previous = self.close.shift(1)
        true_low = previous.where(self.lt(previous, self.low), self.low)
        buying = self.close - true_low
        ranges = true_range(self.high, self.low, self.close)
        averages = []
        for n, weight in ((7, 4.0), (14, 2.0), (28, 1.0)):
            range_sum = rolling_sum(ranges, n)
            averages.append((rolling_sum(buying, n) / range_sum * weight).where(~self.eq(range_sum, 0)))
        value = (averages[0] + averages[1] + averages[2]) / 7.0 * 100
        return {"UO": value, "Rec.UO": self.vote(self.gt(value, 70), self.lt(value, 30), value)}


def mean_of_counted(votes: list[pd.Series]) -> pd.Series:
    """Sum of the non-na votes over their count; na when none is counted."""
    table = pd.concat(votes, axis=1)
    return table.sum(axis=1, min_count=1) / table.notna().sum(axis=1)


PRICE_UNITS = frozenset(
    {"close", "HullMA9", "VWMA", "Ichimoku.BLine", "AO", "Mom", "MACD.macd", "MACD.signal", "BBPower"}
    | {f"{kind}{n}" for kind in ("SMA", "EMA") for n in MA_LENGTHS}
)
"""Values in price units; the others are oscillators in points (about 0-100)."""


def disagreements(engine: pd.DataFrame, ours: pd.DataFrame, *, rtol: float = 1e-9) -> list[str]:
    """Where another engine's rows differ from the oracle's, one line per column, naming the first bar.

    Votes, ratings, ts, bars and warm must be equal (na where the oracle has na). Values must have na in
    the same places and agree to `rtol` of their scale: the larger of the two magnitudes, and at least the
    bar's close for values in price units or 100 for oscillators, because values such as AO, Mom or a
    stochastic near 0 are differences of much larger numbers and carry those numbers' rounding.
    """
    if list(engine.columns) != list(ours.columns) or len(engine) != len(ours):
        shapes = f"engine {len(engine)} rows, oracle {len(ours)} rows"
        return [
            f"shape: {shapes}; engine columns {list(engine.columns)}, oracle columns {list(ours.columns)}"
        ]
    found = []
    close = np.abs(ours["close"].to_numpy())
    for column in ("ts", "bars", "warm", *VOTES, *RATINGS, *VALUES):
        theirs, mine = engine[column].to_numpy(), ours[column].to_numpy()
        if column in VALUES:
            scale = np.fmax(np.fmax(np.abs(theirs), np.abs(mine)), close if column in PRICE_UNITS else 100.0)
            same = (np.abs(theirs - mine) <= rtol * scale) | (np.isnan(theirs) & np.isnan(mine))
        else:
            same = (theirs == mine) | (pd.isna(theirs) & pd.isna(mine))
        if not same.all():
            bar = int(np.argmin(same))
            found.append(
                f"{column}: {int((~same).sum())} bars differ, first at row {bar} "
                f"(bars={ours['bars'].iloc[bar]}): engine {theirs[bar]!r}, oracle {mine[bar]!r}"
            )
    return found
