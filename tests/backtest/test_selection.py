"""Selection stages on hand-built cross-sections: eligibility, threshold, ties, top-K, de-duplication."""

import numpy as np
import pandas as pd
import pytest

from backtest.selection import SelectionPolicy, select


def _rows(**scores: tuple[float | None, bool]) -> pd.DataFrame:
    """Cross-section rows as the store serves them: symbol, warm (nullable), a rating (nullable)."""
    return pd.DataFrame(
        {
            "symbol": pd.array(list(scores), dtype="string"),
            "warm": pd.array([warm for _, warm in scores.values()], dtype="boolean"),
            "Recommend.All": pd.array([score for score, _ in scores.values()], dtype="Float64"),
        }
    )


def _window(columns: list[str], rows: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(0, 0.01, (rows, len(columns))), columns=columns)


def test_eligibility_needs_warm_fresh_rows_with_a_full_returns_window() -> None:
    rows = _rows(A=(0.5, True), B=(0.6, False), C=(0.7, True), D=(0.8, True), E=(0.9, True))
    window = _window(["A", "B", "C", "D"])
    window.loc[3, "D"] = np.nan  # a gap inside the window
    selection = select(rows, ["C"], window, SelectionPolicy(threshold=None))
    # B is not warm, C is stale, D misses a return, E has no returns column at all
    assert selection.eligible == ["A"]
    assert selection.selected == ["A"]


def test_threshold_is_strict_and_ranking_breaks_ties_by_symbol() -> None:
    rows = _rows(D=(0.3, True), B=(0.3, True), A=(0.1, True), C=(0.5, True), E=(None, True), F=(0.3, True))
    window = _window(list("ABCDEF"))
    selection = select(rows, [], window, SelectionPolicy(top_k=3, threshold=0.1))
    assert selection.eligible == list("ABCDEF")
    assert selection.passed == ["B", "C", "D", "F"]  # exactly 0.1 is Neutral, not Buy; NaN never passes
    assert selection.ranked == ["C", "B", "D", "F"]
    assert selection.selected == ["C", "B", "D"]


def test_without_threshold_unrated_names_are_not_ranked() -> None:
    rows = _rows(A=(None, True), B=(-0.4, True))
    selection = select(rows, [], _window(["A", "B"]), SelectionPolicy(threshold=None))
    assert selection.passed == ["A", "B"]
    assert selection.selected == ["B"]


def test_correlation_dedup_skips_the_lower_ranked_twin_and_fills_top_k() -> None:
    window = _window(["A", "B", "C", "D"])
    window["B"] = window["A"] * 2.0 + 1e-4  # B is A's twin (correlation 1)
    rows = _rows(A=(0.4, True), B=(0.9, True), C=(0.3, True), D=(0.2, True))
    selection = select(rows, [], window, SelectionPolicy(top_k=2, threshold=None, max_correlation=0.95))
    assert selection.ranked == ["B", "A", "C", "D"]
    assert selection.selected == ["B", "C"]
    assert selection.correlated == ["A"]


def test_policy_rejects_unknown_features_and_bad_bounds() -> None:
    with pytest.raises(ValueError, match=r"rank_by: unknown feature 'Recommend\.Everything'"):
        SelectionPolicy(rank_by="Recommend.Everything")
    with pytest.raises(ValueError, match="top_k must be at least 1, got 0"):
        SelectionPolicy(top_k=0)
    with pytest.raises(ValueError, match="max_correlation must lie in"):
        SelectionPolicy(max_correlation=1.5)
