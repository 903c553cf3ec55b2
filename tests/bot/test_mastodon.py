"""The Mastodon adapter against recorded Mastodon 4.6 traffic and mastodon-mock on loopback."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from mastodon import Mastodon
from mastodon.errors import (
    MastodonInternalServerError,
    MastodonNetworkError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
)

from bot.cli.login import login, write_env_var
from bot.platforms.base import Limits, Media, OutgoingPost, Poll, PostRef
from bot.platforms.mastodon import adapter as mastodon_adapter
from bot.platforms.mastodon.adapter import MastodonPlatform, make_client
from bot.platforms.mastodon.caps import guess_software, parse_version
from bot.platforms.mastodon.text import comparable, html_to_text
from story_state.errors import PermanentError, RateLimited, TransientError
from tests.bot.mastodon_fixtures import (
    RECORDED_BASE,
    MockMastodon,
    RecordingSession,
    body,
    recorded,
    replay,
    retarget,
)

T0 = datetime(2026, 8, 1, 13, 50, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(200)
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2000)


class FakeTime:
    """Clock and sleep in one: sleeping moves the clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def episode(tmp_path: Path) -> Path:
    """An episode folder as the renderer lays it out."""
    folder = tmp_path / "episode-001"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(MP4)
    (folder / "still.png").write_bytes(PNG)
    return folder


@pytest.fixture
def server(tmp_path: Path) -> Iterator[MockMastodon]:
    with MockMastodon(tmp_path) as mock:
        yield mock


def recorded_platform(
    fake_time: FakeTime, **kwargs: Any
) -> tuple[MastodonPlatform, RecordingSession]:
    """An adapter pointed at the host the cassettes were recorded on."""
    client = make_client(RECORDED_BASE, "__MASTODON_PY_TEST_ACCESS_TOKEN")
    session = RecordingSession()
    client.session = session
    platform = MastodonPlatform(
        RECORDED_BASE, "unused", client=client, clock=fake_time, sleep=fake_time.sleep, **kwargs
    )
    return platform, session


CAPTION = "Episode 1: The derelict. The miners find a ship half buried in the salt flats."


def clip_post(
    episode: Path, key: str = "salt:1:clip:mastodon", text: str = CAPTION, **kwargs: Any
) -> OutgoingPost:
    return OutgoingPost(
        key,
        text,
        media=(Media(episode / "clip.mp4", "Narrated still image. Narration: the miners dig."),),
        **kwargs,
    )


def poll_post(parent: str, closes_at: datetime, key: str = "salt:1:poll:mastodon") -> OutgoingPost:
    return OutgoingPost(
        key,
        "What happens next?\n\n1. The miners rebel\n2. They flee",
        in_reply_to=parent,
        poll=Poll(("The miners rebel", "They flee"), closes_at),
    )


# -- recorded traffic (vcrpy) -------------------------------------------------------------

INSTANCE_V2 = ("test_instance.yaml", "GET", "/api/v2/instance")


def instance_v2() -> dict[str, Any]:
    """The recorded v2 instance document, answering the adapter's request (no trailing slash:
    Mastodon.py adds one, which Takahe and others answer with 404)."""
    return retarget(recorded(*INSTANCE_V2), "GET", "/api/v2/instance")


def not_found(path: str) -> dict[str, Any]:
    """Mastodon's documented 404 (no cassette records one): {"error": "Record not found"}."""
    return {
        "request": {"method": "GET", "uri": RECORDED_BASE + path, "body": None, "headers": {}},
        "response": {
            "status": {"code": 404, "message": "Not Found"},
            "headers": {"content-type": ["application/json; charset=utf-8"]},
            "body": {"string": '{"error":"Record not found"}'},
        },
    }


