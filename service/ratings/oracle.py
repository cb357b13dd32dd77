"""Per-asset TradingView Technical Ratings from pandas and pandas-ta: the independent oracle.

One symbol at a time, indicator by indicator, written from RATINGS_SPEC.md sections 3-7 under each rule set
(`scanner`, `chart`, `legacy`; docs/RATINGS.md) so that it can be held against the vectorised panel engine
(`engine.py`), which it shares no code with. It is also the baseline the ratings benchmark measures the
panel engine against.

Where a vote can rest on the last digit of a value it must round where Pine rounds: along a flat stretch
RSI's wobble is all Stoch RSI divides, a CCI window is 0 / 0 or +-200/3 by one ulp of its sma, and the
chart library compares the close with each average exactly. So the averages are written here in Pine's
operation order (PyneCore measured it against TradingView), not taken from pandas-ta:

* sma: each window's exact sum, rounded once, over n (`window_sums`: integer arithmetic on the doubles).
  `ta.sma` is `np.convolve` with weights 1/n, which rounds every product; pandas' rolling mean returns
  the value itself on a window of equal values, where Pine's sum over n is that value or an ulp off it;
  pandas' rolling sum is not always correctly rounded. UO's sums are the same window sums; AO and VWMA
  follow `ta.ao` / `ta.vwma` (sma(hl2, 5) - sma(hl2, 34); sma(C V, 20) / sma(V, 20)) on this sma.
* ema and rma: the sma of the first n values on the n-th, then `e + 2/(n+1) (x - e)` and
  `(r (n - 1) + x) / n`, in a plain loop (`ta.ema` and `ta.rma` are `ewm` forms that round differently;
  `ta.rma` also seeds with the first value). Pine skips na inputs, so every average runs on the non-na
  values only (`_on_valid`). MACD is `ta.macd`'s composition (ema12 - ema26, signal = ema9 of the line),
  rebuilt because `ta.macd` returns nothing below 34 bars while Pine has the line from bar 25.
* wma and hma: the window weighted 1 (oldest) to n, summed oldest first, over n(n+1)/2 (`ta.wma`
  multiplies by 2 / (n(n+1))); hma's inner lengths are `9 // 2 = 4` and `isqrt(9) = 3`, Pine v6's
  `wma3(2 wma4 - wma9)`.

What pandas-ta gives as Pine computes it (0.4.71b0 without TA-Lib, `talib=False` wherever a function takes
it): `ta.mom(close, 10)` (close - close[10]); `ta.donchian(high, low, n, n)`, the lowest/highest over n
bars for Stochastic (%K), Williams %R and the Stoch RSI range (fed R, R); `ta.midprice(high, low, n)` =
0.5 (lowest + highest) for the Ichimoku lines on the current bar (`ta.ichimoku` shifts the spans its own
way; the chart rule's 26-bar lag is a shift here); `ta.hl2`, `ta.hlc3`, the AO and CCI sources.

Written here in plain pandas, because pandas-ta's differs from Pine:

* stoch: `ta.stoch` and `ta.stochrsi` add an epsilon to a zero range (`non_zero_range`); Pine divides by
  zero and gets na. Written as `100 (src - lowest) / (highest - lowest)`.
* CCI: `ta.cci` divides only the mean by the deviation (`tp - mean / (c * mad)`), and `ta.mad` takes the
  deviation around each window's own numpy mean; Pine's is around the sma. Written as
  `(s - sma) / (0.015 MD)` with MD the mean of |s[i] - sma_t| over the window.
* RSI: `100 - 100 / (1 + U / D)` on the rma, as Pine computes it: no special case, so 100 when D = 0, 0
  when U = 0, na when both are, and a flat stretch's last-digit wobble is left for Stoch RSI to divide.
* DMI: `ta.adx` uses `ta.atr`'s range with an epsilon added to zero ranges, and neither it nor `ta.dm`
  has the scanner's DMI (DM = 0 on bar 0, DI through fixnan, `sum == 0 ? 1 : sum`) or ta.dmi's (no DM on
  bar 0).
* Williams %R: the scanner's `(highest - close) / (highest - lowest) * -100`; `ta.willr` rearranges it
  as `100 ((C - LL) / (HH - LL) - 1)`, which loses the digits of values near 0.
* UO: the scanner form. `ta.uo` has a true range on bar 0 (where the scanner's `ta.tr` is na) and no
  guard against zero sums.

Pine comparisons use an absolute tolerance (`a > b` iff a - b > tol, `a == b` iff |a - b| <= tol); a
comparison with na is false. `ta.crossover` and `math.sign` are exact in Pine, so the AO cross and the
chart library's average votes are too. A division by zero (±inf or 0/0) is na. The tolerance is absolute,
so above a price of about 5e5 (where an ulp exceeds 1e-10) an average that equals close in exact arithmetic
(a flat window) can vote either way in any floating-point implementation, this one and Pine's included.
"""

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pandas_ta as ta

