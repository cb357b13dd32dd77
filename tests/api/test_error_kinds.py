"""Errors are answered by kind (`vocabulary.errors`), on a real uvicorn server: only asof's own invalid-input
errors are a 422; a ValueError from anywhere else is a bug, answered 500 without its text and logged."""

import logging
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from api import errors
from service.jobs.runner import DuplicateJob
from service.jobs.store import Job, JobStatus
from storage.catalog import CatalogLocked, RunNotFound
from tests.support.server import free_port
from vocabulary.errors import InvalidInput
from vocabulary.spec import AuditSpec

RAISED = {
    "/not-found": RunNotFound("20240101T000000Z-abcdef"),
    "/invalid": InvalidInput("must be positive", field="samples"),
    "/invalid-whole": InvalidInput("the universe is empty"),
    "/unavailable": CatalogLocked("catalog stayed locked by another process for 10 s"),
    "/conflict": DuplicateJob(
        Job("0123456789ab", JobStatus.RUNNING, AuditSpec("r"), 0, None, [], {}, "r", None, None, None, None)
    ),
    "/bug": ValueError("secret internals: cannot convert float NaN to integer"),
}


def raising(error: Exception) -> Callable[[], None]:
    def route() -> None:
        raise error

    return route


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    app = FastAPI()
    for path, error in RAISED.items():
        app.add_api_route(path, raising(error))
    errors.install(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/not-found", 404, "unknown run '20240101T000000Z-abcdef'"),
        ("/invalid", 422, [{"loc": ["samples"], "msg": "must be positive", "type": "invalid_input"}]),
        ("/invalid-whole", 422, "the universe is empty"),
        ("/unavailable", 503, "catalog stayed locked by another process for 10 s"),
        ("/conflict", 409, "an identical audit is already running as job 0123456789ab"),
        ("/bug", 500, "internal server error; the server log has the details"),
    ],
)
def test_each_kind_has_its_status(url: str, path: str, status: int, detail: object) -> None:
    response = httpx.get(url + path)
    assert response.status_code == status
    assert response.json()["detail"] == detail
    if status == 409:
        assert (response.json()["job_id"], response.headers["location"]) == (
            "0123456789ab",
            "/jobs/0123456789ab",
        )


def test_a_bug_is_logged_not_shown(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="api.errors"):
        response = httpx.get(url + "/bug")
    assert response.status_code == 500 and "secret" not in response.text
    (record,) = [record for record in caplog.records if record.name == "api.errors"]
    assert record.getMessage() == "GET /bug failed" and "secret internals" in str(record.exc_info[1])
