"""Do a symbol's bars have the interval they are declared with? A mislabelled interval leaks the future:
daily bars declared `1h` would be served 23 hours before they close. So the bars' open times must lie on the
interval's grid, no two closer than one interval, and their median spacing must be one interval (weekend and
halt gaps do not move a median; daily bars declared `1h` have a median of a day)."""

import numpy as np
import pandas as pd

from vocabulary.time import Interval, iso


def spacing_problem(ts: pd.Series | pd.DatetimeIndex, interval: Interval) -> str | None:
    """What is wrong with bars opening at `ts` (any order, repeats allowed) as bars of `interval`, naming the
    bars or the median at fault; None when nothing is. A backfill refuses the symbol, `asof ratings` warns."""
    index = pd.DatetimeIndex(ts).tz_convert("UTC")
    nanoseconds = index.as_unit("ns").asi8
    if not (nanoseconds[1:] > nanoseconds[:-1]).all():  # np.unique sorts, even what is sorted and unique
        nanoseconds = np.unique(nanoseconds)
    if not interval.months and regular(nanoseconds, interval):
        return None
    return described(nanoseconds, interval)


def described(nanoseconds: np.ndarray, interval: Interval) -> str | None:
    """What is wrong with bars opening at `nanoseconds` (sorted, unique), in words; None when nothing is."""
    opens = pd.DatetimeIndex(nanoseconds.view("datetime64[ns]"), tz="UTC")
    closes = interval.close(opens)
    early = np.flatnonzero(opens[1:] < closes[:-1])
    if len(early):
        at = int(early[0])
        apart = _duration(opens[at + 1] - opens[at])
        return (
            f"bars {apart} apart ({iso(opens[at])} and {iso(opens[at + 1])}) are closer than the declared "
            f"interval {interval}; check the interval and the timestamps' unit"
        )
    off = np.flatnonzero(interval.open_of(opens) != opens)
    if len(off):
        return f"bar at {iso(opens[off[0]])} is off the {interval} grid: its bars open {_grid(interval)}"
    if len(opens) < 2:
        return None
    if interval.months:
        months = opens.tz_convert(None).to_numpy().astype("datetime64[M]").astype(np.int64)
        median = float(np.median(np.diff(months)))
        if median != interval.months:
            return f"the median spacing of the bars is {median:g} months, not the declared {interval}"
        return None
    median = pd.Timedelta(float(np.median(np.diff(opens.asi8))), unit="ns")
    if median != interval.length:
        return f"the median spacing of the bars is {_duration(median)}, not the declared {interval}"
    return None


def regular(opens: np.ndarray, interval: Interval) -> bool:
    """`described(opens, interval) is None` for a fixed-length interval, in integer nanoseconds and without
    naming anything: a backfill asks it of every symbol, and only a symbol that fails is worth the words.
    As every spacing is then at least one length, the median is one length exactly when more than half of
    the spacings are."""
    step, origin = interval.length.value, interval.origin.value
    on_grid = bool(((opens - origin) % step == 0).all())
    if len(opens) < 2:
        return on_grid
    spacing = np.diff(opens)
    return on_grid and bool((spacing >= step).all()) and 2 * int((spacing == step).sum()) > len(spacing)


def _grid(interval: Interval) -> str:
    """Where `interval`'s bars open, in words."""
    if interval.months:
        return "at 00:00 UTC on the 1st of a month"
    if interval.origin.day_of_week == 0:
        return "on Mondays at 00:00 UTC"
    if interval.length == pd.Timedelta(days=1):
        return "at 00:00 UTC"
    return f"at whole multiples of {interval} from 00:00 UTC"


def _duration(delta: pd.Timedelta) -> str:
    """A duration in days, hours, minutes and seconds: `1d`, `4h30m`, `1m26.4s`."""
    parts = delta.components
    text = "".join(f"{value}{unit}" for value, unit in zip(parts[:3], "dhm", strict=True) if value)
    seconds = parts.seconds + parts.milliseconds / 1e3 + parts.microseconds / 1e6 + parts.nanoseconds / 1e9
    return text + f"{seconds:g}s" if seconds or not text else text
