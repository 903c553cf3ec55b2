"""Advances each story through the episode lifecycle, one persisted step at a time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.ideas.embeddings_openai import Embedder, embed_new
from bot.ideas.harvest import harvest, second_opinion
from bot.ideas.moderation_openai import Classifier
from bot.loop import failpoints, health, rounds
from bot.loop.captions import alt_text, clip_caption, poll_caption, still_alt_text
from bot.loop.jobs import JobQueue
from bot.loop.outbox import Outbox, ensure_post, idempotency_key
from bot.loop.steplock import StepLock
from bot.platforms.base import Limits, Media, OutgoingPost, Platform, Poll, PostRef
from bot.platforms.base import PollTally as TallyIn
from bot.redact import scrub
from generation.pipeline import Generators, RenderJob, derive_seed, render_episode
from generation.writer.base import Idea, PreviousEpisode, StoryContext, WriteRequest
from story_state.branches import check_branch, inside
from story_state.db import session_scope
from story_state.errors import GenerationError, PlatformError, StateError, StorybotError
from story_state.lifecycle import (
    EpisodeState,
    PostState,
    RoundStatus,
    StoryStatus,
    check_transition,
)
from story_state.memory import image_prompt_with_cast, in_shot, relevant
from story_state.models import Credit, Episode, Post, Round, Story

log = logging.getLogger(__name__)
MAIN = "main"


@dataclass(frozen=True)
class StepResult:
    progressed: bool
    note: str = ""


def move(episode: Episode, target: EpisodeState) -> None:
    check_transition(episode.state, target, episode.failed_from)
    log.info("episode %s%s: %s → %s", episode.number, _tag(episode), episode.state, target)
    episode.state = target
    episode.failed_from = None
    episode.failure_reason = None
    episode.attempts = 0
    episode.next_attempt_at = None


def hold(episode: Episode, reason: str | None = None) -> None:
    """Hold the episode for the operator (FAILED), remembering the step it failed in."""
    check_transition(episode.state, EpisodeState.FAILED)
    log.warning("episode %s%s: held in %s", episode.number, _tag(episode), episode.state)
    episode.failed_from = episode.state
    episode.state = EpisodeState.FAILED
    if reason is not None:
        episode.failure_reason = reason


def _closed_early(session: Session, episode: Episode | None) -> datetime | None:
    """When ``episode``'s round was closed, if that was before its poll's own end: the
    platforms' polls stayed open (no server can end one early), so later votes did not count."""
    rnd = episode.round if episode is not None else None
    if episode is None or rnd is None or rnd.closed_at is None:
        return None
    ends = [
        datetime.fromisoformat(p.payload["poll"]["closes_at"])
        for p in session.scalars(
            select(Post).where(Post.episode_id == episode.id, Post.kind == "poll")
        )
        if p.payload and p.payload.get("poll")
    ]
    if not ends or rnd.closed_at >= min(ends) - timedelta(minutes=1):
        return None
    return rnd.closed_at


def _tag(episode: Episode) -> str:
    return "" if episode.branch == MAIN else f" [{episode.branch}]"


def _voters(episode: Episode | None) -> int | None:
    """How many people voted in the round that chose the next episode's beat."""
    if episode is None or episode.round is None or not episode.round.decision:
        return None
    return int(episode.round.decision.get("voters", 0)) or None


def path_to(episode: Episode) -> list[Episode]:
    """The episodes from the first to ``episode`` along its branch's ancestry."""
    chain = [episode]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    return chain[::-1]


