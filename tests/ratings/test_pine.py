"""Each Pine primitive against a plain loop written from RATINGS_SPEC section 3, on generated panels: price
walks with flat stretches, leading na runs, na holes and columns of different lengths (left-aligned, padded
with na). Values agree within 1e-9 relative, na positions exactly.

The window references add exactly (fractions.Fraction). Where Pine rounds on purpose they round as it does:
an sma is the correctly rounded window sum divided by n (TradingView's compensated sum), so a flat window's
sma is its value or an ulp off it, and RSI and the recursive averages step in Pine's operation order, so
their last digits (which a flat stretch's Stoch RSI divides by) are Pine's."""

import math
from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from service.ratings import pine

NA = math.nan
TOLERANCE = 1e-10
SETTINGS = settings(max_examples=40, deadline=None)
MOVES = st.one_of(st.just(0.0), st.floats(0.001, 0.06), st.floats(-0.06, -0.001))
"""Relative moves from bar to bar: none (flat stretches) or at least 0.1%, so that no result rests on a
difference at the limit of double precision."""


def isna(value: float) -> bool:
    return value != value


def fresh(panel: np.ndarray) -> pine.Carry:
    """An empty carry for the panel's columns (more state rows than any primitive here takes), every row a
    bar: a primitive run over the whole history."""
    bars, columns = panel.shape
    return pine.carry(np.full((1024, columns), NA), np.full(columns, bars, dtype=np.int64))


# Generated panels -------------------------------------------------------------------------------------


@st.composite
def walks(draw, *, max_bars: int = 60, holes: bool = True) -> tuple[np.ndarray, list[int]]:
    """A (bars x symbols) C-ordered panel of price walks, and each column's length (na after it)."""
    rows = draw(st.integers(0, max_bars))
    lengths = draw(st.lists(st.integers(0, rows), min_size=1, max_size=3))
    panel = np.full((rows, len(lengths)), NA)
    for j, length in enumerate(lengths):
        moves = draw(st.lists(MOVES, min_size=length, max_size=length))
        column = 100.0 * np.cumprod(1.0 + np.array(moves, dtype=float))
        if holes and length:
            column[: draw(st.integers(0, min(4, length)))] = NA  # an upstream warm-up
            gaps = draw(st.lists(st.sampled_from([False] * 9 + [True]), min_size=length, max_size=length))
            column[np.array(gaps, dtype=bool)] = NA
        panel[:length, j] = column
    return np.ascontiguousarray(panel), lengths


@st.composite
def ohlc(draw, *, max_bars: int = 70) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """High, low, close panels: a close walk (no holes) and a high/low reach of 0 (flat bars), 0.1% or 2%."""
    close, _ = draw(walks(max_bars=max_bars, holes=False))
    reach = st.lists(st.sampled_from([0.0, 0.001, 0.02]), min_size=close.size, max_size=close.size)
    up, down = (np.array(draw(reach)).reshape(close.shape) for _ in range(2))
    return close * (1.0 + up), close * (1.0 - down), close


def by_column(reference, *panels, **parameters) -> np.ndarray:
    """The reference loop applied to each column (as lists), stacked back into a panel."""
    columns = [
        reference(*(panel[:, j].tolist() for panel in panels), **parameters)
        for j in range(panels[0].shape[1])
    ]
    return np.array(columns, dtype=float).T.reshape(panels[0].shape)


def assert_matches(actual: np.ndarray, expected: np.ndarray, scale: float = 100.0) -> None:
    """Within 1e-9 relative (plus a few ulp of the primitive's scale for values near 0); na exactly."""
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-12 * scale, equal_nan=True)


# References, written from RATINGS_SPEC section 3 --------------------------------------------------------


def ref_shift(x, bars=1):
    return [x[i - bars] if i >= bars else NA for i in range(len(x))]


def ref_change(x, bars=1):
    return [x[i] - x[i - bars] if i >= bars else NA for i in range(len(x))]


def ref_fixnan(x):
    out, last = [], NA
    for value in x:
        last = last if isna(value) else value
        out.append(last)
    return out


def window(x, i, n):
    """The last n values at bar i, or None while fewer than n bars exist or one of them is na."""
    values = x[i - n + 1 : i + 1] if i >= n - 1 else []
    return None if len(values) < n or any(isna(v) for v in values) else [Fraction(v) for v in values]


def ref_sma(x, n):
    out, seen = [], []
    for value in x:
        if isna(value):
            out.append(NA)
            continue
        seen = [*seen, Fraction(value)][-n:]
        out.append(float(sum(seen) / n) if len(seen) == n else NA)
    return out


def ref_seeded(x, n, wilder):
    """ema/rma in Pine's operation order, seeded with the sma: the first n values' sum, rounded, over n."""
    out, seen, state = [], [], NA
    for value in x:
        if isna(value):
            out.append(NA)
            continue
        if len(seen) < n:
            seen.append(Fraction(value))
            state = float(sum(seen)) / n if len(seen) == n else NA
        elif wilder:
            state = (state * (n - 1) + value) / n
        else:
            state = state + 2 / (n + 1) * (value - state)
        out.append(state)
    return out


def ref_wma(x, n):
    out = []
    for i in range(len(x)):
        values = window(x, i, n)
        out.append(
            NA
            if values is None
            else float(sum((k + 1) * v for k, v in enumerate(values)) / (n * (n + 1) / 2))
        )
    return out


def ref_extreme(x, n, pick):
    return [NA if (values := window(x, i, n)) is None else float(pick(values)) for i in range(len(x))]


def ref_window_sum(x, n):
    return [NA if (values := window(x, i, n)) is None else float(sum(values)) for i in range(len(x))]


