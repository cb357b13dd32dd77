"""The check that bars have the interval they are declared with: grid, minimum and median spacing."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.sources.spacing import described, regular, spacing_problem
from vocabulary.time import INTERVALS, parse_interval


def opens(*instants: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(instants), utc=True))


def every(start: str, periods: int, freq: str) -> pd.DatetimeIndex:
    return pd.date_range(start, periods=periods, freq=freq, tz="UTC")


@pytest.mark.parametrize(
    ("ts", "interval"),
    [
        (every("2024-01-01", 30, "D"), "1d"),
        (pd.bdate_range("2024-01-01", periods=60, tz="UTC"), "1d"),  # weekends do not move the median
        (every("2024-01-01", 90, "D").delete(range(20, 45)), "1d"),  # nor does a halt
        (every("2024-03-01T09:00", 200, "15min"), "15m"),
        (every("2024-03-01", 30, "4h"), "4h"),
        (every("2024-01-01", 20, "W-MON"), "1W"),  # 2024-01-01 is a Monday
        (every("2023-01-01", 24, "MS"), "1M"),
        (every("2023-01-01", 24, "MS").delete([5, 6, 7]), "1M"),
        (opens("2024-03-01T10:00"), "1h"),  # a single bar on the grid
    ],
)
def test_bars_of_the_declared_interval_pass(ts, interval: str) -> None:
    assert spacing_problem(ts, INTERVALS[interval]) is None


def test_repeated_and_unsorted_timestamps_are_not_bars_closer_than_the_interval() -> None:
    ts = every("2024-01-01", 10, "D")
    assert spacing_problem(ts[[3, 1, 2, 2, 0, 9, 4, 5, 6, 7, 8, 8]], INTERVALS["1d"]) is None


@pytest.mark.parametrize(
    ("ts", "interval", "problem"),
    [
        (
            every("2024-01-01", 30, "D"),
            "1h",
            "the median spacing of the bars is 1d, not the declared 1h",
        ),
        (
            every("2024-01-01", 20, "W-MON"),
            "1d",
            "the median spacing of the bars is 7d, not the declared 1d",
        ),
        (
            every("2023-01-01", 12, "2MS"),
            "1M",
            "the median spacing of the bars is 2 months, not the declared 1M",
        ),
        (  # daily epoch seconds divided by 1000
            pd.to_datetime(1_704_067_200 / 1000 + 86.4 * pd.RangeIndex(30), unit="s", utc=True),
            "1d",
            "bars 1m26.4s apart (1970-01-20T17:21:07.200000Z and 1970-01-20T17:22:33.600000Z) are closer "
            "than the declared interval 1d; check the interval and the timestamps' unit",
        ),
        (
            opens("2024-02-01", "2024-02-29"),
            "1M",
            "bars 28d apart (2024-02-01T00:00:00Z and 2024-02-29T00:00:00Z) are closer than the declared "
            "interval 1M; check the interval and the timestamps' unit",
        ),
        (
            opens("2024-03-01T09:00", "2024-03-01T10:30", "2024-03-01T11:30"),
            "1h",
            "bar at 2024-03-01T10:30:00Z is off the 1h grid: its bars open at whole multiples of 1h from "
            "00:00 UTC",
        ),
        (
            opens("2024-03-01T14:30", "2024-03-04T14:30"),
            "1d",
            "bar at 2024-03-01T14:30:00Z is off the 1d grid: its bars open at 00:00 UTC",
        ),
        (
            opens("2024-03-04", "2024-03-12"),
            "1W",
            "bar at 2024-03-12T00:00:00Z is off the 1W grid: its bars open on Mondays at 00:00 UTC",
        ),
        (
            opens("2024-01-01", "2024-02-15"),
            "1M",
            "bar at 2024-02-15T00:00:00Z is off the 1M grid: its bars open at 00:00 UTC on the 1st of a "
            "month",
        ),
    ],
)
def test_bars_of_another_interval_are_named_with_what_is_wrong(ts, interval: str, problem: str) -> None:
    assert spacing_problem(ts, INTERVALS[interval]) == problem


@settings(max_examples=300, deadline=None)
@given(
    interval=st.sampled_from([name for name in INTERVALS if not parse_interval(name).months]),
    steps=st.lists(st.sampled_from([0, 1, 1, 1, 2, 3, 7]), max_size=12),
    offset=st.sampled_from([0, 0, 0, 1, 30]),
    first=st.integers(-3, 3),
)
def test_the_quick_verdict_agrees_with_the_worded_one(interval: str, steps, offset: int, first: int) -> None:
    """`regular` (what a backfill asks of every symbol) is `described(...) is None`, on grids and off them,
    with repeats, gaps and bars closer than one interval."""
    bar = parse_interval(interval)
    step, origin = bar.length.value, bar.origin.value
    positions = np.cumsum([first, *steps])
    nanoseconds = np.unique(origin + positions * step + offset * 60_000_000_000 * (positions % 2))
    assert regular(nanoseconds, bar) == (described(nanoseconds, bar) is None)
