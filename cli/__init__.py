"""`asof` console script: one module per command (`cli/<command>.py`); importing them registers them."""

from cli import audit, backfill, backtest, demo, export, features, gc, pipeline, ratings, serve  # noqa: F401
from cli.app import app

__all__ = ["app"]
