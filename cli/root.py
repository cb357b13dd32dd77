"""The `asof` command: one Typer app that each command module adds its commands to."""

import typer

app = typer.Typer(
    name="asof",
    help="Point-in-time TradingView Technical Ratings: backfill, serve, backtest and audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def commands() -> None:
    """Point-in-time TradingView Technical Ratings: backfill, serve, backtest and audit."""
    # A group even when only the command being run is registered (`cli.main`), so its name still parses.
