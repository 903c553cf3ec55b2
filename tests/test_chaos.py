"""Exactly-once under crashes: the chaos harness's short form, its plan, and the failpoints.

The full run is `make chaos` (30 kills, 5 rounds, SQLite and PostgreSQL). Here: 6 kills over
3 rounds on each database. The seed is random unless STORYBOT_CHAOS_SEED names one, and is
printed (and repeated in any failure) so a failing run can be replayed exactly.
"""

from __future__ import annotations

import io
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.loop import failpoints
from bot.loop.failpoints import POINTS, Failpoint, FailpointError
from chaos.harness import run_chaos
from chaos.plan import CLOSE_PHASE, MUST, make_plan

ROOT = Path(__file__).resolve().parents[1]
SEED_ENV = "STORYBOT_CHAOS_SEED"


@pytest.fixture
def armed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def arm(value: str) -> None:
        monkeypatch.setenv(failpoints.ENV, value)
        failpoints.reset()

    yield arm
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.reset()


def test_failpoints_parse_and_round_trip() -> None:
    points = failpoints.parse(" after_publish=kill@2, mid_render=raise ,x=sleep:0.5")
    assert points["after_publish"] == Failpoint("after_publish", "kill", 2)
    assert points["x"].seconds == 0.5
    assert failpoints.parse(failpoints.render(list(points.values()))) == points
    for bad in ("after_publish", "a=explode", "a=kill@0", "a=kill@two", "=kill"):
        with pytest.raises(ValueError, match=failpoints.ENV):
            failpoints.parse(bad)


def test_unarmed_points_do_nothing_and_armed_ones_fire_on_the_nth_hit(
    armed: Callable[[str], None],
) -> None:
    failpoints.reset()
    for name in POINTS:
        failpoints.hit(name)  # STORYBOT_FAILPOINTS is unset in the test run
    armed("before_close=raise@3")
    failpoints.hit("before_close")
    failpoints.hit("after_render")
    failpoints.hit("before_close")
    with pytest.raises(FailpointError, match="before_close"):
        failpoints.hit("before_close")
    failpoints.hit("before_close")  # only the 3rd hit acts


def test_a_kill_point_sigkills_the_process_and_says_where() -> None:
    code = "from bot.loop import failpoints\nfailpoints.hit('mid_render')\nprint('survived')\n"
    env = {**os.environ, failpoints.ENV: "mid_render=kill"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )
    assert result.returncode == -9 and "survived" not in result.stdout
    assert result.stderr.strip() == "storybot failpoint mid_render#1: kill"


def test_the_plan_is_seeded_paced_and_covers_the_named_points() -> None:
    plan = make_plan(30, 5, seed=7)
    assert plan == make_plan(30, 5, seed=7) and plan != make_plan(30, 5, seed=8)
    assert [k.index for k in plan] == list(range(1, 31))
    assert {k.failpoint.name for k in plan if k.failpoint} == set(POINTS)
    counts = [sum(1 for k in plan if k.episode == e) for e in range(1, 7)]
    assert max(counts) - min(counts) <= 2  # spread over the story, not bunched at its start
    assert all(k.episode < 6 for k in plan if k.phase == CLOSE_PHASE)  # the last has no round
    assert [(k.episode, k.phase) for k in plan] == sorted((k.episode, k.phase) for k in plan)
    short = make_plan(6, 3, seed=1)
    assert set(MUST) <= {k.failpoint.name for k in short if k.failpoint}


def _seed() -> int:
    return int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1, 1_000_000))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_short_chaos_run_posts_and_records_everything_exactly_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("sqlite_url" if backend == "sqlite" else "pg_url")
    seed = _seed()
    out = io.StringIO()
    report = run_chaos(url, tmp_path, kills=6, rounds=3, seed=seed, out=out, deadline_s=240)
    replay = f"replay: python -m chaos.harness --db {backend} --kills 6 --rounds 3 --seed {seed}"
    print(out.getvalue())
    assert report.ok, f"{replay}\n{out.getvalue()}"
    assert len(report.kills) == 6, f"{replay}\n{out.getvalue()}"
    fired = {name for name in report.where if not name.startswith("timed")}
    assert set(MUST) <= fired, f"failpoints never fired ({replay}):\n{out.getvalue()}"
    last = out.getvalue().splitlines()[-1]
    assert re.fullmatch(r"chaos: kills=\d+ duplicates=\d+ lost=\d+ diverged=\d+", last), last
    assert last == "chaos: kills=6 duplicates=0 lost=0 diverged=0", f"{replay}\n{out.getvalue()}"
    assert "ok   reference: same beats and winners as an uninterrupted run" in out.getvalue()
