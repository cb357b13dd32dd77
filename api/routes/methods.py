"""`OPTIONS` on any path, and the `Allow` header of a 405: the methods the API documents for that path (its
OpenAPI schema is the one list of routes, whatever the framework does inside)."""

import re
from functools import cache

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response

router = APIRouter()


def allowed_methods(request: Request) -> list[str]:
    """Every method the path accepts, OPTIONS included; empty for a path the API does not have."""
    methods = {
        method
        for pattern, path_methods in _paths(request.app)
        if pattern.fullmatch(request.url.path)
        for method in path_methods
    }
    return sorted(methods | {"OPTIONS"}) if methods else []


@cache
def _paths(app: FastAPI) -> tuple[tuple[re.Pattern[str], frozenset[str]], ...]:
    """Each documented path template as a pattern (`{name}` matches one segment), with its methods."""
    return tuple(
        (
            re.compile(re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path))),
            frozenset(method.upper() for method in operations),
        )
        for path, operations in app.openapi()["paths"].items()
    )


@router.options("/{path:path}", include_in_schema=False, status_code=204)
def options(path: str, request: Request) -> Response:
    allowed = allowed_methods(request)
    if not allowed:
        raise HTTPException(404, f"no such path: /{path}")
    return Response(status_code=204, headers={"Allow": ", ".join(allowed)})
