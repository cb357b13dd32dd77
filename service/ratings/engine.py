"""The panel ratings engine: TradingView's Technical Ratings (RATINGS_SPEC sections 4 to 6, and the rule sets
of section 7 that docs/RATINGS.md lists), many symbols at a time.

Symbols are laid side by side in a panel (bar index x symbol) in which every symbol is LEFT-ALIGNED at its
own first bar: row i holds each symbol's i-th bar, and a shorter history is padded with na after its end.
Every Pine primitive runs down each column on its own and only looks back, so a symbol's result never
depends on its neighbours and a panel gives exactly what each symbol gives alone. `rate` hands the compiled
kernel SYMBOLS_PER_PANEL symbols at a time: enough for the processor to work on several at once, few
enough that the panel's temporaries stay in the cache; the kernel writes each symbol's rows straight into
the long output frame.
"""

import functools
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa

from service.ratings import pine
from service.ratings.pine import Panel, compiled, gt, inlined, lt
from service.ratings.state import SymbolState
from vocabulary import features
from vocabulary import rules as rule_vocabulary
from vocabulary.features import FEATURES, MA_LENGTHS, MA_VOTES, OSCILLATOR_VOTES, RATINGS, VOTES
from vocabulary.rules import DEFAULT_RULES, RULE_SETS, check_history_bars, check_rules

BAR_INPUTS: Final = ("high", "low", "close", "volume")
"""The bar columns the ratings read (no component uses open)."""

SYMBOLS_PER_PANEL: Final = 32
"""Measured on 500 symbols of 2520 daily bars: one symbol at a time is about 4x slower (the processor has
one column's chain of dependent steps to work on), 32 is fastest, and 64 is a third slower again (a panel's
temporaries no longer fit in the cache)."""


def _rows(*names: str) -> tuple[int, ...]:
    """Positions of features in FEATURES: the kernel writes feature f to row f of its output."""
    return tuple(FEATURES.index(name) for name in names)


# Output rows and vote slots, fixed when the kernel compiles (a misspelt name fails here, at import).
_ALL, _MA, _OTHER = _rows(*RATINGS)
_SMAS = _rows(*(f"SMA{n}" for n in MA_LENGTHS))
_EMAS = _rows(*(f"EMA{n}" for n in MA_LENGTHS))
_CLOSE, _HULL, _VWMA, _KIJUN, _RSI, _STOCH_K, _STOCH_D, _CCI = _rows(
    "close", "HullMA9", "VWMA", "Ichimoku.BLine", "RSI", "Stoch.K", "Stoch.D", "CCI20"
)
_ADX, _PLUS_DI, _MINUS_DI, _AO, _MOM, _MACD, _SIGNAL, _STOCH_RSI_K, _WR, _BB_POWER, _UO = _rows(
    "ADX", "ADX+DI", "ADX-DI", "AO", "Mom", "MACD.macd", "MACD.signal", "Stoch.RSI.K", "W.R", "BBPower", "UO"
)
_AVERAGES = (*_SMAS, *_EMAS, _HULL, _VWMA)
"""The 14 averages voted against the close, in the order of their votes (the first 14 of MA_VOTES)."""
_AVERAGE_VOTES = _rows(*MA_VOTES[: len(_AVERAGES)])
assert _rows(*(f"Rec.{FEATURES[row]}" for row in _AVERAGES)) == _AVERAGE_VOTES, "votes out of order"
_ICHIMOKU_VOTE = FEATURES.index("Rec.Ichimoku")
_RSI_VOTE, _STOCH_VOTE, _CCI_VOTE, _ADX_VOTE, _AO_VOTE, _MOM_VOTE = _rows(*OSCILLATOR_VOTES[:6])
_MACD_VOTE, _STOCH_RSI_VOTE, _WR_VOTE, _BB_POWER_VOTE, _UO_VOTE = _rows(*OSCILLATOR_VOTES[6:])

CHART, LEGACY = (RULE_SETS.index(name) for name in ("chart", "legacy"))
"""The rule sets the kernel branches on, as it takes them: by their index in RULE_SETS (the scanner's is
neither, and its rules are the kernel's default). One compiled kernel branches where the rules differ
(docs/RATINGS.md has the table). `chart` counts each vote as the TechnicalRating library's
`calcRating(src, ...)` does, when its one named source is non-na, where the scanner names every value."""


def rate(
    frames: Mapping[str, pd.DataFrame],
    *,
    rules: str = DEFAULT_RULES,
    history_bars: int | None = None,
    tolerance: float = pine.TOLERANCE,
) -> pd.DataFrame:
    """Ratings, votes and values of every bar of every symbol.

    `frames` maps a symbol to its cleaned bars (`ts` strictly increasing, `high low close volume` float64,
    volume NaN when unknown). Returns one row per bar with columns `symbol, ts, bars, warm, *FEATURES`,
    ordered by symbol then ts. `rules` is one of RULE_SETS. With `history_bars` N each bar is rated from at
    most the N bars up to it, warm-up included, as if its history began there (`bars` is then the number it
    was rated from, at most N), at about N times the work. `tolerance` is Pine's absolute tolerance on float
    comparisons.
    """
    return resume(frames, rules=rules, history_bars=history_bars, tolerance=tolerance).rows


