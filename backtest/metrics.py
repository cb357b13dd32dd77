"""Performance figures from per-bar portfolio returns, annualised with the calendar's bar count."""

import math

import numpy as np
import pandas as pd

from vocabulary.time import parse_interval

TRADING_DAYS: int = 252
CALENDAR_DAYS: int = 365
GREGORIAN_YEAR = pd.Timedelta(days=365.2425)


def periods_per_year(index: pd.DatetimeIndex, interval: str) -> float:
    """Bars per year: 365 trading days when the calendar has weekend bars, else 252, times the median number
    of bars per day for intraday intervals; a year over the (nominal) length, rounded, for weekly and monthly
    bars: 52 and 12, whatever the market's calendar."""
    step = parse_interval(interval).length
    if step >= pd.Timedelta(weeks=1):
        return float(round(GREGORIAN_YEAR / step))
    days = CALENDAR_DAYS if (index.day_of_week >= 5).any() else TRADING_DAYS
    if step >= pd.Timedelta(days=1):
        return float(days)
    bars_per_day = float(pd.Series(1, index=index).groupby(index.normalize()).size().median())
    return days * bars_per_day


def performance(returns: pd.Series, *, periods_per_year: float, turnover: pd.Series) -> dict[str, float]:
    """CAGR, volatility, Sharpe and Sortino (risk-free 0), max drawdown (a negative fraction), Calmar, and
    turnover (traded fraction of the book: per year and per rebalance) from per-bar net returns."""
    r = returns.to_numpy(dtype=float)
    periods = len(r)
    years = periods / periods_per_year
    equity = (1.0 + returns.astype(float)).cumprod()
    final = float(equity.iloc[-1]) if periods else 1.0
    cagr = final ** (1.0 / years) - 1.0 if years > 0 and final > 0 else math.nan
    mean = float(r.mean()) if periods else math.nan
    std = float(r.std(ddof=1)) if periods > 1 else math.nan
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) if periods else math.nan
    max_drawdown = float(drawdown(equity).min()) if periods else 0.0
    root = math.sqrt(periods_per_year)
    return {
        "cagr": cagr,
        "volatility": std * root,
        "sharpe": _ratio(mean, std) * root,
        "sortino": _ratio(mean, downside) * root,
        "max_drawdown": max_drawdown,
        "calmar": _ratio(cagr, -max_drawdown),
        "turnover": float(turnover.sum()) / years if years > 0 else math.nan,
        "turnover_per_rebalance": float(turnover.mean()) if len(turnover) else math.nan,
        "final_equity": final,
        "periods": periods,
        "periods_per_year": float(periods_per_year),
        "rebalances": len(turnover),
    }


def drawdown(equity: pd.Series) -> pd.Series:
    """Fraction below the running peak (the peak includes the starting value 1)."""
    return equity / np.maximum(equity.cummax(), 1.0) - 1.0


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan
