"""Selection stages re-run at every rebalance: eligibility, threshold, rank, top-K, de-duplication.

Each stage narrows the previous one and the result keeps every stage's survivors, so a rebalance log can say
why a symbol was or was not held. Nothing here knows the time: the caller hands in a cross-section already
cut at the decision's `as_of` and a returns window already cut at row k.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd

from vocabulary.features import FEATURES


@dataclass(frozen=True)
class SelectionPolicy:
    """Which candidates to hold: `threshold_on > threshold` (None: no threshold), ranked by `rank_by` from
    high to low (ties by symbol), the first `top_k`, skipping any whose trailing correlation with a
    better-ranked pick exceeds `max_correlation` (None: no de-duplication)."""

    rank_by: str = "Recommend.All"
    top_k: int = 10
    threshold: float | None = 0.1
    threshold_on: str = "Recommend.All"
    max_correlation: float | None = None

    def __post_init__(self) -> None:
        for field, name in (("rank_by", self.rank_by), ("threshold_on", self.threshold_on)):
            if name not in FEATURES:
                raise ValueError(f"{field}: unknown feature {name!r}")
        if self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")
        if self.max_correlation is not None and not -1.0 <= self.max_correlation <= 1.0:
            raise ValueError(f"max_correlation must lie in [-1, 1], got {self.max_correlation}")

    @property
    def features(self) -> list[str]:
        """The features the policy reads, in a stable order."""
        return list(dict.fromkeys((self.rank_by, self.threshold_on)))


@dataclass(frozen=True)
class Selection:
    eligible: list[str]  # in the cross-section, warm, not stale, finite returns over the whole window; sorted
    passed: list[str]  # eligible and above the threshold; sorted
    ranked: list[str]  # passed with a rank value, best first
    selected: list[str]  # the picks, best first
    correlated: list[str]  # ranked names skipped for correlation before top_k was filled, best first


def select(rows: pd.DataFrame, stale: list[str], window: pd.DataFrame, policy: SelectionPolicy) -> Selection:
    """Run the stages on one cross-section's rows (`symbol`, `warm`, the policy's features) and a returns
    window (columns: the universe; rows: the trailing bars up to the decision row)."""
    symbols = rows["symbol"].to_numpy(dtype=str)
    covered = set(window.columns[np.isfinite(window.to_numpy(dtype=float)).all(axis=0)]) - set(stale)
    usable = rows["warm"].to_numpy(dtype=bool, na_value=False) & np.isin(symbols, list(covered))
    eligible = sorted(symbols[usable].tolist())
    if policy.threshold is not None:
        usable &= _values(rows, policy.threshold_on) > policy.threshold  # NaN is never above
    passed = sorted(symbols[usable].tolist())
    rank = _values(rows, policy.rank_by)
    rankable = usable & ~np.isnan(rank)
    order = np.lexsort((symbols[rankable], -rank[rankable]))  # by rank descending, then by symbol
    ranked = symbols[rankable][order].tolist()
    selected, correlated = _take(ranked, window, policy)
    return Selection(eligible, passed, ranked, selected, correlated)


def _values(rows: pd.DataFrame, feature: str) -> np.ndarray:
    """A feature as float64 with NaN for not-available (votes arrive as nullable integers)."""
    return rows[feature].to_numpy(dtype=float, na_value=np.nan)


def _take(ranked: list[str], window: pd.DataFrame, policy: SelectionPolicy) -> tuple[list[str], list[str]]:
    """Walk the ranking best first, keeping a name unless it is too correlated with one already kept."""
    if policy.max_correlation is None:
        return ranked[: policy.top_k], []
    values = window[ranked].to_numpy(dtype=float)
    centred = values - values.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        standardised = centred / np.sqrt((centred**2).sum(axis=0))  # a flat column is NaN: never a duplicate
    kept: list[int] = []
    skipped: list[str] = []
    for position, symbol in enumerate(ranked):
        if len(kept) == policy.top_k:
            break
        correlation = standardised[:, kept].T @ standardised[:, position]
        if np.any(correlation > policy.max_correlation):
            skipped.append(symbol)
        else:
            kept.append(position)
    return [ranked[i] for i in kept], skipped
