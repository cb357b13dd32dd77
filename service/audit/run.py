"""The forensic audit (DESIGN.md "Audit"): three checks that would catch a lookahead if a run or a backtest
held one, each on a seeded sample, each naming the row at fault (`truncation`, `serving`, `poisoning`)."""

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from backtest.engine import Backtest
from service.audit.poisoning import check_poisoning
from service.audit.report import CHECKS, AuditReport
from service.audit.serving import check_serving
from service.audit.truncation import check_truncation
from storage.catalog import Catalog, NoRunError
from vocabulary.errors import AsofError, InvalidInput


class AuditCancelled(AsofError):
    """`cancelled()` turned true between two checks."""


def audit_run(
    data_dir: Path | str,
    run_id: str | None = None,
    samples: int = 20,
    seed: int = 0,
    *,
    backtest: Backtest | None = None,
    returns: Path | str | None = None,
    symbols: list[str] | None = None,
    checks: tuple[str, ...] = CHECKS,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> AuditReport:
    """Audit a published run (default: the newest). `progress(done, total)` counts checks, before each and
    once at the end; AuditCancelled when `cancelled()` turns true between checks.

    Check 3 backtests with `backtest` (default: the backtest defaults on the run's interval and lag) over
    `returns` (default: the matrix the run was backfilled from) and `symbols` (default: the returns columns
    the run holds); without a returns matrix it is skipped, and the report says why.
    """
    if samples < 1:
        raise InvalidInput(f"must be at least 1, got {samples}", field="samples")
    unknown = [name for name in checks if name not in CHECKS]
    if unknown:
        raise InvalidInput(
            f"unknown audit check(s) {', '.join(unknown)}; expected some of {', '.join(CHECKS)}"
        )
    catalog = Catalog(data_dir)
    run = catalog.run(run_id) if run_id is not None else catalog.latest_run()
    if run is None:
        raise NoRunError("no published run to audit")
    chosen = [name for name in CHECKS if name in checks]
    results = []
    for done, name in enumerate(chosen):
        if cancelled is not None and cancelled():
            raise AuditCancelled(f"audit of run {run.run_id} cancelled before its {name} check")
        if progress is not None:
            progress(done, len(chosen))
        rng = np.random.default_rng([seed, CHECKS.index(name)])
        began = time.perf_counter()
        if name == "truncation":
            result = check_truncation(data_dir, run, samples, rng)
        elif name == "serving":
            result = check_serving(data_dir, run, samples, rng)
        else:
            result = check_poisoning(data_dir, run, rng, backtest=backtest, returns=returns, symbols=symbols)
        results.append(replace(result, seconds=time.perf_counter() - began))
    if progress is not None:
        progress(len(chosen), len(chosen))
    return AuditReport(run_id=run.run_id, interval=run.interval, samples=samples, seed=seed, checks=results)
