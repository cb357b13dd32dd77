"""Pine Script primitives over panels, with the semantics of RATINGS_SPEC section 3.

A panel is a 2-D float64 array shaped (bar index, symbol) in which NaN is Pine's `na`. Every primitive runs
down each column on its own and only looks back, so a column's result never depends on another column, and
a column's leading na (warm-up) and trailing na (padding after its last bar) behave as in Pine.

Every primitive also resumes: it takes what it carries from bar to bar (its recursive averages and their
seed progress, its window's last inputs, the previous values it looks back on) from a `Carry` before the
panel's first row, and leaves it there as of each column's last bar. A panel continues a column's history
exactly where the carried state left it, and a full history is a resume from the empty state (NaN
everywhere): there is one implementation of each primitive, and resuming rounds exactly as the full run
does, because it runs the same arithmetic on the same numbers (window sums included: a sum's compensated
prefix is carried, not recomputed).

Each primitive is a plain bar loop compiled with numba (`cache=True`: after the first compilation a process
loads the machine code from `__pycache__`), callable from Python and from other compiled code. Most loops
walk the bars in order and, within a bar, the symbols, which are independent, so the processor works on
several at once; the prefix-sum windows (`sma`, `window_sum`) walk one symbol at a time. Panels are C-ordered
float64 arrays (another layout compiles another specialisation), and results are new C-ordered panels.

Pine's own operators `<`, `>`, `==`, `!=` on floats carry an absolute tolerance (`lt`, `gt`, `eq`, `ne`, for
numbers and for panels); the builtins compare exactly.
"""

from typing import Final, NamedTuple

import numba
import numpy as np
from numpy.typing import NDArray

Panel = NDArray[np.float64]
Mask = NDArray[np.bool_]

TOLERANCE: Final = 1e-10
"""Pine's absolute tolerance on float comparisons (RATINGS_SPEC section 3, "Comparisons")."""

compiled = numba.njit(cache=True, error_model="numpy", nogil=True)
"""How every primitive is compiled: with numpy's error model a division by zero gives inf or nan, as in
Pine, instead of raising."""

inlined = numba.njit(cache=True, error_model="numpy", nogil=True, inline="always")
"""How the small scalar helpers are compiled: inlined into their callers, where a call would cost more than
the helper's arithmetic."""


# --- carried state ------------------------------------------------------------------------------------------


class Carry(NamedTuple):
    """The state the primitives carry between calls, for the columns of a panel.

    `values` holds it (state rows x columns, updated in place): each primitive call takes the next rows, in
    the order of the calls, and NaN everywhere is the empty state (no bar seen). `ends[j]` is column j's
    number of bars: the rows after it are padding, and the state is left as of its last bar (unchanged
    when it has none). `cursor` counts the rows taken so far."""

    values: Panel
    ends: NDArray[np.int64]
    cursor: NDArray[np.int64]


@compiled
def carry(values: Panel, ends: NDArray[np.int64]) -> Carry:
    """A Carry over these state rows for columns of `ends` bars, taken from its first row."""
    return Carry(values, ends, np.zeros(1, dtype=np.int64))


@inlined
def _take(carry: Carry, size: int):
    """The next `size` state rows of the carry (a view, for the calling primitive to read and update)."""
    start = carry.cursor[0]
    if start + size > carry.values.shape[0]:
        raise ValueError("the carry holds fewer state rows than the primitives take")
    carry.cursor[0] = start + size
    return carry.values[start : start + size]


@inlined
def _or_zero(value: float) -> float:
    """A carried number, 0 where nothing was carried (the empty state is NaN)."""
    return 0.0 if np.isnan(value) else value


@compiled
def carried(x: Panel, bars: int, carry: Carry) -> Panel:
    """The `bars` inputs before the panel's first row, oldest first (NaN before a history's first bar): what
    a window or a look-back reads across the resume (`back`). The carry moves on to the `bars` inputs up to
    each column's last bar."""
    tail = _take(carry, bars)
    before = tail.copy()
    for r in range(bars):
        for j in range(x.shape[1]):
            tail[r, j] = _stacked(x, before, carry.ends[j] + r, j)
    return before


@inlined
def back(x: Panel, before: Panel, i: int, j: int, bars: int) -> float:
    """`x[bars]` on bar i of column j, reading the carried inputs before the panel (`carried`) where it
    reaches back past the first row (at most their number of bars)."""
    return _stacked(x, before, i + before.shape[0] - bars, j)


@inlined
def _stacked(x: Panel, before: Panel, e: int, j: int) -> float:
    """Row e, column j of `before` stacked on x. The branch depends on the row only, so a loop over the
    columns runs without it."""
    kept = before.shape[0]
    return before[e, j] if e < kept else x[e - kept, j]


# --- comparisons --------------------------------------------------------------------------------------------


@inlined
def lt(a, b, tolerance=TOLERANCE):
    """Pine's `a < b`: a is below b by more than the tolerance; false where either is na."""
    return a - b < -tolerance


@inlined
def gt(a, b, tolerance=TOLERANCE):
    """Pine's `a > b`: a is above b by more than the tolerance; false where either is na."""
    return a - b > tolerance


@inlined
def eq(a, b, tolerance=TOLERANCE):
    """Pine's `a == b`: within the tolerance of each other; false where either is na."""
    return np.abs(a - b) <= tolerance


@inlined
def ne(a, b, tolerance=TOLERANCE):
    """Pine's `a != b` as a condition: further apart than the tolerance; false where either is na."""
    return np.abs(a - b) > tolerance


@compiled
def crossover(a: Panel, b: Panel, carry: Carry) -> Mask:
    """ta.crossover: a > b now, and a <= b on the last earlier bar where both were defined (exact)."""
    return _crossed(a, b, 1.0, carry)


@compiled
def crossunder(a: Panel, b: Panel, carry: Carry) -> Mask:
    """ta.crossunder: a < b now, and a >= b on the last earlier bar where both were defined (exact)."""
    return _crossed(a, b, -1.0, carry)


@compiled
def _crossed(a: Panel, b: Panel, direction: float, carry: Carry) -> Mask:
    """Carries whether a was level with b or behind it on the last bar where both were defined."""
    state = _take(carry, 1)
    rows, columns = a.shape
    out = np.empty((rows, columns), dtype=np.bool_)
    armed = state[0] == 1.0
    for i in range(rows):
        for j in range(columns):
            gap = (a[i, j] - b[i, j]) * direction
            out[i, j] = armed[j] and gap > 0.0
            if i < carry.ends[j] and not np.isnan(gap):
                armed[j] = gap <= 0.0
    state[0] = np.where(armed, 1.0, 0.0)
    return out


# --- bar arithmetic -----------------------------------------------------------------------------------------


@compiled
def shift(x: Panel, bars: int, carry: Carry) -> Panel:
    """`x[bars]`: the value `bars` bars ago; na before the first bar. Carries the last `bars` values."""
    before = carried(x, bars, carry)
    rows, columns = x.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            out[i, j] = back(x, before, i, j, bars)
    return out


@compiled
def change(x: Panel, bars: int, carry: Carry) -> Panel:
    """ta.change: x - x[bars]; na while either is na. Carries the last `bars` values."""
    before = carried(x, bars, carry)
    rows, columns = x.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            out[i, j] = x[i, j] - back(x, before, i, j, bars)
    return out


