"""`asof` console script. Importing the command modules registers their commands on the app."""

from cli import cycle, ratings, serve, store, trading  # noqa: F401  (registers commands)
from cli.app import app

__all__ = ["app"]
