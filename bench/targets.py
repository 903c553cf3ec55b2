"""The bench's targets, enforced: which figures miss, the machine they were taken on, and the
results file the README quotes (``bench/results.json``).

``python -m bench.targets [results.json]`` checks a results file and exits 1 on any miss; a
required figure that is missing (not measured) is a miss too.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


# (figure, comparison, bound, required: a missing figure misses)
TARGETS: tuple[tuple[str, str, float, bool], ...] = (
    ("render_vs_floor", "<=", 1.3, True),
    ("speedup_vs_moviepy", ">=", 3.0, True),
    ("episode_mb_per_20s", "<=", 8.0, True),
    ("peak_rss_mb", "<=", 400.0, True),
    ("harvest_10k_s", "<=", 1.0, True),
    ("harvest_100k_s", "<=", 12.0, True),
    ("voice_realtime_factor", ">=", 5.0, False),  # only where the Piper voice is installed
)
_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, ">=": operator.ge}


def verdicts(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(figure, met, line) for every target that applies."""
    out = []
    for name, op, bound, required in TARGETS:
        value = result.get(name)
        if value is None:
            if required:
                why = result.get(f"{name}_note", "not measured")
                out.append((name, False, f"MISS {name}: {why} (target {op} {bound:g})"))
            continue
        met = _COMPARE[op](float(value), bound)
        out.append((name, met, f"{'ok  ' if met else 'MISS'} {name} = {value} ({op} {bound:g})"))
    return out


def misses(result: dict[str, Any]) -> list[str]:
    return [line for _, met, line in verdicts(result) if not met]


def machine() -> dict[str, Any]:
    """What the figures were measured on (read at the start of the run)."""
    model = "unknown"
    memory_kb = 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(memory_kb / 2**20, 1),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def cpu_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks since boot, from /proc/stat; (0, 0) where there is none.

    Steal is time the hypervisor gave this VM's CPUs to someone else: while it is high, every
    wall-clock figure (and CPU time, too) is slower for reasons outside the code.
    """
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0, 0
    ticks = [int(value) for value in fields[:8]]  # user .. steal; guest time is in user
    return (ticks[7] if len(ticks) > 7 else 0), sum(ticks)


def steal_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of CPU time stolen between two ``cpu_ticks()`` readings, in per cent."""
    total = after[1] - before[1]
    return round(100.0 * (after[0] - before[0]) / total, 1) if total > 0 else 0.0


def write(result: dict[str, Any], where: dict[str, Any], path: Path = RESULTS) -> None:
    """The results file: the machine, the figures, and each target's verdict."""
    document = {
        "machine": where,
        "targets": {name: {"met": met, "line": line} for name, met, line in verdicts(result)},
        "figures": result,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", "utf-8")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else RESULTS
    document = json.loads(path.read_text("utf-8"))
    result = document.get("figures", document)
    for _, _, line in verdicts(result):
        print(line)
    missed = misses(result)
    if missed:
        print(f"{len(missed)} target(s) missed ({path})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
