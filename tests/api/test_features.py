"""The feature service against a real uvicorn server: a run made through `POST /backfill`, then every read
compared value for value with what `storage.read.FeatureStore` answers for the same arguments."""

import io

import httpx
import pandas as pd
import pyarrow as pa
import pytest

from api.schemas import BatchOut, CrossSectionOut, HistoryOut, JobOut, RunOut
from service.sample import SyntheticUniverse
from storage.read import FeatureStore
from tests.support.server import running_server, wait_for_job
from vocabulary.features import FEATURES, RATINGS, VOTES

UNIVERSE = SyntheticUniverse(n_symbols=12, n_bars=300, seed=1)  # 2015-01-01 .. 2015-10-27, daily
AS_OFS = ["2015-03-01", "2015-06-15T12:00:00+02:00", "2015-10-27T00:00:00Z", "2016-01-01"]
INSTANTS = ("ts", "available_at")


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain values, NA and NaN as None, for comparing with parsed JSON."""
    return [
        {name: None if pd.isna(value) else value for name, value in row.items()}
        for row in frame.to_dict("records")
    ]


def parsed(rows: list[dict]) -> list[dict]:
    """JSON rows with their instants parsed."""
    return [
        {name: pd.Timestamp(value) if name in INSTANTS else value for name, value in row.items()}
        for row in rows
    ]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A server whose only run was made through `POST /backfill`; the client, a store, the finished job."""
    data_dir = tmp_path_factory.mktemp("data")
    UNIVERSE.write(data_dir / "sample")
    with running_server(data_dir) as url, httpx.Client(base_url=url, timeout=60) as client:
        body = {"lake": "sample/lake", "interval": "1d", "candidates": "sample/portfolio_candidates.json"}
        response = client.post("/backfill", json=body)
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/jobs/{job['job_id']}"
        assert job["status"] in {"queued", "running"}
        finished = wait_for_job(client, job["job_id"])
        assert finished["status"] == "succeeded", finished
        yield client, FeatureStore(data_dir), finished


def test_the_backfill_job_reports_its_run_progress_and_counts(served):
    _, store, job = served
    JobOut.model_validate(job)
    assert job["run_id"] == store.catalog.latest_run().run_id
    assert job["progress"] == {"done": UNIVERSE.n_symbols, "total": UNIVERSE.n_symbols}
    assert job["report"]["symbols"] == UNIVERSE.n_symbols
    assert job["report"]["zero_volume"] > 0  # the universe has untraded bars, dropped and counted
    assert job["errors"] == []
    assert job["created"] <= job["started"] <= job["finished"]
    assert job["params"]["interval"] == "1d"


@pytest.mark.parametrize("as_of", AS_OFS)
@pytest.mark.parametrize(
    ("features", "expected"),
    [(None, list(RATINGS)), ("all", list(FEATURES)), ("Rec.RSI,close", ["Rec.RSI", "close"])],
)
def test_a_cross_section_is_what_the_store_answers(served, as_of, features, expected):
    client, store, _ = served
    params = {"as_of": as_of} | ({"features": features} if features else {})
    body = client.get("/features", params=params).raise_for_status().json()
    section = store.cross_section(
        as_of, features=features if features in (None, "all") else features.split(",")
    )
    assert (body["as_of"], body["run_id"], body["interval"]) == (
        section.as_of.isoformat().replace("+00:00", "Z"),
        section.run_id,
        "1d",
    )
    assert body["features"] == expected == section.features
    assert body["stale"] == section.stale
    assert parsed(body["rows"]) == records(section.rows)
    assert [list(row) for row in body["rows"]] == [["symbol", *INSTANTS, "bars", "warm", *expected]] * len(
        body["rows"]
    )


def test_cross_sections_see_listings_and_stale_names(served):
    client, _, _ = served
    early, late = (client.get("/features", params={"as_of": t}).json() for t in ("2015-01-05", "2016-01-01"))
    assert 0 < len(early["rows"]) < UNIVERSE.n_symbols  # late listings had not listed yet
    assert late["rows"] == [] and late["stale"] == sorted(UNIVERSE.symbols)  # two months after the last bar


def test_symbols_select_rows_and_votes_are_ints(served):
    client, _, _ = served
    wanted = UNIVERSE.symbols[:3]
    body = client.get(
        "/features", params={"as_of": AS_OFS[2], "symbols": ",".join(wanted), "features": "all"}
    ).json()
    assert [row["symbol"] for row in body["rows"]] == wanted
    votes = [row[name] for row in body["rows"] for name in VOTES]
    assert {type(vote) for vote in votes} <= {int, type(None)} and set(votes) - {None} <= {-1, 0, 1}
    assert any(vote is not None for vote in votes)


