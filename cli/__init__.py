"""`asof` console script: one module per command (`cli/<command>.py`); importing one registers its command.

`main` (the console script) imports only the command it runs, so `asof backfill` does not pay for the web
server's or the backtest's imports; `from cli import app` registers them all (the tests, `--help`).
"""

import importlib
import sys

COMMANDS = (
    "audit",
    "backfill",
    "backtest",
    "compact",
    "demo",
    "export",
    "features",
    "gc",
    "pipeline",
    "ratings",
    "serve",
    "update",
)


def main() -> None:
    """The `asof` console script."""
    named = next((argument for argument in sys.argv[1:] if not argument.startswith("-")), None)
    _register([named] if named in COMMANDS else COMMANDS)
    from cli.root import app

    app()


def _register(commands: tuple[str, ...] | list[str]) -> None:
    for command in commands:
        importlib.import_module(f"cli.{command}")


def __getattr__(name: str) -> object:
    if name != "app":
        raise AttributeError(f"module 'cli' has no attribute {name!r}")
    _register(COMMANDS)
    from cli.root import app

    return app
