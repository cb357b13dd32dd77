"""Tokens against a real server: without one 401, a wrong one 403, the read token reads but does not start,
cancel or audit, /health stays open; our own clients send ASOF_API_TOKEN."""

import httpx
import pandas as pd
import pytest

from backtest.client import HttpFeatures
from service.sample import SyntheticUniverse
from tests.support.server import running_server

UNIVERSE = SyntheticUniverse(n_symbols=4, n_bars=300, seed=51)
TOKENS = {"ASOF_API_TOKEN": "write-0123456789abcdef", "ASOF_READ_TOKEN": "read-0123456789abcdef"}


@pytest.fixture(scope="module")
def url(backfilled):
    sample = backfilled(UNIVERSE, inside=True)
    with running_server(sample.data_dir, env=TOKENS) as base_url:
        yield base_url


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_without_a_token_401_with_a_wrong_one_403_health_open(url: str) -> None:
    for path in ("/features", "/runs", "/jobs", "/metrics", "/openapi.json"):
        missing = httpx.get(url + path, params={"as_of": "2015-06-01"})
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer", path
        wrong = httpx.get(url + path, headers=bearer("guess"), params={"as_of": "2015-06-01"})
        assert wrong.status_code == 403, path
        assert TOKENS["ASOF_API_TOKEN"] not in wrong.text
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"{url}/features", headers={"Authorization": "Basic abc"}).status_code == 401


def test_the_api_token_may_do_everything(url: str) -> None:
    write = bearer(TOKENS["ASOF_API_TOKEN"])
    assert httpx.get(f"{url}/features", params={"as_of": "2015-06-01"}, headers=write).status_code == 200
    job = httpx.post(f"{url}/backfill", json={"lake": "sample/lake", "interval": "1d"}, headers=write)
    assert job.status_code == 202, job.text
    assert httpx.delete(f"{url}/jobs/{job.json()['job_id']}", headers=write).status_code in {200, 202, 409}


def test_the_read_token_reads_but_does_not_start_cancel_or_audit(url: str) -> None:
    read = bearer(TOKENS["ASOF_READ_TOKEN"])
    assert httpx.get(f"{url}/features", params={"as_of": "2015-06-01"}, headers=read).status_code == 200
    batch = httpx.post(f"{url}/features/batch", json={"as_of": ["2015-06-01"]}, headers=read)
    assert batch.status_code == 200
    run_id = httpx.get(f"{url}/runs", headers=read).json()[0]["run_id"]
    for method, path, body in (
        ("POST", "/backfill", {"lake": "sample/lake", "interval": "1d"}),
        ("DELETE", "/jobs/0123456789ab", None),
        ("POST", f"/runs/{run_id}/audit", {}),
    ):
        refused = httpx.request(method, url + path, json=body, headers=read)
        assert refused.status_code == 403 and "read token" in refused.json()["detail"], path


def test_our_clients_send_the_token_from_the_environment(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASOF_API_TOKEN", TOKENS["ASOF_API_TOKEN"])
    features = HttpFeatures(url)
    try:
        pinned = features.pin("1d")
        [section] = features.cross_sections([pd.Timestamp("2015-06-01", tz="UTC")], ["Recommend.All"], None)
    finally:
        features.close()
    assert section.run_id == pinned.run_id and len(section.rows) == UNIVERSE.n_symbols
