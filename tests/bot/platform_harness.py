"""One harness per Platform implementation, so the contract suite can drive them all alike.

A harness holds the adapter under test and plays the followers on the same server: local
through LocalPlatform.act, Mastodon through other seeded accounts on mastodon-mock (and a real
Takahe), Bluesky through seeded accounts on the reference PDS and AppView, X through
:class:`XWorld`, a small model of X whose answers the scripted fake X serves. What a platform
cannot do is a flag with a reason, never a silent skip.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from bot.platforms.base import Platform, PostRef
from bot.platforms.bluesky.adapter import BlueskyPlatform
from bot.platforms.local import LocalAction, LocalPlatform
from bot.platforms.mastodon.adapter import MastodonPlatform
from bot.platforms.x.adapter import XPlatform
from story_state.db import session_scope
from story_state.models import LocalPost
from tests.bot.bluesky import BOT as BLUESKY_BOT
from tests.bot.bluesky import Bluesky
from tests.bot.mastodon_fixtures import MockMastodon
from tests.bot.takahe import Takahe
from tests.bot.x_fixtures import DUPLICATE, Answer, FakeX, SpecSession, post, snowflake, user


@dataclass
class Harness:
    """The adapter under test, and the followers' side of the same server."""

    name: str
    platform: Platform
    reads: bool = True  # replies and poll results can be read
    reads_reason: str = ""
    finds_earlier_posts: bool = True  # a restarted adapter finds what the last one posted
    finds_reason: str = ""
    # Posts one poll option adds to the account: Bluesky has no polls (one reply per option).
    posts_per_option: int = 0

    def handle(self, user: str) -> str:
        """How the platform names ``user`` in a reply's author handle (before any "@")."""
        return user

    def restarted(self) -> Platform:
        """A new adapter on the same account, as after a crash."""
        raise NotImplementedError

    def reply_as(self, user: str, to: PostRef, text: str) -> PostRef:
        raise NotImplementedError

    def vote_as(self, user: str, poll: PostRef, position: int) -> None:
        """Vote for option ``position`` (1-based, as on the CLI)."""
        raise NotImplementedError

    def like(self, user: str, target: PostRef) -> None:
        raise NotImplementedError

    def delete(self, ref: PostRef) -> None:
        """The bot's post is deleted by hand (the operator, or a moderator)."""
        raise NotImplementedError

    def bot_posts(self) -> int:
        """How many posts the bot's account has on the server."""
        raise NotImplementedError

    def parent_of(self, ref: PostRef) -> str | None:
        """The post ``ref`` replies to, as the server says."""
        raise NotImplementedError


# -- local ---------------------------------------------------------------------------------


class LocalHarness(Harness):
    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.local = LocalPlatform(factory)
        super().__init__("local", self.local)
        self.factory = factory

    def restarted(self) -> Platform:
        return LocalPlatform(self.factory)

    def _post(self, remote_id: str) -> dict[str, Any]:
        found: dict[str, Any] = next(
            p for p in self.local.thread()["posts"] if p["id"] == remote_id
        )
        return found

    def reply_as(self, user: str, to: PostRef, text: str) -> PostRef:
        said = self.local.act(LocalAction(user, reply=text, to=to.remote_id))
        match = re.match(r"reply (\d+) by", said)
        assert match, said
        return PostRef("local", match.group(1))

    def vote_as(self, user: str, poll: PostRef, position: int) -> None:
        # The sandbox has no poll argument: a vote goes to the newest poll.
        polls = [p["id"] for p in self.local.thread()["posts"] if p["poll"] and p["is_bot"]]
        assert polls and polls[-1] == poll.remote_id, "the sandbox votes in its newest poll only"
        self.local.act(LocalAction(user, vote=position))

    def like(self, user: str, target: PostRef) -> None:
        self.local.act(LocalAction(user, like=target.remote_id))

    def delete(self, ref: PostRef) -> None:
        with session_scope(self.factory) as session:
            session.delete(session.get(LocalPost, int(ref.remote_id)))

    def bot_posts(self) -> int:
        return sum(p["is_bot"] for p in self.local.thread()["posts"])

    def parent_of(self, ref: PostRef) -> str | None:
        parent: str | None = self._post(ref.remote_id)["in_reply_to"]
        return parent


# -- mastodon-mock ---------------------------------------------------------------------------


