"""Metrics and the book's timing against hand computations on tiny cases."""

import numpy as np
import pandas as pd
import pytest

from backtest.metrics import drawdown, performance, periods_per_year
from backtest.simulation import Trade, simulate


def test_metrics_match_a_hand_computation() -> None:
    # 4 bars, 4 bars a year: equity 1.1, 1.045, 1.0659, 0.95931
    returns = pd.Series([0.1, -0.05, 0.02, -0.1])
    metrics = performance(returns, periods_per_year=4, turnover=pd.Series([1.0, 0.5]))
    # mean -0.0075; sample std sqrt(0.022675 / 3) = 0.0869387; downside sqrt((0.05^2 + 0.1^2) / 4) = 0.0559017
    assert metrics["final_equity"] == pytest.approx(0.95931)
    assert metrics["cagr"] == pytest.approx(-0.04069)
    assert metrics["volatility"] == pytest.approx(0.0869387 * 2, rel=1e-6)
    assert metrics["sharpe"] == pytest.approx(-0.0075 / 0.0869387 * 2, rel=1e-6)
    assert metrics["sortino"] == pytest.approx(-0.0075 / 0.0559017 * 2, rel=1e-6)
    assert metrics["max_drawdown"] == pytest.approx(0.95931 / 1.1 - 1)
    assert metrics["calmar"] == pytest.approx(-0.04069 / (1 - 0.95931 / 1.1))
    assert metrics["turnover"] == pytest.approx(1.5)  # 1.5 of the book traded in one year
    assert metrics["turnover_per_rebalance"] == pytest.approx(0.75)
    assert (metrics["periods"], metrics["rebalances"]) == (4, 2)


def test_drawdown_counts_a_loss_from_the_start_as_drawdown() -> None:
    equity = pd.Series([0.9, 1.2, 0.6, 1.3])
    np.testing.assert_allclose(drawdown(equity), [-0.1, 0.0, -0.5, 0.0])


@pytest.mark.parametrize(
    ("index", "interval", "expected"),
    [
        (pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC"), "1d", 365),
        (pd.bdate_range("2024-01-01", periods=30, tz="UTC"), "1d", 252),
        (pd.date_range("2024-01-01", periods=24 * 10, freq="h", tz="UTC"), "1h", 365 * 24),
        (pd.date_range("2024-01-01", periods=20, freq="W-MON", tz="UTC"), "1W", 52),
        (pd.date_range("2023-01-01", periods=20, freq="MS", tz="UTC"), "1M", 12),
    ],
)
def test_periods_per_year_come_from_the_calendar(
    index: pd.DatetimeIndex, interval: str, expected: int
) -> None:
    assert periods_per_year(index, interval) == expected


def _two_assets() -> pd.DataFrame:
    index = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    return pd.DataFrame(
        {"A": [0.0, 0.10, 0.20, -0.10, 0.05], "B": [0.0, -0.05, 0.10, 0.00, 0.10]}, index=index
    )


def test_weights_first_earn_the_row_after_the_decision_and_drift_until_the_next() -> None:
    returns = _two_assets()
    trades = [Trade(1, pd.Series({"A": 0.5, "B": 0.5})), Trade(3, pd.Series({"A": 1.0}))]
    book = simulate(returns, trades, cost_bps=10)
    # row 1: only the entry cost (turnover 1 from cash), not row 1's returns
    # row 2: 0.5 * 0.2 + 0.5 * 0.1; the book is then A 0.60, B 0.55 of 1.15
    # row 3: (0.60 * 0.9 + 0.55 * 1.0) / 1.15 - 1, then the trade: drifted A 0.54/1.09, B 0.55/1.09 -> A 1.0
    # row 4: A alone, 0.05
    traded = abs(1 - 0.54 / 1.09) + 0.55 / 1.09
    expected = [-0.001, 0.15, (1.09 / 1.15) * (1 - traded * 0.001) - 1, 0.05]
    assert list(book.returns.index) == list(returns.index[1:])
    np.testing.assert_allclose(book.returns, expected, rtol=1e-12)
    np.testing.assert_allclose(book.turnover, [1.0, traded], rtol=1e-12)
    np.testing.assert_allclose(book.costs, [0.001, traded * 0.001], rtol=1e-12)


def test_cash_earns_nothing_and_a_missing_return_marks_the_position_unchanged() -> None:
    returns = _two_assets()
    returns.loc[returns.index[2], "A"] = np.nan
    book = simulate(returns, [Trade(1, pd.Series({"A": 0.5}))], cost_bps=0)
    np.testing.assert_allclose(
        book.returns, [0.0, 0.0, (0.5 + 0.5 * 0.9) - 1, (0.5 + 0.45 * 1.05) / 0.95 - 1]
    )