def test_arrow_and_csv_carry_the_same_rows(served):
    client, store, _ = served
    section = store.cross_section(AS_OFS[1], features="all")
    arrow = client.get("/features", params={"as_of": AS_OFS[1], "features": "all", "format": "arrow"})
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(arrow.content).read_all()
    assert table.schema.metadata[b"run_id"] == f'"{section.run_id}"'.encode()
    assert records(table.to_pandas()) == records(section.rows)
    csv = client.get("/features", params={"as_of": AS_OFS[1], "format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.headers["x-asof-run-id"] == section.run_id
    assert csv.headers["x-asof-interval"] == section.interval
    frame = pd.read_csv(io.StringIO(csv.text))
    assert frame["symbol"].tolist() == section.rows["symbol"].tolist()
    expected = store.cross_section(AS_OFS[1]).rows
    pd.testing.assert_frame_equal(frame[list(RATINGS)], expected[list(RATINGS)], check_exact=True)


@pytest.mark.parametrize("form", ["json", "arrow"])
def test_a_batch_equals_the_single_calls(served, form):
    client, _, _ = served
    response = client.post(
        "/features/batch", params={"format": form}, json={"as_of": AS_OFS, "features": "all"}
    )
    singles = [client.get("/features", params={"as_of": t, "features": "all"}).json() for t in AS_OFS]
    if form == "json":
        BatchOut.model_validate(response.json())
        assert response.json()["results"] == singles
        return
    table = pa.ipc.open_stream(response.content).read_all().to_pandas()
    for single in singles:
        rows = table[table["as_of"] == pd.Timestamp(single["as_of"])].drop(columns="as_of")
        assert parsed(single["rows"]) == records(rows)


def test_history_is_what_the_store_answers(served):
    client, store, _ = served
    symbol = UNIVERSE.symbols[0]
    params = {
        "start": "2015-02-01",
        "end": "2015-09-01",
        "as_of": "2015-06-01",
        "features": "Recommend.All,Rec.MACD",
    }
    body = client.get(f"/features/{symbol}/history", params=params).raise_for_status().json()
    HistoryOut.model_validate(body)
    expected = store.history(
        symbol,
        start="2015-02-01",
        end="2015-09-01",
        as_of="2015-06-01",
        features=["Recommend.All", "Rec.MACD"],
    )
    assert (body["symbol"], body["run_id"], body["features"]) == (
        symbol,
        store.catalog.latest_run().run_id,
        ["Recommend.All", "Rec.MACD"],
    )
    assert len(body["rows"]) > 50 and parsed(body["rows"]) == records(expected)
    assert max(pd.Timestamp(row["available_at"]) for row in body["rows"]) <= pd.Timestamp(
        "2015-06-01", tz="UTC"
    )


def test_responses_match_their_documented_schemas(served):
    client, _, _ = served
    CrossSectionOut.model_validate(client.get("/features", params={"as_of": AS_OFS[1]}).json())
    openapi = client.get("/openapi.json").json()
    example = openapi["components"]["schemas"]["BackfillIn"]["examples"][0]
    assert example["lake"] == "lake"


def test_runs_list_the_published_run_and_serve_its_matrix(served):
    client, store, job = served
    runs = client.get("/runs").json()
    assert [run["run_id"] for run in runs] == [job["run_id"]]
    run = RunOut.model_validate(client.get(f"/runs/{job['run_id']}").json())
    assert sorted(run.symbols) == sorted(UNIVERSE.symbols)
    assert run.features == list(FEATURES) and run.interval == "1d"
    matrix = client.get(f"/runs/{job['run_id']}/matrix")
    assert matrix.status_code == 200
    wide = pd.read_parquet(io.BytesIO(matrix.content))
    assert list(wide.columns.names) == ["symbol", "feature"]
    symbol = UNIVERSE.symbols[0]
    history = store.history(symbol, features="all").set_index("ts")
    assert wide[(symbol, "Recommend.All")].dropna().tolist() == history["Recommend.All"].dropna().tolist()


def test_health_names_the_newest_run_its_dataset_and_the_jobs(served):
    client, store, job = served
    health = client.get("/health").json()
    run = store.run(job["run_id"])
    newest = pd.Timestamp(health["datasets"]["lake_1d"].pop("newest_bar"))
    age = health["datasets"]["lake_1d"].pop("age_seconds")
    assert newest == run.end
    assert age == pytest.approx(
        (pd.Timestamp.now(tz="UTC") - run.end - pd.Timedelta(days=1)).total_seconds(), abs=60
    )
    assert health.pop("pid") > 0
    assert health == {
        "status": "ok",
        "problems": [],
        "writer": True,
        "runs": 1,
        "newest_run": job["run_id"],
        "datasets": {"lake_1d": {"run_id": job["run_id"], "interval": "1d"}},
        "jobs": {"queued": 0, "running": 0, "succeeded": 1, "failed": 0, "cancelled": 0, "interrupted": 0},
    }


def test_the_matrix_download_takes_its_features_from_the_query(served):
    client, _, job = served
    response = client.get(f"/runs/{job['run_id']}/matrix", params={"features": "RSI,Rec.RSI"})
    assert response.status_code == 200, response.text
    wide = pd.read_parquet(io.BytesIO(response.content))
    assert sorted(set(wide.columns.get_level_values("feature"))) == ["RSI", "Rec.RSI"]
    assert client.get(f"/runs/{job['run_id']}/matrix", params={"features": "Bogus"}).status_code == 422