class MastodonHarness(Harness):
    """The bot is alice; bob and carol are followers with their own tokens."""

    def __init__(self, mock: MockMastodon) -> None:
        super().__init__("mastodon", MastodonPlatform(mock.base_url, "alice_token"))
        self.mock = mock

    def restarted(self) -> Platform:
        return MastodonPlatform(self.mock.base_url, "alice_token")

    def reply_as(self, user: str, to: PostRef, text: str) -> PostRef:
        # As a follower's app writes it: the replied-to account first.
        status = self.mock.client(user).status_post(f"@alice {text}", in_reply_to_id=to.remote_id)
        return PostRef("mastodon", str(status["id"]))

    def vote_as(self, user: str, poll: PostRef, position: int) -> None:
        client = self.mock.client(user)
        client.poll_vote(client.status(poll.remote_id)["poll"]["id"], [position - 1])

    def like(self, user: str, target: PostRef) -> None:
        self.mock.client(user).status_favourite(target.remote_id)

    def delete(self, ref: PostRef) -> None:
        self.mock.client("alice").status_delete(ref.remote_id)

    def bot_posts(self) -> int:
        alice = self.mock.client("alice")
        return len(alice.account_statuses(alice.me()["id"], limit=40))

    def parent_of(self, ref: PostRef) -> str | None:
        parent = self.mock.client("bob").status(ref.remote_id)["in_reply_to_id"]
        return None if parent is None else str(parent)


class TakaheHarness(Harness):
    """The bot is storybot on a real Takahe; bob and carol are followers there.

    One server serves the whole session, so the bot's earlier statuses are deleted first: each
    contract test starts from an empty account, as it does on mastodon-mock."""

    def __init__(self, takahe: Takahe) -> None:
        super().__init__("mastodon", MastodonPlatform(takahe.url, takahe.token("storybot")))
        self.takahe = takahe
        takahe.delete_all("storybot")

    def restarted(self) -> Platform:
        return MastodonPlatform(self.takahe.url, self.takahe.token("storybot"))

    def reply_as(self, user: str, to: PostRef, text: str) -> PostRef:
        bot = self.takahe.acct("storybot")  # as Takahe names local accounts: user@host:port
        status = self.takahe.client(user).status_post(f"@{bot} {text}", in_reply_to_id=to.remote_id)
        return PostRef("mastodon", str(status["id"]))

    def vote_as(self, user: str, poll: PostRef, position: int) -> None:
        client = self.takahe.client(user)
        client.poll_vote(client.status(poll.remote_id)["poll"]["id"], [position - 1])

    def like(self, user: str, target: PostRef) -> None:
        self.takahe.client(user).status_favourite(target.remote_id)

    def delete(self, ref: PostRef) -> None:
        self.takahe.delete("storybot", ref.remote_id)

    def bot_posts(self) -> int:
        return len(self.takahe.statuses_of("storybot"))

    def parent_of(self, ref: PostRef) -> str | None:
        parent = self.takahe.client("bob").status(ref.remote_id)["in_reply_to_id"]
        return None if parent is None else str(parent)


# -- the reference AT Protocol network ----------------------------------------------------------


class BlueskyHarness(Harness):
    """The bot is storyteller.test on a real PDS and AppView; bob and carol are followers.

    Record keys come from the outbox keys, which the contract tests repeat: every post and
    like of these accounts is deleted first, as the Takahe harness empties its account."""

    def __init__(self, net: Bluesky, session_file: Path) -> None:
        self.net, self.session_file = net, session_file
        self.made: list[BlueskyPlatform] = []
        net.reset((BLUESKY_BOT, "bob", "carol"))
        super().__init__("bluesky", self.restarted(), posts_per_option=1)

    def restarted(self) -> Platform:
        # The app password, as the bot runs; the session file carries over to a restart.
        made = BlueskyPlatform(
            self.net.pds,
            self.net.handle(BLUESKY_BOT),
            self.net.app_password(BLUESKY_BOT),
            session_file=self.session_file,
        )
        self.made.append(made)
        return made

    def close(self) -> None:
        for made in self.made:
            made.close()

    def handle(self, user: str) -> str:
        return self.net.handle(user)

    def reply_as(self, user: str, to: PostRef, text: str) -> PostRef:
        return PostRef("bluesky", self.net.reply(user, to.remote_id, text))

    def vote_as(self, user: str, poll: PostRef, position: int) -> None:
        self.net.like(user, self.net.option_uri(user, poll.remote_id, position))

    def like(self, user: str, target: PostRef) -> None:
        self.net.like(user, target.remote_id)

    def delete(self, ref: PostRef) -> None:
        self.net.delete(BLUESKY_BOT, ref.remote_id)

    def bot_posts(self) -> int:
        return len(self.net.records(BLUESKY_BOT))

    def parent_of(self, ref: PostRef) -> str | None:
        found = self.net.record(ref.remote_id)
        assert found is not None, ref
        reply = found.value.reply
        return None if reply is None else str(reply.parent.uri)


