"""The point-in-time rule's formula and the one lag check, as every layer uses them."""

from datetime import timedelta

import pandas as pd
import pytest

from vocabulary.errors import InvalidInput
from vocabulary.time import MAX_LAG, available_at, check_lag, interval_length, parse_instant


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
    assert interval_length("4h") == pd.Timedelta(hours=4)
    with pytest.raises(InvalidInput, match="interval: unknown interval '1y'") as refused:
        interval_length("1y")
    assert refused.value.field == "interval"
    assert parse_instant("2024-03-01T02:00+02:00") == pd.Timestamp("2024-03-01T00:00Z")
    with pytest.raises(InvalidInput, match="start: 'then' is not an ISO-8601 instant"):
        parse_instant("then", name="start")