class Resumed(NamedTuple):
    """What `resume` gives: the rows of the bars it rated (as `rate`'s), and each symbol's state as of its
    last bar."""

    rows: pd.DataFrame
    states: dict[str, SymbolState]


def resume(
    frames: Mapping[str, pd.DataFrame],
    states: Mapping[str, SymbolState] | None = None,
    *,
    rules: str = DEFAULT_RULES,
    history_bars: int | None = None,
    tolerance: float = pine.TOLERANCE,
) -> Resumed:
    """`rate`, continuing each symbol from its carried state where `states` has one.

    For such a symbol `frames` holds only the bars after the state's `last_ts` (ValueError naming the symbol
    otherwise), and its rows are, bit for bit, those a `rate` over all its bars, earlier and new, gives for
    the new ones (`bars` still counts from its first bar). A symbol without a state starts at its first bar;
    both kinds mix in one call. A state must come from a `resume` under the same `rules`, `history_bars` and
    `tolerance`. The states returned are those of every symbol in `frames` (that has a bar) or in `states`
    (unchanged where `frames` has no new bar), ready to carry into the next call.
    """
    check_rules(rules)
    history_bars = check_history_bars(history_bars)
    states = states or {}
    symbols = sorted(frames)
    carried = [_carried(symbol, states.get(symbol), rules, history_bars, tolerance) for symbol in symbols]
    rows, values = _rate(
        symbols, [frames[symbol] for symbol in symbols], _code(rules), history_bars, tolerance, carried
    )
    lengths = np.array([len(frames[symbol]) for symbol in symbols], dtype=np.int64)
    rows.insert(0, "symbol", _symbol_column(symbols, lengths))
    last_ts = iter(rows["ts"].iloc[np.cumsum(lengths)[lengths > 0] - 1].tolist())
    after = dict(states)
    for k, (symbol, before) in enumerate(zip(symbols, carried, strict=True)):
        if lengths[k]:
            bars = int(lengths[k]) + (before.bars if before else 0)
            after[symbol] = SymbolState(rules, history_bars, tolerance, bars, next(last_ts), values[k])
    return Resumed(rows, after)


def state_width(history_bars: int | None = None) -> int:
    """How many values a symbol's state holds: over all history, every value the kernel's primitives carry;
    with `history_bars` N, the last N - 1 bars' high, low, close and volume."""
    history_bars = check_history_bars(history_bars)
    return _kernel_width() if history_bars is None else len(BAR_INPUTS) * (history_bars - 1)


def rate_frame(
    frame: pd.DataFrame,
    *,
    rules: str = DEFAULT_RULES,
    history_bars: int | None = None,
    tolerance: float = pine.TOLERANCE,
) -> pd.DataFrame:
    """`rate` for the bars of one symbol, without the `symbol` column."""
    return _rate(["bars"], [frame], _code(rules), check_history_bars(history_bars), tolerance, [None])[0]


def rate_panel(
    high: Panel,
    low: Panel,
    close: Panel,
    volume: Panel,
    *,
    rules: str = DEFAULT_RULES,
    tolerance: float = pine.TOLERANCE,
) -> dict[str, Panel]:
    """Every feature as a panel (shaped like close), from left-aligned panels of bars: the engine without
    frames. Padding (na after a symbol's end) rates as na bars do; `rate` never asks for it."""
    bars, symbols = np.shape(close)
    out = np.empty((len(FEATURES), symbols, bars))
    panels = [np.ascontiguousarray(x, dtype=np.float64) for x in (high, low, close, volume)]
    starts = np.arange(symbols, dtype=np.int64) * bars
    firsts, lengths = np.zeros(symbols, dtype=np.int64), np.full(symbols, bars, dtype=np.int64)
    warm = np.empty(symbols * bars, dtype=np.bool_)
    features = out.reshape(len(FEATURES), -1)
    state = np.full((_kernel_width(), symbols), np.nan)
    _rate_into(*panels, _code(rules), tolerance, PERIODS, features, warm, starts, firsts, lengths, state)
    return dict(zip(FEATURES, out.transpose(0, 2, 1), strict=True))


def _code(rule_set: str) -> int:
    """The kernel's code of a rule set; InvalidInput (a ValueError) for an unknown one."""
    return RULE_SETS.index(check_rules(rule_set))


# --- the kernel ---------------------------------------------------------------------------------------------


