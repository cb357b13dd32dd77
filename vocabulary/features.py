"""The one list of feature names. Names follow the TradingView scanner fields, so a row served by asof
can be compared column for column with a scanner capture."""

from typing import Final

RATINGS: Final = ("Recommend.All", "Recommend.MA", "Recommend.Other")

MA_LENGTHS: Final = (10, 20, 30, 50, 100, 200)

MA_VOTES: Final = (
    *(f"Rec.SMA{n}" for n in MA_LENGTHS),
    *(f"Rec.EMA{n}" for n in MA_LENGTHS),
    "Rec.HullMA9",
    "Rec.VWMA",
    "Rec.Ichimoku",
)

OSCILLATOR_VOTES: Final = (
    "Rec.RSI",
    "Rec.Stoch.K",
    "Rec.CCI20",
    "Rec.ADX",
    "Rec.AO",
    "Rec.Mom",
    "Rec.MACD",
    "Rec.Stoch.RSI",
    "Rec.WR",
    "Rec.BBPower",
    "Rec.UO",
)

VOTES: Final = MA_VOTES + OSCILLATOR_VOTES

VALUES: Final = (
    "close",
    *(f"SMA{n}" for n in MA_LENGTHS),
    *(f"EMA{n}" for n in MA_LENGTHS),
    "HullMA9",
    "VWMA",
    "Ichimoku.BLine",
    "RSI",
    "Stoch.K",
    "Stoch.D",
    "CCI20",
    "ADX",
    "ADX+DI",
    "ADX-DI",
    "AO",
    "Mom",
    "MACD.macd",
    "MACD.signal",
    "Stoch.RSI.K",
    "W.R",
    "BBPower",
    "UO",
)

FEATURES: Final = RATINGS + VOTES + VALUES
"""Every feature a run stores, in storage order."""

ROW_META: Final = ("symbol", "ts", "available_at", "bars", "warm")
"""Columns every stored feature row carries besides its features."""


def label(score: float) -> str | None:
    """TradingView's rating label (RATINGS_SPEC section 6); strict bounds, so exactly +-0.1 is Neutral."""
    if score != score:  # NaN: nothing counted
        return None
    if score < -0.5:
        return "Strong Sell"
    if score < -0.1:
        return "Sell"
    if score <= 0.1:
        return "Neutral"
    if score <= 0.5:
        return "Buy"
    return "Strong Buy"
