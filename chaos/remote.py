"""A Mastodon-API server as the chaos harness sees it: read and written over HTTP.

Each follower acts with their own token through Mastodon.py, as their app would; the final
checks read the bot account's statuses, the replies to them and the polls' counts from the
server itself. ``probe_idempotency`` shows, on the server, whether it honours Idempotency-Key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mastodon import Mastodon

from bot.platforms.mastodon.text import html_to_text
from chaos.world import Status, World

TOKEN_ENV = "STORYBOT_CHAOS_MASTODON_TOKEN"  # how the bot's children get the bot's token


@dataclass(frozen=True)
class ApiServer:
    """A running Mastodon-API server and its accounts.

    ``accts`` is how statuses and mentions name each account (Takahe: ``name@host:port``).
    """

    label: str  # "mastodon-mock", "takahe"
    url: str
    tokens: dict[str, str]
    accts: dict[str, str]
    bot: str = "storybot"
    # Lines for the report, read when it is written (e.g. how many keys the mock never saw).
    notes: Callable[[], list[str]] = field(default=list, compare=False)

    def client(self, name: str) -> Mastodon:
        # Mastodon.py's own version probing recurses on Takahe's 404s: name a version.
        return Mastodon(
            access_token=self.tokens[name],
            api_base_url=self.url,
            version_check_mode="none",
            mastodon_version="4.0.0",
            request_timeout=30,
        )

    def config_lines(self, workdir: Path) -> list[str]:
        """The bot's platform settings for this server (its token comes from TOKEN_ENV)."""
        return [
            "[platforms.local]",
            "enabled = false",
            "[platforms.mastodon]",
            "enabled = true",
            f'instance = "{self.url}"',
            f'token_env = "{TOKEN_ENV}"',
        ]

    def env(self) -> dict[str, str]:
        return {TOKEN_ENV: self.tokens[self.bot]}

    def world(self) -> World:
        return RemoteWorld(self)


def probe_idempotency(server: ApiServer, actor: str = "carol") -> bool:
    """Post twice with one Idempotency-Key as ``actor``: True when the server made one status.

    Both probe statuses are deleted again; they are never replies to the story.
    """
    client = server.client(actor)
    made = [
        client.status_post("idempotency probe", visibility="direct", idempotency_key="chaos-probe")
        for _ in range(2)
    ]
    ids = {str(s["id"]) for s in made}
    for status_id in ids:
        client.status_delete(status_id)
    return len(ids) == 1


class RemoteWorld:
    """The story's platform is a Mastodon-API server; followers act there with their tokens."""

    platform = "mastodon"

    def __init__(self, server: ApiServer) -> None:
        self.server = server
        self.label = server.label
        self.clients = {name: server.client(name) for name in server.tokens}
        me = self.clients[server.bot].account_verify_credentials()
        self.bot_id = str(me["id"])
        self.polls: dict[str, str] = {}  # status id → poll id
        # On a shared server (the test session's Takahe) the bot may have posted before.
        self.before = {s.id for s in self._statuses()}

    def _statuses(self) -> list[Status]:
        client = self.clients[self.server.bot]
        found: list[Status] = []
        page = client.account_statuses(self.bot_id, limit=40)
        while page:
            found += [self._status(s) for s in page]
            page = client.fetch_next(page)
        return found

    def _status(self, data: Any) -> Status:
        poll = data.get("poll")
        reply_to = data.get("in_reply_to_id")
        if poll:
            self.polls[str(data["id"])] = str(poll["id"])
        return Status(
            id=str(data["id"]),
            author=str(data["account"]["acct"]),
            in_reply_to=str(reply_to) if reply_to is not None else None,
            text=html_to_text(str(data.get("content") or "")).strip(),
            media=len(data.get("media_attachments") or []),
            poll=tuple(str(o["title"]) for o in poll["options"]) if poll else None,
            votes=tuple(int(o.get("votes_count") or 0) for o in poll["options"]) if poll else None,
            likes=int(data.get("favourites_count") or 0),
        )

    def bot_statuses(self) -> list[Status]:
        return sorted(
            (s for s in self._statuses() if s.id not in self.before),
            key=lambda s: (len(s.id), s.id),
        )

    def replies_to(self, ids: Sequence[str]) -> list[Status]:
        client = self.clients[self.server.bot]
        found: dict[str, Status] = {}
        for status_id in dict.fromkeys(ids):
            context = client.status_context(status_id)
            for data in context["descendants"]:
                status = self._status(data)
                if status.in_reply_to == status_id and str(data["account"]["id"]) != self.bot_id:
                    found[status.id] = status
        return sorted(found.values(), key=lambda s: (len(s.id), s.id))

    def reply(self, actor: str, to: str, text: str) -> str:
        mention = self.server.accts[self.server.bot]
        made = self.clients[actor].status_post(f"@{mention} {text}", in_reply_to_id=to)
        return str(made["id"])

    def like(self, actor: str, status_id: str) -> None:
        self.clients[actor].status_favourite(status_id)

    def vote(self, actor: str, poll_status: str, position: int) -> None:
        poll_id = self.polls.get(poll_status)
        if poll_id is None:
            poll_id = str(self.clients[actor].status(poll_status)["poll"]["id"])
            self.polls[poll_status] = poll_id
        self.clients[actor].poll_vote(poll_id, [position - 1])
