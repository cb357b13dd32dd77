"""One error shape, `{"detail": ...}`, with the status a client can act on: 404 for an unknown job, run or
symbol, 409 for a conflict, 422 for bad input (naming the field and value), never a 500 for client input."""

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from service.jobs import DuplicateJob, InvalidRequest, JobFinished
from storage.catalog import NoRunError, RunNotFound, SymbolNotFound
from storage.jobs import JobNotFound

NOT_FOUND = (JobNotFound, RunNotFound, NoRunError, SymbolNotFound)
ERROR_RESPONSES: dict[int | str, dict] = {
    404: {"description": "unknown job, run or symbol, or no run published yet"},
    422: {"description": "bad input; `detail` names the field and the value"},
}


@contextmanager
def bad_input_is_422() -> Iterator[None]:
    """Around a store call: the store answers bad arguments with ValueError, which is the client's fault."""
    try:
        yield
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


def _not_found(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(error)}, status_code=404)


def _invalid(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, InvalidRequest)
    detail = [{"loc": ["body", error.field], "msg": error.message, "type": "value_error"}]
    return JSONResponse({"detail": detail}, status_code=422)


def _conflict(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DuplicateJob | JobFinished)
    job_id = error.job.job_id
    return JSONResponse(
        {"detail": str(error), "job_id": job_id}, status_code=409, headers={"Location": f"/jobs/{job_id}"}
    )


def install(app: FastAPI) -> None:
    for error in NOT_FOUND:
        app.add_exception_handler(error, _not_found)
    app.add_exception_handler(InvalidRequest, _invalid)
    app.add_exception_handler(DuplicateJob, _conflict)
    app.add_exception_handler(JobFinished, _conflict)
