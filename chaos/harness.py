"""Kill `storybot run` with SIGKILL at seeded random points, restart it, then check everything.

    python -m chaos.harness --platform local|mastodon-mock|takahe|bluesky \
        --db sqlite|postgres --kills 30 --rounds 5 --seed S

A story of ``rounds`` rounds (``rounds + 1`` episodes) runs on one platform: the local sandbox,
mastodon-mock with Idempotency-Key switched off (chaos/mastodon.py), a real Takahe
(chaos/takahe.py), which ignores it too, or a real AT Protocol network (chaos/bluesky.py),
which has no idempotency key at all: there the record keys the adapter derives from the outbox
key are all that stands between a killed runner and a second post. Each life of the runner ends
as the seeded plan says (chaos/plan.py): SIGKILL from outside after a random delay, or SIGKILL
from inside at a failpoint (mid-render, between "post sent" and "remote id stored", …). The
followers reply, like and vote on the platform itself in every round, and rounds are closed
with `storybot round close` (or, to crash the runner while it closes one, by making the round
due). When the plan is used up a last runner finishes the story and is stopped with SIGTERM.
Then the database's own checks run (chaos/checks.py), and the server's record is compared with
the database (chaos/record.py): that is where duplicates, losses and divergence are counted.
Last, the same story (same seed, the followers' recorded actions replayed) runs once more
in-process on the sandbox with no kills, and its beats and winners must be the chaotic run's.
The seed and the plan are printed first: the same seed replays the same plan; the last line is
``chaos[PLATFORM]: kills=N duplicates=0 lost=0 diverged=0 wall=Ts``. A failed tick or a crashed
`round close` is a violation unless ``--lenient``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections import deque
from contextlib import ExitStack
from pathlib import Path
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.app import build_app
from bot.config import load_config
from bot.loop.failpoints import Failpoint
from chaos import procs
from chaos.audience import Act, Audience, OpenRound, open_round, perform
from chaos.checks import Outcome, check_story, diverged, outcome
from chaos.plan import Kill, make_plan
from chaos.record import compare
from chaos.report import ChaosReport, summarise
from chaos.world import LocalWorld, Server, World
from story_state.db import make_engine, session_factory, session_scope
from story_state.lifecycle import PostState, StoryStatus
from story_state.models import Episode, Post, Story

SLUG = "chaos"
# An armed failpoint not reached this long after the runner is up and nothing holds it back
# (the followers acted, the round was made due or closed): killed from outside instead.
FALLBACK_S = 15.0
START_CAP_S = 120.0  # a runner not up by then is killed as it is
STOP_TIMEOUT_S = 60.0


def _where(factory: sessionmaker[Session]) -> str:
    """The story's position, for the kill log: head episode and pending posts."""
    try:
        with session_scope(factory) as session:
            head = session.scalars(select(Episode).order_by(Episode.number.desc())).first()
            pending = session.scalar(
                select(func.count()).select_from(Post).where(Post.state == PostState.PENDING)
            )
    except SQLAlchemyError:
        return "no schema yet"
    state = f"episode {head.number} {head.state}" if head else "no episode yet"
    return state + (f", {pending} post(s) pending" if pending else "")


