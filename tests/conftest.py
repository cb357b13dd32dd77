"""Fixtures shared by the test suite. Helpers that are plain functions live in `tests/support/` and are
imported as `tests.support.<module>`; what needs pytest's temporary folders is here."""

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from service.backfill import HistoricalFeatureBackfill
from service.executors import worker_environment
from service.sample import SampleFiles, SyntheticUniverse
from storage.catalog import RunInfo
from vocabulary.spec import BackfillSpec


@dataclass(frozen=True)
class Backfilled:
    """A written sample universe, the data dir it was backfilled into, and the run that backfill published."""

    files: SampleFiles
    data_dir: Path
    run: RunInfo


@pytest.fixture(scope="session")
def backfilled(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Backfilled]:
    """`backfilled(universe, returns=True)`: write `universe` into a fresh folder and backfill its lake at 1d
    into a data dir, as a user would. `returns`/`candidates` name the sample's files in the spec; `inside`
    writes the sample into the data dir (under `sample/`), where paths named over HTTP must resolve; other
    keywords (`rules`, `history_bars`, `start`) go to the spec as they are."""

    def build(
        universe: SyntheticUniverse,
        *,
        returns: bool = False,
        candidates: bool = False,
        inside: bool = False,
        **spec_options: object,
    ) -> Backfilled:
        root = tmp_path_factory.mktemp("backfilled")
        data_dir = root / "data"
        files = universe.write(data_dir / "sample" if inside else root / "sample")
        spec = BackfillSpec(
            lake=files.lake,
            interval="1d",
            returns=files.returns if returns else None,
            candidates=files.candidates if candidates else None,
            **spec_options,
        )
        return Backfilled(files, data_dir, HistoricalFeatureBackfill(data_dir, spec).run().run)

    return build


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[ModuleType]:
    """One local Ray instance for the whole session (2 CPUs, no dashboard, no usage statistics), joined by
    every backfill that asks for the ray executor in this process. Ray is imported only by the tests that
    use it."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": worker_environment()},
    )
    yield ray
    ray.shutdown()
