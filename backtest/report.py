"""Backtest outputs: equity, rebalance log, metrics, plots and a Markdown report tying them together.

`write_report` is the one entry point; `asof backtest` and `asof pipeline` both call it with the results of
one or both modes, so the files and their layout are the same wherever a backtest is reported.
"""

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from backtest.engine import BacktestResult
from backtest.metrics import drawdown

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABELS = {"dynamic": "dynamic (point in time)", "static": "static (newest cross-section: looks ahead)"}
"""How each mode is named in plots and the report; static mode is labelled as the lookahead it is."""


@dataclass(frozen=True)
class ReportFiles:
    equity: Path
    rebalances: Path
    metrics: Path
    plots: list[Path]
    report: Path


def write_report(
    out: Path | str,
    results: Mapping[str, BacktestResult],
    *,
    settings: Mapping[str, object] | None = None,
    title: str = "Backtest",
) -> ReportFiles:
    """Write equity.csv, rebalances.csv, metrics.json, the PNG plots and report.md into `out` (created).

    `results` maps a mode to its result; `settings` (the backtest's parameters) is echoed in the report.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    equity = pd.DataFrame({mode: result.equity for mode, result in results.items()}).rename_axis("ts")
    equity.to_csv(out / "equity.csv")
    log = pd.concat([rebalance_log(result) for result in results.values()], ignore_index=True)
    log.to_csv(out / "rebalances.csv", index=False)
    metrics = {mode: {**result.metrics, "looks_ahead": mode == "static"} for mode, result in results.items()}
    (out / "metrics.json").write_text(json.dumps(_finite(metrics), indent=2) + "\n")
    plots = [_plot_equity(out, equity), _plot_drawdown(out, equity)]
    plots += [_plot_holdings(out, mode, result) for mode, result in results.items()]
    files = ReportFiles(
        out / "equity.csv", out / "rebalances.csv", out / "metrics.json", plots, out / "report.md"
    )
    files.report.write_text(_markdown(title, results, metrics, settings or {}, files))
    return files


def rebalance_log(result: BacktestResult) -> pd.DataFrame:
    """One row per rebalance: lists space-separated in rank order, weights as a JSON object."""
    return pd.DataFrame(
        {
            "mode": result.mode,
            "ts": [r.ts for r in result.rebalances],
            "as_of": [r.as_of for r in result.rebalances],
            "run_id": [r.run_id for r in result.rebalances],
            "eligible": [len(r.selection.eligible) for r in result.rebalances],
            "passed": [len(r.selection.passed) for r in result.rebalances],
            "selected": [" ".join(r.selection.selected) for r in result.rebalances],
            "entered": [" ".join(r.entered) for r in result.rebalances],
            "exited": [" ".join(r.exited) for r in result.rebalances],
            "correlated": [" ".join(r.selection.correlated) for r in result.rebalances],
            "weights": [
                json.dumps({s: round(w, 10) for s, w in r.weights.items()}) for r in result.rebalances
            ],
            "turnover": [r.turnover for r in result.rebalances],
            "cost": [r.cost for r in result.rebalances],
            "fallback": [r.fallback or "" for r in result.rebalances],
        }
    )


def _finite(value: object) -> object:
    """JSON has no NaN: undefined figures (a Sharpe with no variance) are written as null."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _plot_equity(out: Path, equity: pd.DataFrame) -> Path:
    figure = _figure(10, 4.5)
    axes = figure.subplots()
    for mode in equity:
        axes.plot(equity.index, equity[mode], label=LABELS.get(mode, mode), linewidth=1.2)
    axes.set(title="Equity (growth of 1, net of costs)", ylabel="equity")
    axes.legend()
    axes.grid(alpha=0.3)
    return _save(figure, out / "equity.png")


def _plot_drawdown(out: Path, equity: pd.DataFrame) -> Path:
    figure = _figure(10, 3.5)
    axes = figure.subplots()
    for mode in equity:
        below = drawdown(equity[mode])
        (line,) = axes.plot(equity.index, below, label=LABELS.get(mode, mode), linewidth=1.0)
        axes.fill_between(equity.index, below, 0, color=line.get_color(), alpha=0.25)
    axes.set(title="Drawdown", ylabel="below peak")
    axes.legend()
    axes.grid(alpha=0.3)
    return _save(figure, out / "drawdown.png")