class Periods(NamedTuple):
    """The scanner's component periods (RATINGS_SPEC sections 4 and 5; the MA lengths are MA_LENGTHS).

    They reach the kernel as an argument rather than as constants: numba compiles a function once per
    argument type, and once per constant value when a constant is passed."""

    hull: int = 9
    vwma: int = 20
    tenkan: int = 9
    kijun: int = 26
    span_b: int = 52
    trend: int = 50  # the EMA50 filter of Stoch RSI and Bull Bear Power
    rsi: int = 14
    stoch: int = 14
    smooth: int = 3  # %K and %D of Stochastic and Stoch RSI
    cci: int = 20
    di: int = 14
    adx: int = 14
    ao_fast: int = 5
    ao_slow: int = 34
    mom: int = 10
    macd_fast: int = 12
    macd_slow: int = 26
    macd_signal: int = 9
    wr: int = 14
    power: int = 13  # the EMA under Bull and Bear Power
    displacement: int = 26  # chart: the spans Ichimoku votes on are those of this many bars ago
    uo_short: int = 7
    uo_middle: int = 14
    uo_long: int = 28


PERIODS: Final = Periods()


@compiled
def _rate_into(
    high: Panel,
    low: Panel,
    close: Panel,
    volume: Panel,
    rules: int,
    tolerance: float,
    p: Periods,
    out,
    warm,
    starts,
    firsts,
    lengths,
    state: Panel,
) -> int:
    """Every feature of the panel under the rule set with code `rules` (`_code`): bar i of column j goes to
    out[FEATURES.index(name), starts[j] + i] (and whether all 26 votes are counted to warm[starts[j] + i]),
    for the bars firsts[j] <= i < lengths[j] of column j (a column rated for its last bar only has
    firsts[j] = lengths[j] - 1).

    Column j continues from the carried state in state[:, j] (NaN: a history's first bar) and leaves its
    state there as of its bar lengths[j] - 1. Every primitive takes its state rows in call order, the same
    under every rule set; returns how many rows they took (the state's width)."""
    chart = rules == CHART
    carry = pine.carry(state, lengths)
    # Per cell, the running sum and count of each group's counted votes (Pine's recMA and recMAC).
    ma, ma_count = np.zeros(close.shape), np.zeros(close.shape)
    other, other_count = np.zeros(close.shape), np.zeros(close.shape)

    # Section 4: the moving averages against the close; the chart library votes them by math.sign, exactly.
    _put(out[_CLOSE], close, starts, firsts, lengths)
    averages = [pine.sma(close, n, carry) for n in MA_LENGTHS]
    averages += [pine.ema(close, n, carry) for n in MA_LENGTHS]
    averages += [pine.hma(close, p.hull, carry), pine.vwma(close, volume, p.vwma, carry)]
    for k in range(len(_AVERAGES)):
        _put(out[_AVERAGES[k]], averages[k], starts, firsts, lengths)
        votes = _above_votes(close, averages[k], False, 0.0 if chart else tolerance)
        _put_votes(out[_AVERAGE_VOTES[k]], votes, ma, ma_count, starts, firsts, lengths)
    kijun = pine.donchian(high, low, p.kijun, carry)
    _put(out[_KIJUN], kijun, starts, firsts, lengths)
    tenkan, span_b = pine.donchian(high, low, p.tenkan, carry), pine.donchian(high, low, p.span_b, carry)
    ichimoku = _ichimoku_votes(close, tenkan, kijun, span_b, rules, p.displacement, tolerance, carry)
    _put_votes(out[_ICHIMOKU_VOTE], ichimoku, ma, ma_count, starts, firsts, lengths)

    # Section 5: the oscillators.
    trend = close - pine.ema(close, p.trend, carry)  # Up is trend > 0, Down is trend < 0 (tolerant)
    rsi = pine.rsi(close, p.rsi, carry)
    stoch_k = pine.sma(pine.stoch(close, high, low, p.stoch, carry), p.smooth, carry)
    stoch_d = pine.sma(stoch_k, p.smooth, carry)
    cci = pine.cci(close if chart else (high + low + close) / 3.0, p.cci, carry)
    plus_di, minus_di, adx = pine.dmi(high, low, close, p.di, p.adx, chart, tolerance, carry)
    hl2 = (high + low) / 2.0
    ao = pine.sma(hl2, p.ao_fast, carry) - pine.sma(hl2, p.ao_slow, carry)
    mom = pine.mom(close, p.mom, carry)
    macd = pine.ema(close, p.macd_fast, carry) - pine.ema(close, p.macd_slow, carry)
    signal = pine.ema(macd, p.macd_signal, carry)
    stoch_rsi_k = pine.sma(pine.stoch(rsi, rsi, rsi, p.stoch, carry), p.smooth, carry)
    stoch_rsi_d = pine.sma(stoch_rsi_k, p.smooth, carry)
    wr = pine.wpr(high, low, close, p.wr, carry)
    power_average = pine.ema(close, p.power, carry)
    bull, bear = high - power_average, low - power_average
    uo = pine.uo(high, low, close, p.uo_short, p.uo_middle, p.uo_long, tolerance, carry)
    for row, values in (
        (_RSI, rsi), (_STOCH_K, stoch_k), (_STOCH_D, stoch_d), (_CCI, cci), (_ADX, adx), (_PLUS_DI, plus_di),
        (_MINUS_DI, minus_di), (_AO, ao), (_MOM, mom), (_MACD, macd), (_SIGNAL, signal),
        (_STOCH_RSI_K, stoch_rsi_k), (_WR, wr), (_BB_POWER, bull + bear), (_UO, uo),
    ):  # fmt: skip
        _put(out[row], values, starts, firsts, lengths)
    for row, votes in (
        (_RSI_VOTE, _band_turn_votes(rsi, 30.0, 70.0, chart, tolerance, carry)),
        (_STOCH_VOTE, _stoch_votes(stoch_k, stoch_d, trend, False, rules, tolerance, carry)),
        (_CCI_VOTE, _band_turn_votes(cci, -100.0, 100.0, chart, tolerance, carry)),
        (_ADX_VOTE, _adx_votes(adx, plus_di, minus_di, rules, tolerance, carry)),
        (_AO_VOTE, _ao_votes(ao, chart, tolerance, carry)),
        (_MOM_VOTE, _above_votes(mom, pine.shift(mom, 1, carry), chart, tolerance)),
        (_MACD_VOTE, _above_votes(macd, signal, chart, tolerance)),
        (_STOCH_RSI_VOTE, _stoch_votes(stoch_rsi_k, stoch_rsi_d, trend, True, rules, tolerance, carry)),
        (_WR_VOTE, _band_turn_votes(wr, -80.0, -20.0, chart, tolerance, carry)),
        (_BB_POWER_VOTE, _power_votes(bull, bear, trend, chart, tolerance, carry)),
        (_UO_VOTE, _level_votes(uo, 30.0, 70.0, tolerance)),
    ):
        _put_votes(out[row], votes, other, other_count, starts, firsts, lengths)

    # Section 6: each group's mean over its counted votes; All averages whichever of the two is counted.
    ma_rating, other_rating = _mean(ma, ma_count), _mean(other, other_count)
    _put(out[_MA], ma_rating, starts, firsts, lengths)
    _put(out[_OTHER], other_rating, starts, firsts, lengths)
    both, both_count = np.zeros(close.shape), np.zeros(close.shape)
    _tally(ma_rating, both, both_count)
    _tally(other_rating, both, both_count)
    _put(out[_ALL], _mean(both, both_count), starts, firsts, lengths)
    for j in range(close.shape[1]):
        for i in range(firsts[j], lengths[j]):
            warm[starts[j] + i] = ma_count[i, j] + other_count[i, j] == len(VOTES)
    return carry.cursor[0]


