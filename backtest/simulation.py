"""The book between decisions: weights set at the close of row k earn rows k+1 ... and drift with prices.

Pure arithmetic on a returns matrix, so the timing rule can be checked by hand: a decision at row k never
earns row k, trading costs are charged at row k on the traded fraction of the book, and whatever is not
invested is cash that earns nothing.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Trade:
    row: int  # the decision row k (position in the returns matrix)
    weights: pd.Series  # target weights at the close of row k; long-only, sum <= 1 (the rest is cash)


@dataclass(frozen=True)
class Book:
    returns: pd.Series  # net return of every row from the first decision row to the last row
    turnover: list[float]  # per trade: sum of |target - drifted| weights, the traded fraction of the book
    costs: list[float]  # per trade: the fraction of the book paid in costs


def simulate(returns: pd.DataFrame, trades: Sequence[Trade], *, cost_bps: float) -> Book:
    """Hold each trade's weights from row k+1 until the next trade's row, drifting with the assets' returns.

    A missing return of a held asset (a gap or a delisting) counts as 0: the position is marked unchanged.
    """
    if not trades:
        raise ValueError("no rebalance to simulate")
    rows = [trade.row for trade in trades]
    if rows != sorted(set(rows)) or rows[-1] >= len(returns):
        raise ValueError(f"trade rows must be increasing and inside the {len(returns)} returns rows: {rows}")
    values = returns.to_numpy(dtype=float)
    net = np.zeros(len(returns) - rows[0])
    drifted = pd.Series(dtype=float)
    turnover: list[float] = []
    costs: list[float] = []
    for trade, end in zip(trades, [*rows[1:], len(returns) - 1], strict=True):
        traded = float(trade.weights.sub(drifted, fill_value=0.0).abs().sum())
        cost = traded * cost_bps / 1e4
        turnover.append(traded)
        costs.append(cost)
        offset = trade.row - rows[0]
        net[offset] = (1.0 + net[offset]) * (1.0 - cost) - 1.0
        held = returns.columns.get_indexer(trade.weights.index)
        if (held < 0).any():
            missing = list(trade.weights.index[held < 0])
            raise ValueError(
                f"the trade at row {trade.row} holds symbols without a returns column: {missing}"
            )
        growth = np.cumprod(1.0 + np.nan_to_num(values[trade.row + 1 : end + 1, held]), axis=0)
        cash = 1.0 - float(trade.weights.sum())
        value = np.concatenate([[1.0], cash + growth @ trade.weights.to_numpy()])
        net[offset + 1 : end - rows[0] + 1] = value[1:] / value[:-1] - 1.0
        final_growth = growth[-1] if len(growth) else np.ones(len(trade.weights))
        drifted = trade.weights * final_growth / value[-1]
    return Book(pd.Series(net, index=returns.index[rows[0] :], name="return"), turnover, costs)
