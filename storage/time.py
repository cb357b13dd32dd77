"""Instants and intervals: the two kinds of time the point-in-time rule is written in."""

from datetime import datetime
from typing import Final

import pandas as pd

INTERVALS: Final[dict[str, pd.Timedelta]] = {
    "1m": pd.Timedelta(minutes=1),
    "5m": pd.Timedelta(minutes=5),
    "15m": pd.Timedelta(minutes=15),
    "30m": pd.Timedelta(minutes=30),
    "1h": pd.Timedelta(hours=1),
    "2h": pd.Timedelta(hours=2),
    "4h": pd.Timedelta(hours=4),
    "1d": pd.Timedelta(days=1),
    "1W": pd.Timedelta(weeks=1),
}


def interval_length(interval: str) -> pd.Timedelta:
    """The duration of one bar; a ValueError names the interval and the accepted ones."""
    try:
        return INTERVALS[interval]
    except KeyError:
        raise ValueError(f"unknown interval {interval!r}; expected one of {', '.join(INTERVALS)}") from None


def iso(instant: pd.Timestamp | datetime) -> str:
    """An instant as ISO-8601 UTC with a `Z`: how every answer writes time."""
    return pd.Timestamp(instant).tz_convert("UTC").isoformat().replace("+00:00", "Z")


def parse_instant(value: str | datetime | pd.Timestamp, *, name: str = "as_of") -> pd.Timestamp:
    """An ISO-8601 instant in UTC: offsets are converted, no offset means UTC, a bare date is 00:00 UTC.

    A ValueError names the parameter and the offending value, so the API can answer 422 with both.
    """
    try:
        instant = pd.Timestamp(value)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{name}: cannot parse {value!r} as an ISO-8601 instant ({error})") from None
    if instant is pd.NaT:
        raise ValueError(f"{name}: cannot parse {value!r} as an ISO-8601 instant")
    return instant.tz_localize("UTC") if instant.tzinfo is None else instant.tz_convert("UTC")