@compiled
def _put(row, values: Panel, starts, firsts, lengths) -> None:
    """row[starts[j] + i] = values[i, j] for the bars firsts[j] <= i < lengths[j] of each column j."""
    for j in range(values.shape[1]):
        for i in range(firsts[j], lengths[j]):
            row[starts[j] + i] = values[i, j]


@compiled
def _put_votes(row, votes: Panel, total: Panel, count: Panel, starts, firsts, lengths) -> None:
    """`_put` the votes, and `_tally` them into their group's sums and counts."""
    _put(row, votes, starts, firsts, lengths)
    _tally(votes, total, count)


@compiled
def _tally(values: Panel, total: Panel, count: Panel) -> None:
    """Add the non-na values to the running sums and counts (cell by cell)."""
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if not np.isnan(values[i, j]):
                total[i, j] += values[i, j]
                count[i, j] += 1.0


@compiled
def _mean(total: Panel, count: Panel) -> Panel:
    """Sum over count; na where nothing is counted."""
    rows, columns = total.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            out[i, j] = total[i, j] / count[i, j] if count[i, j] else np.nan
    return out


# --- the votes (each a panel: +1 buy, -1 sell, 0 neither, na where the component is not counted) ----------


@inlined
def _vote(buy: bool, sell: bool, counted: bool) -> float:
    """calcRecommend: +1 on buy, else -1 on sell, else 0; na where the component is not counted."""
    if not counted:
        return np.nan
    return 1.0 if buy else -1.0 if sell else 0.0


@inlined
def _defined(
    a: float, b: float = 0.0, c: float = 0.0, d: float = 0.0, e: float = 0.0, f: float = 0.0
) -> bool:
    """Every given value is non-na."""
    return not (np.isnan(a) or np.isnan(b) or np.isnan(c) or np.isnan(d) or np.isnan(e) or np.isnan(f))