class Harness:
    def __init__(
        self,
        url: str,
        workdir: Path,
        kills: int,
        rounds: int,
        seed: int,
        out: TextIO,
        *,
        server: Server | None = None,
        lenient: bool = False,
    ) -> None:
        self.workdir, self.rounds, self.out, self.lenient = workdir, rounds, out, lenient
        self.seed = seed
        self.server = server
        self.plan = make_plan(kills, rounds, seed)
        lines = server.config_lines(workdir) if server is not None else ()
        self.config = procs.write_config(workdir, url, rounds, seed, lines)
        self.env = server.env() if server is not None else {}
        self.engine = make_engine(url)
        self.factory = session_factory(self.engine)
        self.world: World = server.world() if server is not None else LocalWorld(self.factory)
        db = "postgres" if url.startswith("postgres") else url.split(":")[0].split("+")[0]
        label = self.world.label + ("" if db == "sqlite" else f"+{db}")
        self.audience = Audience(self.factory, self.world, seed)
        self.report = ChaosReport(seed, label)
        self.t0 = time.monotonic()
        self.moved_on = self.t0  # when the harness last let the story move on
        self.logs = workdir / "logs"

    def say(self, line: str) -> None:
        self.out.write(f"[{time.monotonic() - self.t0:6.1f}s] {line}\n")
        self.out.flush()

    def run(self, deadline_s: float) -> ChaosReport:
        queue = deque(self.plan)
        runner: procs.Proc | None = None
        current: Kill | None = None
        closer: procs.Proc | None = None
        made_due: set[int] = set()
        close_after = 0.0
        while True:
            if time.monotonic() - self.t0 > deadline_s:
                self.report.violations.append(f"story did not finish within {deadline_s:.0f}s")
                break
            ended = self._ended()
            if runner is None:
                current = queue.popleft() if queue else None
                if current is not None:
                    current = self._reachable(current, ended)
                runner = self._start(current)
            elif (rc := runner.popen.poll()) is not None:
                if not self._exited(runner, rc, current) and current is not None:
                    queue.appendleft(current)  # that life did not count: live it again
                runner = None
                if len(self.report.violations) > 10:
                    break
                continue
            elif current is not None and self._due(runner, current, ended):
                where = _where(self.factory)
                up = runner.up_for()
                runner.kill()
                late = f" ({current.failpoint.name} not reached)" if current.failpoint else ""
                when = f"{up:.2f}s after start-up" if up is not None else "before start-up"
                self._killed(f"SIGKILL {when}{late}", "timed" + late, where, current)
                runner = None
                continue
            if closer is not None and closer.popen.poll() is not None:
                self._closed(closer)
                self.moved_on = time.monotonic()
                closer = None
            try:
                with session_scope(self.factory) as session:
                    rnd = open_round(session, SLUG, self.world.platform)
            except SQLAlchemyError:
                rnd = None  # the first runner has not migrated the database yet
            if rnd is not None:
                if rnd.round_id not in self.audience.ledger.acted:
                    self._act(rnd)
                how = self._closing(current, rnd.episode)
                if how == "due" and rnd.round_id not in made_due:
                    made_due.add(rnd.round_id)
                    self.moved_on = time.monotonic()
                    self.audience.make_due(rnd)
                    self.report.closes["made due"] += 1
                    self.say(f"round {rnd.episode} made due: the runner closes it")
                elif how == "cli" and closer is None and time.monotonic() >= close_after:
                    closer = self._close(rnd.episode)
                    self.moved_on = time.monotonic()
                    close_after = time.monotonic() + 1.0
            if ended and current is None and runner is not None and self._settled(runner):
                rc = runner.stop(STOP_TIMEOUT_S)
                if rc != 0 or "stopped" not in runner.output():
                    self.report.violations.append(f"SIGTERM: runner exited {rc}, not cleanly")
                self.say(f"story ended; last runner stopped with SIGTERM (exit {rc})")
                break
            time.sleep(0.1)
        for proc in (runner, closer):
            if proc is not None:
                proc.kill()
        return self.report

    def _act(self, rnd: OpenRound) -> None:
        """The followers act on the server, and the round waits until the server shows it."""
        try:
            replies = self.audience.act(rnd)
            missing = self.audience.settle(rnd)
        except Exception as exc:  # a server that refuses them: reported, not a crash
            self.report.violations.append(
                f"followers could not act in round {rnd.episode}: {exc!r}"
            )
            return
        self.report.violations += [
            f"round {rnd.episode}: the server never showed {m}" for m in missing
        ]
        self.say(f"followers acted in round {rnd.episode}: {replies} replies")
        self.moved_on = time.monotonic()

    @staticmethod
    def _closing(kill: Kill | None, episode: int) -> str:
        """How to end an open round: "cli", "due" (the runner closes it) or "hold"."""
        if kill is None or kill.episode > episode:
            return "cli"  # the plan has nothing left for this episode
        if kill.is_close:
            return "due"  # the armed runner must be the one that closes it
        if kill.failpoint is None:
            return "hold"  # a timed kill is coming; let it land in this round
        return "cli"  # render and publish points are met in the next episode

    def _start(self, kill: Kill | None) -> procs.Proc:
        self.report.starts += 1
        name = f"run-{self.report.starts:02d}"
        fp = kill.failpoint if kill else None
        return procs.start(
            self.config, self.logs, name, "run", "--no-web", failpoint=fp, env=self.env
        )

    def _due(self, runner: procs.Proc, kill: Kill, ended: bool) -> bool:
        """Timed kills count from the runner's start-up; an armed failpoint gets FALLBACK_S
        after start-up and after the harness last let the story move on."""
        up = runner.up_for()
        if up is None or runner.ready_at is None:
            return runner.age >= START_CAP_S
        if kill.failpoint is None:
            return up >= kill.delay_s
        if ended and not self._pending():
            return True
        return time.monotonic() - max(runner.ready_at, self.moved_on) >= FALLBACK_S

    def _exited(self, runner: procs.Proc, rc: int, kill: Kill | None) -> bool:
        """Account for a runner that ended by itself; False when its kill is still to come."""
        fired = runner.fired()
        if rc == -9 and fired:
            self._killed(f"failpoint {fired}", fired.split("#")[0], _where(self.factory), kill)
            return True
        if "holds the lock for this database" in runner.output():
            self.report.lock_retries += 1  # the killed runner's session is not gone yet
            time.sleep(0.2)
            return False
        self.report.violations.append(f"{runner.name} exited {rc}: {runner.last_line()}")
        return False

    def _killed(self, how: str, kind: str, where: str, kill: Kill | None) -> None:
        self.report.where[kind] += 1
        n = len(self.report.kills) + 1
        planned = f"plan #{kill.index:02d}, " if kill is not None else ""
        line = f"kill {n}/{len(self.plan)}: {how} ({planned}{where})"
        self.report.kills.append(line)
        self.say(line)

    def _close(self, episode: int) -> procs.Proc:
        self.report.closes["storybot round close"] += 1
        name = f"close-{episode}-{self.report.closes['storybot round close']:02d}"
        return procs.start(self.config, self.logs, name, "round", "close", env=self.env)

    def _closed(self, closer: procs.Proc) -> None:
        """A `round close` that fails with one line lost a race; a traceback is a bug."""
        rc = closer.popen.returncode
        if rc != 0 and "Traceback" in closer.output():
            self.report.errors.append(f"{closer.name} crashed (exit {rc}): {closer.last_line()}")
        elif rc != 0:
            self.report.notes.append(f"{closer.name} lost the race: {closer.last_line()}")

    def _reachable(self, kill: Kill, ended: bool) -> Kill:
        """``kill`` as this life can still meet it, where the story ran ahead of the plan.

        A life armed in episode N may do N's render and N+1's too (a failpoint counts its hits
        in one life), so a later item can find the story an episode further on. The last
        episode publishes its clip only and has no round: a publish point's 2nd hit becomes its
        1st, and a close point (or any point, once the story ended) a timed kill.
        """
        fp = kill.failpoint
        if fp is None:
            return kill
        last = self._head_episode() >= self.rounds + 1
        if ended or (last and kill.is_close):
            return Kill(kill.index, kill.episode, None, kill.delay_s)
        if last and fp.nth > 1:
            return Kill(kill.index, kill.episode, Failpoint(fp.name, fp.action), kill.delay_s)
        return kill

    def _head_episode(self) -> int:
        try:
            with session_scope(self.factory) as session:
                number = session.scalar(
                    select(func.max(Episode.number))
                    .join(Story, Episode.story_id == Story.id)
                    .where(Story.slug == SLUG)
                )
        except SQLAlchemyError:
            return 0
        return number or 0

    def _ended(self) -> bool:
        try:
            with session_scope(self.factory) as session:
                status = session.scalar(select(Story.status).where(Story.slug == SLUG))
        except SQLAlchemyError:
            return False
        return status is StoryStatus.ENDED

    def _settled(self, runner: procs.Proc) -> bool:
        """All posted, and the runner far enough in to handle SIGTERM (not still starting)."""
        return not self._pending() and "storybot is running" in runner.output()

    def _pending(self) -> bool:
        with session_scope(self.factory) as session:
            n = session.scalar(
                select(func.count()).select_from(Post).where(Post.state != PostState.SENT)
            )
        return bool(n)

    def finish(self, deadline_s: float) -> ChaosReport:
        report, world = self.report, self.world
        ledger = self.audience.ledger
        episodes = self.rounds + 1
        with session_scope(self.factory) as session:
            verdict = check_story(
                session, SLUG, episodes, world.platform, ledger, self.workdir / "media"
            )
            chaotic = outcome(session, SLUG)
            try:
                record = compare(session, SLUG, world, episodes, ledger)
            except Exception as exc:  # the server could not be read: no verdict on it
                verdict.check("server: its record could be read", [repr(exc)])
                record = None
        if record is not None:
            name = world.label
            verdict.check(f"{name}: each post published exactly once", record.duplicates)
            verdict.check(f"{name}: every reply and vote on it reached the story", record.lost)
            verdict.check(f"{name}: its thread is the database's thread", record.diverged)
            verdict.check(f"{name}: it shows everything the followers did", record.followers)
            report.duplicates, report.lost = len(record.duplicates), len(record.lost)
            report.diverged = len(record.diverged)
            report.notes.append(
                f"{name} holds {record.statuses} bot statuses, {record.replies} replies to "
                f"them and {record.votes} votes in their polls"
            )
        try:
            reference = reference_run(
                self.workdir / "reference", self.rounds, self.seed, ledger.script, deadline_s
            )
        except Exception as exc:  # reported as a violation, not a crash
            verdict.check("reference: same beats as an uninterrupted run", [f"failed: {exc!r}"])
            report.diverged += episodes
        else:
            differ = diverged(reference, chaotic)
            verdict.check("reference: same beats and winners as an uninterrupted run", differ)
            report.diverged += len(differ)
        report.passed += verdict.passed
        report.violations += verdict.violations
        for log in sorted(self.logs.glob("run-*.log")):
            text = log.read_text(errors="replace")
            if "tick failed" in text:
                report.errors.append(f"{log.stem}: tick failed: {procs.cause(text)}")
        if not self.lenient:
            report.violations += [f"error: {e}" for e in report.errors]
        strays = [p.name for p in (self.workdir / "media").rglob(".*") if p.is_file()]
        if strays:
            report.notes.append(f"{len(strays)} temp media file(s) left by killed renders")
        if self.server is not None:
            report.notes += self.server.notes()
        self.engine.dispose()
        report.elapsed_s = time.monotonic() - self.t0
        return report


