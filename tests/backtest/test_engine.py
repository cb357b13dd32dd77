"""The backtest against real stores built by real backfills of seeded synthetic lakes.

Timing (as_of of every decision, first earning row), rotation (dynamic vs static on flippers whose ratings
swap on a known schedule), future poisoning (a lake and returns turned to garbage after T, backfilled again:
every decision at or before T unchanged) and HTTP/local parity through a real uvicorn server.
"""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from backtest.client import FeatureServiceError, HttpFeatures, LocalFeatures
from backtest.engine import Backtest, BacktestResult
from backtest.selection import SelectionPolicy
from service.backfill import HistoricalFeatureBackfill
from service.sample import SampleFiles, SyntheticUniverse
from service.sources.lake import read_returns
from tests.support.server import running_server
from vocabulary.spec import BackfillSpec

UNIVERSE = SyntheticUniverse(n_symbols=10, n_bars=900, flippers=4, flip_bars=150, seed=11)
FLIPPERS = UNIVERSE.symbols[: UNIVERSE.flippers]
POISON_AFTER = UNIVERSE.returns().index[620]
"""T of the poisoning test: every bar and return after it becomes garbage."""


def _backfill(files: SampleFiles, data_dir: Path, lag: pd.Timedelta | None = None) -> str:
    job = HistoricalFeatureBackfill(
        data_dir,
        BackfillSpec(lake=files.lake, interval="1d", returns=files.returns, lag=lag or pd.Timedelta(0)),
    )
    return job.run().run.run_id


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleFiles, Path]:
    root = tmp_path_factory.mktemp("backtest-sample")
    files = UNIVERSE.write(root)
    _backfill(files, root / "data")
    return files, root / "data"


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory: pytest.TempPathFactory) -> tuple[SampleFiles, Path]:
    """The same universe with every bar and return after POISON_AFTER replaced by garbage, backfilled anew."""
    root = tmp_path_factory.mktemp("backtest-poisoned")
    files = UNIVERSE.write(root)
    rng = np.random.default_rng(99)
    for path in sorted(files.lake.iterdir()):
        bars = pq.read_table(path).to_pandas()
        after = pd.to_datetime(bars["timestamp"], unit="s", utc=True) > POISON_AFTER
        garbage = np.exp(rng.uniform(0.0, 12.0, (int(after.sum()), 2)))  # valid bars, wild prices
        bars.loc[after, "open"], bars.loc[after, "close"] = garbage[:, 0], garbage[:, 1]
        bars.loc[after, "high"] = garbage.max(axis=1) * 1.5
        bars.loc[after, "low"] = garbage.min(axis=1) / 1.5
        bars.loc[after, "volume"] = rng.uniform(1.0, 1e9, int(after.sum()))
        bars.to_parquet(path, index=False)
    returns = read_returns(files.returns)
    later = returns.index > POISON_AFTER
    returns.loc[later] = rng.normal(0.0, 5.0, (int(later.sum()), returns.shape[1]))
    returns.to_parquet(files.returns)
    _backfill(files, root / "data")
    return files, root / "data"


def _engine(**overrides: object) -> Backtest:
    parameters: dict[str, object] = {
        "rebalance_every": 25,
        "lookback": 260,
        "policy": SelectionPolicy(top_k=3, threshold=0.1),
        "optimizer": "min-variance",
        "cost_bps": 10.0,
    }
    return Backtest(**{**parameters, **overrides})


def _decisions(result: BacktestResult) -> list[tuple[pd.Timestamp, list[str], dict[str, float]]]:
    return [(r.as_of, r.selection.selected, r.weights.to_dict()) for r in result.rebalances]


def test_every_decision_reads_as_of_its_bar_close_plus_lag(
    sample: tuple[SampleFiles, Path], tmp_path: Path
) -> None:
    files, _ = sample
    returns = read_returns(files.returns)
    lag = pd.Timedelta(hours=3)
    data_dir = tmp_path / "lagged"
    _backfill(files, data_dir, lag)
    result = _engine(lag=lag).run(returns, LocalFeatures(data_dir))
    rows = list(range(260, len(returns) - 1, 25))
    assert [r.row for r in result.rebalances] == rows
    assert [r.as_of for r in result.rebalances] == [
        returns.index[k] + pd.Timedelta(days=1) + lag for k in rows
    ]
    assert {r.run_id for r in result.rebalances} == {LocalFeatures(data_dir).pin("1d").run_id}
    assert result.periods_per_year == 365  # the synthetic calendar trades every day


def test_weights_first_earn_the_row_after_the_decision(sample: tuple[SampleFiles, Path]) -> None:
    files, data_dir = sample
    returns = read_returns(files.returns)
    result = _engine(cost_bps=0.0).run(returns, LocalFeatures(data_dir))
    first, second = result.rebalances[:2]
    assert first.weights.sum() == pytest.approx(1.0)
    assert result.returns.index[0] == returns.index[first.row]
    assert result.returns.iloc[0] == 0.0  # the decision row itself earns nothing
    earned = returns.loc[returns.index[first.row + 1], first.weights.index]
    assert result.returns.iloc[1] == pytest.approx(float(earned @ first.weights), rel=1e-12)
    # and the book drifts: the second row is earned by the weights grown over the first
    grown = first.weights * (1 + earned)
    after = returns.loc[returns.index[first.row + 2], first.weights.index]
    assert result.returns.iloc[2] == pytest.approx(
        float((grown * (1 + after)).sum() / grown.sum() - 1), rel=1e-12
    )
    assert second.row == first.row + 25


