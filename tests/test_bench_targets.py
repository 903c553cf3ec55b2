"""The bench's verdicts and its reading of stolen CPU time."""

from __future__ import annotations

import time

from bench.targets import cpu_ticks, misses, steal_pct


def test_a_missing_or_slow_figure_misses() -> None:
    figures = {"render_vs_floor": 1.2, "speedup_vs_moviepy": 9.0, "episode_mb_per_20s": 2.0,
               "peak_rss_mb": 300.0, "harvest_10k_s": 1.4}  # fmt: skip
    missed = misses(figures)
    assert any(line.startswith("MISS harvest_10k_s = 1.4") for line in missed)
    assert any(line.startswith("MISS harvest_100k_s: not measured") for line in missed)
    assert not any("render_vs_floor" in line for line in missed)


def test_stolen_time_is_a_share_of_all_cpu_time() -> None:
    assert steal_pct((100, 1_000), (150, 2_000)) == 5.0
    assert steal_pct((0, 0), (0, 0)) == 0.0
    before = cpu_ticks()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:  # some CPU time for the counters to move
        pass
    after = cpu_ticks()
    assert after[1] > before[1] > 0  # /proc/stat is there on the machines the bench runs on
    assert 0 <= after[0] - before[0] <= after[1] - before[1]
    assert 0.0 <= steal_pct(before, after) <= 100.0