# -- a small X, served by the scripted fake ----------------------------------------------------

BOT_ID = "1500000000000000001"
USER_IDS = {"storybot": BOT_ID, "bob": "783214", "carol": "2244994945"}
MEDIA_ID = "1880028106020515840"


@dataclass
class XWorld:
    """Posts, likes and votes on a pretend X; every change re-scripts the fake's answers."""

    fake: FakeX
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls: dict[str, dict[str, Any]] = field(default_factory=dict)  # post id → poll
    voters: dict[str, set[str]] = field(default_factory=dict)
    likes: dict[str, set[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        me = {"data": user(BOT_ID, "storybot", "Storybot")}
        self.fake.on("GET", "/2/users/me", Answer(body=me))
        init = {"id": MEDIA_ID, "media_key": f"7_{MEDIA_ID}", "expires_after_secs": 86399}
        self.fake.on("POST", "/2/media/upload/initialize", Answer(body={"data": init}))
        append = {"data": {"expires_at": 1893456000}}
        self.fake.on("POST", f"/2/media/upload/{MEDIA_ID}/append", Answer(body=append))
        done = {**init, "size": 10, "processing_info": {"state": "succeeded"}}
        self.fake.on("POST", f"/2/media/upload/{MEDIA_ID}/finalize", Answer(body={"data": done}))
        self.fake.on("POST", "/2/media/metadata", Answer(body={"data": {"id": MEDIA_ID}}))
        self._script()

    def add(self, author: str, text: str, replied_to: str | None = None) -> str:
        now = datetime.now(UTC)
        post_id = snowflake(now, len(self.posts))
        root = self.posts[replied_to]["conversation_id"] if replied_to else post_id
        self.posts[post_id] = post(
            post_id, text, author_id=USER_IDS[author], replied_to=replied_to,
            conversation_id=root, created_at=now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        )  # fmt: skip
        self.likes[post_id] = set()
        self._script()
        return post_id

    def post_from_bot(self, body: dict[str, Any]) -> None:
        """What X does with ``POST /2/tweets``: refuse a repeated text, or make the post."""
        text = body["text"]
        if any(
            p["author_id"] == BOT_ID and p["text"].startswith(text) for p in self.posts.values()
        ):
            self.fake.on("POST", "/2/tweets", Answer(403, DUPLICATE))
            return
        if "media" in body:
            text += " https://t.co/Ab12Cd34Ef"  # as X gives a post with media back
        replied_to = body.get("reply", {}).get("in_reply_to_tweet_id")
        post_id = self.add("storybot", text, replied_to)
        if "poll" in body:
            options = [
                {"position": n, "label": label, "votes": 0}
                for n, label in enumerate(body["poll"]["options"], start=1)
            ]
            self.polls[post_id] = {
                "id": str(int(post_id) + 1),
                "options": options,
                "voting_status": "open",
                "duration_minutes": body["poll"]["duration_minutes"],
            }
            self.voters[post_id] = set()
            self.posts[post_id]["attachments"] = {"poll_ids": [self.polls[post_id]["id"]]}
        self.fake.on("POST", "/2/tweets", Answer(201, {"data": {"id": post_id, "text": text}}))
        self._script()

    def vote(self, voter: str, post_id: str, position: int) -> None:
        assert voter not in self.voters[post_id], "X takes one vote per account"
        self.voters[post_id].add(voter)
        self.polls[post_id]["options"][position - 1]["votes"] += 1
        self._script()

    def like(self, liker: str, post_id: str) -> None:
        self.likes[post_id].add(liker)
        self.posts[post_id]["public_metrics"]["like_count"] = len(self.likes[post_id])
        self._script()

    def delete(self, post_id: str) -> None:
        del self.posts[post_id]
        self.polls.pop(post_id, None)
        self._script()
        # X answers a lookup of a deleted post with 200 and a resource-not-found error.
        error = {
            "value": post_id,
            "detail": f"Could not find tweet with id: [{post_id}].",
            "title": "Not Found Error",
            "resource_type": "tweet",
            "parameter": "id",
            "resource_id": post_id,
            "type": "https://api.x.com/2/problems/resource-not-found",
        }
        self.fake.on("GET", f"/2/tweets/{post_id}", Answer(body={"errors": [error]}))

    def _page(self, posts: list[dict[str, Any]]) -> Answer:
        if not posts:
            return Answer(body={"meta": {"result_count": 0}})
        newest = sorted(posts, key=lambda p: int(p["id"]), reverse=True)
        meta = {"result_count": len(posts), "newest_id": newest[0]["id"]}
        meta["oldest_id"] = newest[-1]["id"]
        users = [user(i, n, n.title()) for n, i in USER_IDS.items()]
        return Answer(body={"data": newest, "meta": meta, "includes": {"users": users}})

    def _script(self) -> None:
        everything = list(self.posts.values())
        ours = [p for p in everything if p["author_id"] == BOT_ID]
        theirs = [p for p in everything if p["author_id"] != BOT_ID]
        self.fake.on("GET", "/2/tweets/search/recent", self._page(everything))
        self.fake.on("GET", f"/2/users/{BOT_ID}/mentions", self._page(theirs))
        self.fake.on("GET", f"/2/users/{BOT_ID}/tweets", self._page(ours))
        for post_id, data in self.posts.items():
            body: dict[str, Any] = {"data": data}
            if post_id in self.polls:
                body["includes"] = {"polls": [self.polls[post_id]]}
            self.fake.on("GET", f"/2/tweets/{post_id}", Answer(body=body))


class WorldSession(SpecSession):
    """Spec-checked requests; a new post reaches the world before the fake answers it."""

    def __init__(self, world: XWorld) -> None:
        super().__init__()
        self.world = world

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if request.method == "POST" and urlsplit(request.url or "").path == "/2/tweets":
            raw = request.body
            text = raw.decode() if isinstance(raw, bytes) else str(raw)
            self.world.post_from_bot(json.loads(text))
        return super().send(request, **kwargs)


class XHarness(Harness):
    def __init__(self, world: XWorld, *, post_only: bool) -> None:
        super().__init__("x", self._adapter(world, post_only))
        self.world, self.post_only = world, post_only
        if post_only:
            self.reads = False
            self.reads_reason = "post-only: X's free tier cannot read replies or polls"
            self.finds_earlier_posts = False
            self.finds_reason = "post-only cannot look up its posts: X refuses the duplicate"

    @staticmethod
    def _adapter(world: XWorld, post_only: bool) -> XPlatform:
        return XPlatform(
            "ck", "cs", "at", "as", api_base=world.fake.base, session=WorldSession(world),
            post_only=post_only,
        )  # fmt: skip

    def restarted(self) -> Platform:
        return self._adapter(self.world, self.post_only)

    def reply_as(self, user: str, to: PostRef, text: str) -> PostRef:
        return PostRef("x", self.world.add(user, f"@storybot {text}", to.remote_id))

    def vote_as(self, user: str, poll: PostRef, position: int) -> None:
        self.world.vote(user, poll.remote_id, position)

    def like(self, user: str, target: PostRef) -> None:
        self.world.like(user, target.remote_id)

    def delete(self, ref: PostRef) -> None:
        self.world.delete(ref.remote_id)

    def bot_posts(self) -> int:
        return sum(p["author_id"] == BOT_ID for p in self.world.posts.values())

    def parent_of(self, ref: PostRef) -> str | None:
        refs = self.world.posts[ref.remote_id].get("referenced_posts") or []
        return next((r["id"] for r in refs if r["type"] == "replied_to"), None)


def episode_files(folder: Path) -> Path:
    """An episode folder as the renderer lays it out: the clip and its still."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clip.mp4").write_bytes(
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2000)
    )
    # A real PNG: servers that re-encode images (Takahe makes WebP) refuse made-up bytes.
    Image.new("RGB", (64, 36), (40, 60, 90)).save(folder / "still.png")
    return folder / "clip.mp4"
