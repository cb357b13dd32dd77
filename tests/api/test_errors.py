"""Bad input never gets a 500: every mistake a client can make is a 404, 409 or 422 in the one error shape
`{"detail": ...}`, naming what was wrong."""

import json

import httpx
import pytest

from api.schemas import MAX_INSTANTS, MAX_SYMBOLS
from service.sample import SyntheticUniverse
from tests.support.server import running_server, wait_for_job

UNIVERSE = SyntheticUniverse(n_symbols=4, n_bars=120, seed=7)
KNOWN = UNIVERSE.symbols[0]


@pytest.fixture(scope="module")
def client(backfilled):
    data_dir = backfilled(UNIVERSE, inside=True).data_dir
    (data_dir / "empty.json").write_text("[]")
    (data_dir.parent / "outside").mkdir(exist_ok=True)
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


def backfill(**fields) -> dict:
    return {"lake": "sample/lake", "interval": "1d"} | fields


BAD_READS = [
    ("/features", {"as_of": "not-a-date"}, 422, "not-a-date"),
    ("/features", {"as_of": "2024-13-45"}, 422, "2024-13-45"),
    ("/features", {"as_of": "99999-01-01"}, 422, "99999-01-01"),
    ("/features", {"run_id": "20240101T000000Z-abcdef"}, 404, "20240101T000000Z-abcdef"),
    ("/features", {"features": "Recommend.All,Bogus"}, 422, "Bogus"),
    ("/features", {"max_staleness": "-1"}, 422, "max_staleness"),
    ("/features", {"max_staleness": "many"}, 422, "max_staleness"),
    ("/features", {"max_staleness": str(10**30)}, 422, "max_staleness"),
    ("/features", {"format": "xml"}, 422, "format"),
    ("/features", {"symbols": ","}, 422, "symbols"),
    ("/features", {"asof": "2024-01-01"}, 422, "asof"),
    (f"/features/{KNOWN}/history", {"start": "garbage"}, 422, "garbage"),
    (f"/features/{KNOWN}/history", {"run_id": "nope"}, 404, "nope"),
    ("/features/NOPE:XYZ/history", {}, 404, "NOPE:XYZ"),
    ("/runs/nope", {}, 404, "nope"),
    ("/runs/nope/matrix", {}, 404, "nope"),
    ("/jobs/nope", {}, 404, "nope"),
    ("/jobs", {"status": "sleeping"}, 422, "status"),
    ("/jobs", {"limit": "0"}, 422, "limit"),
]


@pytest.mark.parametrize(("path", "params", "status", "named"), BAD_READS)
def test_bad_reads_are_client_errors_naming_the_culprit(client, path, params, status, named):
    response = client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert named in json.dumps(response.json()["detail"])


BAD_BACKFILLS = [
    ({"interval": "1d"}, "lake"),
    (backfill(lake="../outside"), "lake"),
    (backfill(lake="/etc"), "lake"),
    (backfill(lake="nowhere"), "lake"),
    (backfill(interval="3d"), "interval"),
    (backfill(interval=5), "interval"),
    (backfill(symbols=[]), "empty universe"),
    (backfill(symbols=KNOWN), "symbols"),
    (backfill(symbols=[1, 2]), "symbols"),
    (backfill(symbols=[f"SYNTH:X{k}" for k in range(MAX_SYMBOLS + 1)]), "symbols"),
    (backfill(symbols=[KNOWN], candidates="sample/portfolio_candidates.json"), "candidates"),
    (backfill(candidates="empty.json"), "empty universe"),
    (backfill(candidates="sample/lake"), "candidates"),
    (backfill(lag="-PT1H"), "lag"),
    (backfill(lag="P400D"), "lag"),
    (backfill(lag="soon"), "lag"),
    (backfill(keep_zero_volume="maybe"), "keep_zero_volume"),
    (backfill(start="garbage"), "garbage"),
    (backfill(start="2015-03-01", end="2015-02-01"), "end"),
    (backfill(colour="blue"), "colour"),
    (backfill(rules="screener"), "rules"),
    (backfill(history_bars=0), "history_bars"),
    (backfill(history_bars=1.5), "history_bars"),
    (backfill(history_bars=100_001), "history_bars"),
]


@pytest.mark.parametrize(("body", "named"), BAD_BACKFILLS)
def test_bad_backfills_are_422_naming_the_field(client, body, named):
    response = client.post("/backfill", json=body)
    assert response.status_code == 422, response.text
    assert named in json.dumps(response.json()["detail"])


def test_malformed_bodies_are_422(client):
    for path in ("/backfill", "/features/batch"):
        response = client.post(path, content=b"{not json", headers={"content-type": "application/json"})
        assert response.status_code == 422 and "detail" in response.json()


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"as_of": []}, "as_of"),
        ({"as_of": "2015-03-01"}, "as_of"),
        ({"as_of": ["2015-03-01", "yesterday-ish"]}, "yesterday-ish"),
        ({"as_of": ["2015-03-01"] * (MAX_INSTANTS + 1)}, "as_of"),
        ({"as_of": ["2015-03-01"], "features": ["Bogus"]}, "Bogus"),
        ({"as_of": ["2015-03-01"], "run_id": "nope"}, "nope"),
    ],
)
def test_bad_batches_are_client_errors(client, body, named):
    response = client.post("/features/batch", json=body)
    assert response.status_code in {404, 422}, response.text
    assert named in json.dumps(response.json()["detail"])


def test_a_huge_symbol_list_answers_the_known_symbols(client):
    symbols = [f"SYNTH:NOPE{k}" for k in range(5000)] + [KNOWN]
    batch = client.post("/features/batch", json={"as_of": ["2015-03-01"], "symbols": symbols})
    assert batch.status_code == 200
    assert [row["symbol"] for row in batch.json()["results"][0]["rows"]] == [KNOWN]
    single = client.get("/features", params={"as_of": "2015-03-01", "symbols": ",".join(symbols[-1500:])})
    assert [row["symbol"] for row in single.json()["rows"]] == [KNOWN]


def test_a_universe_the_lake_lacks_fails_the_job_with_every_symbol_named(client):
    job_id = client.post("/backfill", json=backfill(symbols=["NOPE:A", "NOPE:B"])).json()["job_id"]
    job = wait_for_job(client, job_id)
    assert job["status"] == "failed" and job["run_id"] is None
    assert [error["symbol"] for error in job["errors"]] == ["NOPE:A", "NOPE:B"]
    assert all("not found" in error["reason"] for error in job["errors"])
    assert "every symbol failed" in job["message"]


def test_an_empty_data_dir_has_no_run_to_serve(tmp_path):
    with running_server(tmp_path) as url, httpx.Client(base_url=url) as client:
        for path in ("/features", f"/features/{KNOWN}/history"):
            response = client.get(path, params={"as_of": "2015-03-01"})
            assert response.status_code == 404 and "no run" in response.json()["detail"]
        assert client.post("/features/batch", json={"as_of": ["2015-03-01"]}).status_code == 404
        assert client.get("/runs").json() == []
        assert client.get("/health").json()["runs"] == 0
