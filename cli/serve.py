"""`asof serve`: the feature service over HTTP."""

from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from api.app import create_app
from api.settings import Settings
from cli.app import app

_DEFAULTS = Settings()


@app.command()
def serve(
    host: Annotated[str, typer.Option(envvar="ASOF_HOST", help="Interface to listen on.")] = _DEFAULTS.host,
    port: Annotated[
        int, typer.Option(envvar="ASOF_PORT", min=1, max=65535, help="TCP port.")
    ] = _DEFAULTS.port,
    data_dir: Annotated[
        Path,
        typer.Option(envvar="ASOF_DATA_DIR", file_okay=False, help="Where runs, jobs and the catalog live."),
    ] = _DEFAULTS.data_dir,
) -> None:
    """Serve point-in-time features over HTTP; OpenAPI docs at /docs.

    Example: asof serve --port 8000 --data-dir ./data, then
    curl 'http://127.0.0.1:8000/features?as_of=2024-03-01'
    """
    uvicorn.run(create_app(Settings(data_dir=data_dir, host=host, port=port)), host=host, port=port)
