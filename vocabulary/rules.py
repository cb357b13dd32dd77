"""How a run rates: which of TradingView's rule sets, and over how much history. The ratings changed over
time and differ between the screener and the chart indicator; docs/RATINGS.md has each rule set's table and
its sources."""

from numbers import Integral
from typing import Final

from vocabulary.errors import InvalidInput

RULE_SETS: Final = ("scanner", "chart", "legacy")
"""`scanner`: the screener's rules since December 2024 (RATINGS_SPEC sections 4-5). `chart`: the chart
indicator's TechnicalRating library v3. `legacy`: the screener's rules before December 2024 (after the
October 2024 Ichimoku fix)."""

DEFAULT_RULES: Final = "scanner"

MAX_HISTORY_BARS: Final = 100_000
"""Far beyond any history TradingView rates over; a window costs its length in work for every bar."""


def check_rules(rules: str) -> str:
    """The rule set's name, or InvalidInput naming the accepted ones."""
    if rules not in RULE_SETS:
        raise InvalidInput(
            f"unknown rule set {rules!r}; expected one of {', '.join(RULE_SETS)}", field="rules"
        )
    return rules


def check_history_bars(history_bars: int | None) -> int | None:
    """None (every bar rated over all the history before it) or a whole number of bars from 1 to
    MAX_HISTORY_BARS (each bar rated over at most that many bars up to it, warm-up included); InvalidInput
    otherwise."""
    if history_bars is None:
        return None
    if (
        isinstance(history_bars, bool)
        or not isinstance(history_bars, Integral)
        or not 1 <= history_bars <= MAX_HISTORY_BARS
    ):
        raise InvalidInput(
            f"must be a whole number of bars from 1 to {MAX_HISTORY_BARS}, or absent for all history, "
            f"not {history_bars!r}",
            field="history_bars",
        )
    return int(history_bars)