@compiled
def _ichimoku_votes(
    close: Panel,
    tenkan: Panel,
    kijun: Panel,
    span_b: Panel,
    rules: int,
    displacement: int,
    tolerance: float,
    carry: pine.Carry,
) -> Panel:
    """Section 4 and its variants. Scanner: the spans as computed on the current bar; "Kijun > SpanA" and
    "Tenkan > Kijun" contradict each other (SpanA is their midpoint), so the vote is 0 wherever it is counted
    (from bar 51). Chart: the same ordering on the spans of `displacement` bars ago, counted while the
    current span B is. Legacy: close crossing Tenkan inside the cloud's side of Kijun (section 7). The
    lagged lines are computed (and carried) under every rule set, so that the state's layout is one."""
    close_carried = pine.carried(close, 1, carry)
    tenkan_carried = pine.carried(tenkan, displacement, carry)
    kijun_carried = pine.carried(kijun, displacement, carry)
    span_b_carried = pine.carried(span_b, displacement, carry)
    rows, columns = close.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            c, t, k, b = close[i, j], tenkan[i, j], kijun[i, j], span_b[i, j]
            a = (t + k) / 2.0
            before = pine.back(close, close_carried, i, j, 1)
            if rules == CHART:
                t_then = pine.back(tenkan, tenkan_carried, i, j, displacement)
                k_then = pine.back(kijun, kijun_carried, i, j, displacement)
                a, lagged_b = (t_then + k_then) / 2.0, pine.back(span_b, span_b_carried, i, j, displacement)
                counted = _defined(b)
                buy = gt(a, lagged_b, tolerance) and gt(k, a, tolerance)
                sell = lt(a, lagged_b, tolerance) and lt(k, a, tolerance)
                buy = buy and gt(t, k, tolerance) and gt(c, t, tolerance)
                sell = sell and lt(t, k, tolerance) and lt(c, t, tolerance)
            elif rules == LEGACY:
                buy = gt(a, b, tolerance) and gt(c, a, tolerance) and lt(c, k, tolerance)
                sell = gt(b, a, tolerance) and lt(c, a, tolerance) and gt(c, k, tolerance)
                buy = buy and lt(before, t, tolerance) and gt(c, t, tolerance)
                sell = sell and gt(before, t, tolerance) and lt(c, t, tolerance)
                counted = _defined(a, b, c, before, k, t)
            else:
                buy = (
                    gt(a, b, tolerance)
                    and gt(k, a, tolerance)
                    and gt(t, k, tolerance)
                    and gt(c, t, tolerance)
                )
                sell = (
                    lt(a, b, tolerance)
                    and lt(k, a, tolerance)
                    and lt(t, k, tolerance)
                    and lt(c, t, tolerance)
                )
                counted = _defined(a, b, c, before, k, t)
            out[i, j] = _vote(buy, sell, counted)
    return out


@compiled
def _band_turn_votes(
    x: Panel, lower: float, upper: float, chart: bool, tolerance: float, carry: pine.Carry
) -> Panel:
    """RSI, CCI, W%R: buy below the lower band while rising, sell above the upper band while falling;
    counted when x and x[1] are (chart: when x[1] is)."""
    x_carried = pine.carried(x, 1, carry)
    rows, columns = x.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            now, before = x[i, j], pine.back(x, x_carried, i, j, 1)
            buy = lt(now, lower, tolerance) and gt(now, before, tolerance)
            sell = gt(now, upper, tolerance) and lt(now, before, tolerance)
            out[i, j] = _vote(buy, sell, _defined(before) if chart else _defined(now, before))
    return out


@compiled
def _stoch_votes(
    k: Panel, d: Panel, trend: Panel, filtered: bool, rules: int, tolerance: float, carry: pine.Carry
) -> Panel:
    """Stochastic and Stoch RSI: buy with %K and %D below 20 and %K above %D, sell mirrored above 80;
    counted when K, D, K[1], D[1] are. Stoch RSI (filtered) also needs the opposite EMA50 trend. Legacy
    also needs the cross (%K[1] on the other side of %D[1]); chart counts Stochastic when D[1] is, Stoch RSI
    when the EMA50 is."""
    k_carried, d_carried = pine.carried(k, 1, carry), pine.carried(d, 1, carry)
    rows, columns = k.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            k_now, d_now = k[i, j], d[i, j]
            k_before, d_before = pine.back(k, k_carried, i, j, 1), pine.back(d, d_carried, i, j, 1)
            buy = lt(k_now, 20.0, tolerance) and lt(d_now, 20.0, tolerance) and gt(k_now, d_now, tolerance)
            sell = gt(k_now, 80.0, tolerance) and gt(d_now, 80.0, tolerance) and lt(k_now, d_now, tolerance)
            if filtered:
                buy = buy and lt(trend[i, j], 0.0, tolerance)
                sell = sell and gt(trend[i, j], 0.0, tolerance)
            if rules == LEGACY:
                buy = buy and lt(k_before, d_before, tolerance)
                sell = sell and gt(k_before, d_before, tolerance)
            if rules != CHART:
                counted = _defined(k_now, d_now, k_before, d_before)
            else:
                counted = _defined(trend[i, j]) if filtered else _defined(d_before)
            out[i, j] = _vote(buy, sell, counted)
    return out