def test_limits_and_capabilities_from_recorded_instance_v2(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    platform, session = recorded_platform(fake_time)
    with replay(tmp_path, instance_v2()):
        limits = platform.limits()
        assert platform.limits() == limits  # read once
    assert session.calls() == ["GET api/v2/instance"]
    assert limits == Limits(
        max_poll_options=4,
        max_option_chars=50,
        min_poll_minutes=5,
        max_poll_minutes=2629746 // 60,
        max_post_chars=500,
        accepts_video=True,
    )
    caps = platform.capabilities()
    assert (caps.version, caps.software, caps.source) == ("4.6.4", "mastodon", "v2")
    assert caps.domain == "localhost:3000"
    assert caps.description_limit == 10000
    assert caps.video_size_limit == 103809024
    assert "video/mp4" in caps.media_mime_types


def test_limits_fall_back_to_instance_v1(tmp_path: Path, fake_time: FakeTime) -> None:
    # The recorded v1 answer carries a Deprecation header; warnings are errors in this suite.
    platform, session = recorded_platform(fake_time)
    with replay(
        tmp_path,
        not_found("/api/v2/instance"),
        retarget(
            recorded("test_instance_v1.yaml", "GET", "/api/v1/instance"), "GET", "/api/v1/instance"
        ),
    ):
        limits = platform.limits()
    assert session.calls() == ["GET api/v2/instance", "GET api/v1/instance"]
    assert platform.capabilities().source == "v1"
    assert platform.capabilities().domain == "localhost:3000"
    assert (limits.max_poll_options, limits.max_post_chars, limits.accepts_video) == (4, 500, True)


@pytest.mark.parametrize(
    ("closes_in", "expires_in"),
    [
        (timedelta(hours=2), 7200),
        (timedelta(minutes=1), 300),  # the server's min_expiration
        (timedelta(days=60), 2629746),  # its max_expiration
    ],
)
def test_poll_published_and_tallied_from_recorded_traffic(
    tmp_path: Path, fake_time: FakeTime, closes_in: timedelta, expires_in: int
) -> None:
    platform, session = recorded_platform(fake_time, visibility="unlisted", language="en")
    post = OutgoingPost(
        "salt:1:poll:mastodon",
        "nice",
        poll=Poll(("four twenty", "sixty-nine"), fake_time.now + closes_in),
    )
    with replay(
        tmp_path,
        instance_v2(),
        recorded("test_polls.yaml", "POST", "/api/v1/statuses"),
        recorded("test_polls.yaml", "GET", "/api/v1/polls/1", 0),
        recorded("test_polls.yaml", "GET", "/api/v1/polls/1", 1),
    ):
        ref = platform.publish(post)
        first = platform.fetch_tally(ref)
        second = platform.fetch_tally(ref)

    assert ref == PostRef(
        "mastodon", "117020582690282017", "http://localhost:3000/@admin/117020582690282017"
    )
    method, _, sent = session.sent[1]
    assert method == "POST"
    assert sent["headers"]["Idempotency-Key"] == "salt:1:poll:mastodon"
    assert sent["json"]["poll"] == {
        "options": ["four twenty", "sixty-nine"],
        "expires_in": expires_in,
        "multiple": False,
        "hide_totals": False,
    }
    assert (sent["json"]["visibility"], sent["json"]["language"]) == ("unlisted", "en")
    # The poll's own endpoint is used for a poll posted by this process.
    assert session.calls()[2:] == ["GET api/v1/polls/1", "GET api/v1/polls/1"]
    assert (first.counts, first.voters, first.closed) == ((0, 1), 1, False)
    # One person ticked both options of the recorded multiple-choice poll: 2 votes, 1 voter.
    assert (second.counts, second.voters, second.extra) == ((1, 1), 1, {"votes": 2})


def test_plain_status_with_content_warning_from_recorded_traffic(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    platform, session = recorded_platform(fake_time, spoiler_text="Content warning")
    cassette = "test_status_post[Content warning-public].yaml"
    with replay(tmp_path, instance_v2(), recorded(cassette, "POST", "/api/v1/statuses")):
        ref = platform.publish(OutgoingPost("salt:0:note:mastodon", "Toot!"))
    assert ref.remote_id == "117020586000687987"
    _, _, sent = session.sent[-1]
    assert sent["headers"]["Idempotency-Key"] == "salt:0:note:mastodon"
    assert {k: sent["data"][k] for k in ("status", "visibility", "spoiler_text", "language")} == {
        "status": "Toot!",
        "visibility": "public",
        "spoiler_text": "Content warning",
        "language": "en",
    }
    assert "in_reply_to_id" not in sent["data"]


def test_refused_status_is_permanent_whatever_the_language(
    tmp_path: Path, fake_time: FakeTime
) -> None:
    refused = retarget(
        recorded("test_poll_illegal_vote.yaml", "POST", "/api/v1/polls/2/votes", 1),
        "POST",
        "/api/v1/statuses",
    )
    platform, _ = recorded_platform(fake_time)
    with (
        replay(tmp_path, instance_v2(), refused),
        pytest.raises(PermanentError, match="HTTP 422: バリデーション"),
    ):
        platform.publish(OutgoingPost("k", "short"))


def media_interactions() -> list[dict[str, Any]]:
    """Upload (202, url null), processing (206), processed (200), then the status."""
    upload = recorded("test_media_post[True].yaml", "POST", "/api/v2/media")
    media_id = body(upload)["id"]
    processing = retarget(
        recorded("test_media_update.yaml", "PUT", "/api/v1/media/117020576701406190"),
        "GET",
        f"/api/v1/media/{media_id}",
    )
    return [instance_v2(), upload, processing, processing]


def test_video_is_posted_only_once_processing_is_done(
    tmp_path: Path, fake_time: FakeTime, episode: Path
) -> None:
    platform, session = recorded_platform(fake_time)
    post = OutgoingPost(
        "salt:1:clip:mastodon",
        "LOL check this out",
        media=(Media(episode / "clip.mp4", "Narration: " + "the salt sings. " * 700),),
    )
    with replay(
        tmp_path,
        *media_interactions(),
        recorded("test_media_post[True].yaml", "GET", "/api/v1/media/117020575776246986"),
        recorded("test_media_post[True].yaml", "POST", "/api/v1/statuses"),
    ):
        ref = platform.publish(post)

    assert ref.remote_id == "117020576440066974"
    assert session.calls() == [
        "GET api/v2/instance",
        "POST api/v2/media",
        "GET api/v1/media/117020575776246986",  # 206
        "GET api/v1/media/117020575776246986",  # 206
        "GET api/v1/media/117020575776246986",  # 200, url set
        "POST api/v1/statuses",
    ]
    assert fake_time.slept == [1.0, 2.0, 4.0]
    upload = session.sent[1][2]
    name, _, mime = upload["files"]["file"]
    assert (name, mime) == ("clip.mp4", "video/mp4")
    description = upload["data"]["description"]
    assert 9990 < len(description) <= 10000 and description.endswith("…")  # server limit
    status = session.sent[-1][2]
    assert status["data"]["media_ids[]"] == ["117020575776246986"]
    assert "poll" not in status["data"]


def test_media_still_processing_at_the_deadline(
    tmp_path: Path, fake_time: FakeTime, episode: Path
) -> None:
    platform, session = recorded_platform(fake_time, media_deadline_s=20)
    interactions = media_interactions()
    post = clip_post(episode, text="LOL check this out")
    with (
        replay(tmp_path, *interactions, *interactions[-1:] * 10),
        pytest.raises(TransientError, match="still processing after 20 s"),
    ):
        platform.publish(post)
    assert sum(fake_time.slept) == pytest.approx(20)
    assert not any(c == "POST api/v1/statuses" for c in session.calls())


def test_replies_from_recorded_statuses(tmp_path: Path, fake_time: FakeTime) -> None:
    """A context assembled from recorded statuses; the recorded mention is not a reply."""
    ours = body(recorded("test_status_context.yaml", "POST", "/api/v1/statuses"))
    reply = body(recorded("test_status_reply.yaml", "POST", "/api/v1/statuses", 1))
    parent = reply["in_reply_to_id"]
    me = recorded("test_status_reply.yaml", "GET", "/verify_credentials")
    me["response"]["body"]["string"] = json.dumps(ours["account"])  # the bot: mastodonpy_test
    context = recorded("test_status_context.yaml", "GET", "/context")
    context["request"]["uri"] = f"{RECORDED_BASE}/api/v1/statuses/{parent}/context"
    context["response"]["body"]["string"] = json.dumps({"ancestors": [], "descendants": [reply]})
    platform, session = recorded_platform(fake_time)
    with replay(
        tmp_path,
        instance_v2(),
        me,
        context,
        recorded("test_notifications_mentions_only.yaml", "GET", "/api/v1/notifications"),
    ):
        replies = platform.fetch_replies((PostRef("mastodon", parent),))

    assert session.sent[-1][2]["params"]["types[]"] == ["mention"]
    assert len(replies) == 1
    got = replies[0]
    assert got.remote_id == "117020583258292382"
    assert got.in_reply_to == parent
    assert got.author_handle == "admin@localhost:3000"  # local accounts get the server's domain
    assert got.author_name == "admin"  # no display name: the username
    assert got.text == reply["content"]  # HTML, as the server sent it
    assert got.posted_at == datetime(2026, 8, 1, 13, 53, 15, 910000, tzinfo=UTC)
    assert (got.likes, got.boosts) == (0, 0)


def test_posted_html_compares_equal_to_the_text_we_sent() -> None:
    reply = body(recorded("test_status_reply.yaml", "POST", "/api/v1/statuses", 1))
    shown = comparable(html_to_text(reply["content"]))
    assert shown == comparable("@mastodonpy_test_2 same!")
    assert shown == comparable("@mastodonpy_test_2@localhost same!")
    assert comparable(html_to_text("<p>One &amp; two</p><p>three<br />four</p>")) == (
        comparable("One & two\n\nthree\nfour")
    )


@pytest.mark.parametrize(
    ("version", "software", "level"),
    [
        ("4.6.4", "mastodon", (4, 6, 4)),
        ("4.2.0+glitch", "glitch", (4, 2, 0)),
        ("4.3.0+hometown-1.1.1", "hometown", (4, 3, 0)),
        ("2.7.2 (compatible; Pleroma 2.5.0)", "pleroma", (2, 7, 2)),
        ("3.0.0 (compatible; Akkoma 3.13.2)", "akkoma", (3, 0, 0)),
        ("0.17.3 git-ccdb5bb", "unknown", (0, 17, 3)),
        ("nonsense", "unknown", (0, 0, 0)),
    ],
)
def test_version_strings(version: str, software: str, level: tuple[int, int, int]) -> None:
    assert (guess_software(version), parse_version(version)) == (software, level)


# -- mastodon-mock: the whole loop ----------------------------------------------------------


def test_clip_poll_replies_votes_and_tally(server: MockMastodon, episode: Path) -> None:
    platform = MastodonPlatform(server.base_url, "alice_token", spoiler_text="sci-fi story")
    clip = platform.publish(clip_post(episode))
    closes = datetime.now(UTC) + timedelta(hours=1)
    poll = platform.publish(poll_post(clip.remote_id, closes))

    bob, carol, alice = server.client("bob"), server.client("carol"), server.client("alice")
    thread_poll = bob.status(poll.remote_id)
    assert thread_poll.in_reply_to_id == clip.remote_id
    assert thread_poll.spoiler_text == "sci-fi story"
    attachment = bob.status(clip.remote_id).media_attachments[0]
    assert (attachment.type, attachment.description) == (
        "video",
        "Narrated still image. Narration: the miners dig.",
    )
    idea = bob.status_post("@alice The miners rebel!", in_reply_to_id=poll.remote_id)
    bob.poll_vote(thread_poll.poll.id, [0])
    carol.status_post("They flee into the dunes", in_reply_to_id=clip.remote_id)
    carol.status_favourite(idea.id)
    carol.status_reblog(idea.id)
    carol.status_post("+1", in_reply_to_id=idea.id)  # a reply to a reply: not a suggestion
    alice.status_post("Thanks, everyone!", in_reply_to_id=poll.remote_id)  # the bot's own

    replies = platform.fetch_replies((clip, poll))
    assert [(r.author_handle, r.author_name, r.in_reply_to) for r in replies] == [
        ("bob@mock.local", "Bob", poll.remote_id),
        ("carol@mock.local", "Carol", clip.remote_id),
    ]
    assert (replies[0].likes, replies[0].boosts) == (1, 1)
    assert "The miners rebel!" in replies[0].text
    assert all(r.posted_at.tzinfo is not None for r in replies)

    tally = platform.fetch_tally(poll)
    assert (tally.counts, tally.voters, tally.closed) == ((1, 0), 1, False)
    restarted = MastodonPlatform(server.base_url, "alice_token")
    assert restarted.fetch_tally(poll) == tally  # reads the poll through its status
    assert "POST /api/v2/media" in server.seen and "POST /api/v1/media" not in server.seen


@pytest.mark.parametrize("ignore_key", [False, True], ids=["honours-key", "ignores-key"])
def test_publishing_twice_makes_one_status(tmp_path: Path, episode: Path, ignore_key: bool) -> None:
    with MockMastodon(tmp_path, ignore_idempotency=ignore_key) as mock:
        alice = mock.client("alice")
        # Show what the server does with a repeated key when nobody looks first.
        a = alice.status_post("probe", idempotency_key="probe")
        b = alice.status_post("probe", idempotency_key="probe")
        assert (a.id != b.id) is ignore_key

        first = MastodonPlatform(mock.base_url, "alice_token").publish(clip_post(episode))
        closes = datetime.now(UTC) + timedelta(hours=1)
        poll = MastodonPlatform(mock.base_url, "alice_token").publish(
            poll_post(first.remote_id, closes)
        )
        # A restarted process tries both again: same posts back, nothing new.
        again = MastodonPlatform(mock.base_url, "alice_token")
        assert again.publish(clip_post(episode)) == first
        assert again.publish(poll_post(first.remote_id, closes)) == poll
        me = alice.me()
        mine = [s for s in alice.account_statuses(me.id, limit=40) if "probe" not in s.content]
        assert sorted(s.id for s in mine) == sorted([first.remote_id, poll.remote_id])
        assert mock.seen.count("POST /api/v2/media") == 1
        if not ignore_key:
            # A short root post with no outbox time is not looked up (such words repeat): the
            # key alone holds it.
            short = OutgoingPost("salt:note", "Back soon.")
            assert again.publish(short) == MastodonPlatform(mock.base_url, "alice_token").publish(
                short
            )


def test_a_short_root_post_is_found_again_by_its_time_not_its_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that ignores Idempotency-Key, a short root post whose answer was lost: the
    retry finds it (made after its outbox row), while the same words posted before are not
    taken for it."""
    # The server's clock is this machine's: no skew to allow for, and no minutes to wait.
    monkeypatch.setattr(mastodon_adapter, "_CLOCK_SKEW", timedelta(0))
    with MockMastodon(tmp_path, ignore_idempotency=True) as mock:
        alice = mock.client("alice")
        older = alice.status_post("Back soon.")
        time.sleep(0.05)
        meant = datetime.now(UTC)  # the outbox row is younger than ``older``
        post = OutgoingPost("salt:note", "Back soon.", not_before=meant)
        first = MastodonPlatform(mock.base_url, "alice_token").publish(post)
        assert first.remote_id != str(older.id)
        # The answer was lost; a restarted process publishes the row again.
        again = MastodonPlatform(mock.base_url, "alice_token").publish(post)
        assert again == first
        mine = [s for s in alice.account_statuses(alice.me().id, limit=40)]
        assert sorted(str(s.id) for s in mine) == sorted([str(older.id), first.remote_id])


@pytest.mark.parametrize(
    ("version", "software"),
    [
        ("2.7.2 (compatible; Pleroma 2.5.0)", "pleroma"),
        ("3.0.0 (compatible; Akkoma 3.13.2)", "akkoma"),
        ("4.2.0+glitch", "glitch"),
        ("4.0.2+hometown-1.1.1", "hometown"),
        ("takahe/0.11.0", "takahe"),
        ("2023.12.2 (compatible; Misskey 2023.12.2)", "misskey"),
        ("4.6.4", "mastodon"),
    ],
)
def test_servers_with_odd_versions(
    tmp_path: Path, episode: Path, version: str, software: str
) -> None:
    with MockMastodon(tmp_path, version=version) as mock:
        platform = MastodonPlatform(mock.base_url, "alice_token")
        platform.publish(clip_post(episode))
        assert platform.capabilities().version == version
        assert platform.capabilities().software == software  # named in logs and the doctor
        assert "POST /api/v2/media" in mock.seen  # not v1, whatever the version claims
        assert mock.seen.count("GET /api/v2/instance") == 1  # no version probing, no trailing slash


def image_only_instance() -> dict[str, Any]:
    """The recorded v2 instance, as a GoToSocial-like server that takes no video."""
    data: dict[str, Any] = body(recorded(*INSTANCE_V2))
    data["version"] = "0.17.3 git-ccdb5bb"
    data["source_url"] = "https://github.com/superseriousbusiness/gotosocial"
    media = data["configuration"]["media_attachments"]
    media["supported_mime_types"] = [m for m in media["supported_mime_types"] if "image" in m]
    return data


def test_image_only_server_gets_the_still(
    server: MockMastodon, episode: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.fault(r"^/api/v2/instance/?$", status=200, body=image_only_instance())
    platform = MastodonPlatform(server.base_url, "alice_token")
    assert platform.limits().accepts_video is False
    assert platform.capabilities().software == "gotosocial"
    with caplog.at_level(logging.WARNING, logger="bot.platforms"):
        ref = platform.publish(clip_post(episode))
    assert "posting the still image" in caplog.text
    attachment = server.client("bob").status(ref.remote_id).media_attachments[0]
    assert attachment.type == "image"
    # The still stands alone: its alt text says so, and still carries the narration.
    assert attachment.description == (
        "Still image from the episode (this server takes no video). "
        "Narrated still image. Narration: the miners dig."
    )
    assert requests.get(attachment.url, timeout=10).content == PNG

    (episode / "still.png").unlink()
    with pytest.raises(PermanentError, match=r"still\.png"):
        platform.publish(clip_post(episode, "salt:2:clip:mastodon", "Episode 2: " + CAPTION))
    assert server.seen.count("POST /api/v2/media") == 1


def unlisted_media_instance() -> dict[str, Any]:
    """The recorded v2 instance of a server that does not say which media types it takes."""
    data: dict[str, Any] = body(recorded(*INSTANCE_V2))
    del data["configuration"]["media_attachments"]["supported_mime_types"]
    return data


def test_a_server_that_refuses_video_gets_stills_from_then_on(
    server: MockMastodon, episode: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # As Takahe answers an MP4 upload: 500 with an HTML page, where no media types are listed.
    server.fault(r"^/api/v2/instance/?$", status=200, body=unlisted_media_instance())
    platform = MastodonPlatform(server.base_url, "alice_token")
    assert not platform.capabilities().media_known
    server.fault(r"^/api/v2/media/?$", methods=["POST"], status=500, body="Internal Error", count=1)
    with caplog.at_level(logging.WARNING, logger="bot.platforms"):
        first = platform.publish(clip_post(episode))
    assert "refused the video upload" in caplog.text
    assert platform.video_refused
    second = platform.publish(clip_post(episode, "salt:2:clip:mastodon", "Episode 2: " + CAPTION))
    kinds = [
        server.client("bob").status(ref.remote_id).media_attachments[0].type
        for ref in (first, second)
    ]
    assert kinds == ["image", "image"]
    # One refused video, then a still each time: the refusal is remembered, not retried.
    assert server.seen.count("POST /api/v2/media") == 3


def test_a_500_on_video_from_a_server_that_lists_video_is_an_outage(
    server: MockMastodon, episode: Path, fake_time: FakeTime
) -> None:
    platform = MastodonPlatform(
        server.base_url, "alice_token", clock=fake_time, sleep=fake_time.sleep
    )
    assert platform.capabilities().accepts_video and platform.capabilities().media_known
    server.fault(r"^/api/v2/media/?$", methods=["POST"], status=500, count=3)
    with pytest.raises(TransientError):
        platform.publish(clip_post(episode))
    assert not platform.video_refused


def test_mastodon_async_refresh_is_retried_briefly(
    server: MockMastodon, fake_time: FakeTime
) -> None:
    platform = MastodonPlatform(
        server.base_url, "alice_token", clock=fake_time, sleep=fake_time.sleep
    )
    post = platform.publish(OutgoingPost("salt:1:poll:mastodon", "What happens next, crew?"))
    server.client("bob").status_post("@alice Open the hatch", in_reply_to_id=post.remote_id)
    server.client("carol").status_post("Bury it again", in_reply_to_id=post.remote_id)
    refreshing = {
        "body": body(recorded("test_status_context.yaml", "GET", "/context")),
        "headers": {"Mastodon-Async-Refresh": 'id="ImNvbnRleHQi--b8f1", retry=1, result_count=0'},
    }
    context = rf"^/api/v1/statuses/{post.remote_id}/context$"

    server.fault(context, status=200, count=1, **refreshing)
    replies = platform.fetch_replies((post,))
    assert fake_time.slept == [1.0]
    assert sorted(r.author_name for r in replies) == ["Bob", "Carol"]

    # Still refreshing after the short wait: use what there is (mentions reach us anyway).
    fake_time.slept.clear()
    server.fault(context, status=200, **refreshing)
    replies = platform.fetch_replies((post,))
    assert len(fake_time.slept) == 2 and sum(fake_time.slept) <= 3.0
    assert [r.author_name for r in replies] == ["Bob"]


def test_media_upload_budget(server: MockMastodon, episode: Path, fake_time: FakeTime) -> None:
    platform = MastodonPlatform(server.base_url, "alice_token", clock=fake_time)
    still = Media(episode / "still.png", "A still.", "image/png")
    for n in range(30):
        platform.publish(OutgoingPost(f"s:{n}", f"still {n}", media=(still,)))
        fake_time.now += timedelta(seconds=10)
    with pytest.raises(RateLimited) as caught:
        platform.publish(OutgoingPost("s:30", "still 30", media=(still,)))
    assert caught.value.reset_at == T0 + timedelta(minutes=30)
    assert server.seen.count("POST /api/v2/media") == 30
    fake_time.now = T0 + timedelta(minutes=30)
    platform.publish(OutgoingPost("s:30", "still 30", media=(still,)))
    assert server.seen.count("POST /api/v2/media") == 31


def test_a_deleted_post_does_not_hide_the_other_replies(
    server: MockMastodon, caplog: pytest.LogCaptureFixture
) -> None:
    platform = MastodonPlatform(server.base_url, "alice_token")
    clip = platform.publish(OutgoingPost("salt:1:clip:mastodon", "Episode one."))
    poll = platform.publish(
        OutgoingPost("salt:1:poll:mastodon", "Vote!", in_reply_to=clip.remote_id)
    )
    server.client("bob").status_post("Open the hatch", in_reply_to_id=clip.remote_id)
    server.client("alice").status_delete(poll.remote_id)
    with caplog.at_level(logging.WARNING, logger="bot.platforms"):
        replies = platform.fetch_replies((clip, poll))
    assert [r.author_name for r in replies] == ["Bob"]
    assert f"status {poll.remote_id} is gone" in caplog.text
    with pytest.raises(PermanentError):
        platform.fetch_tally(poll)


# -- mastodon-mock: errors ----------------------------------------------------------------


def test_bad_token_is_permanent_with_a_way_out(server: MockMastodon, episode: Path) -> None:
    platform = MastodonPlatform(server.base_url, "not-a-token")
    with pytest.raises(PermanentError, match="storybot login mastodon") as caught:
        platform.publish(clip_post(episode))
    assert isinstance(caught.value.__cause__, MastodonUnauthorizedError)


@pytest.mark.parametrize(
    ("fault", "error", "cause"),
    [
        ({"status": 401}, PermanentError, MastodonUnauthorizedError),
        ({"effect": "ratelimit"}, RateLimited, MastodonRatelimitError),
        ({"status": 503}, TransientError, MastodonServerError),
        ({"status": 502}, TransientError, MastodonServerError),
        (
            {"status": 500, "body": {"error": "Validation failed: Text can't be blank"}},
            PermanentError,
            MastodonInternalServerError,
        ),
        ({"status": 500}, TransientError, MastodonInternalServerError),
        ({"status": 422, "body": {"error": "Validation failed"}}, PermanentError, None),
    ],
    ids=["401", "429", "503", "502", "500-validation", "500", "422"],
)
def test_status_errors_are_translated(
    server: MockMastodon, fault: dict[str, Any], error: type[Exception], cause: type | None
) -> None:
    platform = MastodonPlatform(server.base_url, "alice_token")
    platform.limits()
    server.fault(r"^/api/v1/statuses$", methods=["POST"], **fault)
    with pytest.raises(error) as caught:
        platform.publish(OutgoingPost("k", "short"))
    if cause is not None:
        assert isinstance(caught.value.__cause__, cause)
    if isinstance(caught.value, RateLimited):
        assert caught.value.reset_at is not None
        expected = datetime.now(UTC) + timedelta(seconds=300)  # the mock's X-RateLimit-Reset
        assert abs((caught.value.reset_at - expected).total_seconds()) < 10


def test_unreachable_server_is_transient_and_limits_fall_back(
    fake_time: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    platform = MastodonPlatform(
        "http://127.0.0.1:9", "alice_token", clock=fake_time, sleep=fake_time.sleep
    )
    with caplog.at_level(logging.WARNING, logger="bot.platforms"):
        assert platform.limits() == Limits()
    assert "default Mastodon limits" in caplog.text
    with pytest.raises(TransientError) as caught:
        platform.publish(OutgoingPost("k", "short"))
    assert isinstance(caught.value.__cause__, requests.RequestException | MastodonNetworkError)


def test_a_failing_v2_instance_falls_back_to_v1_at_once(
    server: MockMastodon, fake_time: FakeTime
) -> None:
    # Takahe answers 500 on v2 while its admin has no identity; v1 still works there.
    server.fault(r"^/api/v2/instance/?$", status=500, count=5)
    platform = MastodonPlatform(
        server.base_url, "alice_token", clock=fake_time, sleep=fake_time.sleep
    )
    assert platform.limits().max_poll_options == 4
    assert platform.capabilities().source == "v1"
    assert server.seen.count("GET /api/v2/instance") == 1
    assert server.seen.count("GET /api/v1/instance") == 1
    assert not [s for s in server.seen if s.startswith("GET /api/v") and s.endswith("instance/")]
    assert fake_time.slept == []  # no waiting on a server that answered


def test_unreadable_instance_documents_still_let_the_bot_post(
    server: MockMastodon, fake_time: FakeTime, episode: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.fault(r"^/api/v2/instance/?$", status=404, count=1)
    server.fault(r"^/api/v1/instance/?$", status=200, body="<html>not json</html>", count=1)
    platform = MastodonPlatform(
        server.base_url, "alice_token", clock=fake_time, sleep=fake_time.sleep
    )
    with caplog.at_level(logging.WARNING, logger="bot.platforms"):
        limits = platform.limits()
    assert (limits.max_post_chars, limits.max_poll_options, limits.max_option_chars) == (
        500,
        4,
        50,
    )
    caps = platform.capabilities()
    assert caps.source == "defaults" and not caps.media_known
    assert "conservative limits" in caplog.text
    ref = platform.publish(clip_post(episode))  # posted all the same (the video is tried)
    assert server.client("bob").status(ref.remote_id).media_attachments[0].type == "video"
    # Read again after a minute: the documents may answer by then.
    assert server.seen.count("GET /api/v2/instance") == 1
    fake_time.now += timedelta(seconds=61)
    assert platform.capabilities().source == "v2"
    assert server.seen.count("GET /api/v2/instance") == 2


def test_a_call_safe_to_repeat_is_tried_again_within_the_step(
    server: MockMastodon, fake_time: FakeTime
) -> None:
    server.fault(r"^/api/v1/accounts/verify_credentials/?$", status=503, count=2)
    platform = MastodonPlatform(
        server.base_url, "alice_token", clock=fake_time, sleep=fake_time.sleep
    )
    assert platform.limits().max_poll_minutes == 2629746 // 60
    ref = platform.publish(OutgoingPost("k1", "x" * 60))  # long: looked up before posting
    assert ref.remote_id
    assert server.seen.count("GET /api/v1/accounts/verify_credentials") == 3
    assert fake_time.slept == [0.5, 2.0]


def test_a_failed_status_post_is_not_repeated_within_the_step(
    server: MockMastodon, fake_time: FakeTime
) -> None:
    server.fault(r"^/api/v1/statuses/?$", status=503, count=1)
    platform = MastodonPlatform(
        server.base_url, "alice_token", clock=fake_time, sleep=fake_time.sleep
    )
    with pytest.raises(TransientError):
        platform.publish(OutgoingPost("k2", "short"))
    assert server.seen.count("POST /api/v1/statuses") == 1  # the scheduler tries it again


def test_tally_of_a_status_without_poll(server: MockMastodon) -> None:
    platform = MastodonPlatform(server.base_url, "alice_token")
    ref = platform.publish(OutgoingPost("k", "no poll here"))
    with pytest.raises(PermanentError, match="no poll"):
        platform.fetch_tally(ref)
    assert platform.fetch_replies((PostRef("x", "1"),)) == []  # other platforms' posts


# -- storybot login mastodon --------------------------------------------------------------


def test_login_stores_the_token_and_never_shows_it(server: MockMastodon, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# storybot\nOTHER=1\nSTORYBOT_MASTODON_TOKEN=old\nexport LAST=2\n")
    env.chmod(0o644)
    result = CliRunner().invoke(
        login,
        ["mastodon", "--instance", server.base_url, "--env-file", str(env)],
        input="mockcode_alice\n",
    )
    assert result.exit_code == 0, result.output
    assert f"{server.base_url}/oauth/authorize?" in result.output
    lines = env.read_text().splitlines()
    assert lines[:2] == ["# storybot", "OTHER=1"] and lines[3] == "export LAST=2"
    name, token = lines[2].split("=", 1)
    assert name == "STORYBOT_MASTODON_TOKEN" and token not in ("", "old")
    assert token not in result.output
    assert "@alice" in result.output and str(env) in result.output
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    client = Mastodon(access_token=token, api_base_url=server.base_url, version_check_mode="none")
    assert client.account_verify_credentials().username == "alice"


def test_login_creates_a_private_env_file(server: MockMastodon, tmp_path: Path) -> None:
    env = tmp_path / "secrets.env"
    result = CliRunner().invoke(
        login,
        ["mastodon", "--instance", server.base_url, "--env-file", str(env), "--env-var", "TOK"],
        input="mockcode_bob\n",
    )
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert env.read_text().startswith("TOK=")


def test_login_with_a_wrong_code_writes_nothing(server: MockMastodon, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    result = CliRunner().invoke(
        login,
        ["mastodon", "--instance", server.base_url, "--env-file", str(env)],
        input="not-a-code\n",
    )
    assert result.exit_code == 1
    assert "did not accept the code" in result.output
    assert not env.exists()


def test_login_writes_beside_the_config_that_the_other_commands_read(
    server: MockMastodon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.cli import cli

    folder = tmp_path / "deploy"
    folder.mkdir()
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the operator runs it from another folder
    config = folder / "config.toml"
    result = CliRunner().invoke(
        cli,
        ["--config", str(config), "login", "mastodon", "--instance", server.base_url],
        input="mockcode_alice\n",
    )
    assert result.exit_code == 0, result.output
    assert (folder / ".env").read_text().startswith("STORYBOT_MASTODON_TOKEN=")
    assert not (elsewhere / ".env").exists()


def test_env_file_update_keeps_other_lines(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    write_env_var(env, "A", "1")
    write_env_var(env, "B", "2")
    write_env_var(env, "A", "3")
    assert env.read_text() == "A=3\nB=2\n"
    assert [p.name for p in tmp_path.iterdir()] == [".env"]  # no temp file left
    assert os.stat(env).st_mode & 0o077 == 0


# -- many replies ---------------------------------------------------------------------------


# The full size (5,000 replies over Mastodon's 4,096 cap) takes mastodon-mock minutes to serve
# on 2 cores; `make test` runs the same path at a tenth of the size, cap included.
HEAVY = os.environ.get("STORYBOT_TEST_HEAVY") == "1"
MANY, CAP = (5000, 4096) if HEAVY else (500, 409)


def test_replies_past_the_context_cap_are_all_read(tmp_path: Path) -> None:
    """Mastodon's context stops at 4,096 descendants: the rest come from paged mentions.

    STORYBOT_TEST_HEAVY=1 runs it with 5,000 replies and the real cap."""
    with MockMastodon(tmp_path, context_limit=CAP) as mock:
        platform = MastodonPlatform(mock.base_url, "alice_token")
        poll = platform.publish(OutgoingPost("k-many", "What happens next? Reply below."))
        began = time.monotonic()
        made = set()
        for name in ("bob", "carol"):
            texts = [f"@alice idea number {n} from {name}" for n in range(MANY // 2)]
            made |= set(mock.seed_replies(name, poll.remote_id, texts))
        seeded_s = time.monotonic() - began
        assert len(made) == MANY
        context = mock.client("bob").status_context(poll.remote_id)
        assert len(context["descendants"]) == CAP  # the cap, as on Mastodon

        began = time.monotonic()
        replies = platform.fetch_replies((poll,))
        read_s = time.monotonic() - began
    assert {r.remote_id for r in replies} == made, (len(replies), len(made))
    assert mock.seen.count("GET /api/v1/notifications") >= MANY // 80
    print(f"{MANY} replies: seeded in {seeded_s:.1f} s, read in {read_s:.1f} s")