def _plot_holdings(out: Path, mode: str, result: BacktestResult) -> Path:
    """Weights per rebalance (x) and symbol (y): a diagonal drift of colour is the rotation."""
    holdings = result.holdings
    figure = _figure(10, max(3.0, min(0.18 * holdings.shape[1], 24.0)))
    axes = figure.subplots()
    axes.set(title=f"Holdings over time: {LABELS.get(mode, mode)}", xlabel="rebalance as_of")
    if holdings.columns.empty:
        axes.text(0.5, 0.5, "nothing was selected at any rebalance", ha="center", transform=axes.transAxes)
        return _save(figure, out / f"holdings_{mode}.png")
    image = axes.imshow(holdings.T.to_numpy(), aspect="auto", interpolation="nearest", cmap="viridis", vmin=0)
    ticks = range(0, len(holdings), max(1, len(holdings) // 8))
    axes.set_xticks(list(ticks), [holdings.index[i].strftime("%Y-%m-%d") for i in ticks], rotation=30)
    if holdings.shape[1] <= 60:
        axes.set_yticks(range(holdings.shape[1]), list(holdings.columns), fontsize=7)
    else:
        axes.set_ylabel(f"{holdings.shape[1]} symbols ever held")
    figure.colorbar(image, ax=axes, label="weight")
    return _save(figure, out / f"holdings_{mode}.png")


def _figure(width: float, height: float) -> "Figure":
    """A blank figure. matplotlib loads here, not with the module: a second of start-up that only
    commands writing a report should pay."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _save(figure: "Figure", path: Path) -> Path:
    """Render with the Agg canvas matplotlib picks for a PNG; no pyplot, so no global backend state."""
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


METRIC_ROWS = (
    ("CAGR", "cagr", "{:.2%}"),
    ("Volatility", "volatility", "{:.2%}"),
    ("Sharpe", "sharpe", "{:.2f}"),
    ("Sortino", "sortino", "{:.2f}"),
    ("Max drawdown", "max_drawdown", "{:.2%}"),
    ("Calmar", "calmar", "{:.2f}"),
    ("Turnover per year", "turnover", "{:.2f}"),
    ("Turnover per rebalance", "turnover_per_rebalance", "{:.2f}"),
    ("Final equity", "final_equity", "{:.3f}"),
    ("Rebalances", "rebalances", "{:d}"),
    ("Periods per year", "periods_per_year", "{:g}"),
)


def _markdown(
    title: str,
    results: Mapping[str, BacktestResult],
    metrics: Mapping[str, Mapping[str, object]],
    settings: Mapping[str, object],
    files: ReportFiles,
) -> str:
    modes = list(results)
    lines = [f"# {title}", ""]
    if settings:
        lines += [
            "| setting | value |",
            "|---|---|",
            *(f"| {key} | `{value}` |" for key, value in settings.items()),
        ]
        lines.append("")
    lines += ["## Performance", "", "| metric | " + " | ".join(LABELS.get(m, m) for m in modes) + " |"]
    lines.append("|---|" + "---:|" * len(modes))
    for label, key, fmt in METRIC_ROWS:
        cells = [_format(fmt, metrics[mode][key]) for mode in modes]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "![equity](equity.png)", "", "![drawdown](drawdown.png)", "", "## Rotation", ""]
    for mode, result in results.items():
        lines += [*_rotation(mode, result), f"![holdings {mode}](holdings_{mode}.png)", ""]
    if "static" in results:
        lines += [
            "Static mode ranks every rebalance on the newest cross-section, which a trader at the time could",
            "not have seen: it looks ahead on purpose, to show the regime mismatch of selecting a past",
            "portfolio from today's scanner. Only the dynamic mode is a valid backtest.",
            "",
        ]
    lines += [
        "## Files",
        "",
        *(f"- `{path.name}`" for path in (files.equity, files.rebalances, files.metrics, *files.plots)),
        "",
    ]
    return "\n".join(lines)


def _rotation(mode: str, result: BacktestResult) -> list[str]:
    rebalances = result.rebalances
    held = {symbol for r in rebalances for symbol in r.selection.selected}
    changed = sum(1 for r in rebalances[1:] if r.entered or r.exited)
    fallbacks = sum(1 for r in rebalances if r.fallback)
    run_ids = sorted({r.run_id for r in rebalances})
    return [
        f"**{LABELS.get(mode, mode)}**: {len(rebalances)} rebalances on run `{', '.join(run_ids)}`, "
        f"{len(held)} distinct symbols held, the selection changed at {changed} of {len(rebalances[1:])} "
        f"rebalances, {sum(len(r.entered) for r in rebalances[1:])} entries in all; "
        f"optimiser fell back to equal weight {fallbacks} time(s).",
        "",
    ]


def _format(fmt: str, value: object) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else fmt.format(value)
    )