def reference_run(
    workdir: Path, rounds: int, seed: int, script: dict[int, list[Act]], deadline_s: float
) -> Outcome:
    """The same story told without interruption, in-process, on its own SQLite database.

    Same config and seed; in each round the followers do exactly what they did in the
    chaotic run (``script``, by episode), then the round is closed as `round close` does.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'reference.db'}"
    app = build_app(load_config(procs.write_config(workdir, url, rounds, seed)))
    t0 = time.monotonic()
    try:
        if app.local is None:
            raise RuntimeError("the reference run has no local platform")
        world = LocalWorld(app.factory)
        acted: set[int] = set()
        while time.monotonic() - t0 < deadline_s:
            progressed = app.runner.tick()
            with session_scope(app.factory) as session:
                status = session.scalar(select(Story.status).where(Story.slug == SLUG))
                rnd = open_round(session, SLUG, world.platform)
            if status is StoryStatus.ENDED:
                break
            if rnd is None:
                if not progressed:
                    time.sleep(0.1)  # a post waiting for its retry
                continue
            if rnd.round_id not in acted:
                acted.add(rnd.round_id)
                perform(world, rnd, script.get(rnd.episode, []))
            app.runner.tick()  # harvest, as the running bot would before the close
            app.runner.close_round_now()
        else:
            raise RuntimeError(f"the reference story did not finish within {deadline_s:.0f}s")
        with session_scope(app.factory) as session:
            return outcome(session, SLUG)
    finally:
        app.close()


def run_chaos(
    url: str,
    workdir: Path,
    *,
    kills: int,
    rounds: int,
    seed: int,
    out: TextIO = sys.stdout,
    deadline_s: float = 1200.0,
    server: Server | None = None,
    lenient: bool = False,
) -> ChaosReport:
    """Run the whole harness against the database at ``url``; prints as it goes.

    The story goes to ``server`` (a Mastodon-API server, a Bluesky network), else to the local
    sandbox.
    ``lenient`` lets crashes that broke no guarantee (a `round close` traceback, a failed
    tick) pass; by default they are violations.
    """
    harness = Harness(url, workdir, kills, rounds, seed, out, server=server, lenient=lenient)
    out.write(
        f"chaos: seed={seed} kills={kills} rounds={rounds} db={url.split(':')[0]} "
        f"platform={harness.world.label}\n"
    )
    for kill in harness.plan:
        out.write(f"  plan #{kill.index:02d} episode {kill.episode}: {kill.describe()}\n")
    harness.run(deadline_s)
    report = harness.finish(deadline_s)
    summarise(report, out)
    return report


PLATFORMS = ("local", "mastodon-mock", "takahe", "bluesky")


def _server(platform: str, workdir: Path, stack: ExitStack) -> Server | None:
    if platform == "mastodon-mock":
        from chaos.mastodon import running_mock

        return stack.enter_context(running_mock(workdir))
    if platform == "takahe":
        from chaos.takahe import running_takahe

        return stack.enter_context(running_takahe(workdir / "takahe"))
    if platform == "bluesky":
        from chaos.bluesky import running_bluesky

        return stack.enter_context(running_bluesky(workdir / "bluesky"))
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.harness", description=__doc__)
    parser.add_argument("--platform", choices=PLATFORMS, default="local")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--db-url", help="use this database instead of a throwaway one")
    parser.add_argument("--kills", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=None, help="default: chosen and printed")
    parser.add_argument(
        "--deadline",
        type=float,
        default=1800.0,
        help="seconds the story may take (and again the reference)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--lenient", action="store_true", help="failed ticks and crashed closes are no violation"
    )
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(3))
    workdir = Path(tempfile.mkdtemp(prefix=f"storybot-chaos-{args.platform}-{args.db}-"))
    with ExitStack() as stack:
        url = args.db_url
        if url is None and args.db == "postgres":
            from chaos.pg import running_server  # a throwaway cluster on loopback

            url = stack.enter_context(stack.enter_context(running_server()).database())
        url = url or f"sqlite:///{workdir / 'chaos.db'}"
        server = _server(args.platform, workdir, stack)
        report = run_chaos(
            url,
            workdir,
            kills=args.kills,
            rounds=args.rounds,
            seed=seed,
            deadline_s=args.deadline,
            server=server,
            lenient=args.lenient,
        )
    if report.ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"work folder kept: {workdir}", file=sys.stderr)  # stdout ends with the summary
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
