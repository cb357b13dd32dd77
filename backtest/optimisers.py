"""Optimisers on the trailing returns window, from skfolio, with one fallback rule.

Every optimiser answers long-only weights that sum to 1. When the window cannot support it (one asset, too
few rows for a covariance, an asset with zero variance, a solver that fails or answers nonsense) the answer is
equal weight and the reason is logged and returned, so a rebalance log says why it was not optimised.
"""

import logging
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from skfolio.optimization import BaseOptimization

logger = logging.getLogger(__name__)

OPTIMISERS: Final = ("equal", "inverse-vol", "min-variance", "risk-parity", "hrp", "max-sharpe")
"""Optimiser names for the engine and the CLI."""

WEIGHT_TOLERANCE: Final = 1e-6
"""How far a solver's answer may stray below 0 or off a sum of 1 before it counts as a failure."""


@dataclass(frozen=True)
class Allocation:
    weights: pd.Series  # symbol -> weight, long-only, sums to 1, in the window's column order
    fallback: str | None  # why equal weight was used instead of the optimiser asked for; None when it ran


def check_optimiser(name: str) -> str:
    """The name back, or a ValueError naming it and the accepted ones."""
    if name not in OPTIMISERS:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMISERS)}")
    return name


def optimise(name: str, window: pd.DataFrame) -> Allocation:
    """Weights for the window's columns (finite simple returns, one row per bar) by the optimiser `name`."""
    check_optimiser(name)
    if window.shape[1] == 0:
        raise ValueError("cannot optimise an empty selection")
    if not np.isfinite(window.to_numpy()).all():
        raise ValueError("the optimiser window holds missing or non-finite returns")
    reason = _degenerate(name, window)
    if reason is None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                weights = np.asarray(_estimator(name).fit(window).weights_, dtype=float)
            reason = _invalid(weights)
        except Exception as error:  # any solver failure falls back; the reason keeps its message
            reason = f"{name} failed: {type(error).__name__}: {str(error).splitlines()[0]}"
    if reason is not None:
        logger.warning("optimiser %s fell back to equal weight: %s", name, reason)
        weights = np.full(window.shape[1], 1.0)
    weights = np.clip(weights, 0.0, None)
    return Allocation(pd.Series(weights / weights.sum(), index=window.columns, name="weight"), reason)


def _estimator(name: str) -> "BaseOptimization":
    """A fresh long-only, fully invested skfolio estimator. skfolio (with scikit-learn and cvxpy) loads here
    rather than with the module: it costs seconds, and most `asof` commands never optimise."""
    from skfolio.optimization import (
        EqualWeighted,
        HierarchicalRiskParity,
        InverseVolatility,
        MeanRisk,
        ObjectiveFunction,
        RiskBudgeting,
    )

    match name:
        case "equal":
            return EqualWeighted()
        case "inverse-vol":
            return InverseVolatility()
        case "min-variance":
            return MeanRisk()
        case "risk-parity":
            return RiskBudgeting()
        case "hrp":
            return HierarchicalRiskParity()
        case "max-sharpe":
            return MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO)
    raise AssertionError(name)  # check_optimiser has already refused other names


def _degenerate(name: str, window: pd.DataFrame) -> str | None:
    """Why the window cannot support the optimiser, or None."""
    rows, assets = window.shape
    if name == "equal":
        return None
    if assets == 1:
        return "one asset"
    if rows <= assets:
        return f"window of {rows} rows is too short for {assets} assets (needs more rows than assets)"
    flat = window.columns[window.std(ddof=1).to_numpy() <= 0.0]
    if len(flat):
        return f"zero variance over the window: {', '.join(map(str, flat))}"
    return None


def _invalid(weights: np.ndarray) -> str | None:
    """Why a solver's weights are unusable (non-finite, short, not fully invested), or None."""
    if not np.isfinite(weights).all():
        return "solver answered non-finite weights"
    if weights.min() < -WEIGHT_TOLERANCE:
        return f"solver answered a short weight ({weights.min():.3g})"
    if abs(weights.sum() - 1.0) > WEIGHT_TOLERANCE:
        return f"solver weights sum to {weights.sum():.6g}, not 1"
    return None