def ref_tr(high, low, close):
    out = [NA]
    for i in range(1, len(close)):
        parts = (high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        out.append(NA if any(isna(p) for p in parts) else max(parts))
    return out[: len(close)]


def ratio(numerator, denominator):
    """Pine's division: na for na operands and for a division by zero."""
    if isna(numerator) or isna(denominator) or denominator == 0:
        return NA
    return numerator / denominator


def ref_stoch(source, high, low, n):
    top, bottom = ref_extreme(high, n, max), ref_extreme(low, n, min)
    return [ratio(100 * (s - b), t - b) for s, t, b in zip(source, top, bottom, strict=True)]


def ieee_divide(numerator, denominator):
    """Division as Pine does it before na() looks at the result: x / 0 is +-inf, 0 / 0 is nan."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(numerator) / np.float64(denominator))


def ref_rsi(x, n):
    delta = ref_change(x)
    up = ref_seeded([NA if isna(d) else max(d, 0.0) for d in delta], n, True)
    down = ref_seeded([NA if isna(d) else max(-d, 0.0) for d in delta], n, True)
    return [100 - 100 / (1 + ieee_divide(u, d)) for u, d in zip(up, down, strict=True)]


def ref_cci(x, n):
    out = []
    for i in range(len(x)):
        values = window(x, i, n)
        if values is None:
            out.append(NA)
            continue
        mean = Fraction(float(sum(values)) / n)  # Pine's sma: the window sum, rounded, over n
        deviation = sum(abs(v - mean) for v in values) / n
        out.append(NA if deviation == 0 else float((values[-1] - mean) / (Fraction(3, 200) * deviation)))
    return out


def gt(a, b):
    return a - b > TOLERANCE


def lt(a, b):
    return a - b < -TOLERANCE


def ref_dmi(high, low, close, di_length, adx_smoothing, builtin):
    up, down = ref_change(high), [-d for d in ref_change(low)]
    plus_dm = [u if gt(u, d) and gt(u, 0) else 0.0 for u, d in zip(up, down, strict=True)]
    minus_dm = [d if gt(d, u) and gt(d, 0) else 0.0 for u, d in zip(up, down, strict=True)]
    if builtin and close:  # ta.dmi: no directional movement at all on the first bar
        plus_dm[0] = minus_dm[0] = NA
    true_range = ref_seeded(ref_tr(high, low, close), di_length, True)
    plus = ref_fixnan(
        [ratio(100 * p, t) for p, t in zip(ref_seeded(plus_dm, di_length, True), true_range, strict=True)]
    )
    minus = ref_fixnan(
        [ratio(100 * m, t) for m, t in zip(ref_seeded(minus_dm, di_length, True), true_range, strict=True)]
    )
    spread = [
        abs(p - m) / (1.0 if abs(p + m) <= TOLERANCE else p + m) for p, m in zip(plus, minus, strict=True)
    ]
    return plus, minus, [100 * a for a in ref_seeded(spread, adx_smoothing, True)]


def ref_wpr(high, low, close, n):
    top, bottom = ref_extreme(high, n, max), ref_extreme(low, n, min)
    return [ratio(t - c, t - b) * -100 for c, t, b in zip(close, top, bottom, strict=True)]


def ref_uo(high, low, close, short, middle, long):
    previous = ref_shift(close)
    pressure = [c - (p if lt(p, lo) else lo) for c, p, lo in zip(close, previous, low, strict=True)]
    true_range = ref_tr(high, low, close)
    weights = (long / short, long / middle, 1.0)
    sums = [(ref_window_sum(pressure, k), ref_window_sum(true_range, k)) for k in (short, middle, long)]
    out = []
    for i in range(len(close)):
        ranges = [r[i] for _, r in sums]
        if any(isna(r) or abs(r) <= TOLERANCE for r in ranges):
            out.append(NA)
            continue
        weighted = sum(p[i] / r[i] * w for (p, r), w in zip(sums, weights, strict=True))
        out.append(weighted / sum(weights) * 100)
    return out


def ref_crossed(a, b, sign):
    out, armed = [], False
    for x, y in zip(a, b, strict=True):
        gap = (x - y) * sign
        out.append(armed and gap > 0)
        if not isna(gap):
            armed = gap <= 0
    return out


# The properties ---------------------------------------------------------------------------------------


@SETTINGS
@given(walks(), st.integers(1, 5))
def test_shift_change_mom_fixnan(walk, bars):
    x, _ = walk
    assert_matches(pine.shift(x, bars, fresh(x)), by_column(ref_shift, x, bars=bars))
    assert_matches(pine.change(x, bars, fresh(x)), by_column(ref_change, x, bars=bars))
    assert_matches(pine.mom(x, bars, fresh(x)), by_column(ref_change, x, bars=bars))
    assert_matches(pine.fixnan(x, fresh(x)), by_column(ref_fixnan, x))


@SETTINGS
@given(walks(), st.integers(1, 25))
def test_sma_skips_na_bars(walk, n):
    x, _ = walk
    assert_matches(pine.sma(x, n, fresh(x)), by_column(ref_sma, x, n=n))


@SETTINGS
@given(walks(), st.integers(1, 25))
def test_ema_and_rma_seed_with_the_sma(walk, n):
    x, _ = walk
    assert_matches(pine.ema(x, n, fresh(x)), by_column(ref_seeded, x, n=n, wilder=False))
    assert_matches(pine.rma(x, n, fresh(x)), by_column(ref_seeded, x, n=n, wilder=True))


@SETTINGS
@given(walks(), st.integers(1, 12))
def test_wma_and_hma(walk, n):
    x, _ = walk
    assert_matches(pine.wma(x, n, fresh(x)), by_column(ref_wma, x, n=n))

    def ref_hma(values):
        fast, slow = ref_wma(values, 4), ref_wma(values, 9)
        return ref_wma([2 * f - s for f, s in zip(fast, slow, strict=True)], 3)

    assert_matches(pine.hma(x, 9, fresh(x)), by_column(ref_hma, x))


@SETTINGS
@given(walks(), st.integers(1, 30))
def test_highest_lowest_and_window_sum(walk, n):
    x, _ = walk
    assert_matches(pine.highest(x, n, fresh(x)), by_column(ref_extreme, x, n=n, pick=max))
    assert_matches(pine.lowest(x, n, fresh(x)), by_column(ref_extreme, x, n=n, pick=min))
    assert_matches(pine.window_sum(x, n, fresh(x)), by_column(ref_window_sum, x, n=n), scale=100.0 * n)


@SETTINGS
@given(ohlc(), st.integers(1, 20))
def test_tr_stoch_wpr_and_donchian(bars, n):
    high, low, close = bars
    assert_matches(pine.tr(high, low, close, fresh(close)), by_column(ref_tr, high, low, close))
    assert_matches(pine.stoch(close, high, low, n, fresh(close)), by_column(ref_stoch, close, high, low, n=n))
    assert_matches(pine.wpr(high, low, close, n, fresh(close)), by_column(ref_wpr, high, low, close, n=n))

    def ref_donchian(h, lo):
        return [(b + t) / 2 for b, t in zip(ref_extreme(lo, n, min), ref_extreme(h, n, max), strict=True)]

    assert_matches(pine.donchian(high, low, n, fresh(close)), by_column(ref_donchian, high, low))


@SETTINGS
@given(walks(max_bars=80), st.integers(2, 20))
def test_rsi(walk, n):
    x, _ = walk
    assert_matches(pine.rsi(x, n, fresh(x)), by_column(ref_rsi, x, n=n))


@SETTINGS
@given(walks(max_bars=80), st.integers(2, 20))
def test_cci_around_the_current_sma(walk, n):
    x, _ = walk
    assert_matches(pine.cci(x, n, fresh(x)), by_column(ref_cci, x, n=n), scale=1000.0)


@SETTINGS
@given(ohlc(max_bars=80), st.integers(2, 14), st.integers(2, 14), st.booleans())
def test_dmi_scanner_and_builtin_variants(bars, di_length, adx_smoothing, builtin):
    high, low, close = bars
    plus, minus, adx = pine.dmi(high, low, close, di_length, adx_smoothing, builtin, TOLERANCE, fresh(close))
    columns = [
        ref_dmi(
            high[:, j].tolist(), low[:, j].tolist(), close[:, j].tolist(), di_length, adx_smoothing, builtin
        )
        for j in range(close.shape[1])
    ]
    for k, actual in enumerate((plus, minus, adx)):
        assert_matches(
            actual, np.array([column[k] for column in columns], dtype=float).T.reshape(close.shape)
        )


@SETTINGS
@given(ohlc(max_bars=80))
def test_uo_scanner_form(bars):
    high, low, close = bars
    assert_matches(
        pine.uo(high, low, close, 7, 14, 28, TOLERANCE, fresh(close)),
        by_column(ref_uo, high, low, close, short=7, middle=14, long=28),
    )


@SETTINGS
@given(walks(), st.integers(1, 12))
def test_vwma(walk, n):
    x, _ = walk
    volume = np.where(np.isnan(x), NA, np.round(x) % 3)  # includes zero volume, so zero sums happen

    def ref_vwma(values, volumes):
        weighted = ref_sma([v * w for v, w in zip(values, volumes, strict=True)], n)
        return [ratio(a, b) for a, b in zip(weighted, ref_sma(volumes, n), strict=True)]

    assert_matches(pine.vwma(x, volume, n, fresh(x)), by_column(ref_vwma, x, volume))


@SETTINGS
@given(walks(), walks())
def test_crossover_and_crossunder(first, second):
    a, _ = first
    b = np.resize(second[0], a.shape) if second[0].size else np.full(a.shape, NA)
    b = np.ascontiguousarray(b)
    np.testing.assert_array_equal(
        pine.crossover(a, b, fresh(a)), by_column(ref_crossed, a, b, sign=1.0).astype(bool)
    )
    np.testing.assert_array_equal(
        pine.crossunder(a, b, fresh(a)), by_column(ref_crossed, a, b, sign=-1.0).astype(bool)
    )


def test_tolerant_comparisons():
    price = 0.0408
    assert (
        pine.eq(price, price + 5e-11)
        and not pine.lt(price, price + 5e-11)
        and not pine.gt(price + 5e-11, price)
    )
    assert pine.lt(price, price + 2e-10) and pine.gt(price + 2e-10, price) and pine.ne(price, price + 2e-10)
    assert not pine.eq(price, price + 5e-11, 0.0) and pine.lt(price, price + 5e-11, 0.0)
    assert not (pine.lt(NA, 1.0) or pine.gt(NA, 1.0) or pine.eq(NA, NA) or pine.ne(NA, 1.0))
    x = np.array([[1.0], [1.0 + 5e-11], [1.0 + 1e-9], [NA]])
    np.testing.assert_array_equal(pine.eq(x, 1.0), [[True], [True], [False], [False]])


def test_flat_windows_divide_by_zero():
    """A window of one price: stoch's and W%R's range are 0, so each is na; RSI's two averages are 0, so it
    is 0 / 0, na; CCI divides 0 by 0 where the sma is the price itself and is +-200/3 where the sma is an
    ulp off it (0.1 * 3 rounds up, so three 0.1s average just above 0.1)."""
    flat = np.full((40, 1), 7.25)
    assert (
        np.isnan(pine.stoch(flat, flat, flat, 14, fresh(flat))).all()
        and np.isnan(pine.wpr(flat, flat, flat, 14, fresh(flat))).all()
    )
    assert np.isnan(pine.rsi(flat, 14, fresh(flat))).all()
    assert (pine.sma(flat, 20, fresh(flat))[19:] == 7.25).all() and np.isnan(
        pine.cci(flat, 20, fresh(flat))
    ).all()
    tenths = np.full((10, 1), 0.1)
    assert (pine.sma(tenths, 3, fresh(tenths))[2:] == 0.1 * 3 / 3).all() and 0.1 * 3 / 3 > 0.1
    assert (pine.cci(tenths, 3, fresh(tenths))[2:] == -200 / 3).all()
    moved = flat.copy()
    moved[-1] += 0.5
    np.testing.assert_allclose(pine.cci(moved, 20, fresh(moved))[-1, 0], 2000 / 3, rtol=1e-12)


def test_rsi_along_a_flat_stretch_is_pines_arithmetic():
    """After moves, a flat stretch shrinks both averages by 13/14 a bar, each rounded on its own: RSI keeps
    its value to about 1e-13 but not exactly, bit for bit as the spec's loop in Pine's order computes it."""
    moves = np.random.default_rng(5).normal(0.0, 0.01, 60)
    x = np.concatenate([100.0 * np.cumprod(1.0 + moves), np.full(200, 0.0)])
    x[60:] = x[59]
    rsi = pine.rsi(x[:, None].copy(), 14, fresh(x[:, None]))[:, 0]
    np.testing.assert_array_equal(rsi, ref_rsi(x.tolist(), 14))
    flat = rsi[60:]
    assert 0 < np.ptp(flat) < 1e-12


# Resuming --------------------------------------------------------------------------------------------------

RESUMABLE = {
    "shift": lambda x, v, h, lo, c, k: pine.shift(x, 3, k),
    "change": lambda x, v, h, lo, c, k: pine.change(x, 2, k),
    "mom": lambda x, v, h, lo, c, k: pine.mom(c, 4, k),
    "fixnan": lambda x, v, h, lo, c, k: pine.fixnan(x, k),
    "sma": lambda x, v, h, lo, c, k: pine.sma(x, 5, k),
    "sma of 1": lambda x, v, h, lo, c, k: pine.sma(x, 1, k),
    "window_sum": lambda x, v, h, lo, c, k: pine.window_sum(x, 4, k),
    "wma": lambda x, v, h, lo, c, k: pine.wma(x, 4, k),
    "highest": lambda x, v, h, lo, c, k: pine.highest(x, 5, k),
    "lowest": lambda x, v, h, lo, c, k: pine.lowest(x, 3, k),
    "ema": lambda x, v, h, lo, c, k: pine.ema(x, 20, k),
    "rma": lambda x, v, h, lo, c, k: pine.rma(c, 14, k),
    "tr": lambda x, v, h, lo, c, k: pine.tr(h, lo, c, k),
    "stoch": lambda x, v, h, lo, c, k: pine.stoch(c, h, lo, 5, k),
    "rsi": lambda x, v, h, lo, c, k: pine.rsi(c, 5, k),
    "cci": lambda x, v, h, lo, c, k: pine.cci(x, 5, k),
    "dmi": lambda x, v, h, lo, c, k: np.hstack(pine.dmi(h, lo, c, 4, 3, False, TOLERANCE, k)),
    "ta.dmi": lambda x, v, h, lo, c, k: np.hstack(pine.dmi(h, lo, c, 4, 3, True, TOLERANCE, k)),
    "wpr": lambda x, v, h, lo, c, k: pine.wpr(h, lo, c, 5, k),
    "uo": lambda x, v, h, lo, c, k: pine.uo(h, lo, c, 2, 3, 5, TOLERANCE, k),
    "hma": lambda x, v, h, lo, c, k: pine.hma(x, 9, k),
    "vwma": lambda x, v, h, lo, c, k: pine.vwma(x, v, 4, k),
    "donchian": lambda x, v, h, lo, c, k: pine.donchian(h, lo, 5, k),
    "crossover": lambda x, v, h, lo, c, k: pine.crossover(x, c, k),
    "crossunder": lambda x, v, h, lo, c, k: pine.crossunder(x, c, k),
}
"""Each primitive on the inputs (x: a walk with na holes; v: volume with zeros and holes; high, low, close:
bars with flat stretches) and a carry, its outputs side by side (a panel per output, columns concatenated)."""


@st.composite
def histories(draw) -> tuple[list[np.ndarray], list[list[int]]]:
    """Up to three columns of different lengths (x, v, high, low, close each), and where each is cut, often
    in its first bars: the pieces a resume rates one after the other (a piece may be empty)."""
    close, lengths = draw(walks(max_bars=45, holes=False))
    x, _ = draw(walks(max_bars=45))
    x = np.resize(x, close.shape) if x.size else np.full(close.shape, NA)
    reach = np.array(
        draw(st.lists(st.sampled_from([0.0, 0.001, 0.02]), min_size=close.size, max_size=close.size))
    )
    high, low = close * (1.0 + reach.reshape(close.shape)), close * (1.0 - reach.reshape(close.shape)[::-1])
    volume = np.where(np.isnan(x), NA, np.round(x) % 3)
    early = [st.integers(0, min(length, 8)) for length in lengths]  # where seeds and windows fill
    cuts = [
        sorted(draw(st.lists(st.one_of(first, st.integers(0, length)), max_size=3)))
        for first, length in zip(early, lengths, strict=True)
    ]
    panels = [np.ascontiguousarray(panel) for panel in (x, volume, high, low, close)]
    for panel in panels:
        for j, length in enumerate(lengths):
            panel[length:, j] = NA
    return panels, [[0, *cut, length] for cut, length in zip(cuts, lengths, strict=True)]


def rated_in_pieces(primitive, panels: list[np.ndarray], bounds: list[list[int]]) -> np.ndarray:
    """The primitive run piece after piece, each column's next piece left-aligned in the next panel and the
    carried state passed on, reassembled into the full panel's shape (na after each column's end)."""
    rows, columns = panels[0].shape
    state = np.full((1024, columns), NA)
    pieces = max(len(bound) for bound in bounds) - 1
    out = None
    for piece in range(pieces):
        spans = [(b[piece], b[piece + 1]) if piece + 1 < len(b) else (b[-1], b[-1]) for b in bounds]
        ends = np.array([stop - start for start, stop in spans], dtype=np.int64)
        parts = []
        for panel in panels:
            part = np.full((max(ends.max(initial=0), 1), columns), NA)
            for j, (start, stop) in enumerate(spans):
                part[: stop - start, j] = panel[start:stop, j]
            parts.append(part)
        result = primitive(*parts, pine.carry(state, ends))
        result = result.astype(float).reshape(len(part), result.shape[1] // columns, columns)
        if out is None:
            out = np.full((rows, result.shape[1], columns), NA)
        for j, (start, stop) in enumerate(spans):
            out[start:stop, :, j] = result[: stop - start, :, j]
    return out.reshape(rows, out.shape[1] * columns)


@SETTINGS
@given(histories())
def test_every_primitive_resumes_bit_for_bit(history):
    """Each column cut at its own points (at bar 0, inside a window's warm-up, anywhere), each piece rated
    from the state the previous one left: the rows equal those of one run over the whole history, to the
    bit, na where they are na."""
    panels, bounds = history
    lengths = [bound[-1] for bound in bounds]
    for name, primitive in RESUMABLE.items():
        whole = rated_in_pieces(primitive, panels, [[0, length] for length in lengths])
        resumed = rated_in_pieces(primitive, panels, bounds)
        assert np.array_equal(resumed, whole, equal_nan=True), name


def test_every_primitive_resumes_at_every_bar():
    """A fixed history (a walk with flat stretches, a leading na run, na holes and a scale break in x and
    volume; three columns of 70, 61 and 9 bars) cut at every bar, each column at its own: no cut point is
    left to chance, inside any seed or window."""
    rng = np.random.default_rng(7)
    lengths = [70, 61, 9]
    moves = np.where(rng.random((70, 3)) < 0.2, 0.0, rng.normal(0.0, 0.02, (70, 3)))
    close = 100.0 * np.cumprod(1.0 + moves, axis=0)
    x = close * (1.0 + rng.normal(0.0, 0.01, close.shape))
    x[:25, 1] *= 1e6  # a scale break: later windows of small values need the carried prefix's rounding error
    x[:3], x[rng.random(x.shape) < 0.1] = NA, NA
    reach = rng.choice([0.0, 0.001, 0.02], (2, *close.shape))
    panels = [
        x,
        np.where(np.isnan(x), NA, np.round(x) % 3),
        close * (1 + reach[0]),
        close * (1 - reach[1]),
        close,
    ]
    panels = [np.ascontiguousarray(panel) for panel in panels]
    for panel in panels:
        for j, length in enumerate(lengths):
            panel[length:, j] = NA
    for name, primitive in RESUMABLE.items():
        whole = rated_in_pieces(primitive, panels, [[0, length] for length in lengths])
        for cut in range(71):
            bounds = [[0, min((cut + 23 * j) % 71, length), length] for j, length in enumerate(lengths)]
            resumed = rated_in_pieces(primitive, panels, bounds)
            assert np.array_equal(resumed, whole, equal_nan=True), (name, cut)