@compiled
def mom(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.mom: x - x[n], the same as ta.change over n bars."""
    return change(x, n, carry)


@compiled
def fixnan(x: Panel, carry: Carry) -> Panel:
    """fixnan: an na is replaced by the column's last non-na value (na before the first one), carried."""
    state = _take(carry, 1)
    rows, columns = x.shape
    out = np.empty((rows, columns))
    last = state[0].copy()
    for i in range(rows):
        for j in range(columns):
            if i < carry.ends[j] and not np.isnan(x[i, j]):
                last[j] = x[i, j]
            out[i, j] = last[j]
    state[0] = last
    return out


@compiled
def divide(numerator: Panel, denominator: Panel) -> Panel:
    """numerator / denominator, na where that is not finite: Pine's division by zero gives na, and na()
    treats +-inf as na."""
    rows, columns = numerator.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            out[i, j] = finite(numerator[i, j] / denominator[i, j])
    return out


@inlined
def finite(value: float) -> float:
    """The value, or na if it is +-inf (Pine's na() is true for both)."""
    return value if np.isfinite(value) else np.nan


# --- windows ------------------------------------------------------------------------------------------------


@inlined
def _two_sum(total: float, value: float) -> tuple[float, float]:
    """total + value, and the rounding error of that sum (Knuth's TwoSum: the pair is exact)."""
    moved = total + value
    back = moved - total
    return moved, (total - (moved - back)) + (value - back)


@inlined
def _difference(total: float, lost: float, earlier: float, earlier_lost: float) -> float:
    """The sum of the values between two compensated prefix sums: (total + lost) - (earlier + earlier_lost),
    with the rounding of the big subtraction kept too, so a window's sum comes out correctly rounded."""
    big, rounding = _two_sum(total, -earlier)
    return big + ((lost - earlier_lost) + rounding)


@compiled
def sma(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.sma: the sum of the last n non-na values divided by n; na until n exist and on a bar whose input
    is na.

    Window sums are differences of compensated prefix sums of the column's non-na values (`_difference`):
    the window's sum correctly rounded, however long the history, as TradingView's compensated rolling sum
    gives it (PyneCore measured that sum). No window is special: n equal values v give the rounded n * v
    divided by n, which is v itself or an ulp from it (about one price in eight), as in Pine.

    Carries the number of non-na values seen, the last n - 1 of them and the prefix sum before them: a
    resume rebuilds the prefix sums of its first windows exactly as the full run had them."""
    rows, columns = x.shape
    state = _take(carry, n + 2)  # count, the prefix sum and its error before the last n - 1 values, those
    out = np.full((rows, columns), np.nan)
    prefix = np.empty(rows + n)  # prefix[k]: the sum after the k-th value from the carried prefix on, plus
    error = np.empty(rows + n)  # error[k]: the rounding error of that sum
    values = np.empty(rows + n)  # values[k]: the k-th value
    for j in range(columns):
        total, lost = _or_zero(state[1, j]), _or_zero(state[2, j])
        prefix[0], error[0] = total, lost
        k = 0
        for r in range(n - 1):
            value = state[3 + r, j]
            if not np.isnan(value):
                total, rounding = _two_sum(total, value)
                lost += rounding
                k += 1
                prefix[k], error[k], values[k] = total, lost, value
        before = _or_zero(state[0, j]) - k  # the values counted before the carried prefix
        for i in range(carry.ends[j]):
            value = x[i, j]
            if np.isnan(value):
                continue
            total, rounding = _two_sum(total, value)
            lost += rounding
            k += 1
            prefix[k], error[k], values[k] = total, lost, value
            if before + k >= n:
                out[i, j] = _difference(total, lost, prefix[k - n], error[k - n]) / n
        kept = min(k, n - 1)
        state[0, j] = before + k
        state[1, j], state[2, j] = prefix[k - kept], error[k - kept]
        for r in range(n - 1):
            back = n - 1 - r  # the back-th last value
            state[3 + r, j] = values[k - back + 1] if back <= kept else np.nan
    return out


@compiled
def window_sum(x: Panel, n: int, carry: Carry) -> Panel:
    """math.sum: the sum of the values of the last n bars, correctly rounded (as in `sma`); na while the
    window holds an na. Carries the last n - 1 inputs and the prefix sum before them."""
    rows, columns = x.shape
    sums = _take(carry, 2)  # the prefix sum before the carried inputs, and its error
    before = carried(x, n - 1, carry)
    out = np.full((rows, columns), np.nan)
    prefix = np.empty(rows + n)  # prefix[e]: the sum of the first e rows of `before` then x, plus
    error = np.empty(rows + n)  # error[e]: the rounding error of that sum
    for j in range(columns):
        total, lost, last_na = _or_zero(sums[0, j]), _or_zero(sums[1, j]), -1
        prefix[0], error[0] = total, lost
        for e in range(n - 1 + carry.ends[j]):
            value = _stacked(x, before, e, j)
            if np.isnan(value):
                last_na = e
            else:
                total, rounding = _two_sum(total, value)
                lost += rounding
            prefix[e + 1], error[e + 1] = total, lost
            if e - last_na >= n:
                out[e - n + 1, j] = _difference(total, lost, prefix[e + 1 - n], error[e + 1 - n])
        sums[0, j], sums[1, j] = prefix[carry.ends[j]], error[carry.ends[j]]
    return out


@compiled
def wma(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.wma: sum of (n - i) * x[i] over i < n, divided by n(n+1)/2; na while the window holds an na. The
    window is summed afresh on every bar, oldest first, as PyneCore measured TradingView doing (newest
    first, or a rolling update, differ in the last digits). Carries the last n - 1 inputs."""
    before = carried(x, n - 1, carry)
    rows, columns = x.shape
    out = np.empty((rows, columns))
    norm = n * (n + 1) / 2.0
    for i in range(rows):
        out[i] = 0.0
        for bars_back in range(n - 1, -1, -1):
            for j in range(columns):  # the symbols of a bar are independent: one vector operation
                out[i, j] += back(x, before, i, j, bars_back) * (n - bars_back)
        for j in range(columns):
            out[i, j] /= norm
    return out


@compiled
def highest(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.highest: the largest of the last n values, current bar included; na while the window holds an na."""
    return _extreme(x, n, 1.0, carry)


@compiled
def lowest(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.lowest: the smallest of the last n values, current bar included; na while the window holds an na."""
    return _extreme(x, n, -1.0, carry)


@compiled
def _extreme(x: Panel, n: int, sign: float, carry: Carry) -> Panel:
    """The window maximum of sign * x, read back unsigned (van Herk / Gil-Werman: running maxima from the
    start and from the end of each block of n bars; a window is one block's tail plus the next one's head).
    Carries the last n - 1 inputs."""
    before = carried(x, n - 1, carry)
    rows, columns = x.shape[0] + n - 1, x.shape[1]  # the carried inputs, then x
    head = np.empty((rows, columns))  # maximum from the start of the bar's block up to the bar
    tail = np.empty((rows, columns))  # maximum from the bar to the end of its block
    for start in range(0, rows, n):
        stop = min(start + n, rows)
        for i in range(start, stop):
            for j in range(columns):
                value = sign * _stacked(x, before, i, j)
                head[i, j] = value if i == start else max(head[i - 1, j], value)
        for i in range(stop - 1, start - 1, -1):
            for j in range(columns):
                value = sign * _stacked(x, before, i, j)
                tail[i, j] = value if i == stop - 1 else max(tail[i + 1, j], value)
    out = np.full((x.shape[0], columns), np.nan)
    last_na = np.full(columns, -1, dtype=np.int64)
    for i in range(rows):
        for j in range(columns):
            if np.isnan(_stacked(x, before, i, j)):
                last_na[j] = i
            if i - last_na[j] >= n:
                out[i - n + 1, j] = sign * max(tail[i - n + 1, j], head[i, j])
    return out


# --- recursive averages -------------------------------------------------------------------------------------


@compiled
def ema(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.ema: alpha = 2/(n+1). The bar of the n-th non-na value gives the SMA of those n values (the seed),
    then e = e[1] + alpha * (x - e[1]). An na input gives na and leaves the state as it was."""
    return _seeded(x, n, False, carry)


@compiled
def rma(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.rma (Wilder): r = (r[1] * (n - 1) + x) / n, with the same SMA seed and na handling as `ema`."""
    return _seeded(x, n, True, carry)


@compiled
def _seeded(x: Panel, n: int, wilder: bool, carry: Carry) -> Panel:
    """The seed is `sma`'s value on that bar (the correctly rounded sum of the n values, over n), as Pine
    seeds with its sma; the steps are in the order PyneCore measured (the algebraically equal forms drift
    from TradingView in the last digits). Carries the number of values seen, and the compensated sum of
    those seen so far until the seed, the average after it."""
    carried = _take(carry, 3)
    rows, columns = x.shape
    out = np.full((rows, columns), np.nan)
    alpha = 2.0 / (n + 1)
    count = np.zeros(columns, dtype=np.int64)
    state = np.zeros(columns)  # the sum of the values so far until the seed, then the average
    lost = np.zeros(columns)  # the rounding errors of that sum
    for j in range(columns):
        count[j] = int(_or_zero(carried[0, j]))
        state[j], lost[j] = _or_zero(carried[1, j]), _or_zero(carried[2, j])
    for i in range(rows):
        for j in range(columns):
            value = x[i, j]
            if np.isnan(value) or i >= carry.ends[j]:
                continue
            count[j] += 1
            if count[j] <= n:
                state[j], rounding = _two_sum(state[j], value)
                lost[j] += rounding
                if count[j] < n:
                    continue
                state[j] = (state[j] + lost[j]) / n
            elif wilder:
                state[j] = (state[j] * (n - 1) + value) / n
            else:
                state[j] = state[j] + alpha * (value - state[j])
            out[i, j] = state[j]
    for j in range(columns):
        carried[0, j], carried[1, j], carried[2, j] = count[j], state[j], lost[j]
    return out


# --- indicators ---------------------------------------------------------------------------------------------


@compiled
def tr(high: Panel, low: Panel, close: Panel, carry: Carry) -> Panel:
    """ta.tr (= tr(false)): max(high - low, |high - close[1]|, |low - close[1]|); na on the first bar."""
    before = carried(close, 1, carry)
    rows, columns = close.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            out[i, j] = _true_range(high[i, j], low[i, j], back(close, before, i, j, 1))
    return out


@inlined
def _true_range(high: float, low: float, previous_close: float) -> float:
    if np.isnan(high) or np.isnan(low) or np.isnan(previous_close):
        return np.nan
    return max(high - low, abs(high - previous_close), abs(low - previous_close))


@compiled
def stoch(source: Panel, high: Panel, low: Panel, n: int, carry: Carry) -> Panel:
    """ta.stoch: 100 * (source - lowest(low, n)) / (highest(high, n) - lowest(low, n)); not clamped, and a
    zero range (division by zero) gives na."""
    lowest_low = lowest(low, n, carry)
    highest_high = highest(high, n, carry)
    rows, columns = source.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            bottom = lowest_low[i, j]
            out[i, j] = finite(100.0 * (source[i, j] - bottom) / (highest_high[i, j] - bottom))
    return out


@compiled
def rsi(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.rsi: U = max(change, 0), D = max(-change, 0) from bar 1, and 100 - 100 / (1 + rma(U) / rma(D)) in
    that order, with no special case (PyneCore, measured): 100 where rma(D) is 0 (U / D is +inf), 0 where
    rma(U) is 0, and na where both are (0 / 0: a history flat from its first bar). First value on bar n.

    On a bar whose source did not change both averages shrink by (n - 1)/n, each rounded on its own, so
    along a flat stretch RSI wobbles in its last digits as TradingView's does, and a Stoch RSI over it
    divides by that wobble."""
    delta = change(x, 1, carry)
    up, down = rma(np.maximum(delta, 0.0), n, carry), rma(np.maximum(-delta, 0.0), n, carry)
    return 100.0 - 100.0 / (1.0 + up / down)


@compiled
def cci(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.cci: (x - sma) / (0.015 * MD), MD = (1/n) * the sum of |x[i] - sma| over the last n bars, around
    the current sma and summed newest first (the order PyneCore measured); na while the window holds an na,
    and where MD is 0 (0 / 0).

    A flat window is na when its sma is the value itself, and +-200/3 when the sma is an ulp off it, as in
    Pine: the sign of that ulp is all the numerator and the deviation holds."""
    mean = sma(x, n, carry)
    before = carried(x, n - 1, carry)
    rows, columns = x.shape
    out = np.empty((rows, columns))
    deviation = np.empty(columns)
    for i in range(rows):
        deviation[:] = 0.0
        for bars_back in range(n):
            for j in range(columns):  # the symbols of a bar are independent: one vector operation
                deviation[j] += abs(back(x, before, i, j, bars_back) - mean[i, j])
        for j in range(columns):
            out[i, j] = finite((x[i, j] - mean[i, j]) / (0.015 * (deviation[j] / n)))
    return out


@compiled
def dmi(
    high: Panel,
    low: Panel,
    close: Panel,
    di_length: int,
    adx_smoothing: int,
    builtin: bool,
    tolerance: float,
    carry: Carry,
) -> tuple[Panel, Panel, Panel]:
    """The scanner's DMI (`dirmov` and `adx` in its Pine), or with `builtin` ta.dmi, as (+DI, -DI, ADX).

    up = change(high), down = -change(low); +DM = up if up > down and up > 0, else 0, and -DM is the mirror:
    0, not na, on the first bar in the scanner's code, na in ta.dmi (whose DM averages then seed a bar
    later, so its DI differ during warm-up and by a decaying amount after). Each DI = fixnan(100 * rma(DM) /
    rma(tr)), and ADX = 100 * rma(|+DI - -DI| / (+DI + -DI, or 1 where that sum is 0)). DI is first valid
    on bar di_length, ADX on di_length + adx_smoothing - 1."""
    high_before, low_before = carried(high, 1, carry), carried(low, 1, carry)
    rows, columns = close.shape
    plus_dm = np.empty((rows, columns))
    minus_dm = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            up = high[i, j] - back(high, high_before, i, j, 1)
            down = back(low, low_before, i, j, 1) - low[i, j]
            if builtin and (np.isnan(up) or np.isnan(down)):
                plus_dm[i, j] = minus_dm[i, j] = np.nan
                continue
            plus_dm[i, j] = up if gt(up, down, tolerance) and gt(up, 0.0, tolerance) else 0.0
            minus_dm[i, j] = down if gt(down, up, tolerance) and gt(down, 0.0, tolerance) else 0.0
    true_range = rma(tr(high, low, close, carry), di_length, carry)
    plus = fixnan(divide(100.0 * rma(plus_dm, di_length, carry), true_range), carry)
    minus = fixnan(divide(100.0 * rma(minus_dm, di_length, carry), true_range), carry)
    spread = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            total = plus[i, j] + minus[i, j]
            spread[i, j] = abs(plus[i, j] - minus[i, j]) / (1.0 if eq(total, 0.0, tolerance) else total)
    return plus, minus, 100.0 * rma(spread, adx_smoothing, carry)


@compiled
def wpr(high: Panel, low: Panel, close: Panel, n: int, carry: Carry) -> Panel:
    """Williams %R as the scanner writes it: (HH - close) / (HH - LL) * -100 over n bars, in [-100, 0]; a
    zero range gives na."""
    highest_high = highest(high, n, carry)
    lowest_low = lowest(low, n, carry)
    rows, columns = close.shape
    out = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            top = highest_high[i, j]
            out[i, j] = finite((top - close[i, j]) / (top - lowest_low[i, j])) * -100.0
    return out


@compiled
def uo(
    high: Panel,
    low: Panel,
    close: Panel,
    short: int,
    middle: int,
    long: int,
    tolerance: float,
    carry: Carry,
) -> Panel:
    """The scanner's Ultimate Oscillator. BP = close - (close[1] if close[1] < low else low) and each A_k =
    math.sum(BP, k) / math.sum(tr, k), with tr na on the first bar; UO = 100 * (A_short * long/short +
    A_middle * long/middle + A_long) / (long/short + long/middle + 1), na when any tr sum is 0."""
    before = carried(close, 1, carry)
    rows, columns = close.shape
    pressure = np.empty((rows, columns))
    for i in range(rows):
        for j in range(columns):
            previous = back(close, before, i, j, 1)
            pressure[i, j] = close[i, j] - (previous if lt(previous, low[i, j], tolerance) else low[i, j])
    true_range = tr(high, low, close, carry)
    short_weight, middle_weight = long / short, long / middle
    short_range, short_pressure = window_sum(true_range, short, carry), window_sum(pressure, short, carry)
    middle_range, middle_pressure = window_sum(true_range, middle, carry), window_sum(pressure, middle, carry)
    long_range, long_pressure = window_sum(true_range, long, carry), window_sum(pressure, long, carry)
    out = np.full((rows, columns), np.nan)
    for i in range(rows):
        for j in range(columns):
            a, b, c = short_range[i, j], middle_range[i, j], long_range[i, j]
            if ne(a, 0.0, tolerance) and ne(b, 0.0, tolerance) and ne(c, 0.0, tolerance):
                weighted = (
                    short_pressure[i, j] / a * short_weight
                    + middle_pressure[i, j] / b * middle_weight
                    + long_pressure[i, j] / c
                )
                out[i, j] = weighted / (short_weight + middle_weight + 1.0) * 100.0
    return out


@compiled
def hma(x: Panel, n: int, carry: Carry) -> Panel:
    """ta.hma: wma(2 * wma(x, n // 2) - wma(x, n), floor(sqrt(n))); for 9 that is wma3(2 * wma4 - wma9)."""
    return wma(2.0 * wma(x, n // 2, carry) - wma(x, n, carry), int(np.sqrt(n)), carry)


@compiled
def vwma(x: Panel, volume: Panel, n: int, carry: Carry) -> Panel:
    """ta.vwma: sma(x * volume, n) / sma(volume, n); na without volume or when the volume sum is 0."""
    return divide(sma(x * volume, n, carry), sma(volume, n, carry))


@compiled
def donchian(high: Panel, low: Panel, n: int, carry: Carry) -> Panel:
    """An Ichimoku line over n bars: math.avg(lowest(low, n), highest(high, n))."""
    return (lowest(low, n, carry) + highest(high, n, carry)) / 2.0
