"""Stored state: stories, episodes, rounds, suggestions, polls, the outbox and the local sandbox."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Enum,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from story_state.clock import utcnow
from story_state.db import Base
from story_state.lifecycle import EpisodeState, PostState, RoundStatus, StoryStatus

NAIVE = "naive datetime given; storybot stores UTC-aware datetimes only"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(NAIVE)
        return value.astimezone(UTC)

    def bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        """On SQLite, the stored text straight from the datetime: SQLAlchemy's processor
        formats a dict of its fields (about 5 µs a value; a busy round's harvest stores ten
        thousand). Another storage format, or another database, gets the general one."""
        general = super().bind_processor(dialect)
        impl = self.impl_instance  # SQLite's DATETIME in the copy adapted to the dialect
        if not isinstance(impl, sqlite.DATETIME) or (
            impl._storage_format != sqlite.DATETIME._storage_format or impl._reg is not None
        ):
            return general

        def process(value: Any) -> Any:
            if value is None:
                return None
            if not isinstance(value, datetime):
                return general(value) if general is not None else value  # its error, as ever
            if value.tzinfo is None:
                raise ValueError(NAIVE)
            if value.tzinfo is not UTC:
                value = value.astimezone(UTC)
            # "YYYY-MM-DD HH:MM:SS.ffffff+00:00": the stored format, then the offset.
            return value.isoformat(" ", "microseconds")[:26]

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _enum(cls: type[Any], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        values_callable=lambda e: [m.value for m in e],
        length=16,
        validate_strings=True,
    )


class Story(Base):
    __tablename__ = "stories"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    premise: Mapped[str] = mapped_column(Text)
    status: Mapped[StoryStatus] = mapped_column(_enum(StoryStatus, "story_status"))
    seed: Mapped[int] = mapped_column(Integer)
    episode_cap: Mapped[int] = mapped_column(Integer)
    # The story so far in a few sentences, refreshed after every episode (the writer's memory).
    summary: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    episodes: Mapped[list[Episode]] = relationship(
        back_populates="story", order_by="(Episode.branch, Episode.number)"
    )
    lore: Mapped[list[LoreEntry]] = relationship(back_populates="story", order_by="LoreEntry.id")


class LoreEntry(Base):
    """The story bible: characters, places and canon facts the writer must respect."""

    __tablename__ = "lore_entries"
    __table_args__ = (UniqueConstraint("story_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # "character" | "place" | "fact"
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    visual: Mapped[str] = mapped_column(Text, default="")  # how a character always looks
    image_seed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)  # triggers (besides name)
    # Patterns a suggestion must not match without being flagged ("Mara is alive" …).
    contradictions: Mapped[list[str]] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16))  # "canon" | "proposed" | "rejected"
    source_episode_id: Mapped[int | None] = mapped_column(
        ForeignKey("episodes.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    story: Mapped[Story] = relationship(back_populates="lore")


class Episode(Base):
    __tablename__ = "episodes"
    __table_args__ = (UniqueConstraint("story_id", "branch", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    story_id: Mapped[int] = mapped_column(ForeignKey("stories.id", ondelete="CASCADE"))
    # Episodes form a tree: the main line is branch "main"; a fork ("what if option B had
    # won?") starts a new branch whose first episode's parent is the forked episode.
    branch: Mapped[str] = mapped_column(String(64), default="main")
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("episodes.id", ondelete="SET NULL"), nullable=True, index=True
    )
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[EpisodeState] = mapped_column(_enum(EpisodeState, "episode_state"))
    failed_from: Mapped[EpisodeState | None] = mapped_column(
        _enum(EpisodeState, "episode_failed_from"), nullable=True
    )
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The beat this episode tells (the previous round's winner) and the ideas woven into it.
    beat: Mapped[str] = mapped_column(Text)
    ideas: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    is_final: Mapped[bool] = mapped_column(default=False)
    seed: Mapped[int] = mapped_column(Integer)
    # The script, once written.
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    narration: Mapped[str | None] = mapped_column(Text, nullable=True)
    subtitles: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    image_prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_options: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The rendered media, relative to the media root.
    still_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    audio_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    video_path: Mapped[str | None] = mapped_column(String(500), nullable=True)
    duration_s: Mapped[float | None] = mapped_column(nullable=True)
    render_s: Mapped[float | None] = mapped_column(nullable=True)  # wall time of the render
    # Set while a render worker owns the episode (Celery); cleared when the step finishes.
    job_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    job_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    story: Mapped[Story] = relationship(back_populates="episodes")
    parent: Mapped[Episode | None] = relationship(remote_side=[id])
    round: Mapped[Round | None] = relationship(back_populates="episode", uselist=False)
    credits: Mapped[list[Credit]] = relationship(
        back_populates="episode", order_by="Credit.position"
    )


class Round(Base):
    """The open question after an episode: its poll and the replies it gathers."""

    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[RoundStatus] = mapped_column(_enum(RoundStatus, "round_status"))
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    winner_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    winner_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    decision: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    episode: Mapped[Episode] = relationship(back_populates="round")
    options: Mapped[list[PollOption]] = relationship(
        back_populates="round", order_by="PollOption.position"
    )
    suggestions: Mapped[list[Suggestion]] = relationship(back_populates="round")
    tallies: Mapped[list[PollTally]] = relationship(back_populates="round")


class PollOption(Base):
    __tablename__ = "poll_options"
    __table_args__ = (UniqueConstraint("round_id", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)  # 1-based, as followers see it
    label: Mapped[str] = mapped_column(String(200))  # what the poll shows (fitted)
    beat: Mapped[str] = mapped_column(Text)  # the full beat it stands for
    source: Mapped[str] = mapped_column(String(16))  # "writer" | "community" | "ending"
    # Contributor ids whose suggestion this option carries (community options).
    contributor_ids: Mapped[list[int]] = mapped_column(JSON, default=list)

    round: Mapped[Round] = relationship(back_populates="options")


class PollTally(Base):
    """Votes per option as one platform last reported them."""

    __tablename__ = "poll_tallies"
    __table_args__ = (UniqueConstraint("round_id", "platform", "position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    votes: Mapped[int] = mapped_column(Integer)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    round: Mapped[Round] = relationship(back_populates="tallies")


class Contributor(Base):
    __tablename__ = "contributors"
    __table_args__ = (UniqueConstraint("platform", "handle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    handle: Mapped[str] = mapped_column(String(200))
    display_name: Mapped[str] = mapped_column(String(200))
    blocked: Mapped[bool] = mapped_column(default=False)


class Suggestion(Base):
    """A reply to a round's posts; kept even when rejected, with the reason."""

    __tablename__ = "suggestions"
    __table_args__ = (UniqueConstraint("platform", "remote_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id", ondelete="CASCADE"), index=True)
    contributor_id: Mapped[int] = mapped_column(ForeignKey("contributors.id"), index=True)
    platform: Mapped[str] = mapped_column(String(32))
    remote_id: Mapped[str] = mapped_column(String(64))
    raw_text: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)  # cleaned
    likes: Mapped[int] = mapped_column(Integer, default=0)
    boosts: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[bool] = mapped_column(default=True)
    # Approval mode: held (not accepted) until the operator approves or rejects it.
    pending: Mapped[bool] = mapped_column(default=False)
    reject_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Set when the idea contradicts canon; the idea is held for the operator, not used.
    flag: Mapped[str | None] = mapped_column(String(200), nullable=True)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # An embedding of ``text`` (clustering backend "openai"), stored once when harvested.
    embedding: Mapped[list[float] | None] = mapped_column(JSON, nullable=True)

    round: Mapped[Round] = relationship(back_populates="suggestions")
    contributor: Mapped[Contributor] = relationship()


