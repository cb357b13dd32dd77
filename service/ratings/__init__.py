"""TradingView's Technical Ratings rebuilt bar by bar (RATINGS_SPEC.md).

`rate` and `rate_frame` (the panel engine, `service.ratings.engine`) load on first use: the engine compiles
its kernel with numba, and modules that only need the feature names should not pay for that import.
"""

from typing import TYPE_CHECKING

from service.ratings.features import (
    DEFAULT_FEATURES,
    FEATURES,
    MA_VOTES,
    OSCILLATOR_VOTES,
    RATINGS,
    ROW_META,
    VALUES,
    VOTES,
    label,
)

if TYPE_CHECKING:
    from service.ratings.engine import rate, rate_frame

__all__ = [
    "DEFAULT_FEATURES",
    "FEATURES",
    "MA_VOTES",
    "OSCILLATOR_VOTES",
    "RATINGS",
    "ROW_META",
    "VALUES",
    "VOTES",
    "label",
    "rate",
    "rate_frame",
]


def __getattr__(name: str) -> object:
    if name in ("rate", "rate_frame"):
        from service.ratings import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
