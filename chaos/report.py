"""What a chaos run found: its kills, the checks passed and failed, and the printed summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class ChaosReport:
    seed: int
    label: str = "local"  # the platform (and database, when not SQLite) in the summary line
    kills: list[str] = field(default_factory=list)
    where: Counter[str] = field(default_factory=Counter)
    starts: int = 0
    lock_retries: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    passed: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # crashes that broke no guarantee
    elapsed_s: float = 0.0
    # All three are counted on the server's record (chaos/record.py); ``diverged`` also
    # counts episodes whose beat or winner differs from the uninterrupted run's.
    duplicates: int = 0  # bot statuses, tallied votes or stored replies beyond one each
    lost: int = 0  # replies and votes on the server missing from suggestions and tallies
    diverged: int = 0  # posts where the database's thread and the server's disagree

    @property
    def ok(self) -> bool:
        return not self.violations


def summarise(report: ChaosReport, out: TextIO) -> None:
    kinds = report.where
    out.write(
        f"summary: seed {report.seed}: {len(report.kills)} kills, {report.starts} runner starts, "
        f"{report.lock_retries} lock retries, closes {dict(report.closes)}, "
        f"{len(report.errors)} errors, {report.elapsed_s:.1f}s\n"
        f"  where: {dict(sorted(kinds.items()))}\n"
    )
    for name in report.passed:
        out.write(f"  ok   {name}\n")
    for problem in report.violations:
        out.write(f"  FAIL {problem}\n")
    for error in report.errors:
        out.write(f"  ERROR {error}\n")
    for note in report.notes:
        out.write(f"  note {note}\n")
    verdict = "PASS" if report.ok else f"FAIL (replay with --seed {report.seed})"
    out.write(f"chaos: {verdict}\n")
    out.write(
        f"chaos[{report.label}]: kills={len(report.kills)} duplicates={report.duplicates} "
        f"lost={report.lost} diverged={report.diverged} wall={report.elapsed_s:.0f}s\n"
    )
    out.flush()
