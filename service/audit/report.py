"""The audit's report: each check's result and the violations that name the rows at fault, as JSON for
machines and Markdown for people."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

CHECKS: Final = ("truncation", "serving", "poisoning")
LISTED: Final = 50
"""Violations listed per check; the report counts the rest."""


@dataclass(frozen=True)
class Violation:
    """One wrong row: the check that caught it, the row (symbol, ts), the field, and both sides."""

    check: str
    symbol: str | None
    ts: pd.Timestamp | None
    field: str
    stored: object
    expected: object
    message: str

    def to_dict(self) -> dict:
        return {
            "check": self.check,
            "symbol": self.symbol,
            "ts": None if self.ts is None else self.ts.isoformat(),
            "field": self.field,
            "stored": jsonable(self.stored),
            "expected": jsonable(self.expected),
            "message": self.message,
        }


@dataclass(frozen=True)
class CheckResult:
    name: str
    sampled: list[str]  # what was drawn: "SYMBOL at T" pairs (1), as_of instants (2), the poisoned T (3)
    compared: int  # rows (checks 1 and 2) or decisions (check 3) compared
    violations: list[Violation]  # the first LISTED
    violation_count: int
    seconds: float
    detail: str  # what was sampled, in a sentence
    skipped: str | None = None  # why the check could not run

    @property
    def samples(self) -> int:
        return len(self.sampled)

    @property
    def passed(self) -> bool:
        return self.violation_count == 0

    @property
    def status(self) -> str:
        return "failed" if not self.passed else "skipped" if self.skipped else "passed"


@dataclass(frozen=True)
class AuditReport:
    run_id: str
    interval: str
    samples: int
    seed: int
    checks: list[CheckResult]
    created_at: pd.Timestamp = field(default_factory=lambda: pd.Timestamp.now(tz="UTC"))

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def violations(self) -> list[Violation]:
        return [violation for check in self.checks for violation in check.violations]

    def to_dict(self) -> dict:
        return {
            "status": self.status,
            "run_id": self.run_id,
            "interval": self.interval,
            "samples": self.samples,
            "seed": self.seed,
            "created_at": self.created_at.isoformat(),
            "checks": [
                {
                    "name": check.name,
                    "status": check.status,
                    "samples": check.samples,
                    "sampled": check.sampled,
                    "compared": check.compared,
                    "violation_count": check.violation_count,
                    "seconds": round(check.seconds, 3),
                    "detail": check.detail,
                    "skipped": check.skipped,
                    "violations": [violation.to_dict() for violation in check.violations],
                }
                for check in self.checks
            ],
        }

    def write(self, folder: Path) -> Path:
        """`audit.json` and `audit.md` in `folder` (created when missing); returns the Markdown file."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "audit.json").write_text(self.to_json())
        markdown = folder / "audit.md"
        markdown.write_text(self.to_markdown())
        return markdown

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_markdown(self) -> str:
        lines = [
            f"# Lookahead audit of run {self.run_id}: {self.status.upper()}",
            "",
            f"Interval {self.interval}, {self.samples} samples per check, seed {self.seed}, "
            f"audited {self.created_at.isoformat()}.",
            "",
            "| check | status | samples | compared | violations | seconds |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for check in self.checks:
            lines.append(
                f"| {check.name} | {check.status} | {check.samples} | {check.compared} | "
                f"{check.violation_count} | {check.seconds:.2f} |"
            )
        lines.append("")
        for check in self.checks:
            lines.append(
                f"- **{check.name}**: {check.detail}"
                + (f" Skipped: {check.skipped}" if check.skipped else "")
            )
        if self.violations:
            lines += [
                "",
                "## Violations",
                "",
                "| check | symbol | ts | field | stored | expected | what |",
                "|---|---|---|---|---|---|---|",
            ]
            for v in self.violations:
                ts = "" if v.ts is None else v.ts.isoformat()
                lines.append(
                    f"| {v.check} | {v.symbol or ''} | {ts} | {v.field} | {shown(v.stored)} | "
                    f"{shown(v.expected)} | {v.message} |"
                )
            for check in self.checks:
                if check.violation_count > len(check.violations):
                    lines.append(
                        f"\n{check.name}: {check.violation_count - len(check.violations)} more not listed."
                    )
        return "\n".join(lines) + "\n"


def jsonable(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return value


def shown(value: object) -> str:
    shown = jsonable(value)
    if isinstance(shown, list):
        return " ".join(map(str, shown)) or "(none)"
    return "NA" if shown is None else str(shown)


def skipped(check: str, reason: str) -> CheckResult:
    """The result of a check that could not run, saying why."""
    return CheckResult(check, [], 0, [], 0, 0.0, "not run.", skipped=reason)
