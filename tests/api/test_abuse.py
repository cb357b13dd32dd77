"""What a hostile or careless client sends, against a real server: huge bodies, huge reads, numbers JSON
cannot carry, paths that loop, are too long, escape the data dir or block, instants in every wrong form.
Each is refused with a clear 4xx naming what was wrong, quickly, and the server keeps answering."""

import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from service.sample import SyntheticUniverse
from tests.support.server import ServerProcess, running_server, wait_for_job

UNIVERSE = SyntheticUniverse(n_symbols=12, n_bars=400, seed=41)
AS_OF = "2015-12-01"


@pytest.fixture(scope="module")
def server(backfilled, tmp_path_factory):
    """A server over a data dir whose lake folder also holds traps: a symlink out of the data dir named as a
    symbol's file, and a FIFO named as another's; plus a symlink loop, a FIFO candidates file."""
    sample = backfilled(UNIVERSE, inside=True)
    data_dir = sample.data_dir
    secret = tmp_path_factory.mktemp("outside") / "secret.csv"
    secret.write_text("timestamp,open,high,low,close,volume\nTOP-SECRET-CONTENT\n")
    (sample.files.lake / "SYNTH_LEAK_1d.csv").symlink_to(secret)
    os.mkfifo(sample.files.lake / "SYNTH_PIPE_1d.csv")
    (data_dir / "loop").symlink_to(data_dir / "loop")
    os.mkfifo(data_dir / "fifo.json")
    cells = {"ASOF_MAX_READ_CELLS": "200000"}  # scaled to this 12-symbol universe (the default is 2M)
    with running_server(data_dir, env=cells) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, data_dir


def test_an_oversized_body_is_413_before_it_is_read_and_health_stays_quick(server) -> None:
    """Defect 2: a 5 MB JSON body, declared and streamed; the 413 does not echo it."""
    client, _ = server
    body = json.dumps({"as_of": ["2015-06-01"] * 300_000}).encode()
    health_times: list[float] = []

    def probe() -> None:
        for _ in range(20):
            began = time.monotonic()
            assert client.get("/health").status_code == 200
            health_times.append(time.monotonic() - began)

    prober = threading.Thread(target=probe)
    prober.start()
    declared = client.post("/features/batch", content=body, headers={"content-type": "application/json"})
    streamed = client.post(
        "/features/batch",
        content=(body[start : start + 65536] for start in range(0, len(body), 65536)),
        headers={"content-type": "application/json"},
    )
    prober.join()
    for response in (declared, streamed):
        assert response.status_code == 413, response.text[:200]
        assert "ASOF_MAX_BODY_BYTES" in response.json()["detail"] and len(response.content) < 500
    assert max(health_times) < 2.0


def test_one_read_cannot_ask_for_gigabytes(server) -> None:
    """Defect 3: 1,000 instants of every feature of every symbol is refused, naming the limit; a rebalance
    schedule of the three ratings is admitted."""
    client, _ = server
    instants = [f"2015-{month:02d}-{day:02d}" for month in range(1, 13) for day in range(1, 29)][:1000]
    huge = client.post("/features/batch", json={"as_of": instants, "features": ["all"]})
    assert huge.status_code == 422, huge.text[:300]
    assert "ASOF_MAX_READ_CELLS" in huge.text and len(huge.content) < 1000
    schedule = client.post("/features/batch", json={"as_of": instants[:130]})
    assert schedule.status_code == 200 and len(schedule.json()["results"]) == 130


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"as_of": ["2015-06-01"], "max_staleness": NaN}', "max_staleness"),
        ('{"as_of": ["2015-06-01"], "max_staleness": Infinity}', "max_staleness"),
        ('{"as_of": [NaN]}', "as_of"),
        ('{"as_of": ["2015-06-01"], "max_staleness": false}', "max_staleness"),
        ('{"as_of": ["2015-06-01"], "symbols": [-Infinity]}', "symbols"),
    ],
)
def test_numbers_json_cannot_carry_are_422_naming_the_field(server, body: str, field: str) -> None:
    """Defect 5 (rendering the 422 of a NaN failed) and 8 (`false` was taken as 0)."""
    client, _ = server
    response = client.post("/features/batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in json.dumps(response.json()["detail"])


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"lake": "loop"}, "lake", "symlink loop"),
        ({"lake": "x" * 300}, "lake", "too long"),
        ({"lake": "sample/" + "y" * 256 + "/lake"}, "lake", "too long"),
        ({"lake": "sample/lake", "candidates": "fifo.json"}, "candidates", "not a regular file"),
        ({"lake": "sample/lake", "returns": "loop"}, "returns", "symlink loop"),
        ({"lake": "../../etc"}, "lake", "outside the data directory"),
    ],
)
def test_paths_that_loop_are_too_long_escape_or_block_are_422(
    server, body: dict, field: str, says: str
) -> None:
    """Defect 5 and 7: never a 500, never a blocked worker, never the server's absolute path."""
    client, data_dir = server
    began = time.monotonic()
    response = client.post("/backfill", json={"interval": "1d"} | body)
    assert time.monotonic() - began < 5
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail[0]["loc"] == [field] and says in detail[0]["msg"]
    assert str(data_dir.resolve()) not in response.text