def test_dynamic_rotates_with_the_ratings_and_static_does_not(sample: tuple[SampleFiles, Path]) -> None:
    files, data_dir = sample
    returns = read_returns(files.returns)
    engine = {"policy": SelectionPolicy(top_k=2, threshold=None), "optimizer": "equal"}
    features = LocalFeatures(data_dir)
    dynamic = _engine(**engine).run(returns, features, symbols=FLIPPERS)
    static = _engine(**engine, mode="static").run(returns, features, symbols=FLIPPERS)
    schedule = UNIVERSE.regime_schedule()
    checked = 0
    for rebalance in dynamic.rebalances:
        spell = schedule[schedule["ts"] <= rebalance.ts].groupby("symbol").tail(1)
        if (rebalance.ts - spell["ts"].iloc[0]).days < 30:  # ratings need a few weeks to turn
            continue
        bulls = sorted(spell.loc[spell["regime"] == "bull", "symbol"])
        assert sorted(rebalance.selection.selected) == bulls, rebalance.as_of
        checked += 1
    assert checked >= 10
    assert len({tuple(r.selection.selected) for r in dynamic.rebalances}) >= 2
    assert len({tuple(r.selection.selected) for r in static.rebalances}) == 1
    assert {r.as_of for r in static.rebalances} == {returns.index[-1] + pd.Timedelta(days=1)}


def test_future_poisoning_leaves_every_decision_up_to_t_unchanged(
    sample: tuple[SampleFiles, Path], poisoned: tuple[SampleFiles, Path]
) -> None:
    clean = _engine().run(read_returns(sample[0].returns), LocalFeatures(sample[1]))
    dirty = _engine().run(read_returns(poisoned[0].returns), LocalFeatures(poisoned[1]))
    before = [d for d in _decisions(clean) if d[0] <= POISON_AFTER]
    assert len(before) >= 10
    assert [d for d in _decisions(dirty) if d[0] <= POISON_AFTER] == before
    # the poison is real: the decisions after T change
    assert [d for d in _decisions(dirty) if d[0] > POISON_AFTER] != [
        d for d in _decisions(clean) if d[0] > POISON_AFTER
    ]


@pytest.fixture(scope="module")
def service(sample: tuple[SampleFiles, Path]) -> Iterator[str]:
    with running_server(sample[1]) as url:
        yield url


def test_http_and_local_clients_give_identical_decisions(
    sample: tuple[SampleFiles, Path], service: str
) -> None:
    files, data_dir = sample
    returns = read_returns(files.returns)
    local = _engine().run(returns, LocalFeatures(data_dir))
    client = HttpFeatures(service, chunk=7)  # several chunks, all pinned to the run of the first
    remote = _engine().run(returns, client)
    client.close()
    assert _decisions(remote) == _decisions(local)
    assert [r.run_id for r in remote.rebalances] == [r.run_id for r in local.rebalances]
    pd.testing.assert_series_equal(remote.returns, local.returns)


def test_the_service_refusals_become_the_local_errors(service: str) -> None:
    with pytest.raises(LookupError, match="20200101T000000Z-000000"):
        HttpFeatures(service, run_id="20200101T000000Z-000000").pin("1d")
    with pytest.raises(LookupError, match="no published run of 1h bars"):
        HttpFeatures(service).pin("1h")
    with pytest.raises(ValueError, match=r"Recommend\.Al"):
        HttpFeatures(service).cross_sections([pd.Timestamp("2020-01-01", tz="UTC")], ["Recommend.Al"], None)


def test_an_unreachable_service_is_a_clear_error_after_retries() -> None:
    client = HttpFeatures("http://127.0.0.1:9", attempts=2, backoff=0.01)
    with pytest.raises(
        FeatureServiceError,
        match=r"cannot reach the feature service at http://127\.0\.0\.1:9 after 2 attempts",
    ):
        client.pin("1d")


def test_symbols_absent_from_the_run_a_missing_interval_and_another_lag_are_refused(
    sample: tuple[SampleFiles, Path],
) -> None:
    files, data_dir = sample
    returns = read_returns(files.returns).assign(**{"SYNTH:NOPE": 0.0})
    with pytest.raises(ValueError, match=r"1 symbol\(s\) absent from run .*: SYNTH:NOPE"):
        _engine().run(returns, LocalFeatures(data_dir))
    with pytest.raises(ValueError, match=r"holds 1d bars but the backtest is on 1h bars"):
        _engine(interval="1h").run(returns, LocalFeatures(data_dir))  # the dataset's newest run is daily
    later = _engine(lag=pd.Timedelta(hours=3))  # would decide on bars published after row k+1 began
    with pytest.raises(
        ValueError, match=r"publishes bars 0 s after their close but the backtest decides 10800 s"
    ):
        later.run(read_returns(files.returns), LocalFeatures(data_dir))