from vocabulary.features import FEATURES, MA_LENGTHS, MA_VOTES, OSCILLATOR_VOTES, RATINGS, VALUES, VOTES
from vocabulary.rules import DEFAULT_RULES, check_rules

BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def rate_frame(frame: pd.DataFrame, *, rules: str = DEFAULT_RULES, tolerance: float = 1e-10) -> pd.DataFrame:
    """One symbol's cleaned bars in; ts, bars, warm and every feature out, one row per bar, under the rule
    set `rules` (one of RULE_SETS)."""
    missing = [column for column in BAR_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {', '.join(missing)}")
    bars = frame.reset_index(drop=True)
    high, low, close, volume = (bars[name].astype("float64") for name in ("high", "low", "close", "volume"))
    features = _Ratings(high, low, close, volume, rules=check_rules(rules), tolerance=tolerance).features()
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
    """Pine's sum / length: each window's sum, rounded once, over n (on the non-na values)."""
    return _on_valid(x, lambda v: window_sums(v, n) / n)


def rolling_sum(x: pd.Series, n: int) -> pd.Series:
    return _on_valid(x, lambda v: window_sums(v, n))


def window_sums(values: pd.Series, n: int) -> pd.Series:
    """Each run of n values' sum, exact and rounded once (na for the first n - 1): every double is an
    integer multiple of the finest power of two among them, so the window sums are differences of integer
    prefix sums, and Python's int / int rounds correctly."""
    out = np.full(len(values), np.nan)
    if len(values) >= n:
        ratios = [value.as_integer_ratio() for value in values.tolist()]
        shift = max(denominator.bit_length() for _, denominator in ratios) - 1
        units = [numerator << (shift + 1 - denominator.bit_length()) for numerator, denominator in ratios]
        prefix = np.cumsum(np.array([0, *units], dtype=object))
        scale = 1 << shift
        out[n - 1 :] = [total / scale for total in prefix[n:] - prefix[:-n]]
    return pd.Series(out, index=values.index)


def ema(x: pd.Series, n: int) -> pd.Series:
    """Pine's ema: the sma of the first n values, then e + 2/(n+1) (x - e)."""
    alpha = 2.0 / (n + 1)
    return _on_valid(x, lambda v: _recursive(v, n, lambda state, value: state + alpha * (value - state)))


def rma(x: pd.Series, n: int) -> pd.Series:
    """Pine's rma: the sma of the first n values, then (r (n - 1) + x) / n."""
    return _on_valid(x, lambda v: _recursive(v, n, lambda state, value: (state * (n - 1) + value) / n))


def _recursive(values: pd.Series, n: int, step: Callable[[float, float], float]) -> pd.Series:
    """A recursive average seeded on the n-th value with the sma of the first n (their exact sum, rounded,
    over n), then stepped bar by bar in a plain loop: the step's operation order is Pine's, which pandas'
    ewm does not keep, and along a flat stretch votes depend on those last digits."""
    x = values.tolist()
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1] = state = math.fsum(x[:n]) / n
        for k in range(n, len(x)):
            out[k] = state = step(state, x[k])
    return pd.Series(out, index=values.index)


def wma(x: pd.Series, n: int) -> pd.Series:
    """Pine's wma: the window weighted 1 (oldest) to n (newest), summed oldest first, over n(n+1)/2; na
    while the window holds an na."""
    out = pd.Series(np.nan, index=x.index)
    if len(x) >= n:
        windows = np.lib.stride_tricks.sliding_window_view(x.to_numpy(), n)
        total = np.zeros(len(windows))
        for weight in range(1, n + 1):
            total = total + windows[:, weight - 1] * float(weight)
        out.iloc[n - 1 :] = total / (n * (n + 1) / 2.0)
    return out