def test_lake_files_outside_the_data_dir_are_refused_unread_and_fifos_are_skipped(server) -> None:
    """Defect 7: the symlinked file's content never reaches a response; the FIFO blocks nothing."""
    client, _ = server
    symbols = ["SYNTH:LEAK", "SYNTH:PIPE", UNIVERSE.symbols[0]]
    job = client.post("/backfill", json={"lake": "sample/lake", "interval": "1d", "symbols": symbols}).json()
    finished = wait_for_job(client, job["job_id"], timeout=120)
    assert finished["status"] == "succeeded", finished
    reasons = {error["symbol"]: error["reason"] for error in finished["errors"]}
    assert (
        reasons["SYNTH:LEAK"]
        == "SYNTH:LEAK: SYNTH_LEAK_1d.csv resolves outside the data directory; it was not read"
    )
    assert reasons["SYNTH:PIPE"] == "not found in lake sample/lake (named by the symbols given)"  # not a file
    assert "TOP-SECRET" not in json.dumps(finished)


@pytest.mark.parametrize(
    "as_of",
    ["now", "today", "01/02/2020", "Jan 5 2020", "2020", "20200601", "2020-06-01\x00", "-1", "2020-06-01Z",
     "2020-06-01T10", "\uff12\uff10\uff12\uff10-06-01"],
)  # fmt: skip
def test_only_the_iso_forms_of_design_md_are_instants(server, as_of: str) -> None:
    """Defect 8: every one of these was accepted (`-1` as the year -1)."""
    client, _ = server
    response = client.get("/features", params={"as_of": as_of})
    assert response.status_code == 422, response.text
    assert "is not an ISO-8601 instant" in json.dumps(response.json()["detail"])


@pytest.mark.parametrize(
    "as_of",
    ["2015-12-01", "2015-12-01T00:00", "2015-12-01T00:00:00.5Z", "2015-12-01T03:00:00+03:00",
     "2437-04-13T07:31:32.572Z", "0035-10-29T23:59:59.325426Z"],
)  # fmt: skip
def test_the_iso_forms_are_accepted(server, as_of: str) -> None:
    """Years outside pandas' nanosecond range too (schemathesis found a 500 there)."""
    client, _ = server
    assert client.get("/features", params={"as_of": as_of}).status_code == 200
    assert client.post("/features/batch", json={"as_of": [as_of]}).status_code == 200


def test_options_and_405_name_the_allowed_methods(server) -> None:
    """Defect 8: OPTIONS answered 405 without Allow."""
    client, _ = server
    options = client.options("/backfill")
    assert options.status_code == 204 and options.headers["allow"] == "OPTIONS, POST"
    run_id = client.get("/runs").json()[0]["run_id"]
    assert client.options(f"/runs/{run_id}/audit").headers["allow"] == "GET, OPTIONS, POST"
    wrong = client.put("/features")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "GET, OPTIONS"
    assert client.options("/nowhere").status_code == 404


def test_a_backfill_with_start_and_end_logs_no_serializer_warning(backfilled, tmp_path: Path) -> None:
    """Defect 8: pydantic warned on every POST /backfill with `start`/`end`."""
    sample = backfilled(SyntheticUniverse(n_symbols=2, n_bars=100, seed=3), inside=True)
    server = ServerProcess(sample.data_dir)
    server.start()
    try:
        body = {"lake": "sample/lake", "interval": "1d", "start": "2015-02-01", "end": "2015-03-01T00:00Z"}
        job = httpx.post(f"{server.url}/backfill", json=body).json()
        assert job["params"]["start"] == "2015-02-01T00:00:00+00:00"
        with httpx.Client(base_url=server.url) as client:
            assert wait_for_job(client, job["job_id"])["status"] == "succeeded"
    finally:
        server.stop()
    assert "Warning" not in server.log() and "serializ" not in server.log().lower()
