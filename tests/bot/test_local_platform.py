"""The local sandbox: the bot's port and the followers' actions, on a real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.cli.local import parse_jsonl
from bot.platforms.base import Media, OutgoingPost, Poll, PostRef
from bot.platforms.local import LocalAction, LocalActionError, LocalPlatform
from story_state import migrate
from story_state.db import make_engine, session_factory
from story_state.errors import PermanentError

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def factory(sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    migrate.upgrade(sqlite_url)
    engine = make_engine(sqlite_url)
    yield session_factory(engine)
    engine.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def local(factory: sessionmaker[Session], clock: Clock) -> LocalPlatform:
    return LocalPlatform(factory, "storybot", clock)


def post_clip_and_poll(local: LocalPlatform) -> tuple[PostRef, PostRef]:
    clip = local.publish(
        OutgoingPost("s:1:clip:local", "Episode 1", media=(Media(Path("/m/e1.mp4"), "narration"),))
    )
    poll = local.publish(
        OutgoingPost(
            "s:1:poll:local",
            "What next?",
            clip.remote_id,
            poll=Poll(("Open the hatch", "Run"), T0 + timedelta(hours=1)),
        )
    )
    return clip, poll


def test_publish_is_idempotent(local: LocalPlatform) -> None:
    clip, _poll = post_clip_and_poll(local)
    again = local.publish(OutgoingPost("s:1:clip:local", "Episode 1 (retried)"))
    assert again == clip
    assert len(local.thread()["posts"]) == 2
    with pytest.raises(PermanentError):
        local.publish(OutgoingPost("s:x", "orphan", in_reply_to="999"))


def test_followers_reply_like_and_vote(local: LocalPlatform, clock: Clock) -> None:
    clip, poll = post_clip_and_poll(local)
    r1 = local.act(LocalAction("ana", reply="The miners rebel"))
    assert r1.startswith("reply 3 by ana to post 2")  # the open round's poll by default
    local.act(LocalAction("ben", reply="A stowaway", to=clip.remote_id))
    local.act(LocalAction("ben", like="3"))
    local.act(LocalAction("cy", like="3"))
    local.act(LocalAction("ana", vote=2))
    local.act(LocalAction("ben", vote="Open the hatch"))
    local.act(LocalAction("cy", vote="2"))
    replies = local.fetch_replies((clip, poll))
    assert [(r.author_handle, r.text, r.likes, r.in_reply_to) for r in replies] == [
        ("ana", "The miners rebel", 2, poll.remote_id),
        ("ben", "A stowaway", 0, clip.remote_id),
    ]
    tally = local.fetch_tally(poll)
    assert tally.counts == (1, 2) and tally.voters == 3 and not tally.closed
    clock.now = T0 + timedelta(hours=2)
    assert local.fetch_tally(poll).closed


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (LocalAction("ana", vote=3), "option 3 does not exist"),
        (LocalAction("ana", vote="Fly"), "no option is labelled 'Fly'"),
        (LocalAction("ana", like="77"), "there is no post 77"),
        (LocalAction("ana", like="x"), "not a post id"),
        (LocalAction("ana", reply="   "), "needs some text"),
        (LocalAction("", reply="hi"), "follower name"),
        (LocalAction("ana", reply="hi", to="42"), "there is no post 42"),
        (LocalAction("ana"), "needs one of"),
    ],
)
def test_bad_actions_are_refused_clearly(
    local: LocalPlatform, action: LocalAction, message: str
) -> None:
    post_clip_and_poll(local)
    with pytest.raises(LocalActionError, match=message):
        local.act(action)


def test_one_vote_per_name_and_closed_polls(local: LocalPlatform, clock: Clock) -> None:
    _, poll = post_clip_and_poll(local)
    local.act(LocalAction("ana", vote=1))
    with pytest.raises(LocalActionError, match="already voted"):
        local.act(LocalAction("ana", vote=2))
    clock.now = T0 + timedelta(hours=1)
    with pytest.raises(LocalActionError, match="has closed"):
        local.act(LocalAction("ben", vote=1))
    assert local.fetch_tally(poll).counts == (1, 0)


def test_nothing_to_act_on_yet(local: LocalPlatform) -> None:
    with pytest.raises(LocalActionError, match="not posted anything"):
        local.act(LocalAction("ana", reply="hello"))
    with pytest.raises(LocalActionError, match="no poll"):
        local.act(LocalAction("ana", vote=1))


def test_import_is_all_or_nothing(local: LocalPlatform, tmp_path: Path) -> None:
    post_clip_and_poll(local)
    good = tmp_path / "good.jsonl"
    good.write_text(
        '{"as": "ana", "reply": "the miners rebel"}\n\n'
        '{"as": "ben", "vote": 2}\n{"as": "cy", "like": "3"}\n'
    )
    assert len(local.act_many(parse_jsonl(good))) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"as": "dara", "reply": "first"}\n{"as": "ben", "vote": 1}\n')
    with pytest.raises(LocalActionError, match="line 2: ben already voted"):
        local.act_many(parse_jsonl(bad))
    texts = [p["text"] for p in local.thread()["posts"]]
    assert "first" not in texts  # line 1 was rolled back with line 2


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "1: not JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"as": "a"}', "exactly one of"),
        ('{"as": "a", "vote": 1, "reply": "x"}', "exactly one of"),
        ('{"as": 5, "vote": 1}', '"as" must be a name'),
        ('{"as": "a", "vote": true}', '"vote" is an option'),
        ('{"as": "a", "vote": 1, "colour": "red"}', "unknown key"),
        ('{"as": "a", "reply": 12}', '"reply" must be text'),
    ],
)
def test_import_validates_every_line_first(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "actions.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(LocalActionError, match=message):
        parse_jsonl(path)


def test_thread_json_shape(local: LocalPlatform) -> None:
    post_clip_and_poll(local)
    local.act(LocalAction("ana", reply="<script>alert(1)</script>"))
    local.act(LocalAction("ben", vote=1))
    posts = local.thread()["posts"]
    assert posts[0] == {
        "id": "1",
        "author": "storybot",
        "is_bot": True,
        "in_reply_to": None,
        "text": "Episode 1",
        "media": [{"path": "/m/e1.mp4", "alt_text": "narration"}],
        "poll": None,
        "likes": 0,
        "created_at": T0.isoformat(),
    }
    assert posts[1]["poll"] == {
        "options": [
            {"label": "Open the hatch", "text": "Open the hatch", "votes": 1},
            {"label": "Run", "text": "Run", "votes": 0},
        ],
        "closes_at": (T0 + timedelta(hours=1)).isoformat(),
        "winner": None,  # no round of the story stands behind this poll
    }
    assert posts[2]["text"] == "<script>alert(1)</script>" and not posts[2]["is_bot"]


def test_an_early_close_ends_the_local_poll(local: LocalPlatform, clock: Clock) -> None:
    _, poll = post_clip_and_poll(local)
    local.end_poll(poll)
    with pytest.raises(LocalActionError, match="has closed"):
        local.act(LocalAction("ana", vote=1))
    assert local.fetch_tally(poll).closed


def test_a_vote_can_name_its_poll(local: LocalPlatform) -> None:
    _, first = post_clip_and_poll(local)
    second = local.publish(
        OutgoingPost(
            "s:fork:poll:local", "What if?", poll=Poll(("Yes", "No"), T0 + timedelta(hours=1))
        )
    )
    local.act(LocalAction("ana", vote=2, to=first.remote_id))
    local.act(LocalAction("ana", vote=1))  # the latest poll: the fork's
    assert local.fetch_tally(first).counts == (0, 1)
    assert local.fetch_tally(second).counts == (1, 0)
    with pytest.raises(LocalActionError, match="no poll"):
        local.act(LocalAction("ben", vote=1, to="1"))  # the clip post has no poll
