"""Instants and intervals: the two kinds of time the point-in-time rule is written in, and the rule's one
formula, `available_at = ts + interval + lag`."""

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import numpy as np
import pandas as pd

from vocabulary.errors import InvalidInput

type Instants = pd.Series | pd.DatetimeIndex | pd.Timestamp

EPOCH: Final = pd.Timestamp(0, tz="UTC")
NO_LAG: Final = pd.Timedelta(0)
MAX_LAG: Final = pd.Timedelta(days=365)
_DAY_NS: Final = 86_400 * 10**9


@dataclass(frozen=True)
class Interval:
    """One bar interval: the grid its bars open on and the close of each bar.

    A fixed-length interval tiles time in steps of `length` from `origin` (the Unix epoch; a Monday for the
    week, which TradingView opens on Monday 00:00 UTC). A calendar interval (`months` > 0) opens at 00:00 UTC
    on the 1st of a month and closes at the next one, so its length is calendar arithmetic; its `length` is
    then the mean Gregorian month, a nominal figure for sampling windows and periods per year only.
    """

    name: str
    length: pd.Timedelta
    months: int = 0
    origin: pd.Timestamp = EPOCH

    def __str__(self) -> str:
        return self.name

    def close[T: (pd.Series, pd.DatetimeIndex, pd.Timestamp)](self, ts: T) -> T:
        """When the bar opened at `ts` closes: `ts` plus one interval (calendar months for `1M`)."""
        return ts + (pd.DateOffset(months=self.months) if self.months else self.length)

    def open_of[T: (pd.Series, pd.DatetimeIndex, pd.Timestamp)](self, ts: T) -> T:
        """The open time of the period that contains `ts` (`ts` itself when it lies on the grid)."""
        index = _index(ts)
        if self.months:
            months = index.tz_convert(None).to_numpy().astype("datetime64[M]").astype(np.int64)
            starts = _month_starts_ns(months // self.months * self.months)
        else:
            step, origin = self.length.value, self.origin.value
            starts = (index.as_unit("ns").asi8 - origin) // step * step + origin
        opened = pd.DatetimeIndex(starts.view("datetime64[ns]"), tz="UTC").as_unit(index.unit)
        return _like(ts, opened)

    def opens(self, start: pd.Timestamp, count: int) -> pd.DatetimeIndex:
        """The open times of `count` consecutive bars, from the first that opens at or after `start`."""
        first = self.open_of(start)
        first = first if first >= start else self.close(first)
        if self.months:
            return pd.date_range(first, periods=count, freq=f"{self.months}MS")
        return pd.DatetimeIndex(first + self.length * np.arange(count))

    def fresh_from(self, as_of: pd.Timestamp, periods: int, lag: pd.Timedelta = NO_LAG) -> int:
        """The earliest `available_at` still fresh at `as_of`, in nanoseconds since the epoch (a Python int,
        so no window overflows): a row is stale once `as_of` passes the `available_at` of the bar `periods`
        intervals after its own. For a fixed length that is `as_of - available_at > periods * length`; for
        months it counts calendar months (the row of January, published Feb 1, is fresh with `periods=5`
        until the close of June, Jul 1)."""
        instant = nanoseconds(as_of)
        if not self.months:
            return instant - periods * self.length.value
        # available_at - lag lies on the month grid: compare it with the first month start at or after
        # as_of - lag, moved back `periods` intervals (month indices, so centuries back do not overflow).
        bound = instant - lag.value
        month = int(np.datetime64(bound // 1000, "us").astype("datetime64[M]").astype(np.int64))
        if _month_start(month) < bound:
            month += 1
        return _month_start(month - periods * self.months) + lag.value

    def bars_between(self, first: pd.Timestamp, last: pd.Timestamp) -> int:
        """At most how many bars open in [first, last]: what sizes a read before it is made."""
        if last < first:
            return 0
        if self.months:
            return ((last.year - first.year) * 12 + last.month - first.month) // self.months + 1
        return (last - first) // self.length + 1

    def tiles(self, coarser: "Interval") -> bool:
        """Whether every bar of `coarser` is a whole number of bars of this finer interval: fixed lengths
        whose grids meet (4h into 1W), any interval that divides a day into months, not weeks into months."""
        if self.months:
            return coarser.months > self.months and coarser.months % self.months == 0
        if coarser.months:
            return pd.Timedelta(days=1) % self.length == pd.Timedelta(0) and self.origin == EPOCH
        return (
            coarser.length > self.length
            and coarser.length % self.length == pd.Timedelta(0)
            and (coarser.origin - self.origin) % self.length == pd.Timedelta(0)
        )


_MONDAY: Final = pd.Timestamp("1970-01-05", tz="UTC")
_MINUTE, _HOUR = pd.Timedelta(minutes=1), pd.Timedelta(hours=1)

INTERVALS: Final[dict[str, Interval]] = {
    interval.name: interval
    for interval in (
        Interval("1m", _MINUTE),
        Interval("5m", 5 * _MINUTE),
        Interval("15m", 15 * _MINUTE),
        Interval("30m", 30 * _MINUTE),
        Interval("1h", _HOUR),
        Interval("2h", 2 * _HOUR),
        Interval("4h", 4 * _HOUR),
        Interval("1d", pd.Timedelta(days=1)),
        Interval("1W", pd.Timedelta(weeks=1), origin=_MONDAY),
        Interval("1M", pd.Timedelta(days=365.2425) / 12, months=1),
    )
}
"""The intervals TradingView's scanner rates, by name. Names are case-sensitive: `1m` is a minute, `1M` a
month."""


def parse_interval(name: str | Interval, *, field: str = "interval") -> Interval:
    """The interval named `name`; InvalidInput names the field, the accepted names and, for a name that
    differs only in case, the one meant (`1w` -> `1W`)."""
    if isinstance(name, Interval):
        return name
    try:
        return INTERVALS[name]
    except (KeyError, TypeError):
        pass
    meant = [known for known in INTERVALS if isinstance(name, str) and known.lower() == name.lower()]
    hint = f"; did you mean {meant[0]!r}?" if meant else ""
    raise InvalidInput(
        f"unknown interval {name!r}; expected one of {' '.join(INTERVALS)} (case-sensitive: 1m is a minute, "
        f"1M a month){hint}",
        field=field,
    )


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
    ts: T, interval: str | Interval, lag: pd.Timedelta = NO_LAG
) -> T:
    """When a bar's features become knowable: the close of the bar opened at `ts` (one interval later, in
    calendar months for `1M`) plus `lag`."""
    return parse_interval(interval).close(ts) + check_lag(lag)


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


def _index(ts: Instants) -> pd.DatetimeIndex:
    """Instants as a UTC DatetimeIndex (naive means UTC)."""
    index = pd.DatetimeIndex([ts] if isinstance(ts, pd.Timestamp) else ts)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _like[T: (pd.Series, pd.DatetimeIndex, pd.Timestamp)](original: T, index: pd.DatetimeIndex) -> T:
    """`index` in the shape (and time zone) of `original`."""
    if isinstance(original, pd.Timestamp):
        instant = index[0]
        return instant if original.tzinfo is not None else instant.tz_localize(None)
    if isinstance(original, pd.Series):
        values = index if original.dt.tz is not None else index.tz_localize(None)
        return pd.Series(values, index=original.index, name=original.name)
    return index if original.tz is not None else index.tz_localize(None)


def _month_starts_ns(months: np.ndarray) -> np.ndarray:
    """00:00 UTC on the 1st of each month (months since 1970-01), in nanoseconds since the epoch."""
    return months.astype("datetime64[M]").astype("datetime64[ns]").astype(np.int64)


def _month_start(month: int) -> int:
    """00:00 UTC on the 1st of one month (months since 1970-01) in nanoseconds, as a Python int (any year)."""
    return int(np.datetime64(month, "M").astype("datetime64[D]").astype(np.int64)) * _DAY_NS


_NANOSECONDS: Final = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}


def nanoseconds(instant: pd.Timestamp) -> int:
    """Exact nanoseconds since the epoch, whatever the Timestamp's unit (a Python int cannot overflow)."""
    return int(instant.to_datetime64().view(np.int64)) * _NANOSECONDS[instant.unit]
