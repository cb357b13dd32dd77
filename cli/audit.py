"""`asof audit`: the forensic lookahead audit of a run, on the spot (`POST /runs/{run_id}/audit` runs the
same audit as a background job of the service).

Errors print one line naming what was wrong and exit 1; a failed audit exits 1 after naming the rows at fault.
"""

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from cli.console import DataDir, existing_data_dir, one_line_errors, progress_bar
from cli.root import app
from service.audit.report import AuditReport
from service.audit.run import audit_run
from storage.export import summary_dir


@app.command()
def audit(
    run_id: Annotated[str | None, typer.Option(help="The run to audit (default: the newest).")] = None,
    samples: Annotated[
        int, typer.Option(help="Samples per check: (symbol, T) pairs and as_of instants.")
    ] = 20,
    seed: Annotated[int, typer.Option(help="Seed of the samples; the same seed audits the same rows.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for audit.json and audit.md (default: artifacts/summaries/runs/<RUN_ID>/)."
        ),
    ] = None,
    data_dir: DataDir = Path("data"),
) -> None:
    """Audit a run for lookahead: truncation invariance, serving, and future poisoning of the backtest.

    1. Stored rows equal the features recomputed from the lake cut at the instant they were served.
    2. Every served row has available_at <= as_of and is the newest such row (checked independently).
    3. With every price and return after T replaced by garbage, no backtest decision at or before T changes.
    A violation names the row (symbol, ts, field, stored vs expected) and the command exits 1.

    Example: asof audit --run-id 20240301T120000Z-3f2a1c --samples 50 --data-dir data
    """
    with one_line_errors():
        with progress_bar("audit", "checks") as progress:
            report = audit_run(
                existing_data_dir(data_dir), run_id, samples=samples, seed=seed, progress=progress
            )
        print_audit(report, report.write(out or summary_dir(data_dir, report.run_id)))
        if not report.passed:
            raise typer.Exit(1)


def print_audit(report: AuditReport, markdown: Path) -> None:
    """The checks as a table, the first violations, and where the report is."""
    console = Console(soft_wrap=False, highlight=False)
    table = Table(
        "check", "status", "samples", "compared", "violations", "seconds", title=f"audit of {report.run_id}"
    )
    for check in report.checks:
        table.add_row(
            check.name,
            check.status + (f": {check.skipped}" if check.skipped else ""),
            str(check.samples),
            str(check.compared),
            str(check.violation_count),
            f"{check.seconds:.2f}",
        )
    console.print(table)
    for violation in report.violations[:10]:
        ts = violation.ts.isoformat() if violation.ts is not None else "-"
        typer.echo(
            f"violation ({violation.check}): {violation.symbol or '-'} at {ts}, {violation.field}: stored "
            f"{violation.stored!s} vs expected {violation.expected!s}; {violation.message}"
        )
    typer.echo(f"audit {report.status}: {markdown}")
