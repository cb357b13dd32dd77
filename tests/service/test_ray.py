"""The ray executor against the local one, on the session's local Ray (real tasks, real worker processes):
the same run row for row, symbols failing on their own in Ray workers, a worker killed mid-chunk, cancel."""

import os
import signal
import threading
import time
from pathlib import Path
from types import ModuleType

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from service.audit.run import audit_run
from service.backfill import BackfillCancelled, HistoricalFeatureBackfill
from service.sample import SampleFiles, SyntheticUniverse
from storage.catalog import Catalog, RunInfo
from tests.service.test_backfill import assert_unchanged, published, write_bad_lake
from vocabulary.spec import BackfillSpec

UNIVERSE = SyntheticUniverse(n_symbols=24, n_bars=1500, seed=21)
CHUNK = 4 * 1500  # a few symbols per task, so there are several tasks per worker


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleFiles:
    return UNIVERSE.write(tmp_path_factory.mktemp("ray-sample"))


def backfill(data_dir: Path, lake: Path, executor: str, **options) -> RunInfo:
    spec = BackfillSpec(lake=lake, interval="1d", executor=executor, **options)
    return HistoricalFeatureBackfill(data_dir, spec, chunk_bars=CHUNK).run().run


def stored(run: RunInfo) -> pa.Table:
    """Every stored row, in the run's (available_at, symbol) order."""
    return pa.concat_tables([pq.read_table(file) for file in run.files()])


def assert_same_run(ray_run: RunInfo, local_run: RunInfo) -> None:
    ours, theirs = stored(ray_run), stored(local_run)
    assert ours.num_rows == theirs.num_rows > 0
    assert ours.equals(theirs), "the two runs differ in some row or value"
    assert (ray_run.symbols, ray_run.start, ray_run.end, ray_run.rows) == (
        local_run.symbols,
        local_run.start,
        local_run.end,
        local_run.rows,
    )
    catalog_ray, catalog_local = Catalog(ray_run.path.parents[1]), Catalog(local_run.path.parents[1])
    assert catalog_ray.symbol_status(ray_run.run_id) == catalog_local.symbol_status(local_run.run_id)


def test_the_ray_run_equals_the_local_run_and_both_pass_the_audit(
    ray_cluster: ModuleType, sample: SampleFiles, tmp_path: Path
) -> None:
    ray_run = backfill(tmp_path / "ray", sample.lake, "ray", start="2017-01-01")
    local_run = backfill(tmp_path / "local", sample.lake, "local", start="2017-01-01")

    assert (ray_run.spec.executor, local_run.spec.executor) == ("ray", "local")
    assert_same_run(ray_run, local_run)
    for run in (ray_run, local_run):
        report = audit_run(run.path.parents[1], run.run_id, samples=8, checks=("truncation", "serving"))
        assert report.passed, report.to_markdown()


def test_symbols_fail_on_their_own_in_ray_workers(ray_cluster: ModuleType, tmp_path: Path) -> None:
    files, faults = write_bad_lake(tmp_path / "in")

    ray_run = backfill(tmp_path / "ray", files.lake, "ray")
    local_run = backfill(tmp_path / "local", files.lake, "local")

    statuses = {status.symbol: status for status in Catalog(tmp_path / "ray").symbol_status(ray_run.run_id)}
    failed = {symbol for symbol, status in statuses.items() if not status.ok}
    assert failed == {symbol for symbol, fault in faults.items() if fault not in ("flawed", "missing")}
    assert "unreadable" in statuses[next(s for s, f in faults.items() if f == "unreadable")].reason
    assert_same_run(ray_run, local_run)


def ray_task_processes(name: str = "run_chunk") -> list[int]:
    """Ray workers running one of our tasks now (Ray titles a worker `ray::<function>` while it runs one)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(f"ray::{name}".encode()):
            found.append(int(pid))
    return found


def test_a_worker_killed_mid_chunk_loses_no_symbol(
    ray_cluster: ModuleType, sample: SampleFiles, tmp_path: Path
) -> None:
    killed: list[int] = []

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for pid in ray_task_processes():
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    try:
        ray_run = backfill(tmp_path / "ray", sample.lake, "ray")
    finally:
        killer.join()
    local_run = backfill(tmp_path / "local", sample.lake, "local")

    assert killed, "no Ray worker was seen running a chunk"
    assert_same_run(ray_run, local_run)  # the killed chunk was rated again, a symbol per task


def idle(ray: ModuleType) -> bool:
    return ray.available_resources().get("CPU") == ray.cluster_resources()["CPU"]


def test_cancelling_a_ray_backfill_stops_its_tasks_and_publishes_nothing(
    ray_cluster: ModuleType, sample: SampleFiles, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    backfill(data_dir, sample.lake, "local", symbols=UNIVERSE.symbols[:3])
    before = published(data_dir)
    seen: list[int] = []

    def progress(done: int, total: int) -> None:
        seen.append(done)
        assert_unchanged(before, published(data_dir))  # the previous run is served throughout

    spec = BackfillSpec(lake=sample.lake, interval="1d", executor="ray")
    with pytest.raises(BackfillCancelled):
        HistoricalFeatureBackfill(data_dir, spec, chunk_bars=1500).run(
            progress=progress, cancelled=lambda: len(seen) > 1
        )

    assert 0 < seen[-1] < len(UNIVERSE.symbols)
    deadline = time.monotonic() + 10  # Ray's own view of its workers' CPUs lags the cancel a little
    while time.monotonic() < deadline and (ray_task_processes() or not idle(ray_cluster)):
        time.sleep(0.05)
    assert ray_task_processes() == [], "a Ray task still runs after the backfill was cancelled"
    assert idle(ray_cluster), "Ray still holds CPUs for the cancelled backfill's tasks"
    assert_unchanged(before, published(data_dir))
    assert not [name for name in os.listdir(data_dir / "runs") if name.startswith(".staging")]
