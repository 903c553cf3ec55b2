"""The world's record: what a platform itself shows, and the followers who act on it.

The chaos checks judge the story by what the server holds (the bot account's statuses, the
replies to them, the polls' vote counts), never by the bot's own tables alone. A ``World`` is
one platform seen from outside: the local sandbox (its own tables, which the bot writes only
through its adapter), a Mastodon-API server read and written over HTTP (chaos/remote.py), or
an AT Protocol network read from its repositories (chaos/bluesky.py). A ``Server`` is such a
server while it runs: how the bot is configured for it, and its world.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.platforms.local import LocalAction, LocalPlatform
from story_state.db import session_scope
from story_state.models import LocalLike, LocalPost, LocalVote

# The followers: every server the harness runs against has these accounts (Takahe's kit makes
# them for the test session), plus the bot's own. On Bluesky "cy" is cyd.test (chaos/bluesky.py).
FOLLOWERS = ("ana", "ben", "cy", "bob", "carol")


@dataclass(frozen=True)
class Status:
    """One status as the server shows it. ``votes`` is per poll option, in poll order."""

    id: str
    author: str
    in_reply_to: str | None
    text: str  # plain text
    media: int = 0
    poll: tuple[str, ...] | None = None
    votes: tuple[int, ...] | None = None
    likes: int = 0


class World(Protocol):
    """One platform as the followers and the final checks see it."""

    platform: str  # the bot's name for it: "local", "mastodon" or "bluesky"
    label: str  # the summary's name for it: "local", "mastodon-mock", "takahe", "bluesky"

    def bot_statuses(self) -> list[Status]:
        """Every status the bot account made since this world was opened."""
        ...

    def replies_to(self, ids: Sequence[str]) -> list[Status]:
        """Direct replies by anyone but the bot to any of ``ids``."""
        ...

    def reply(self, actor: str, to: str, text: str) -> str:
        """``actor`` answers status ``to``; returns the new status's id."""
        ...

    def like(self, actor: str, status_id: str) -> None: ...

    def vote(self, actor: str, poll_status: str, position: int) -> None:
        """``actor`` votes for option ``position`` (1-based) of the poll in ``poll_status``."""
        ...


class Server(Protocol):
    """A running server the story goes to instead of the sandbox, with the bot's account."""

    @property
    def label(self) -> str: ...

    def config_lines(self, workdir: Path) -> list[str]:
        """The bot's TOML platform settings for this server (secrets come from ``env()``)."""
        ...

    def env(self) -> dict[str, str]:
        """The environment the bot's processes need: the account's token or password."""
        ...

    def notes(self) -> list[str]:
        """Lines for the report, read when it is written."""
        ...

    def world(self) -> World:
        """The server as the followers and the final checks see it."""
        ...


class LocalWorld:
    """The local sandbox: its posts, votes and likes tables, written by followers here."""

    platform = "local"
    label = "local"

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory
        self.local = LocalPlatform(factory)

    def bot_statuses(self) -> list[Status]:
        with session_scope(self.factory) as session:
            rows = session.scalars(
                select(LocalPost).where(LocalPost.is_bot.is_(True)).order_by(LocalPost.id)
            ).all()
            return [self._status(session, row) for row in rows]

    def replies_to(self, ids: Sequence[str]) -> list[Status]:
        wanted = [int(i) for i in ids if i.isdigit()]
        with session_scope(self.factory) as session:
            rows = session.scalars(
                select(LocalPost)
                .where(LocalPost.in_reply_to.in_(wanted), LocalPost.is_bot.is_(False))
                .order_by(LocalPost.id)
            ).all()
            return [self._status(session, row) for row in rows]

    @staticmethod
    def _status(session: Session, row: LocalPost) -> Status:
        votes = None
        if row.poll_options is not None:
            cast = Counter(
                session.scalars(select(LocalVote.position).where(LocalVote.post_id == row.id))
            )
            votes = tuple(cast.get(i, 0) for i in range(1, len(row.poll_options) + 1))
        likes = session.scalars(select(LocalLike.id).where(LocalLike.post_id == row.id)).all()
        return Status(
            id=str(row.id),
            author=row.author,
            in_reply_to=str(row.in_reply_to) if row.in_reply_to is not None else None,
            text=row.text,
            media=len(row.media or []),
            poll=tuple(row.poll_options) if row.poll_options is not None else None,
            votes=votes,
            likes=len(likes),
        )

    def reply(self, actor: str, to: str, text: str) -> str:
        line = self.local.act(LocalAction(actor, reply=text, to=to))
        return line.split()[1]  # "reply 12 by ana to post 7"

    def like(self, actor: str, status_id: str) -> None:
        self.local.act(LocalAction(actor, like=status_id))

    def vote(self, actor: str, poll_status: str, position: int) -> None:
        self.local.act(LocalAction(actor, vote=position, to=poll_status))
