"""`asof serve`: the feature service over HTTP."""

import os
import uuid
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from api.app import create_app
from api.settings import LOOPBACK, Settings
from cli.root import app


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(
            envvar="ASOF_HOST",
            help=f"Interface to listen on (default {LOOPBACK}: without a token the service stays on loopback "
            "unless a host is given).",
            show_default=False,
        ),
    ] = None,
    port: Annotated[
        int, typer.Option(envvar="ASOF_PORT", min=1, max=65535, help="TCP port.")
    ] = Settings.port,
    data_dir: Annotated[
        Path,
        typer.Option(envvar="ASOF_DATA_DIR", file_okay=False, help="Where runs, jobs and the catalog live."),
    ] = Settings.data_dir,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Server processes: one holds the data dir's writer lock and runs the jobs, the others serve "
            "reads and take over if it goes.",
        ),
    ] = 1,
) -> None:
    """Serve point-in-time features over HTTP; OpenAPI docs at /docs.

    Every other setting (tokens, limits, retention) is an ASOF_* environment variable (README, "Settings").

    Example: asof serve --port 8000 --data-dir ./data, then
    curl 'http://127.0.0.1:8000/features?as_of=2024-03-01'
    """
    try:
        settings = Settings.from_env(data_dir=data_dir, host=host, port=port)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(_access(settings), err=True)
    if workers == 1:
        uvicorn.run(create_app(settings), host=settings.bind_host, port=settings.port)
        return
    # Worker processes build their app from the environment; one group, so they know each other's lock.
    os.environ.update(
        ASOF_DATA_DIR=str(settings.data_dir),
        ASOF_HOST=settings.bind_host,
        ASOF_PORT=str(settings.port),
        ASOF_SERVE_GROUP=uuid.uuid4().hex,
    )
    uvicorn.run(
        "api.app:create_app", factory=True, host=settings.bind_host, port=settings.port, workers=workers
    )


def _access(settings: Settings) -> str:
    """One line at start saying who can reach the service."""
    where = f"http://{settings.bind_host}:{settings.port} (data dir {settings.data_dir})"
    if settings.api_token:
        reader = " and a read-only token" if settings.read_token else ""
        return f"asof: serving {where}; requests need the API token{reader} (ASOF_API_TOKEN)"
    if settings.host is None:
        return f"asof: serving {where} on loopback only: set ASOF_API_TOKEN and --host to serve a network"
    return f"asof: serving {where} WITHOUT a token (ASOF_API_TOKEN unset): anyone who reaches it may use it"
