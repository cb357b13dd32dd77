"""`OPTIONS` on any path, and the `Allow` header of a 405: the methods every route of that path accepts."""

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.routing import Match, Route
from starlette.types import Scope

router = APIRouter()


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the request's path accepts, OPTIONS included; empty for an unknown path."""
    scope: Scope = request.scope
    methods = {
        method
        for route in request.app.router.routes
        if isinstance(route, Route) and route.methods and route.matches(scope)[0] is not Match.NONE
        for method in route.methods
    }
    return sorted(methods | {"OPTIONS"}) if methods - {"OPTIONS"} else []


@router.options("/{path:path}", include_in_schema=False, status_code=204)
def options(path: str, request: Request) -> Response:
    allowed = allowed_methods(request)
    if not allowed:
        raise HTTPException(404, f"no such path: /{path}")
    return Response(status_code=204, headers={"Allow": ", ".join(allowed)})