class Credit(Base):
    __tablename__ = "credits"
    __table_args__ = (UniqueConstraint("episode_id", "contributor_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"))
    contributor_id: Mapped[int] = mapped_column(ForeignKey("contributors.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))  # "idea" | "poll option"

    episode: Mapped[Episode] = relationship(back_populates="credits")
    contributor: Mapped[Contributor] = relationship()


class Post(Base):
    """The outbox: one row per intended platform side effect, written before the call."""

    __tablename__ = "posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    episode_id: Mapped[int] = mapped_column(
        ForeignKey("episodes.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))  # "clip" | "poll"
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    state: Mapped[PostState] = mapped_column(_enum(PostState, "post_state"))
    in_reply_to: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The post this one answers on the same platform; it must be SENT before this one goes.
    parent_post_id: Mapped[int | None] = mapped_column(
        ForeignKey("posts.id", ondelete="SET NULL"), nullable=True
    )
    # Everything needed to (re)send it later: text, media, poll.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    remote_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The runner sending it ("host pid=N run=…") and until when: claimed with a conditional
    # UPDATE, so two runners can never both send one row (see bot/loop/outbox.py).
    claimed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PlatformHealth(Base):
    """Whether a platform answers: set by the runner's reads and the outbox's posts, shown by
    `storybot status` and /admin. A failing platform does not stop the others."""

    __tablename__ = "platform_health"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_ok_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# The local sandbox platform keeps its whole "social network" in these tables.


class LocalPost(Base):
    __tablename__ = "local_posts"

    id: Mapped[int] = mapped_column(primary_key=True)
    author: Mapped[str] = mapped_column(String(200))
    is_bot: Mapped[bool] = mapped_column(default=False)
    in_reply_to: Mapped[int | None] = mapped_column(
        ForeignKey("local_posts.id", ondelete="SET NULL"), nullable=True, index=True
    )
    text: Mapped[str] = mapped_column(Text)
    media: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    poll_options: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    poll_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LocalVote(Base):
    __tablename__ = "local_votes"
    __table_args__ = (UniqueConstraint("post_id", "voter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("local_posts.id", ondelete="CASCADE"))
    voter: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LocalLike(Base):
    __tablename__ = "local_likes"
    __table_args__ = (UniqueConstraint("post_id", "liker"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("local_posts.id", ondelete="CASCADE"))
    liker: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class LocalName(Base):
    """A sandbox display name and the browser that claimed it (no one else may use it)."""

    __tablename__ = "local_names"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The name as compared: case-folded, look-alike letters mapped (two "ana"s are one name).
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    owner: Mapped[str] = mapped_column(String(64))  # the claiming browser's id (from its cookie)
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InstallSecret(Base):
    """Random keys made once per install (e.g. to sign the sandbox's name cookies)."""

    __tablename__ = "install_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OperatorAction(Base):
    """What an operator did from the dashboard or the command line, and what came of it."""

    __tablename__ = "operator_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    source: Mapped[str] = mapped_column(String(16))  # "dashboard" or "cli"
    actor: Mapped[str] = mapped_column(String(200))  # the client address, or the OS user
    action: Mapped[str] = mapped_column(String(200))
    ok: Mapped[bool] = mapped_column(default=True)
    outcome: Mapped[str] = mapped_column(Text, default="")
