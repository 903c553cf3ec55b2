"""Throughput of the render fleet: episodes per hour with one `storybot worker`, and with two.

Two real worker processes (``python -m bot worker``, Celery's prefork pool, concurrency 1, as
deployed) take jobs from a throwaway redis-server and share a SQLite database, with the
shipped ``config.toml`` (offline backends, 1280x720 film clips, the Piper voice) and only the
database, media folder and broker changed. Worker ``a`` reads the queues ``render`` and
``solo``, worker ``b`` ``render`` and ``solo-b``: a batch queued on ``solo`` is one worker's
(``b`` idles), a batch on ``render`` is shared by both. Both are warmed up first (each builds
its app and loads its models on its first job), so the batches measure steady throughput.

Each repeat times one batch of ``episodes`` jobs each way (alternating which goes first, as
the machine's other load drifts), from queueing to the last episode RENDERED; every episode
must be rendered (its clip on disk) and, with two workers, both must have taken jobs, or the
bench fails. ``worker_scaling_2x`` is the median over the repeats of (one worker's time /
two workers' time); the runs and their spread are reported beside it.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.config import database_url, load_config
from bot.workers.queue import TASK_NAME, make_celery
from chaos.redis_server import running_redis
from story_state import migrate
from story_state.db import make_engine, session_factory, session_scope
from story_state.lifecycle import EpisodeState, StoryStatus
from story_state.models import Episode, Story

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config.toml"
START_TIMEOUT_S = 120.0
BATCH_TIMEOUT_S = 600.0


class ScaleFailed(RuntimeError):
    """A job failed, timed out, or the layout was not the one being measured."""


def _toml(table: dict[str, Any], prefix: str = "") -> list[str]:
    """``table`` as TOML (the shapes config.toml uses: scalars, lists of them, tables)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = [f"[{prefix}]"] if prefix else []
    lines += [f"{k} = {value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for key, sub in table.items():
        if isinstance(sub, dict):
            lines += _toml(sub, f"{prefix}.{key}" if prefix else key)
    return lines


def write_config(work: Path, broker: str) -> Path:
    """The shipped config with this bench's database, media folder and broker."""
    data = tomllib.loads(SHIPPED.read_text("utf-8"))
    data["database"] = {"url": f"sqlite:///{work / 'scale.db'}"}
    data["media"] = {"root": str(work / "media")}
    data["workers"] = {**data.get("workers", {}), "broker_url": broker, "queue": "render"}
    path = work / "config.toml"
    path.write_text("\n".join(_toml(data)) + "\n", "utf-8")
    return path


class Workers:
    """`python -m bot worker` processes, each in its own process group, logging to a file."""

    def __init__(self, config: Path, work: Path) -> None:
        self.config, self.work = config, work
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, queues: str) -> None:
        with open(self.work / f"worker-{name}.log", "wb") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "bot", "--config", str(self.config), "worker",
                 "--name", self.node(name), "--queues", queues, "--concurrency", "1"],
                stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip

    @staticmethod
    def node(name: str) -> str:
        return f"{name}@bench"

    def log(self, name: str) -> str:
        return (self.work / f"worker-{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # a warm shutdown; nothing is in hand
        for name, proc in self.procs.items():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
                print(f"note: worker {name} ignored SIGTERM; killed", file=sys.stderr)


@contextmanager
def fleet(work: Path) -> Iterator[tuple[Path, Workers, Any]]:
    """Redis, a migrated database, and workers ``a`` and ``b`` answering pings."""
    with ExitStack() as stack:
        server = stack.enter_context(running_redis())
        config = write_config(work, server.url())
        migrate.upgrade(database_url(load_config(config)))
        celery = make_celery(load_config(config))
        stack.callback(celery.close)
        workers = Workers(config, work)
        stack.callback(workers.stop)
        workers.start("a", "render,solo")
        workers.start("b", "render,solo-b")
        deadline = time.monotonic() + START_TIMEOUT_S
        nodes = {Workers.node("a"), Workers.node("b")}
        while True:
            answered = {n for reply in celery.control.ping(timeout=1.0) for n in reply}
            if nodes <= answered:
                break
            for name, proc in workers.procs.items():
                if proc.poll() is not None:
                    raise ScaleFailed(f"worker {name} exited at start:\n{workers.log(name)}")
            if time.monotonic() > deadline:
                raise ScaleFailed(f"workers did not answer within {START_TIMEOUT_S:.0f} s")
        yield config, workers, celery


def plan(factory: sessionmaker[Session], tag: str, count: int, premise: str) -> list[int]:
    """``count`` stories, each with its episode 1 PLANNED; the same content for every tag."""
    ids = []
    with session_scope(factory) as session:
        for k in range(count):
            story = Story(
                slug=f"scale-{tag}-{k}",
                title="Salt",
                premise=premise,
                status=StoryStatus.ACTIVE,
                seed=k + 1,
                episode_cap=12,
            )
            session.add(story)
            session.flush()
            episode = Episode(
                story_id=story.id,
                number=1,
                state=EpisodeState.PLANNED,
                beat=premise,
                seed=1000 + k,
            )
            session.add(episode)
            session.flush()
            ids.append(episode.id)
    return ids


def batch(
    celery: Any, factory: sessionmaker[Session], ids: list[int], queue: str, media: Path
) -> float:
    """Queue a job per episode on ``queue``; seconds until every one is RENDERED."""
    started = time.perf_counter()
    for episode_id in ids:
        celery.send_task(TASK_NAME, args=(episode_id,), queue=queue)
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    while True:
        with session_scope(factory) as session:
            rows = session.execute(
                select(Episode.id, Episode.state, Episode.failure_reason, Episode.video_path)
                .where(Episode.id.in_(ids))
            ).all()  # fmt: skip
        failed = [r for r in rows if r.failure_reason or r.state is EpisodeState.FAILED]
        if failed:
            raise ScaleFailed(f"episode id {failed[0].id} failed: {failed[0].failure_reason}")
        if all(r.state is EpisodeState.RENDERED for r in rows):
            elapsed = time.perf_counter() - started
            missing = [r.id for r in rows if not (media / (r.video_path or "-")).is_file()]
            if missing:
                raise ScaleFailed(f"episodes {missing} are RENDERED without a clip on disk")
            return elapsed
        if time.monotonic() > deadline:
            raise ScaleFailed(f"batch on {queue} not rendered within {BATCH_TIMEOUT_S:.0f} s")
        time.sleep(0.2)


def _took(workers: Workers, name: str, ids: list[int]) -> int:
    log = workers.log(name)
    return sum(f"episode id {i}: job started on {Workers.node(name)}" in log for i in ids)


def run(work: Path, episodes: int = 2, repeats: int = 3) -> dict[str, Any]:
    """``worker_scaling_2x`` (median, runs, spread) and episodes per hour each way."""
    work.mkdir(parents=True, exist_ok=True)
    with fleet(work) as (config_path, workers, celery):
        config = load_config(config_path)
        engine = make_engine(database_url(config))
        factory = session_factory(engine)
        media = work / "media"
        premise = config.story.premise
        try:
            # Warm-up: one job each, on the queue only that worker reads.
            for name, queue in (("a", "solo"), ("b", "solo-b")):
                warm = plan(factory, f"warm-{name}", 1, premise)
                batch(celery, factory, warm, queue, media)
                if _took(workers, name, warm) != 1:
                    raise ScaleFailed(f"worker {name} did not take its warm-up job")
            one: list[float] = []
            two: list[float] = []
            for r in range(repeats):
                layouts = [("solo", one), ("render", two)]
                for queue, times in layouts if r % 2 == 0 else layouts[::-1]:
                    ids = plan(factory, f"{r}-{queue}", episodes, premise)
                    times.append(batch(celery, factory, ids, queue, media))
                    if queue == "render" and min(_took(workers, w, ids) for w in "ab") == 0:
                        raise ScaleFailed(f"repeat {r}: one worker rendered the whole batch")
            with session_scope(factory) as session:
                clips = session.scalars(
                    select(Episode.duration_s).where(Episode.duration_s.is_not(None))
                ).all()
        finally:
            engine.dispose()
    ratios = [a / b for a, b in zip(one, two, strict=True)]
    per_hour_one = statistics.median(3600 * episodes / t for t in one)
    per_hour_two = statistics.median(3600 * episodes / t for t in two)
    return {
        "worker_scaling_2x": round(statistics.median(ratios), 2),
        "worker_scaling_2x_runs": [round(x, 2) for x in ratios],
        "worker_scaling_2x_spread": [round(min(ratios), 2), round(max(ratios), 2)],
        "episodes_per_hour_1worker": round(per_hour_one, 1),
        "episodes_per_hour_2workers": round(per_hour_two, 1),
        "episodes_per_hour_2core": round(max(per_hour_one, per_hour_two), 1),
        "scale_batch_1worker_s": [round(t, 2) for t in one],
        "scale_batch_2workers_s": [round(t, 2) for t in two],
        "scale_episode_clip_s": round(statistics.mean(c for c in clips if c), 2) if clips else None,
        "scale_episodes_per_batch": episodes,
    }


if __name__ == "__main__":
    import json
    import tempfile

    with tempfile.TemporaryDirectory(prefix="storybot-scale-") as folder:
        print(json.dumps(run(Path(folder), *map(int, sys.argv[1:3]))))