def hma(x: pd.Series, n: int) -> pd.Series:
    """ta.hma: wma(2 wma(x, n // 2) - wma(x, n), floor(sqrt n))."""
    return wma(2 * wma(x, n // 2) - wma(x, n), math.isqrt(n))


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
    """Indicators, votes and the two group means for one symbol, in the order of RATINGS_SPEC 4-6, under
    one rule set: `scanner` (sections 4-5), `chart` (the TechnicalRating library v3) or `legacy` (the
    scanner before December 2024); docs/RATINGS.md has the differences and their sources."""

    def __init__(
        self,
        high: pd.Series,
        low: pd.Series,
        close: pd.Series,
        volume: pd.Series,
        *,
        rules: str,
        tolerance: float,
    ):
        self.high, self.low, self.close, self.volume = high, low, close, volume
        self.tol = tolerance
        self.index = close.index
        self.chart, self.legacy = rules == "chart", rules == "legacy"
        self.ema50 = ema(close, 50)
        self.up_trend, self.down_trend = self.gt(close, self.ema50), self.lt(close, self.ema50)

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

    def counted(self, named: pd.Series, *every: pd.Series) -> tuple[pd.Series, ...]:
        """What a vote's count depends on: the chart library's `calcRating(src, ...)` tests only the one
        source it names; the scanner (and legacy) test every value the vote reads."""
        return (named,) if self.chart else every

    def ma_vote(self, average: pd.Series) -> pd.Series:
        """+1 when the average is below close, -1 above, 0 equal; na when either is na. The chart library
        takes math.sign(close - average), exactly; the scanner compares with the tolerance."""
        if self.chart:
            return np.sign(self.close - average)
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
        hull = hma(close, 9)
        out["HullMA9"], out["Rec.HullMA9"] = hull, self.ma_vote(hull)
        vwma = divide(sma(close * self.volume, 20), sma(self.volume, 20))
        out["VWMA"], out["Rec.VWMA"] = vwma, self.ma_vote(vwma)
        conversion, base, span_b = midprice(high, low, 9), midprice(high, low, 26), midprice(high, low, 52)
        out["Ichimoku.BLine"] = base
        out["Rec.Ichimoku"] = self.ichimoku(conversion, base, span_b)
        return out

    def ichimoku(self, conversion: pd.Series, base: pd.Series, span_b: pd.Series) -> pd.Series:
        close, span_a = self.close, (conversion + base) / 2
        every = (span_a, span_b, base, conversion, close, close.shift(1))
        if self.legacy:  # the close crossing the conversion line, inside the cloud's side of the base line
            buy = self.gt(span_a, span_b) & self.gt(close, span_a) & self.lt(close, base)
            buy &= self.lt(close.shift(1), conversion) & self.gt(close, conversion)
            sell = self.gt(span_b, span_a) & self.lt(close, span_a) & self.gt(close, base)
            sell &= self.gt(close.shift(1), conversion) & self.lt(close, conversion)
            return self.vote(buy, sell, *every)
        if self.chart:  # the ordering on the spans plotted under the current bar: those of 26 bars ago
            cloud_a, cloud_b = span_a.shift(26), span_b.shift(26)
            buy = self.gt(cloud_a, cloud_b) & self.gt(base, cloud_a)
            sell = self.lt(cloud_a, cloud_b) & self.lt(base, cloud_a)
            every = (span_b,)
        else:  # the ordering on the current spans, which can never hold (section 4)
            buy = self.gt(span_a, span_b) & self.gt(base, span_a)
            sell = self.lt(span_a, span_b) & self.lt(base, span_a)
        buy &= self.gt(conversion, base) & self.gt(close, conversion)
        sell &= self.lt(conversion, base) & self.lt(close, conversion)
        return self.vote(buy, sell, *every)

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

    def band_turn_vote(self, value: pd.Series, lower: float, upper: float) -> pd.Series:
        """RSI, CCI, W%R: beyond a band and turning back (counted by value[1] on the chart)."""
        prev = value.shift(1)
        buy = self.lt(value, lower) & self.gt(value, prev)
        sell = self.gt(value, upper) & self.lt(value, prev)
        return self.vote(buy, sell, *self.counted(prev, value, prev))

    def rsi(self) -> dict[str, pd.Series]:
        value = rsi(self.close, 14)
        return {"RSI": value, "Rec.RSI": self.band_turn_vote(value, 30, 70)}

    def _k_d_vote(
        self, k: pd.Series, d: pd.Series, buy_if: pd.Series, sell_if: pd.Series, chart_counts: pd.Series
    ) -> pd.Series:
        """Both lines beyond the band with %K on the turning side of %D (Stochastic, Stoch RSI); legacy also
        needs %K to have been on the other side of %D the bar before (a cross)."""
        buy = buy_if & self.lt(k, 20) & self.lt(d, 20) & self.gt(k, d)
        sell = sell_if & self.gt(k, 80) & self.gt(d, 80) & self.lt(k, d)
        if self.legacy:
            buy &= self.lt(k.shift(1), d.shift(1))
            sell &= self.gt(k.shift(1), d.shift(1))
        return self.vote(buy, sell, *self.counted(chart_counts, k, d, k.shift(1), d.shift(1)))

    def stochastic(self) -> dict[str, pd.Series]:
        k = sma(stoch(self.close, self.high, self.low, 14), 3)
        d = sma(k, 3)
        always = pd.Series(True, index=self.index)
        return {"Stoch.K": k, "Stoch.D": d, "Rec.Stoch.K": self._k_d_vote(k, d, always, always, d.shift(1))}

    def cci(self) -> dict[str, pd.Series]:
        """CCI(20) on hlc3 (scanner, legacy) or on close (chart)."""
        source = self.close if self.chart else ta.hlc3(self.high, self.low, self.close, talib=False)
        value = cci(_complete(source, self.index), 20)
        return {"CCI20": value, "Rec.CCI20": self.band_turn_vote(value, -100, 100)}

    def adx(self) -> dict[str, pd.Series]:
        """The scanner's dirmov/adx: DM is 0 (not na) on bar 0, each DI goes through fixnan. The chart's
        ta.dmi has no DM on bar 0. ADX above 20 and rising with the DI order votes; legacy: ADX above 20
        and the DI crossing."""
        up, down = self.high.diff(), -self.low.diff()
        plus_dm = up.where(self.gt(up, down) & self.gt(up, 0), 0.0)
        minus_dm = down.where(self.gt(down, up) & self.gt(down, 0), 0.0)
        if self.chart:
            plus_dm.iloc[:1] = minus_dm.iloc[:1] = np.nan
        average_range = rma(true_range(self.high, self.low, self.close), 14)
        plus = divide(100 * rma(plus_dm, 14), average_range).ffill()
        minus = divide(100 * rma(minus_dm, 14), average_range).ffill()
        total = plus + minus
        value = 100 * rma((plus - minus).abs() / total.mask(self.eq(total, 0), 1.0), 14)
        if self.legacy:
            buy = self.gt(value, 20) & self.lt(plus.shift(1), minus.shift(1)) & self.gt(plus, minus)
            sell = self.gt(value, 20) & self.gt(plus.shift(1), minus.shift(1)) & self.lt(plus, minus)
        else:
            rising = self.gt(value, 20) & self.gt(value, value.shift(1))
            buy, sell = rising & self.gt(plus, minus), rising & self.lt(plus, minus)
        counted = self.counted(value, value, plus, minus, plus.shift(1), minus.shift(1))
        return {"ADX": value, "ADX+DI": plus, "ADX-DI": minus, "Rec.ADX": self.vote(buy, sell, *counted)}

    def awesome(self) -> dict[str, pd.Series]:
        median = _complete(ta.hl2(self.high, self.low), self.index)
        value = sma(median, 5) - sma(median, 34)
        prev, prev2 = value.shift(1), value.shift(2)
        cross_up = (value > 0) & (prev <= 0)  # ta.crossover compares exactly
        cross_down = (value < 0) & (prev >= 0)
        saucer_up = self.gt(value, 0) & self.gt(prev, 0) & self.gt(value, prev) & self.gt(prev2, prev)
        saucer_down = self.lt(value, 0) & self.lt(prev, 0) & self.lt(value, prev) & self.lt(prev2, prev)
        vote = self.vote(cross_up | saucer_up, cross_down | saucer_down, *self.counted(prev, value, prev))
        return {"AO": value, "Rec.AO": vote}

    def momentum(self) -> dict[str, pd.Series]:
        value = _complete(ta.mom(self.close, length=10, talib=False), self.index)
        prev = value.shift(1)
        vote = self.vote(self.gt(value, prev), self.lt(value, prev), *self.counted(prev, value, prev))
        return {"Mom": value, "Rec.Mom": vote}

    def macd(self) -> dict[str, pd.Series]:
        line = ema(self.close, 12) - ema(self.close, 26)
        signal = ema(line, 9)
        vote = self.vote(self.gt(line, signal), self.lt(line, signal), *self.counted(signal, line, signal))
        return {"MACD.macd": line, "MACD.signal": signal, "Rec.MACD": vote}

    def stoch_rsi(self) -> dict[str, pd.Series]:
        """Stoch RSI (3, 3, 14, 14); it buys only in a down trend and sells only in an up trend."""
        strength = rsi(self.close, 14)
        k = sma(stoch(strength, strength, strength, 14), 3)
        d = sma(k, 3)
        vote = self._k_d_vote(k, d, self.down_trend, self.up_trend, self.ema50)
        return {"Stoch.RSI.K": k, "Rec.Stoch.RSI": vote}

    def williams(self) -> dict[str, pd.Series]:
        lowest, highest = lowest_highest(self.high, self.low, 14)
        value = divide(highest - self.close, highest - lowest) * -100
        return {"W.R": value, "Rec.WR": self.band_turn_vote(value, -80, -20)}

    def bull_bear_power(self) -> dict[str, pd.Series]:
        average = ema(self.close, 13)
        bull, bear = self.high - average, self.low - average
        buy = self.up_trend & self.lt(bear, 0) & self.gt(bear, bear.shift(1))
        sell = self.down_trend & self.gt(bull, 0) & self.lt(bull, bull.shift(1))
        vote = self.vote(buy, sell, *self.counted(self.ema50, bull, bear, bull.shift(1), bear.shift(1)))
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