class StoryRunner:
    def __init__(
        self,
        config: Config,
        factory: sessionmaker[Session],
        platforms: Mapping[str, Platform],
        generators: Generators,
        media_root: Path,
        clock: Callable[[], datetime],
        jobs: JobQueue | None = None,
        job_timeout: timedelta = timedelta(minutes=30),
        moderation: Classifier | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.config = config
        self.moderation = moderation
        self.embedder = embedder
        self.jobs = jobs
        self.job_timeout = job_timeout
        self.factory = factory
        self.platforms = dict(platforms)
        self.generators = generators
        self.media_root = media_root
        self.clock = clock
        sched = config.scheduler
        self.retry_base = timedelta(seconds=sched.retry_base_seconds)
        self.outbox = Outbox(factory, self.platforms, self.retry_base, sched.max_attempts)
        # The scheduler ticks in one thread while the dashboard acts in another: one at a time,
        # except around a writer or a render, which hand the lock back (see steplock.py).
        self.lock = StepLock()

    @property
    def guard(self) -> Callable[[], bool]:
        """Whether this process may still act: `storybot run` sets it to its lock's check."""
        return self.outbox.guard

    @guard.setter
    def guard(self, check: Callable[[], bool]) -> None:
        self.outbox.guard = check

    # -- entry points -----------------------------------------------------------------

    def ensure_story(self) -> int:
        story_cfg = self.config.story
        with session_scope(self.factory) as session:
            story = session.scalars(select(Story).where(Story.slug == story_cfg.slug)).first()
            if story is None:
                story = Story(
                    slug=story_cfg.slug,
                    title=story_cfg.title,
                    premise=story_cfg.premise,
                    status=StoryStatus.ACTIVE,
                    seed=story_cfg.seed,
                    episode_cap=story_cfg.episode_cap,
                    summary="",
                    created_at=self.clock(),
                )
                session.add(story)
                session.flush()
            return story.id

    def tick(self, stop: threading.Event | None = None, max_steps: int = 100) -> list[str]:
        """Do everything that is due now on every branch; returns a line per step taken."""
        story_id = self.ensure_story()
        notes = []
        for _ in range(max_steps):
            if stop is not None and stop.is_set():
                break
            if not self.guard():
                # Another runner may hold the lock now: acting on would race it.
                notes.append("stopped: this runner no longer holds the database's runner lock")
                if stop is not None:
                    stop.set()
                break
            result = self.step(story_id)
            if not result.progressed:
                break
            notes.append(result.note)
        return notes

    def own_handles(self) -> tuple[str, ...]:
        """The bot's names on every platform (its own mention in a reply is not spam)."""
        names = [self.config.platforms.local.bot_name]
        for platform in self.platforms.values():
            ask = getattr(platform, "own_handles", None)
            if callable(ask):
                try:
                    names += list(ask())
                except PlatformError as exc:  # read again next time; the rules still apply
                    log.info("%s: the bot's own handle is unknown for now: %s", platform.name, exc)
        return tuple(dict.fromkeys(names))

    def _head(self, session: Session, story_id: int, branch: str) -> Episode | None:
        return session.scalars(
            select(Episode)
            .where(Episode.story_id == story_id, Episode.branch == branch)
            .order_by(Episode.number.desc())
        ).first()

    def branches(self, session: Session, story_id: int) -> list[str]:
        names = session.scalars(
            select(Episode.branch)
            .where(Episode.story_id == story_id)
            .group_by(Episode.branch)
            .order_by(func.min(Episode.id))
        ).all()
        return list(names) or [MAIN]

    def close_round_now(self, branch: str = MAIN) -> str:
        with self.lock:
            return self._close_round_now_locked(branch)

    def _close_round_now_locked(self, branch: str = MAIN) -> str:
        """Make the branch's open round due now and close it."""
        story_id = self.ensure_story()
        with session_scope(self.factory) as session:
            episode = self._head(session, story_id, branch)
            if episode is None or episode.state is not EpisodeState.POLLING or not episode.round:
                raise StateError(f"there is no open round to close on branch {branch!r}")
            episode.round.closes_at = min(episode.round.closes_at, self.clock())
            episode_id = episode.id
            polls = {
                name: self._sent_ref(session, episode.id, "poll", name) for name in self.platforms
            }
        note = self._advance(episode_id, self.clock()).note
        for name, remote_id in polls.items():
            end_poll = getattr(self.platforms[name], "end_poll", None)
            if remote_id and callable(end_poll):  # platforms that can close a poll early
                end_poll(PostRef(name, remote_id))
        return note

    def set_paused(self, paused: bool) -> str:
        with self.lock:
            return self._set_paused_locked(paused)

    def _set_paused_locked(self, paused: bool) -> str:
        """Pause (nothing advances; platforms keep taking replies and votes) or resume."""
        story_id = self.ensure_story()
        with session_scope(self.factory) as session:
            story = session.get(Story, story_id)
            assert story is not None
            if story.status is StoryStatus.ENDED:
                raise StateError(f"story {story.slug} has ended")
            story.status = StoryStatus.PAUSED if paused else StoryStatus.ACTIVE
            return f"story {story.slug} is {story.status}"

    def retry_held(self, branch: str = MAIN) -> str:
        with self.lock:
            return self._retry_held_locked(branch)

    def _retry_held_locked(self, branch: str = MAIN) -> str:
        """Send a held (FAILED) episode back to the step it failed in."""
        story_id = self.ensure_story()
        with session_scope(self.factory) as session:
            episode = self._head(session, story_id, branch)
            if episode is None or episode.state is not EpisodeState.FAILED:
                raise StateError(f"no episode is held on branch {branch!r}")
            target = episode.failed_from
            if target is None:
                raise StateError(f"episode {episode.number} is held but its step is unknown")
            reason = episode.failure_reason
            move(episode, target)
            for post in session.scalars(select(Post).where(Post.episode_id == episode.id)):
                if post.state is PostState.FAILED:
                    post.state, post.attempts, post.next_attempt_at = PostState.PENDING, 0, None
            return f"episode {episode.number} goes back to {target} (was held: {reason})"

    def fork(self, number: int, option: int, branch: str) -> str:
        with self.lock:
            return self._fork_locked(number, option, branch)

    def _fork_locked(self, number: int, option: int, branch: str) -> str:
        """ "What if option ``option`` had won after episode ``number``?" as a new branch."""
        story_id = self.ensure_story()
        check_branch(branch, new=True)  # it becomes a folder under the media root
        with session_scope(self.factory) as session:
            source = session.scalars(
                select(Episode).where(
                    Episode.story_id == story_id, Episode.number == number, Episode.branch == MAIN
                )
            ).first()
            if source is None:
                raise StateError(f"there is no episode {number} on the main line")
            child = rounds.fork(session, source, option, branch, self.clock())
            return f"branch {branch!r} starts at episode {child.number}: {child.beat}"

    # -- the state machine ----------------------------------------------------------------

    def step(self, story_id: int) -> StepResult:
        with self.lock:
            return self._step_locked(story_id)

    def _step_locked(self, story_id: int) -> StepResult:
        """One step on the first branch that has something due."""
        now = self.clock()
        self.outbox.sweep(now)  # platforms that fell behind catch up, in thread order
        with session_scope(self.factory) as session:
            story = session.get(Story, story_id)
            if story is None or story.status is not StoryStatus.ACTIVE:
                return StepResult(False, "story is not active")
            if self._head(session, story_id, MAIN) is None:
                self._plan_first(session, story)
                return StepResult(True, "planned episode 1")
            heads = [self._head(session, story_id, b) for b in self.branches(session, story_id)]
            due = [
                h.id
                for h in heads
                if h is not None and (h.next_attempt_at is None or h.next_attempt_at <= now)
            ]
        notes = []
        for episode_id in due:
            result = self._advance(episode_id, now)
            if result.progressed:
                return result
            notes.append(result.note)
        return StepResult(False, "; ".join(notes) or "nothing due")

    def _advance(self, episode_id: int, now: datetime) -> StepResult:
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            state = episode.state
        if self.jobs is not None and state in (EpisodeState.PLANNED, EpisodeState.WRITTEN):
            return self._submit(episode_id, now)
        return self._run_step(episode_id, state, now)

    def rerender(self, episode_id: int) -> Path:
        """Render an episode's files again from its stored script (they were deleted)."""
        with self.lock, session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            if episode.narration is None:
                raise StateError(f"episode {episode.number} has no script to render from")
            job = self._render_job(session, episode)
            out_dir = self._episode_dir(episode)
        result = render_episode(self.generators, job, out_dir, failpoints.hit)
        return result.video

    def render_now(self, episode_id: int) -> StepResult:
        """A worker's job: write and render one episode here, then give it back."""
        with self.lock:
            result = StepResult(False, "nothing to do")
            for _ in range(2):  # PLANNED → WRITTEN → RENDERED
                now = self.clock()
                with session_scope(self.factory) as session:
                    episode = session.get(Episode, episode_id)
                    if episode is None or episode.state not in (
                        EpisodeState.PLANNED,
                        EpisodeState.WRITTEN,
                    ):
                        break
                    if episode.next_attempt_at is not None and episode.next_attempt_at > now:
                        break  # a late duplicate of a failed job: the backoff still holds
                    state = episode.state
                result = self._run_step(episode_id, state, now)
                if not result.progressed:
                    break
            with session_scope(self.factory) as session:
                episode = session.get(Episode, episode_id)
                if episode is not None:
                    episode.job_id = None
                    episode.job_submitted_at = None
            return result

    def _submit(self, episode_id: int, now: datetime) -> StepResult:
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None and self.jobs is not None
            submitted = episode.job_submitted_at
            if submitted is not None and submitted > now - self.job_timeout:
                return StepResult(False, f"episode {episode.number} is rendering on a worker")
            if submitted is not None:
                # No worker finished it in time (crashed, out of memory): that is an attempt.
                episode.attempts += 1
                episode.failure_reason = f"no worker finished job {episode.job_id} in time"
                if episode.attempts >= self.config.scheduler.max_attempts:
                    hold(episode)
                    episode.job_id = episode.job_submitted_at = None
                    return StepResult(
                        False, f"held episode {episode.number}: {episode.failure_reason}"
                    )
            episode.job_id = self.jobs.submit(episode_id)
            episode.job_submitted_at = now
            return StepResult(False, f"episode {episode.number} queued for a worker")

    def _run_step(self, episode_id: int, state: EpisodeState, now: datetime) -> StepResult:
        handler = {
            EpisodeState.PLANNED: self._write,
            EpisodeState.WRITTEN: self._render,
            EpisodeState.RENDERED: self._publish_clip,
            EpisodeState.PUBLISHED: self._open_round,
            EpisodeState.POLLING: self._poll,
        }.get(state)
        if handler is None:
            return StepResult(False, f"episode is {state}")
        try:
            return handler(episode_id, now)
        except (GenerationError, PlatformError) as exc:
            return self._failed(episode_id, state, exc, now)

    def _failed(
        self, episode_id: int, state: EpisodeState, exc: StorybotError, now: datetime
    ) -> StepResult:
        log.warning("episode step %s failed: %s", state, exc)
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            episode.attempts += 1
            episode.failure_reason = scrub(f"{type(exc).__name__}: {exc}")
            delay = self.retry_base * (2 ** min(episode.attempts - 1, 10))
            episode.next_attempt_at = now + delay
            if episode.attempts >= self.config.scheduler.max_attempts:
                hold(episode)
                episode.next_attempt_at = None
        return StepResult(False, f"{state} failed: {exc}")

    def _plan_first(self, session: Session, story: Story) -> None:
        session.add(
            Episode(
                story_id=story.id,
                branch=MAIN,
                number=1,
                state=EpisodeState.PLANNED,
                beat=story.premise,
                ideas=[],
                is_final=story.episode_cap == 1,
                seed=derive_seed(story.seed, story.slug, 1),
                created_at=self.clock(),
            )
        )

    def _write(self, episode_id: int, now: datetime) -> StepResult:
        cfg = self.config.story
        max_options = self.limits().max_poll_options  # the platforms, asked outside a transaction
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            story = episode.story
            earlier = path_to(episode)[:-1]
            previous = tuple(
                PreviousEpisode(e.number, e.title or "", e.beat, e.narration or "") for e in earlier
            )
            ideas = tuple(Idea(i["text"], tuple(i.get("authors", ()))) for i in episode.ideas)
            lore = relevant(
                rounds.lore_of(session, story.id),
                episode.beat,
                *(i.text for i in ideas),
                *(p.narration for p in previous[-1:]),
            )
            on_path = {e.id for e in earlier}  # a fork keeps only the facts of its own past
            facts = tuple(
                e.name
                for e in story.lore
                if e.kind == "fact"
                and e.status == "canon"
                and (e.source_episode_id is None or e.source_episode_id in on_path)
            )
            context = StoryContext(
                cfg.title,
                cfg.premise,
                cfg.style,
                cfg.language,
                previous,
                story.summary,
                lore,
                facts,
            )
            request = WriteRequest(
                context=context,
                number=episode.number,
                beat=episode.beat,
                ideas=ideas,
                seed=episode.seed,
                is_final=episode.is_final,
                max_options=max_options,
                target_seconds=cfg.target_seconds,
            )
        # No transaction and no runner lock while the writer works (an LLM may take minutes):
        # the dashboard stays responsive, and the result is stored only if nothing moved on.
        with self.lock.released():
            script = self.generators.writer.write(request)
        if not request.is_final and not 2 <= len(script.options) <= 4:
            raise GenerationError(f"writer gave {len(script.options)} options; need 2–4")
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            if episode is None or episode.state is not EpisodeState.PLANNED:
                return StepResult(False, "episode moved on while it was being written")
            episode.title = script.title
            episode.narration = script.narration
            episode.subtitles = list(script.subtitles)
            episode.image_prompt = script.image_prompt
            episode.next_options = list(script.options)
            rounds.remember(session, episode, script, review=cfg.lore_updates == "review")
            move(episode, EpisodeState.WRITTEN)
            return StepResult(
                True, f"wrote episode {episode.number}{_tag(episode)}: {script.title}"
            )

    def _episode_dir(self, episode: Episode) -> Path:
        base = self.media_root / episode.story.slug
        if episode.branch != MAIN:
            base = base / episode.branch
        return inside(self.media_root, base / f"episode-{episode.number:03d}")

    def _render_job(self, session: Session, episode: Episode) -> RenderJob:
        clip_cfg = self.config.generation.clip
        prompt = episode.image_prompt or ""
        cast = in_shot(rounds.lore_of(session, episode.story_id), prompt, episode.narration or "")
        # The lead character's fixed seed keeps them looking alike from shot to shot.
        seed = cast[0].image_seed if cast and cast[0].image_seed is not None else episode.seed
        return RenderJob(
            narration=episode.narration or "",
            subtitles=tuple(episode.subtitles or ()),
            image_prompt=image_prompt_with_cast(prompt, cast),
            style=self.config.story.style,
            seed=seed,
            width=clip_cfg.width,
            height=clip_cfg.height,
            fps=clip_cfg.fps,
            look=clip_cfg.look,
            music=self._music(),
            music_gain_db=clip_cfg.music_gain_db,
        )

    def _render(self, episode_id: int, now: datetime) -> StepResult:
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            job = self._render_job(session, episode)
            out_dir = self._episode_dir(episode)
        # Rendering holds no transaction and no runner lock: it is slow, the dashboard must not
        # wait for it, and a crash here just renders again.
        started = time.monotonic()
        with self.lock.released():
            result = render_episode(self.generators, job, out_dir, failpoints.hit)
        render_s = time.monotonic() - started
        failpoints.hit("after_render")  # media on disk, the RENDERED state not committed
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            if episode.state is not EpisodeState.WRITTEN:
                return StepResult(False, "episode moved on while rendering")
            root = self.media_root
            episode.still_path = str(result.still.relative_to(root))
            episode.audio_path = str(result.audio.relative_to(root))
            episode.video_path = str(result.video.relative_to(root))
            episode.duration_s = result.duration_s
            episode.render_s = round(render_s, 3)
            move(episode, EpisodeState.RENDERED)
            return StepResult(
                True,
                f"rendered episode {episode.number}{_tag(episode)} ({result.duration_s:.1f} s)",
            )

    def _music(self) -> Path | None:
        music = self.config.generation.clip.music
        if music is None or music.is_absolute() or self.config.source is None:
            return music
        return self.config.source.resolve().parent / music

    def limits(self) -> Limits:
        """The strictest limits over every platform the story posts to."""
        all_limits = [p.limits() for p in self.platforms.values()]
        return Limits(
            max_poll_options=min(lim.max_poll_options for lim in all_limits),
            max_option_chars=min(lim.max_option_chars for lim in all_limits),
            min_poll_minutes=max(lim.min_poll_minutes for lim in all_limits),
            max_poll_minutes=min(lim.max_poll_minutes for lim in all_limits),
            max_post_chars=min(lim.max_post_chars for lim in all_limits),
            accepts_video=all(lim.accepts_video for lim in all_limits),
        )

    def _key(self, episode: Episode, kind: str, platform: str) -> str:
        slug = episode.story.slug
        if episode.branch != MAIN:
            slug = f"{slug}@{episode.branch}"
        return idempotency_key(slug, episode.number, kind, platform)

    def _sent_ref(self, session: Session, episode_id: int, kind: str, platform: str) -> str | None:
        return session.scalars(
            select(Post.remote_id).where(
                Post.episode_id == episode_id,
                Post.kind == kind,
                Post.platform == platform,
                Post.state == PostState.SENT,
            )
        ).first()

    def _post_row(self, session: Session, episode_id: int, kind: str, platform: str) -> Post | None:
        return session.scalars(
            select(Post).where(
                Post.episode_id == episode_id, Post.kind == kind, Post.platform == platform
            )
        ).first()

    def _post_everywhere(
        self,
        session: Session,
        episode: Episode,
        kind: str,
        message: OutgoingPost,
        parent: tuple[int, str] | None,
    ) -> list[int]:
        """One outbox row per platform for ``message`` (kept if it exists): their ids.

        ``parent`` is (episode id, kind) of the post this one answers on the same platform.
        """
        post_ids = []
        for name in self.platforms:
            answers = self._post_row(session, parent[0], parent[1], name) if parent else None
            row = ensure_post(
                session,
                episode_id=episode.id,
                platform=name,
                kind=kind,
                key=self._key(episode, kind, name),
                post=message,
                parent_post_id=answers.id if answers else None,
            )
            post_ids.append(row.id)
        return post_ids

    def _publish_clip(self, episode_id: int, now: datetime) -> StepResult:
        limits = self.limits()
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            parent = episode.parent
            # A fork starts its own thread; otherwise the clip answers the previous poll.
            threaded = parent if parent is not None and parent.branch == episode.branch else None
            credits = self._credits(session, episode)
            message = OutgoingPost(
                idempotency_key="",
                text=clip_caption(
                    episode,
                    credits,
                    limits.max_post_chars,
                    voters=_voters(episode.parent),
                    closed_early_at=_closed_early(session, threaded),
                ),
                media=(
                    Media(
                        self.media_root / (episode.video_path or ""),
                        alt_text(episode.narration or "", credits),
                        still_alt_text=still_alt_text(episode.narration or "", credits),
                    ),
                ),
            )
            # On each platform the clip answers the previous episode's poll there.
            answers_to = (threaded.id, "poll") if threaded is not None else None
            post_ids = self._post_everywhere(session, episode, "clip", message, answers_to)
            label = f"{episode.number}{_tag(episode)}"
        self.outbox.send(post_ids, now)
        return self._after_send(
            episode_id, post_ids, EpisodeState.PUBLISHED, f"posted episode {label}"
        )

    def _credits(self, session: Session, episode: Episode) -> list[str]:
        """This episode's contributors; the final episode thanks everyone on its path."""
        if not episode.is_final:
            return [c.contributor.display_name for c in episode.credits]
        ids = [e.id for e in path_to(episode)]
        rows = session.scalars(
            select(Credit).where(Credit.episode_id.in_(ids)).order_by(Credit.id)
        ).all()
        return list(dict.fromkeys(c.contributor.display_name for c in rows))

    def _after_send(
        self, episode_id: int, post_ids: list[int], target: EpisodeState, note: str
    ) -> StepResult:
        """Move on once any platform has the post; the others catch up later, in order.

        Only when every platform refused for good is the episode held for the operator.
        """
        with session_scope(self.factory) as session:
            rows = [r for r in (session.get(Post, i) for i in post_ids) if r is not None]
            episode = session.get(Episode, episode_id)
            assert episode is not None
            if any(r.state is PostState.SENT for r in rows):
                lagging = [r.platform for r in rows if r.state is not PostState.SENT]
                move(episode, target)
                return StepResult(
                    True, note + (f" (later on {', '.join(lagging)})" if lagging else "")
                )
            failed = [r for r in rows if r.state is PostState.FAILED]
            if rows and len(failed) == len(rows):
                reason = "; ".join(f"{r.platform}: {r.last_error}" for r in failed)
                hold(episode, f"post failed: {reason}")
                return StepResult(False, f"held episode {episode.number}: {reason}")
            waits = [r.next_attempt_at for r in rows if r.next_attempt_at]
            if waits:
                episode.next_attempt_at = min(waits)
        return StepResult(False, "posting waits for a retry")

    def _open_round(self, episode_id: int, now: datetime) -> StepResult:
        limits = self.limits()
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None
            if episode.is_final:
                move(episode, EpisodeState.ENDED)
                story = episode.story
                heads = [self._head(session, story.id, b) for b in self.branches(session, story.id)]
                if all(h is not None and h.state is EpisodeState.ENDED for h in heads):
                    story.status = StoryStatus.ENDED
                return StepResult(True, f"episode {episode.number}{_tag(episode)} was the last")
            rnd = episode.round
            if rnd is None:
                minutes = max(
                    limits.min_poll_minutes,
                    min(self.config.story.round_minutes, limits.max_poll_minutes),
                )
                rnd = Round(
                    episode_id=episode.id,
                    status=RoundStatus.OPEN,
                    opens_at=now,
                    closes_at=now + timedelta(minutes=minutes),
                )
                session.add(rnd)
                session.flush()
                rounds.add_options(session, episode, rnd, limits, self.config)
                session.flush()
                session.refresh(rnd)
            message = OutgoingPost(
                idempotency_key="",
                text=poll_caption(
                    self.config.story.poll_question,
                    rnd.options,
                    limits.max_post_chars,
                    episode.number,
                ),
                poll=Poll(tuple(o.label for o in rnd.options), rnd.closes_at),
            )
            # On each platform the poll answers this episode's clip there.
            post_ids = self._post_everywhere(
                session, episode, "poll", message, (episode.id, "clip")
            )
            label = f"{episode.number}{_tag(episode)}"
        self.outbox.send(post_ids, now)
        return self._after_send(
            episode_id, post_ids, EpisodeState.POLLING, f"opened the round after episode {label}"
        )

    def _poll(self, episode_id: int, now: datetime) -> StepResult:
        with session_scope(self.factory) as session:
            episode = session.get(Episode, episode_id)
            assert episode is not None and episode.round is not None
            refs = {
                name: tuple(
                    PostRef(name, ref)
                    for kind in ("clip", "poll")
                    if (ref := self._sent_ref(session, episode.id, kind, name))
                )
                for name in self.platforms
            }
            due = episode.round.closes_at <= now
        own = self.own_handles()
        readable = [
            (name, platform)
            for name, platform in self.platforms.items()
            if platform.limits().can_read and refs[name]
        ]
        failures: list[PlatformError] = []
        answered: list[str] = []
        for name, platform in readable:
            try:
                replies = platform.fetch_replies(refs[name])
            except PlatformError as exc:
                # One platform down must not stop the others: note it, read the rest.
                log.warning("%s: cannot read replies: %s", name, exc)
                health.record(self.factory, name, now, exc)
                failures.append(exc)
                continue
            health.record(self.factory, name, now)
            answered.append(name)
            with session_scope(self.factory) as session:
                later = self.moderation is not None  # it judges what the rules let through
                settings = self.config.moderation
                # A platform that reads every reply tells us which ideas were deleted.
                whole = name if getattr(platform, "reads_every_reply", False) else None
                harvest(
                    session,
                    episode_id,
                    replies,
                    settings,
                    now,
                    later,
                    own_handles=own,
                    complete_for=whole,
                )
        if readable and len(failures) == len(readable):
            raise failures[0]  # nothing could be read anywhere: a failed step, retried
        if self.moderation is not None:
            second_opinion(
                self.factory, episode_id, self.moderation, self.config.moderation, own_handles=own
            )
        if self.embedder is not None:
            embed_new(self.factory, episode_id, self.embedder)
        polls = {
            name: refs[name][1]
            for name, platform in self.platforms.items()
            if platform.limits().can_read and len(refs[name]) == 2
        }
        if not due:
            # Only platforms that answered just now: one that is down is not asked twice a tick.
            self._live_tallies(episode_id, {n: polls[n] for n in answered if n in polls}, now)
            with session_scope(self.factory) as session:
                episode = session.get(Episode, episode_id)
                if episode is not None and episode.attempts:
                    # Reading worked again: earlier failed reads no longer count toward a hold.
                    episode.attempts, episode.failure_reason = 0, None
            return StepResult(False, "round is open")
        failpoints.hit("before_close")  # replies harvested and committed, round still open
        tallies: dict[str, TallyIn] = {}
        unread: list[str] = []
        for name, poll in polls.items():
            try:
                tallies[name] = self.platforms[name].fetch_tally(poll)
            except PlatformError as exc:
                # The round closes on the others' votes and this one's last live reading, if
                # it was ever read (rounds.close says so in the decision's reason).
                log.warning("%s: cannot read the poll; closing on its last reading: %s", name, exc)
                health.record(self.factory, name, now, exc)
                unread.append(name)
        with session_scope(self.factory) as session:
            # Claim the round first: the runner and `storybot round close` may both get here,
            # and only the one whose update still finds it POLLING may close it.
            claimed = session.execute(
                update(Episode)
                .where(Episode.id == episode_id, Episode.state == EpisodeState.POLLING)
                .values(updated_at=now)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                return StepResult(False, "the round was closed by another process")
            episode = session.get(Episode, episode_id)
            assert episode is not None
            check_transition(episode.state, EpisodeState.CLOSED)
            threshold = self.config.clustering.threshold
            note = rounds.close(session, episode, tallies, now, threshold, unread=unread)
            return StepResult(True, note)

    def _live_tallies(self, episode_id: int, polls: Mapping[str, PostRef], now: datetime) -> None:
        """Read each platform's poll while the round is open and keep the reading (PollTally
        rows with their time), for /admin, the sandbox page and `storybot status`, which never
        call a platform themselves, and as the fallback if the poll cannot be read at close.

        No transaction is held across a call. A platform read less than half a tick ago is not
        read again (a manual tick, several branches); a failed read is logged and marked in the
        platform's health, never a failed step: the previous reading stays, with its time."""
        if not polls:
            return
        fresh_after = now - timedelta(seconds=self.config.scheduler.tick_seconds / 2)
        with session_scope(self.factory) as session:
            rnd = session.scalars(select(Round).where(Round.episode_id == episode_id)).one()
            round_id, options = rnd.id, len(rnd.options)
            read = {
                name: found[1]
                for name in polls
                if (found := rounds.stored_tally(session, round_id, name, options)) is not None
            }
        for name, poll in polls.items():
            if name in read and read[name] > fresh_after:
                continue
            try:
                tally = self.platforms[name].fetch_tally(poll)
            except PlatformError as exc:
                log.warning("%s: cannot read the open poll (its last reading stays): %s", name, exc)
                health.record(self.factory, name, now, exc)
                continue
            with session_scope(self.factory) as session:
                still_open = session.scalars(
                    select(Round.id).where(Round.id == round_id, Round.status == RoundStatus.OPEN)
                ).first()
                if still_open is not None:  # a close in another process wrote the final one
                    rounds.store_tally(session, round_id, name, tally.counts[:options], now)
