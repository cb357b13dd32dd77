"""Instants and intervals: the two kinds of time the point-in-time rule is written in, and the rule's one
formula, `available_at = ts + interval + lag`."""

import re
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from vocabulary.errors import InvalidInput

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

NO_LAG: Final = pd.Timedelta(0)
MAX_LAG: Final = pd.Timedelta(days=365)


def interval_length(interval: str) -> pd.Timedelta:
    """The duration of one bar; InvalidInput names the interval and the accepted ones."""
    try:
        return INTERVALS[interval]
    except (KeyError, TypeError):
        raise InvalidInput(
            f"unknown interval {interval!r}; expected one of {', '.join(INTERVALS)}", field="interval"
        ) from None


def check_lag(lag: pd.Timedelta | timedelta | str) -> pd.Timedelta:
    """The publication lag as a Timedelta: from 0 to MAX_LAG, in whole microseconds (the resolution
    `available_at` is stored in). The one lag check of every layer."""
    try:
        lag = pd.Timedelta(lag)
    except (ValueError, TypeError):
        raise InvalidInput(f"cannot read {lag!r} as a duration", field="lag") from None
    if lag is pd.NaT or not NO_LAG <= lag <= MAX_LAG or lag != lag.floor("us"):
        raise InvalidInput(
            f"must be a duration from 0 to {MAX_LAG.days} days in whole microseconds, not {lag}", field="lag"
        )
    return lag


def available_at[T: (pd.Series, pd.DatetimeIndex, pd.Timestamp)](
    ts: T, interval: str, lag: pd.Timedelta = NO_LAG
) -> T:
    """When a bar's features become knowable: its open time `ts` plus one interval (the close) plus `lag`."""
    return ts + interval_length(interval) + check_lag(lag)


def iso(instant: pd.Timestamp | datetime) -> str:
    """An instant as ISO-8601 UTC with a `Z`: how every answer writes time."""
    return pd.Timestamp(instant).tz_convert("UTC").isoformat().replace("+00:00", "Z")


ISO_INSTANT: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?", re.ASCII
)
"""The forms DESIGN.md accepts: `YYYY-MM-DD`, or `YYYY-MM-DDTHH:MM[:SS[.fraction]]` then `Z`, `±HH:MM` or
nothing. Reduced precision (`2020`), basic format (`20200601`), words and local orders are not instants."""


def parse_instant(value: str | datetime | pd.Timestamp, *, name: str = "as_of") -> pd.Timestamp:
    """An ISO-8601 instant in UTC: offsets are converted, no offset means UTC, a bare date is 00:00 UTC.
    Text must be in one of the `ISO_INSTANT` forms; datetimes are taken as they are.

    InvalidInput names the parameter and the offending value, so the API can answer 422 with both.
    """
    if isinstance(value, str) and not ISO_INSTANT.fullmatch(value):
        shown = value if len(value) <= 64 else f"{value[:64]}..."
        raise InvalidInput(
            f"{shown!r} is not an ISO-8601 instant: give YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fraction]] "
            "with Z, +HH:MM or no offset (UTC)",
            field=name,
        )
    if not isinstance(value, str | datetime | np.datetime64):
        raise InvalidInput(f"expected an ISO-8601 instant, not {type(value).__name__}", field=name)
    try:
        instant = pd.Timestamp(value)
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"cannot parse {value!r} as an ISO-8601 instant ({error})", field=name) from None
    if instant is pd.NaT:
        raise InvalidInput(f"cannot parse {value!r} as an ISO-8601 instant", field=name)
    return instant.tz_localize("UTC") if instant.tzinfo is None else instant.tz_convert("UTC")
