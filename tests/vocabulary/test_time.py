"""The point-in-time rule's formula and the one lag check, as every layer uses them."""

from datetime import timedelta

import pandas as pd
import pytest

from vocabulary.errors import InvalidInput
from vocabulary.time import (
    INTERVALS,
    MAX_LAG,
    NO_LAG,
    available_at,
    check_lag,
    parse_instant,
    parse_interval,
)


def test_available_at_is_the_bar_close_plus_the_lag() -> None:
    ts = pd.Series(pd.to_datetime(["2024-03-01T00:00", "2024-03-04T13:00"], utc=True))
    assert available_at(ts, "1d", pd.Timedelta(0)).tolist() == [
        pd.Timestamp("2024-03-02", tz="UTC"),
        pd.Timestamp("2024-03-05T13:00", tz="UTC"),
    ]
    assert available_at(ts, "1h", pd.Timedelta(minutes=15))[0] == pd.Timestamp("2024-03-01T01:15", tz="UTC")
    one = pd.Timestamp("2024-03-01T00:00Z")
    assert available_at(one, "1W") == pd.Timestamp("2024-03-08T00:00Z")
    assert (
        available_at(pd.DatetimeIndex([one]), "5m") == pd.DatetimeIndex([one + pd.Timedelta(minutes=5)])
    ).all()
    with pytest.raises(InvalidInput, match="lag: must be a duration from 0"):
        available_at(ts, "1d", pd.Timedelta(minutes=-1))
    with pytest.raises(InvalidInput, match="interval: unknown interval '3d'"):
        available_at(ts, "3d", pd.Timedelta(0))


def utc(*instants: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(instants), utc=True))


def test_a_monthly_bar_closes_at_the_next_months_start_whatever_the_months_length() -> None:
    opens = utc("2023-01-01", "2023-02-01", "2024-02-01", "2024-04-01", "2024-12-01")
    assert (
        available_at(opens, "1M").tolist()
        == utc("2023-02-01", "2023-03-01", "2024-03-01", "2024-05-01", "2025-01-01").tolist()
    )
    assert (available_at(opens, "1M") - opens).dt.days.tolist() == [31, 28, 29, 30, 31]
    lagged = available_at(pd.DatetimeIndex(opens), "1M", pd.Timedelta(hours=2))
    assert lagged[2] == pd.Timestamp("2024-03-01T02:00Z")
    assert available_at(pd.Timestamp("2024-02-01T00:00Z"), "1M") == pd.Timestamp("2024-03-01T00:00Z")


def test_a_weekly_bar_opens_on_monday_and_closes_the_next_monday() -> None:
    week = INTERVALS["1W"]
    assert week.open_of(pd.Timestamp("2024-03-10T23:59Z")) == pd.Timestamp("2024-03-04T00:00Z")  # a Sunday
    assert week.open_of(pd.Timestamp("2024-03-11T00:00Z")) == pd.Timestamp("2024-03-11T00:00Z")
    assert available_at(pd.Timestamp("2024-03-11T00:00Z"), "1W") == pd.Timestamp("2024-03-18T00:00Z")


@pytest.mark.parametrize(
    ("name", "ts", "opened"),
    [
        ("1m", "2024-03-01T10:30:59.9Z", "2024-03-01T10:30Z"),
        ("15m", "2024-03-01T10:44Z", "2024-03-01T10:30Z"),
        ("4h", "2024-03-01T03:59Z", "2024-03-01T00:00Z"),
        ("4h", "2024-03-01T10:30Z", "2024-03-01T08:00Z"),
        ("1d", "2024-02-29T23:00Z", "2024-02-29T00:00Z"),
        ("1M", "2024-02-29T23:00Z", "2024-02-01T00:00Z"),
        ("1M", "1969-12-31T12:00Z", "1969-12-01T00:00Z"),
    ],
)
def test_the_open_of_an_instant_is_the_start_of_its_period(name: str, ts: str, opened: str) -> None:
    assert INTERVALS[name].open_of(pd.Timestamp(ts)) == pd.Timestamp(opened)
    assert INTERVALS[name].open_of(utc(ts)).tolist() == [pd.Timestamp(opened)]


@pytest.mark.parametrize(
    ("finer", "coarser", "tiles"),
    [
        *(("1h", "4h", True), ("1d", "1W", True), ("1d", "1M", True), ("1m", "1M", True), ("4h", "1W", True)),
        *(("1W", "1M", False), ("1d", "1d", False), ("1W", "1d", False), ("1M", "1W", False)),
    ],
)
def test_an_interval_tiles_a_coarser_one_when_its_bars_fill_each_period(
    finer: str, coarser: str, tiles: bool
) -> None:
    assert INTERVALS[finer].tiles(INTERVALS[coarser]) is tiles


def test_monthly_staleness_counts_calendar_months() -> None:
    month = INTERVALS["1M"]

    def fresh_from(as_of: str, periods: int, lag: pd.Timedelta = NO_LAG) -> pd.Timestamp:
        return pd.Timestamp(month.fresh_from(pd.Timestamp(as_of), periods, lag), tz="UTC")

    # The January row (available Feb 1) with 5 periods: fresh until June's bar closes, Jul 1.
    assert fresh_from("2024-07-01T00:00Z", 5) == pd.Timestamp("2024-02-01T00:00Z")
    assert fresh_from("2024-07-01T00:00:00.000000001Z", 5) == pd.Timestamp("2024-03-01T00:00Z")
    assert fresh_from("2024-03-01T00:00Z", 0) == pd.Timestamp("2024-03-01T00:00Z")
    assert fresh_from("2024-07-01T00:05Z", 5, pd.Timedelta(minutes=5)) == pd.Timestamp("2024-02-01T00:05Z")
    assert fresh_from("2024-07-01T00:06Z", 5, pd.Timedelta(minutes=5)) == pd.Timestamp("2024-03-01T00:05Z")
    assert month.fresh_from(pd.Timestamp("2024-07-01T00:00Z"), 10**6) < 0  # no overflow far back
    day = INTERVALS["1d"]
    assert day.fresh_from(pd.Timestamp("2024-03-07T12:00Z"), 5) == pd.Timestamp("2024-03-02T12:00Z").value


@pytest.mark.parametrize(
    ("lag", "expected"),
    [
        (pd.Timedelta(0), pd.Timedelta(0)),
        (timedelta(minutes=5), pd.Timedelta(minutes=5)),
        ("PT1H30M", pd.Timedelta(minutes=90)),
        (pd.Timedelta(microseconds=1500), pd.Timedelta(microseconds=1500)),
        (MAX_LAG, MAX_LAG),
    ],
)
def test_the_lag_check_accepts_whole_microseconds_up_to_a_year(lag: object, expected: pd.Timedelta) -> None:
    assert check_lag(lag) == expected


@pytest.mark.parametrize(
    "lag", [pd.Timedelta(-1), pd.Timedelta(nanoseconds=1), MAX_LAG + pd.Timedelta(seconds=1), "soon", pd.NaT]
)
def test_the_lag_check_refuses_anything_else_naming_the_field(lag: object) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_lag(lag)
    assert refused.value.field == "lag"


def test_intervals_and_instants_name_the_field_at_fault() -> None:
    assert list(INTERVALS) == ["1m", "5m", "15m", "30m", "1h", "2h", "4h", "1d", "1W", "1M"]
    assert parse_interval("4h").length == pd.Timedelta(hours=4)
    with pytest.raises(InvalidInput, match="interval: unknown interval '1y'") as refused:
        parse_interval("1y")
    assert refused.value.field == "interval"
    with pytest.raises(
        InvalidInput, match=r"case-sensitive: 1m is a minute, 1M a month\); did you mean '1W'"
    ):
        parse_interval("1w")
    with pytest.raises(InvalidInput, match=r"from_interval: unknown interval '1D'.*did you mean '1d'"):
        parse_interval("1D", field="from_interval")
    assert parse_instant("2024-03-01T02:00+02:00") == pd.Timestamp("2024-03-01T00:00Z")
    with pytest.raises(InvalidInput, match="start: 'then' is not an ISO-8601 instant"):
        parse_instant("then", name="start")
