"""The local sandbox: a tiny social network kept in storybot's own database."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.platforms.base import Limits, OutgoingPost, PollTally, PostRef, Reply
from story_state.clock import utcnow
from story_state.db import session_scope
from story_state.errors import PermanentError, StorybotError
from story_state.models import LocalLike, LocalPost, LocalVote, PollOption, Post, Round

MAX_NAME = 64
MAX_REPLY = 2000


class LocalActionError(StorybotError):
    """A follower action in the sandbox was refused (closed poll, double vote, ...)."""


@dataclass(frozen=True)
class LocalAction:
    """One follower action, as typed on the CLI or read from a JSONL line."""

    actor: str
    reply: str | None = None
    to: str | None = None
    vote: int | str | None = None
    like: str | None = None


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or any(ch in name for ch in "\r\n\t\x00"):
        raise LocalActionError(f"follower name must be 1–{MAX_NAME} characters on one line")
    return name


def _post_id(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise LocalActionError(f"{value!r} is not a post id (ids are numbers)") from None


class LocalPlatform:
    """Both sides of the sandbox: the bot's port and the followers' actions."""

    name = "local"
    # fetch_replies returns every reply to the posts asked about: a missing one was deleted.
    reads_every_reply = True

    def __init__(
        self,
        factory: sessionmaker[Session],
        bot_name: str = "storybot",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._factory = factory
        self._bot_name = bot_name
        self._clock = clock

    # -- the port -----------------------------------------------------------------

    def limits(self) -> Limits:
        return Limits(max_poll_options=4, max_option_chars=50, min_poll_minutes=1)

    def publish(self, post: OutgoingPost) -> PostRef:
        with session_scope(self._factory) as session:
            found = session.scalars(
                select(LocalPost).where(LocalPost.idempotency_key == post.idempotency_key)
            ).first()
            if found is not None:
                return PostRef(self.name, str(found.id))
            parent = None
            if post.in_reply_to is not None:
                parent = session.get(LocalPost, _post_id(post.in_reply_to))
                if parent is None:
                    raise PermanentError(f"local post {post.in_reply_to} does not exist")
            row = LocalPost(
                author=self._bot_name,
                is_bot=True,
                in_reply_to=parent.id if parent else None,
                text=post.text,
                media=[{"path": str(m.path), "alt_text": m.alt_text} for m in post.media],
                poll_options=list(post.poll.options) if post.poll else None,
                poll_closes_at=post.poll.closes_at if post.poll else None,
                idempotency_key=post.idempotency_key,
                created_at=self._clock(),
            )
            session.add(row)
            session.flush()
            return PostRef(self.name, str(row.id))

    def fetch_replies(self, posts: tuple[PostRef, ...]) -> list[Reply]:
        ids = [_remote_id(p) for p in posts if p.platform == self.name]
        if not ids:
            return []
        with session_scope(self._factory) as session:
            likes = (
                select(LocalLike.post_id, func.count().label("n"))
                .group_by(LocalLike.post_id)
                .subquery()
            )
            rows = session.execute(
                select(LocalPost, func.coalesce(likes.c.n, 0))
                .outerjoin(likes, likes.c.post_id == LocalPost.id)
                .where(LocalPost.in_reply_to.in_(ids), LocalPost.is_bot.is_(False))
                .order_by(LocalPost.id)
            ).all()
            return [
                Reply(
                    platform=self.name,
                    remote_id=str(post.id),
                    author_handle=post.author,
                    author_name=post.author,
                    text=post.text,
                    in_reply_to=str(post.in_reply_to),
                    posted_at=post.created_at,
                    likes=int(n),
                )
                for post, n in rows
            ]

    def fetch_tally(self, poll: PostRef) -> PollTally:
        with session_scope(self._factory) as session:
            post = session.get(LocalPost, _remote_id(poll))
            if post is None or post.poll_options is None:
                raise PermanentError(f"local post {poll.remote_id} has no poll")
            counts = [0] * len(post.poll_options)
            for position, n in session.execute(
                select(LocalVote.position, func.count())
                .where(LocalVote.post_id == post.id)
                .group_by(LocalVote.position)
            ):
                counts[position - 1] = int(n)
            closed = post.poll_closes_at is not None and post.poll_closes_at <= self._clock()
            return PollTally(self.name, tuple(counts), voters=sum(counts), closed=closed)

    def end_poll(self, poll: PostRef) -> None:
        """Close a poll early (the operator closed the round): later votes are refused."""
        with session_scope(self._factory) as session:
            post = session.get(LocalPost, _remote_id(poll))
            if post is not None and post.poll_closes_at is not None:
                post.poll_closes_at = min(post.poll_closes_at, self._clock())

    # -- followers ----------------------------------------------------------------

    def act(self, action: LocalAction) -> str:
        """Apply one follower action; returns a line describing what happened."""
        with session_scope(self._factory) as session:
            return self._apply(session, action)

    def act_many(self, actions: list[tuple[int, LocalAction]]) -> list[str]:
        """Apply all actions in one transaction, or none (the error names the line)."""
        done: list[str] = []
        with session_scope(self._factory) as session:
            for line, action in actions:
                try:
                    done.append(self._apply(session, action))
                except LocalActionError as exc:
                    raise LocalActionError(f"line {line}: {exc}; nothing was imported") from None
        return done

    def _apply(self, session: Session, action: LocalAction) -> str:
        actor = check_name(action.actor)
        if action.reply is not None:
            return self._reply(session, actor, action.reply, action.to)
        if action.vote is not None:
            return self._vote(session, actor, action.vote, action.to)
        if action.like is not None:
            return self._like(session, actor, action.like)
        raise LocalActionError("an action needs one of: reply, vote, like")

    def _open_poll(self, session: Session) -> LocalPost | None:
        return session.scalars(
            select(LocalPost)
            .where(LocalPost.is_bot.is_(True), LocalPost.poll_options.is_not(None))
            .order_by(LocalPost.id.desc())
            .limit(1)
        ).first()

    def _reply(self, session: Session, actor: str, text: str, to: str | None) -> str:
        text = text.strip()
        if not text:
            raise LocalActionError("a reply needs some text")
        if "\x00" in text:  # PostgreSQL cannot store it; say so instead of failing
            raise LocalActionError("a reply cannot contain NUL characters")
        if len(text) > MAX_REPLY:
            raise LocalActionError(f"a reply is at most {MAX_REPLY} characters")
        if to is not None:
            parent = session.get(LocalPost, _post_id(to))
            if parent is None:
                raise LocalActionError(f"there is no post {to}")
        else:
            parent = (
                self._open_poll(session)
                or session.scalars(
                    select(LocalPost)
                    .where(LocalPost.is_bot.is_(True))
                    .order_by(LocalPost.id.desc())
                ).first()
            )
            if parent is None:
                raise LocalActionError("the story has not posted anything yet")
        row = LocalPost(author=actor, text=text, in_reply_to=parent.id, created_at=self._clock())
        session.add(row)
        session.flush()
        return f"reply {row.id} by {actor} to post {parent.id}"

    def _vote(self, session: Session, actor: str, choice: int | str, to: str | None) -> str:
        # The latest poll by default; a fork's poll when its post id is given.
        poll = session.get(LocalPost, _post_id(to)) if to is not None else self._open_poll(session)
        if poll is None or poll.poll_options is None or poll.poll_closes_at is None:
            raise LocalActionError("there is no poll to vote in")
        if poll.poll_closes_at <= self._clock():
            raise LocalActionError(f"the poll (post {poll.id}) has closed")
        options = poll.poll_options
        position = _resolve_option(options, choice)
        if session.scalars(
            select(LocalVote).where(LocalVote.post_id == poll.id, LocalVote.voter == actor)
        ).first():
            raise LocalActionError(f"{actor} already voted in this poll")
        session.add(
            LocalVote(post_id=poll.id, voter=actor, position=position, created_at=self._clock())
        )
        try:
            session.flush()
        except IntegrityError:
            raise LocalActionError(f"{actor} already voted in this poll") from None
        return f"{actor} voted {position}: {options[position - 1]}"

    def _like(self, session: Session, actor: str, target: str) -> str:
        post = session.get(LocalPost, _post_id(target))
        if post is None:
            raise LocalActionError(f"there is no post {target}")
        if session.scalars(
            select(LocalLike).where(LocalLike.post_id == post.id, LocalLike.liker == actor)
        ).first():
            raise LocalActionError(f"{actor} already liked post {post.id}")
        session.add(LocalLike(post_id=post.id, liker=actor, created_at=self._clock()))
        session.flush()
        return f"{actor} liked post {post.id}"

    # -- reading ------------------------------------------------------------------

    def thread(self) -> dict[str, Any]:
        """The whole sandbox as the JSON document ``storybot local thread --json`` prints."""
        with session_scope(self._factory) as session:
            posts = session.scalars(select(LocalPost).order_by(LocalPost.id)).all()
            votes: dict[tuple[int, int], int] = {
                (pid, pos): int(n)
                for pid, pos, n in session.execute(
                    select(LocalVote.post_id, LocalVote.position, func.count()).group_by(
                        LocalVote.post_id, LocalVote.position
                    )
                )
            }
            likes: dict[int, int] = {
                pid: int(n)
                for pid, n in session.execute(
                    select(LocalLike.post_id, func.count()).group_by(LocalLike.post_id)
                )
            }
            rounds = self._rounds_by_poll(session)
            return {"posts": [_as_dict(p, votes, likes, rounds) for p in posts]}

    def shape(self, session: Session, posts: Sequence[LocalPost]) -> list[dict[str, Any]]:
        """``posts`` as :meth:`thread` shows them, counting likes and votes for them alone."""
        ids = [p.id for p in posts]
        polls = [p.id for p in posts if p.poll_options is not None]
        likes: dict[int, int] = {}
        if ids:
            likes = {
                pid: int(n)
                for pid, n in session.execute(
                    select(LocalLike.post_id, func.count())
                    .where(LocalLike.post_id.in_(ids))
                    .group_by(LocalLike.post_id)
                )
            }
        votes: dict[tuple[int, int], int] = {}
        rounds: dict[int, tuple[int | None, dict[int, str]]] = {}
        if polls:
            votes = {
                (pid, pos): int(n)
                for pid, pos, n in session.execute(
                    select(LocalVote.post_id, LocalVote.position, func.count())
                    .where(LocalVote.post_id.in_(polls))
                    .group_by(LocalVote.post_id, LocalVote.position)
                )
            }
            rounds = self._rounds_by_poll(session)
        return [_as_dict(p, votes, likes, rounds) for p in posts]

    def _rounds_by_poll(self, session: Session) -> dict[int, tuple[int | None, dict[int, str]]]:
        """Poll post id → (the winning position once the round closed, each option's whole
        text). A label is fitted to the strictest platform and may lose words; the sandbox
        page and the exported thread have room for the whole option."""
        rows = session.execute(
            select(
                Post.remote_id,
                Round.winner_position,
                PollOption.position,
                PollOption.beat,
                PollOption.source,
            )
            .join(Round, Round.episode_id == Post.episode_id)
            .join(PollOption, PollOption.round_id == Round.id)
            .where(Post.platform == self.name, Post.kind == "poll", Post.remote_id.is_not(None))
        ).all()
        found: dict[int, tuple[int | None, dict[int, str]]] = {}
        for remote_id, winner, position, beat, source in rows:
            if remote_id is None or not remote_id.isdigit():
                continue
            texts = found.setdefault(int(remote_id), (winner, {}))[1]
            if source != "ending":  # "End the story here" is its own whole label
                texts[position] = beat
        return found


def _as_dict(
    p: LocalPost,
    votes: dict[tuple[int, int], int],
    likes: dict[int, int],
    rounds: dict[int, tuple[int | None, dict[int, str]]],
) -> dict[str, Any]:
    poll = None
    if p.poll_options is not None:
        winner, texts = rounds.get(p.id, (None, {}))
        poll = {
            "options": [
                {
                    "label": label,
                    "text": texts.get(i, label),
                    "votes": votes.get((p.id, i), 0),
                }
                for i, label in enumerate(p.poll_options, start=1)
            ],
            "closes_at": p.poll_closes_at.isoformat() if p.poll_closes_at else None,
            "winner": winner,
        }
    return {
        "id": str(p.id),
        "author": p.author,
        "is_bot": p.is_bot,
        "in_reply_to": str(p.in_reply_to) if p.in_reply_to else None,
        "text": p.text,
        "media": list(p.media or []),
        "poll": poll,
        "likes": likes.get(p.id, 0),
        "created_at": p.created_at.isoformat(),
    }


def _remote_id(ref: PostRef) -> int:
    try:
        return int(ref.remote_id)
    except ValueError:
        raise PermanentError(f"{ref.remote_id!r} is not a local post id") from None


def _resolve_option(options: list[str], choice: int | str) -> int:
    if isinstance(choice, int) or (isinstance(choice, str) and choice.strip().isdigit()):
        n = int(choice)
        if 1 <= n <= len(options):
            return n
        raise LocalActionError(f"option {n} does not exist; choose 1–{len(options)}")
    for i, label in enumerate(options, start=1):
        if label == choice:
            return i
    listed = "; ".join(f"{i}: {label}" for i, label in enumerate(options, start=1))
    raise LocalActionError(f"no option is labelled {choice!r} (options: {listed})")