@compiled
def _adx_votes(
    adx: Panel, plus: Panel, minus: Panel, rules: int, tolerance: float, carry: pine.Carry
) -> Panel:
    """ADX above 20 and rising, direction from the DI order; legacy: ADX above 20 and the DIs crossing.
    Counted when ADX, +DI, -DI and both DI[1] are (chart: when ADX is)."""
    adx_carried = pine.carried(adx, 1, carry)
    plus_carried, minus_carried = pine.carried(plus, 1, carry), pine.carried(minus, 1, carry)
    rows, columns = adx.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            strength, p, m = adx[i, j], plus[i, j], minus[i, j]
            p_before = pine.back(plus, plus_carried, i, j, 1)
            m_before = pine.back(minus, minus_carried, i, j, 1)
            strong = gt(strength, 20.0, tolerance)
            if rules == LEGACY:
                buy = strong and lt(p_before, m_before, tolerance) and gt(p, m, tolerance)
                sell = strong and gt(p_before, m_before, tolerance) and lt(p, m, tolerance)
            else:
                rising = strong and gt(strength, pine.back(adx, adx_carried, i, j, 1), tolerance)
                buy, sell = rising and gt(p, m, tolerance), rising and lt(p, m, tolerance)
            counted = _defined(strength) if rules == CHART else _defined(strength, p, m, p_before, m_before)
            out[i, j] = _vote(buy, sell, counted)
    return out


@compiled
def _ao_votes(ao: Panel, chart: bool, tolerance: float, carry: pine.Carry) -> Panel:
    """Awesome Oscillator: a zero cross, or the saucer (AO[1] a dip against AO and AO[2], all on one side of
    zero); counted when AO and AO[1] are (chart: when AO[1] is). `and` binds tighter than `or`, as in Pine."""
    zero = np.zeros_like(ao)
    crosses_up, crosses_down = pine.crossover(ao, zero, carry), pine.crossunder(ao, zero, carry)
    ao_carried = pine.carried(ao, 2, carry)
    rows, columns = ao.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            now, before = ao[i, j], pine.back(ao, ao_carried, i, j, 1)
            two_back = pine.back(ao, ao_carried, i, j, 2)
            above = gt(now, 0.0, tolerance) and gt(before, 0.0, tolerance)
            below = lt(now, 0.0, tolerance) and lt(before, 0.0, tolerance)
            saucer_up = above and gt(now, before, tolerance) and gt(two_back, before, tolerance)
            saucer_down = below and lt(now, before, tolerance) and lt(two_back, before, tolerance)
            buy = crosses_up[i, j] or saucer_up
            sell = crosses_down[i, j] or saucer_down
            out[i, j] = _vote(buy, sell, _defined(before) if chart else _defined(now, before))
    return out


@compiled
def _above_votes(x: Panel, reference: Panel, chart: bool, tolerance: float) -> Panel:
    """Buy where x is above the reference, sell where below, 0 where equal; na unless both are defined
    (chart: unless the reference is). Section 4 (the close against each average), Mom (against Mom[1]) and
    MACD (against its signal)."""
    rows, columns = x.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            a, b = x[i, j], reference[i, j]
            out[i, j] = _vote(
                gt(a, b, tolerance), lt(a, b, tolerance), _defined(b) if chart else _defined(a, b)
            )
    return out


@compiled
def _power_votes(
    bull: Panel, bear: Panel, trend: Panel, chart: bool, tolerance: float, carry: pine.Carry
) -> Panel:
    """Bull/Bear Power: in an up trend, buy when Bear is below 0 and rising; in a down trend, sell when Bull
    is above 0 and falling; counted when Bull, Bear and both [1] are (chart: when the EMA50 is)."""
    bull_carried, bear_carried = pine.carried(bull, 1, carry), pine.carried(bear, 1, carry)
    rows, columns = bull.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            up, down = gt(trend[i, j], 0.0, tolerance), lt(trend[i, j], 0.0, tolerance)
            bull_now, bull_before = bull[i, j], pine.back(bull, bull_carried, i, j, 1)
            bear_now, bear_before = bear[i, j], pine.back(bear, bear_carried, i, j, 1)
            buy = up and lt(bear_now, 0.0, tolerance) and gt(bear_now, bear_before, tolerance)
            sell = down and gt(bull_now, 0.0, tolerance) and lt(bull_now, bull_before, tolerance)
            counted = (
                _defined(trend[i, j]) if chart else _defined(bull_now, bear_now, bull_before, bear_before)
            )
            out[i, j] = _vote(buy, sell, counted)
    return out


@compiled
def _level_votes(x: Panel, lower: float, upper: float, tolerance: float) -> Panel:
    """UO: buy above the upper level, sell below the lower; counted when x is."""
    rows, columns = x.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            out[i, j] = _vote(gt(x[i, j], upper, tolerance), lt(x[i, j], lower, tolerance), _defined(x[i, j]))
    return out


# --- frames in, frames out ----------------------------------------------------------------------------------


