"""One error shape, `{"detail": ...}`, with the status the error's kind calls for (`vocabulary.errors`):
404 NotFound, 409 Conflict, 422 InvalidInput (naming the field), 429 Busy, 503 Unavailable. Anything else
is a bug, not the client's fault: a 500 whose traceback goes to the server log, never to the client."""

import logging

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError

from api.responses import json_response
from api.routes.methods import allowed_methods
from vocabulary.errors import Busy, Conflict, InvalidInput, NotFound, Unavailable

logger = logging.getLogger(__name__)

ERROR_RESPONSES: dict[int | str, dict] = {
    404: {"description": "unknown job, run or symbol, or no run published yet"},
    422: {"description": "bad input; `detail` names the field and the value"},
    429: {"description": "a quota is full (queued jobs, audits); retry later"},
    503: {"description": "storage cannot answer now (locked or damaged catalog, missing run file)"},
}


def _not_found(request: Request, error: Exception) -> Response:
    return json_response({"detail": str(error)}, 404)


def _conflict(request: Request, error: Exception) -> Response:
    job = getattr(error, "job", None)  # a conflict with a job (duplicate, finished) points at it
    if job is None:
        return json_response({"detail": str(error)}, 409)
    return json_response(
        {"detail": str(error), "job_id": job.job_id}, 409, headers={"Location": f"/jobs/{job.job_id}"}
    )


def _invalid(request: Request, error: Exception) -> Response:
    assert isinstance(error, InvalidInput)
    if error.field is None:
        return json_response({"detail": str(error)}, 422)
    return json_response(
        {"detail": [{"loc": [error.field], "msg": error.message, "type": "invalid_input"}]}, 422
    )


def _busy(request: Request, error: Exception) -> Response:
    return json_response({"detail": str(error)}, 429, headers={"Retry-After": "30"})


def _unavailable(request: Request, error: Exception) -> Response:
    logger.warning("%s %s: storage unavailable: %s", request.method, request.url.path, error)
    return json_response({"detail": str(error)}, 503)


def _internal(request: Request, error: Exception) -> Response:
    logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
    return json_response({"detail": "internal server error; the server log has the details"}, 500)


def _request_invalid(request: Request, error: Exception) -> Response:
    """FastAPI's 422 without the `input` it would echo (it may be megabytes, or a NaN that JSON cannot
    carry): where and what, not the value again."""
    assert isinstance(error, RequestValidationError)
    detail = [
        {"loc": list(problem["loc"]), "msg": str(problem["msg"])[:500], "type": problem["type"]}
        for problem in error.errors()[:20]
    ]
    return json_response({"detail": detail}, 422)


def _method_not_allowed(request: Request, error: Exception) -> Response:
    """405 with the methods the path does accept, gathered over every route of the path."""
    return json_response(
        {"detail": "Method Not Allowed"}, 405, headers={"Allow": ", ".join(allowed_methods(request))}
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(405, _method_not_allowed)
    app.add_exception_handler(NotFound, _not_found)
    app.add_exception_handler(Conflict, _conflict)
    app.add_exception_handler(InvalidInput, _invalid)
    app.add_exception_handler(Busy, _busy)
    app.add_exception_handler(Unavailable, _unavailable)
    app.add_exception_handler(Exception, _internal)
