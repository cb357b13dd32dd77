"""Every optimiser answers long-only weights summing to 1, or falls back to equal weight with a reason."""

import numpy as np
import pandas as pd
import pytest

from backtest.optimisers import OPTIMISERS, optimise


def _window(rows: int, assets: int, *, mean: float = 0.0005, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    scale = np.linspace(0.005, 0.03, assets)  # different volatilities, so the optimisers disagree
    return pd.DataFrame(
        rng.normal(mean, 1.0, (rows, assets)) * scale, columns=[f"X:{i}" for i in range(assets)]
    )


@pytest.mark.parametrize("name", list(OPTIMISERS))
def test_weights_are_long_only_and_fully_invested(name: str) -> None:
    window = _window(252, 8)
    allocation = optimise(name, window)
    assert allocation.fallback is None
    assert list(allocation.weights.index) == list(window.columns)
    assert (allocation.weights >= 0).all()
    assert allocation.weights.sum() == pytest.approx(1.0, abs=1e-12)


def test_inverse_volatility_weights_follow_one_over_sigma() -> None:
    window = _window(252, 4)
    inverse = 1.0 / window.std(ddof=1)
    expected = inverse / inverse.sum()
    np.testing.assert_allclose(optimise("inverse-vol", window).weights, expected, rtol=1e-6)


def test_minimum_variance_favours_the_quietest_asset() -> None:
    weights = optimise("min-variance", _window(252, 4)).weights
    assert weights.idxmax() == "X:0"
    assert weights["X:0"] > 0.5


@pytest.mark.parametrize(
    ("window", "name", "reason"),
    [
        (_window(252, 1), "hrp", "one asset"),
        (_window(5, 8), "min-variance", "window of 5 rows is too short for 8 assets"),
        (_window(60, 3).assign(**{"X:1": 0.0}), "risk-parity", "zero variance over the window: X:1"),
        (_window(252, 3, mean=-0.01), "max-sharpe", "max-sharpe failed: ValueError: Cannot optimize"),
    ],
)
def test_degenerate_windows_fall_back_to_equal_weight_with_a_reason(
    window: pd.DataFrame, name: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    allocation = optimise(name, window)
    assert allocation.fallback is not None and allocation.fallback.startswith(reason)
    np.testing.assert_array_equal(allocation.weights, np.full(window.shape[1], 1.0 / window.shape[1]))
    assert f"optimiser {name} fell back to equal weight: {reason}" in caplog.text


def test_unknown_optimiser_and_missing_returns_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown optimizer 'markowitz'; expected one of equal, inverse-vol"):
        optimise("markowitz", _window(10, 2))
    window = _window(10, 2)
    window.iloc[3, 1] = np.nan
    with pytest.raises(ValueError, match="missing or non-finite returns"):
        optimise("hrp", window)