def _carried(
    symbol: str, state: SymbolState | None, rules: str, history_bars: int | None, tolerance: float
) -> SymbolState | None:
    """The symbol's state if it can resume this run; ValueError naming what differs otherwise."""
    if state is None:
        return None
    for name, theirs, ours in (
        ("rule set", state.rules, rules),
        ("history_bars", state.history_bars, history_bars),
        ("tolerance", state.tolerance, tolerance),
        ("number of state values", len(state.values), state_width(history_bars)),
    ):
        if theirs != ours:
            raise ValueError(f"{symbol}: a state of {name} {theirs!r} cannot resume a run of {name} {ours!r}")
    return state


def _rate(
    names: Sequence[str],
    frames: Sequence[pd.DataFrame],
    rules: int,
    history_bars: int | None,
    tolerance: float,
    carried: Sequence[SymbolState | None],
) -> tuple[pd.DataFrame, Panel]:
    """The long frame (without `symbol`) of the given bar frames, in their order, each continuing from its
    carried state (None: from its first bar), and each frame's state after its last bar (a row each).

    The kernel rates left-aligned columns of bars, SYMBOLS_PER_PANEL columns at a time. Over all history a
    column is one symbol's new bars, each written out (symbols of similar lengths side by side carry little
    padding), and the kernel carries each column's state from its carried one to its last bar. With
    `history_bars` N a column is the N bars (fewer at a symbol's start) ending at one bar, and only that
    last bar is written: the whole computation reruns for every bar, inside the kernel, from the empty
    state. Its carried state is the last N - 1 bars, read as the start of each symbol's column and not
    rated again."""
    lengths = np.array([len(frame) for frame in frames], dtype=np.int64)
    total = int(lengths.sum())
    ts = np.concatenate(
        [_timestamps(name, frame, state) for name, frame, state in zip(names, frames, carried, strict=True)]
        or [[]]
    )
    rated_before = np.array([state.bars if state else 0 for state in carried], dtype=np.int64)
    features = np.empty((len(FEATURES), total))
    warm = np.empty(total, dtype=np.bool_)

    def kernel(begins: np.ndarray, widths: np.ndarray, starts: np.ndarray, firsts: np.ndarray, state: Panel):
        panels = _panels(columns, begins, widths)
        _rate_into(*panels, rules, tolerance, PERIODS, features, warm, starts, firsts, widths, state)

    if history_bars is None:
        state = np.full((len(frames), _kernel_width()), np.nan)
        for k, before in enumerate(carried):
            if before is not None:
                state[k] = before.values
        columns = _columns(names, frames)
        starts = np.cumsum(lengths) - lengths
        bars = np.arange(1, total + 1) - np.repeat(starts - rated_before, lengths)
        by_length = np.argsort(lengths, kind="stable")
        for first in range(0, len(frames), SYMBOLS_PER_PANEL):
            part = by_length[first : first + SYMBOLS_PER_PANEL]
            if lengths[part].any():  # else no new bars: the states stay as they were
                part_state = np.ascontiguousarray(state[part].T)
                firsts = np.zeros(len(part), dtype=np.int64)
                kernel(starts[part], lengths[part], starts[part], firsts, part_state)
                state[part] = part_state.T
    else:
        tails = [_bars_carried(before, history_bars) for before in carried]
        columns = _columns(names, frames, tails)
        read = lengths + np.array([tail.shape[1] for tail in tails], dtype=np.int64)  # carried, then new
        read_starts = np.cumsum(read) - read
        rated = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)  # position among new
        at = np.repeat(read_starts + read - lengths, lengths) + rated  # position in `columns`
        bars = np.minimum(np.repeat(rated_before, lengths) + rated + 1, history_bars)
        begins, firsts = at - bars + 1, bars - 1
        starts = np.arange(total) - firsts  # the bar a column is rated for goes to row starts + firsts
        for first in range(0, total, SYMBOLS_PER_PANEL):
            part = slice(first, first + SYMBOLS_PER_PANEL)
            empty = np.full((_kernel_width(), len(bars[part])), np.nan)
            kernel(begins[part], bars[part], starts[part], firsts[part], empty)
        state = _bars_kept(columns, read_starts, read, history_bars)
    state.flags.writeable = False  # the states share it
    frame = pd.DataFrame(features.T, columns=list(FEATURES), copy=False)
    frame.insert(0, "ts", pd.DatetimeIndex(ts.astype("datetime64[ns]")).tz_localize("UTC"))
    frame.insert(1, "bars", bars.astype(np.int64))
    frame.insert(2, "warm", warm)
    return frame, state


def _bars_carried(state: SymbolState | None, history_bars: int) -> np.ndarray:
    """The carried bars of a state under `history_bars` (high, low, close, volume x its last bars, at most
    history_bars - 1): the bars a resumed symbol's first windows reach back into."""
    if state is None:
        return np.empty((len(BAR_INPUTS), 0))
    kept = min(state.bars, history_bars - 1)
    return state.values.reshape(len(BAR_INPUTS), history_bars - 1)[:, history_bars - 1 - kept :]


def _bars_kept(
    columns: Sequence[np.ndarray], starts: np.ndarray, lengths: np.ndarray, history_bars: int
) -> Panel:
    """Each symbol's state under `history_bars`: the last history_bars - 1 bars of its stretch of `columns`
    (high, low, close, volume one after the other), NaN before its first bar."""
    at = starts[:, None] + lengths[:, None] - (history_bars - 1) + np.arange(history_bars - 1)
    at = np.where(at >= starts[:, None], at, len(columns[0]) - 1)  # the NaN after the last bar
    return np.concatenate([column[at] for column in columns], axis=1)


def _columns(
    names: Sequence[str], frames: Sequence[pd.DataFrame], carried: Sequence[np.ndarray] | None = None
) -> list[np.ndarray]:
    """High, low, close and volume of every frame (after its carried bars, a row per input, if given), one
    after the other, then one NaN (what a panel reads past a column's bars)."""
    columns = []
    for row, column in enumerate(BAR_INPUTS):
        parts = []
        for k, (name, frame) in enumerate(zip(names, frames, strict=True)):
            if column not in frame.columns:
                raise ValueError(f"{name}: missing column {column!r}")
            if carried is not None:
                parts.append(carried[k][row])
            parts.append(frame[column].to_numpy(dtype=np.float64, na_value=np.nan))
        columns.append(np.concatenate([*parts, [np.nan]]))
    return columns


def _panels(columns: Sequence[np.ndarray], begins: np.ndarray, widths: np.ndarray) -> list[Panel]:
    """Left-aligned panels (bar x column) of high, low, close, volume: column j holds the widths[j] bars
    from position begins[j] of `columns`, then NaN."""
    rows = np.arange(widths.max(initial=0))[:, None]
    at = np.where(rows < widths, begins + rows, len(columns[0]) - 1)
    return [np.ascontiguousarray(column[at]) for column in columns]


def _timestamps(name: str, frame: pd.DataFrame, carried: SymbolState | None) -> np.ndarray:
    """The bar times as int64 nanoseconds since the epoch (UTC); ValueError naming the first row where they
    do not strictly increase, or the first bar if it is not after the carried state's last bar."""
    if "ts" not in frame.columns:
        raise ValueError(f"{name}: missing column 'ts'")
    ts = frame["ts"]
    if not (isinstance(ts.dtype, pd.DatetimeTZDtype) and str(ts.dtype.tz) == "UTC"):
        ts = pd.to_datetime(ts, utc=True)
    nanos = ts.array.as_unit("ns").asi8
    if carried is not None and len(nanos) and nanos[0] <= carried.last_ts.value:
        raise ValueError(
            f"{name}: the first bar ({ts.iloc[0]}) is not after the carried state's last bar "
            f"({carried.last_ts}); a resume takes only the bars after it"
        )
    decreasing = np.flatnonzero(nanos[1:] <= nanos[:-1])
    if len(decreasing):
        row = int(decreasing[0]) + 1
        raise ValueError(
            f"{name}: ts does not strictly increase at row {row} ({ts.iloc[row - 1]} then {ts.iloc[row]})"
        )
    return nanos


def _symbol_column(symbols: Sequence[str], lengths: Sequence[int]) -> pd.Series:
    """Each symbol repeated for its bars, as the `str` dtype (built as an Arrow dictionary and decoded, which
    is much faster than converting a million Python strings)."""
    codes = pa.array(np.repeat(np.arange(len(symbols), dtype=np.int32), lengths))
    names = pa.DictionaryArray.from_arrays(codes, pa.array(list(symbols), type=pa.string()))
    return pd.Series(names.cast(pa.string()), dtype=pd.StringDtype("pyarrow", na_value=np.nan))


@functools.cache
def _kernel_width() -> int:
    """How many state rows the kernel's primitives take: the kernel run on an empty panel says."""
    empty, index = np.empty((0, 0)), np.empty(0, dtype=np.int64)
    features, warm = np.empty((len(FEATURES), 0)), np.empty(0, dtype=np.bool_)
    state = np.empty((1 << 16, 0))
    return _rate_into(
        empty, empty, empty, empty, 0, pine.TOLERANCE, PERIODS, features, warm, index, index, index, state
    )


def _drop_stale_cache() -> None:
    """numba checks a cached function against its own source file only, but this module's compiled code has
    pine's primitives, the feature rows and the rule-set codes compiled into it: when pine.py, features.py
    or rules.py changes, drop this module's cached machine code so that it compiles afresh."""
    directory = Path(_rate_into.stats.cache_path)
    stamp = directory / f"{Path(__file__).stem}.depends.sha256"
    fingerprint = hashlib.sha256(
        b"".join(Path(m.__file__).read_bytes() for m in (pine, features, rule_vocabulary))
    ).hexdigest()
    try:
        if stamp.read_text() == fingerprint:
            return
    except OSError:
        pass  # no stamp yet
    for cached in directory.glob(f"{Path(__file__).stem}.*.nb[ic]"):
        cached.unlink(missing_ok=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fingerprint)
    except OSError:
        pass  # a read-only cache directory holds nothing stale either


_drop_stale_cache()
