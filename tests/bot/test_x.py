"""The X adapter against recorded X traffic and a scripted X on loopback, checked by X's spec."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import vcr

from bot.platforms.base import Media, OutgoingPost, Poll, PollTally, PostRef
from bot.platforms.x.adapter import XPlatform
from story_state.errors import (
    BackendUnavailable,
    PermanentError,
    RateLimited,
    TransientError,
)
from tests.bot.conftest import T0, Clock
from tests.bot.x_fixtures import (
    DUPLICATE,
    NOT_ENROLLED,
    TOO_MANY,
    UNAUTHORIZED,
    UNAVAILABLE,
    Answer,
    FakeX,
    SpecSession,
    cassette,
    classic_bad_parameter,
    combined_cassette,
    openapi,
    post,
    recorded,
    snowflake,
    user,
)

ME = "1500000000000000001"
CLIP = snowflake(T0 - timedelta(minutes=30))
POLL = snowflake(T0 - timedelta(minutes=29))
MEDIA = "1880028106020515840"
ANA, BEN = user("2244994945", "ana", "Ana"), user("783214", "ben", "Ben B.")
RECORDED_API = "https://api.twitter.com"  # the host tweepy's cassettes were recorded on


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    server = FakeX()
    yield server
    server.close()
    assert not server.unexpected, f"requests X was not scripted for: {server.unexpected}"


@pytest.fixture
def session() -> Iterator[SpecSession]:
    with SpecSession() as s:
        yield s


def no_sleep(seconds: float) -> None:
    raise AssertionError(f"the adapter slept {seconds} s outside media processing")


def make_x(
    base: str, session: SpecSession, clock: Callable[[], datetime] | None = None, **kw: Any
) -> XPlatform:
    kw.setdefault("sleep", no_sleep)
    return XPlatform(
        "ck", "cs", "at", "as", api_base=base, session=session, clock=clock or Clock(), **kw
    )


def created(post_id: str, text: str) -> Answer:
    """POST /2/tweets's answer, as recorded in tweepy's create-tweet cassette."""
    return Answer(201, {"data": {"id": post_id, "text": text}})


def recorded_vcr() -> vcr.VCR:
    def json_body(r1: Any, r2: Any) -> None:
        if r1.body or r2.body:
            assert json.loads(r1.body) == json.loads(r2.body)

    player = vcr.VCR(
        record_mode="none",
        match_on=["method", "scheme", "host", "port", "path", "json_body"],
        # The stored v2 bodies are gzip; through vcrpy's stub response urllib3 2 hands them
        # over undecoded, so vcrpy unpacks them when it loads the cassette.
        decode_compressed_response=True,
    )
    player.register_matcher("json_body", json_body)
    return player


# -- recorded traffic (tweepy's cassettes, real X answers) ------------------------------


def test_recorded_create_tweet(session: SpecSession) -> None:
    x = make_x(RECORDED_API, session)
    name = "test_client_create_and_delete_tweet"
    with recorded_vcr().use_cassette(str(cassette(name))) as played:
        ref = x.publish(OutgoingPost("s:1:clip:x", "Test Tweet"))
    assert played.play_count == 1  # our request body matched the recorded one
    assert ref == PostRef(
        "x", "1456012973835788293", "https://x.com/i/web/status/1456012973835788293"
    )
    # The same key again: answered from memory, no request (the cassette is closed).
    assert x.publish(OutgoingPost("s:1:clip:x", "Test Tweet")) == ref
    assert len(session.sent) == 1


def test_recorded_tweet_without_poll_has_no_tally(session: SpecSession) -> None:
    x = make_x(RECORDED_API, session, post_only=False)
    played = recorded_vcr().use_cassette(str(cassette("test_client_get_tweet")))
    with played, pytest.raises(PermanentError, match="has no poll"):
        x.fetch_tally(PostRef("x", "1293593516040269825"))
    (sent,) = session.sent
    assert sent.query["expansions"] == "attachments.poll_ids"


def test_recorded_search_and_mentions(session: SpecSession, tmp_path: Path) -> None:
    """Real search and mention pages parse; none of their posts replies to ours."""
    path = combined_cassette(
        tmp_path,
        "test_client_get_tweet",
        "test_client_search_recent_tweets",
        "test_client_get_users_mentions",
    )
    x = make_x(RECORDED_API, session, post_only=False, user_id="783214")
    with recorded_vcr().use_cassette(str(path), allow_playback_repeats=True) as played:
        replies = x.fetch_replies((PostRef("x", "1293593516040269825"),))
    assert replies == []
    assert played.all_played
    lookup, *rest = session.sent
    assert lookup.path == "/2/tweets/1293593516040269825"
    searches = [s for s in rest if s.path == "/2/tweets/search/recent"]
    mentions = [s for s in rest if s.path == "/2/users/783214/mentions"]
    # The recorded tweet has no conversation_id field: the post is its own thread's root.
    assert searches[0].query["query"] == "conversation_id:1293593516040269825"
    assert searches[0].query["since_id"] == "1293593516040269825"
    # Recorded pages always name a next page: the adapter follows them, up to 5 pages each.
    search_token = recorded("test_client_search_recent_tweets")[0][1]["meta"]["next_token"]
    assert searches[1].query["next_token"] == search_token
    mention_token = recorded("test_client_get_users_mentions")[0][1]["meta"]["next_token"]
    assert mentions[1].query["pagination_token"] == mention_token
    assert (len(searches), len(mentions)) == (5, 5)


# -- reading replies ------------------------------------------------------------------------


def _recorded_posts(name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = recorded(name)[0][1]["data"]
    return data


def _page(posts: list[dict[str, Any]], *users: dict[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"result_count": len(posts)}
    if posts:
        meta |= {"newest_id": posts[0]["id"], "oldest_id": posts[-1]["id"]}
    body: dict[str, Any] = {"data": posts, "meta": meta} if posts else {"meta": meta}
    if users:
        body["includes"] = {"users": list(users)}
    return body


def _our_posts(fake_x: FakeX) -> None:
    fake_x.on("GET", f"/2/tweets/{CLIP}", Answer(body={"data": post(CLIP, "Ep 1", author_id=ME)}))
    poll = post(POLL, "Next?", author_id=ME, replied_to=CLIP, conversation_id=CLIP)
    fake_x.on("GET", f"/2/tweets/{POLL}", Answer(body={"data": poll}))


def test_replies_from_search_and_mentions(fake_x: FakeX, session: SpecSession) -> None:
    # Real recorded posts (ids, texts), given the fields the adapter asks for.
    a, b, c, d = _recorded_posts("test_client_search_recent_tweets")[:4]
    common: dict[str, Any] = {"conversation_id": CLIP, "created_at": "2026-03-01T19:45:10.000Z"}
    to_clip = post(
        a["id"],
        "@storybot The miners &amp; the ship &lt;3",
        author_id=ANA["id"],
        replied_to=CLIP,
        likes=4,
        reposts=2,
        quotes=1,
        **common,
    )
    to_poll = post(b["id"], "@storybot @ana A storm hits", author_id=BEN["id"], replied_to=POLL)
    ours = post(c["id"], "Episode 2", author_id=ME, replied_to=POLL, **common)
    nested = post(d["id"], "@ana agreed", author_id=BEN["id"], replied_to=a["id"], **common)
    _our_posts(fake_x)
    search = _page([to_clip, ours, nested], ANA, BEN, user(ME, "storybot", "Storybot"))
    fake_x.on("GET", "/2/tweets/search/recent", Answer(body=search))
    fake_x.on("GET", f"/2/users/{ME}/mentions", Answer(body=_page([to_clip, to_poll], ANA, BEN)))
    x = make_x(fake_x.base, session, post_only=False, user_id=ME)

    replies = x.fetch_replies((PostRef("x", CLIP), PostRef("x", POLL), PostRef("local", "7")))

    assert [(r.remote_id, r.in_reply_to) for r in replies] == sorted(
        [(a["id"], CLIP), (b["id"], POLL)], key=lambda pair: int(pair[0])
    )
    first = next(r for r in replies if r.remote_id == a["id"])
    assert (first.author_handle, first.author_name) == ("ana", "Ana")
    assert first.text == "The miners & the ship <3"
    assert (first.likes, first.boosts) == (4, 3)  # boosts = reposts + quotes
    assert first.posted_at == datetime(2026, 3, 1, 19, 45, 10, tzinfo=UTC)
    second = next(r for r in replies if r.remote_id == b["id"])
    assert second.text == "A storm hits"
    (query,) = [s.query for s in session.calls("GET", "/2/tweets/search/recent")]
    assert query["query"] == f"conversation_id:{CLIP}"  # both posts are in the clip's thread
    assert query["since_id"] == CLIP
    assert set(query["post.fields"].split(",")) >= {"created_at", "public_metrics"}
    assert set(query["expansions"].split(",")) == {"author_id", "referenced_posts"}
    # Conversation roots are looked up once per post.
    x.fetch_replies((PostRef("x", CLIP), PostRef("x", POLL)))
    assert len(session.calls("GET", f"/2/tweets/{POLL}")) == 1


def test_older_field_names_when_x_rejects_the_current_ones(
    fake_x: FakeX, session: SpecSession, caplog: pytest.LogCaptureFixture
) -> None:
    old = _recorded_posts("test_client_get_users_mentions")[0]
    old_style = {
        **old,  # edit_history_tweet_ids, as recorded
        "author_id": BEN["id"],
        "created_at": "2026-03-01T19:50:00.000Z",
        "conversation_id": CLIP,
        "referenced_tweets": [{"type": "replied_to", "id": CLIP}],
        "public_metrics": {"retweet_count": 2, "reply_count": 0, "like_count": 5, "quote_count": 1},
    }
    fake_x.on(
        "GET",
        f"/2/tweets/{CLIP}",
        Answer(400, classic_bad_parameter("post.fields")),
        Answer(body={"data": {**old, "id": CLIP, "conversation_id": CLIP}}),
    )
    fake_x.on("GET", "/2/tweets/search/recent", Answer(body=_page([old_style], BEN)))
    fake_x.on("GET", f"/2/users/{ME}/mentions", Answer(body=_page([])))
    session.unchecked_answers.add("/2/tweets/search/recent")  # retweet_count: the old shape
    x = make_x(fake_x.base, session, post_only=False, user_id=ME)

    with caplog.at_level(logging.WARNING, logger="bot.platforms.x"):
        (reply,) = x.fetch_replies((PostRef("x", CLIP),))

    assert (reply.remote_id, reply.author_handle, reply.likes, reply.boosts) == (
        old["id"],
        "ben",
        5,
        3,
    )
    assert "tweet.fields" in caplog.text
    first, *later = session.sent
    assert "post.fields" in first.query
    assert all("tweet.fields" in s.query and "post.fields" not in s.query for s in later)


def test_a_read_refused_by_the_tier_switches_to_post_only(
    fake_x: FakeX, session: SpecSession, caplog: pytest.LogCaptureFixture
) -> None:
    _our_posts(fake_x)
    fake_x.on("GET", "/2/tweets/search/recent", Answer(403, NOT_ENROLLED))
    x = make_x(fake_x.base, session, post_only=False, user_id=ME)
    assert x.limits().can_read

    with caplog.at_level(logging.WARNING, logger="bot.platforms.x"):
        assert x.fetch_replies((PostRef("x", CLIP),)) == []

    assert not x.limits().can_read
    assert "post-only" in caplog.text and "client-not-enrolled" in caplog.text
    asked = len(session.sent)
    assert x.fetch_replies((PostRef("x", CLIP),)) == []
    with pytest.raises(PermanentError, match="post-only"):
        x.fetch_tally(PostRef("x", POLL))
    assert len(session.sent) == asked  # nothing more was asked of X


def test_post_only_never_reads(session: SpecSession) -> None:
    x = make_x("http://127.0.0.1:9", session)
    assert x.fetch_replies((PostRef("x", CLIP),)) == []
    with pytest.raises(PermanentError):
        x.fetch_tally(PostRef("x", POLL))
    assert session.sent == []


# -- poll results ---------------------------------------------------------------------------


def test_tally_counts_in_option_order(fake_x: FakeX, session: SpecSession) -> None:
    poll_id = "1199786642468413448"
    data = post(POLL, "What happens next?", author_id=ME, replied_to=CLIP)
    data["attachments"] = {"poll_ids": [poll_id]}
    options = [
        {"position": 2, "label": "They flee", "votes": 7},
        {"position": 1, "label": "They fight", "votes": 3},
        {"position": 3, "label": "They hide", "votes": 0},
    ]
    poll = {
        "id": poll_id,
        "options": options,
        "voting_status": "closed",
        "end_datetime": "2026-03-01T20:00:00.000Z",
        "duration_minutes": 30,
    }
    fake_x.on(
        "GET", f"/2/tweets/{POLL}", Answer(body={"data": data, "includes": {"polls": [poll]}})
    )
    x = make_x(fake_x.base, session, post_only=False)

    assert x.fetch_tally(PostRef("x", POLL)) == PollTally("x", (3, 7, 0), voters=10, closed=True)
    (sent,) = session.sent
    assert set(sent.query["poll.fields"].split(",")) >= {"options", "voting_status"}


def test_tally_refused_by_the_tier(fake_x: FakeX, session: SpecSession) -> None:
    fake_x.on("GET", f"/2/tweets/{POLL}", Answer(403, NOT_ENROLLED))
    x = make_x(fake_x.base, session, post_only=False)
    with pytest.raises(PermanentError, match="Client Forbidden"):
        x.fetch_tally(PostRef("x", POLL))
    assert not x.limits().can_read


# -- publishing -----------------------------------------------------------------------------


def test_limits() -> None:
    with SpecSession() as s:
        limits = make_x("http://127.0.0.1:9", s).limits()
        assert make_x("http://127.0.0.1:9", s, post_only=False).limits().can_read
    assert (limits.max_poll_options, limits.max_option_chars) == (4, 25)
    assert (limits.min_poll_minutes, limits.max_poll_minutes) == (5, 10080)
    assert (limits.max_post_chars, limits.accepts_video, limits.can_read) == (280, True, False)


@pytest.mark.parametrize(
    ("left", "minutes"),
    [
        (timedelta(minutes=3), 5),
        (timedelta(minutes=90), 90),
        (timedelta(minutes=90, seconds=50), 90),
        (timedelta(days=30), 10080),
        (-timedelta(minutes=1), 5),
    ],
)
def test_poll_post(fake_x: FakeX, session: SpecSession, left: timedelta, minutes: int) -> None:
    fake_x.on("POST", "/2/tweets", created(POLL, "What happens next?"))
    x = make_x(fake_x.base, session)
    poll = Poll(("They fight", "They flee", "They hide"), T0 + left)

    ref = x.publish(OutgoingPost("s:1:poll:x", "What happens next?", CLIP, poll=poll))

    assert ref.remote_id == POLL
    (sent,) = session.sent
    assert sent.json == {
        "text": "What happens next?",
        "reply": {"in_reply_to_tweet_id": CLIP},
        "poll": {"options": ["They fight", "They flee", "They hide"], "duration_minutes": minutes},
    }


def _media(tmp_path: Path, content: bytes = b"0123456789", alt: str = "A ship.") -> Media:
    path = tmp_path / "episode-001.mp4"
    path.write_bytes(content)
    return Media(path, alt)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"poll_options": ("A" * 26, "B")}, "26 characters"),
        ({"poll_options": ("A",)}, "2–4 options"),
        ({"poll_options": ("A", "B", "C", "D", "E")}, "2–4 options"),
        ({"poll_options": ("A", "B"), "media": True}, "both a poll and media"),
        ({"text": "x" * 281}, "281 characters"),
        ({"in_reply_to": "not-an-id"}, "not an X post id"),
        ({"mime": "audio/wav"}, "does not accept"),
        ({"text": " "}, "needs text or media"),
    ],
)
def test_refused_before_any_request(
    session: SpecSession, tmp_path: Path, change: dict[str, Any], why: str
) -> None:
    options = change.get("poll_options")
    media: tuple[Media, ...] = ()
    if change.get("media"):
        media = (_media(tmp_path),)
    if "mime" in change:
        media = (Media(_media(tmp_path).path, "alt", change["mime"]),)
    outgoing = OutgoingPost(
        "s:1:poll:x",
        change.get("text", "What happens next?"),
        change.get("in_reply_to", CLIP),
        media=media,
        poll=Poll(options, T0 + timedelta(hours=1)) if options else None,
    )
    with pytest.raises(PermanentError, match=why):
        make_x("http://127.0.0.1:9", session).publish(outgoing)
    assert session.sent == []


def test_the_spec_agrees_on_poll_option_length() -> None:
    """X's own schema refuses the 26-character label the adapter refuses."""
    poll = openapi().spec / "components" / "schemas" / "CreatePostsPoll" / "properties"
    items = poll / "options" / "items"
    assert (items / "maxLength").read_value() == 25
    assert (poll / "duration_minutes" / "minimum").read_value() == 5
    assert (poll / "duration_minutes" / "maximum").read_value() == 10080


# -- errors -----------------------------------------------------------------------------------


def test_rate_limit_reset_is_exact(fake_x: FakeX, session: SpecSession) -> None:
    reset = T0 + timedelta(minutes=12, seconds=7)
    headers = {
        "x-rate-limit-limit": "200",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": str(int(reset.timestamp())),
    }
    fake_x.on("POST", "/2/tweets", Answer(429, TOO_MANY, headers))
    with pytest.raises(RateLimited) as caught:
        make_x(fake_x.base, session).publish(OutgoingPost("s:1:clip:x", "Episode 1"))
    assert caught.value.reset_at == reset
    assert isinstance(caught.value.__cause__, requests.HTTPError)


def test_rate_limit_of_the_day_wins(fake_x: FakeX, session: SpecSession) -> None:
    """The free tier's 17 posts a day: the 24-hour window is the exhausted one."""
    headers = {
        "x-rate-limit-limit": "200",
        "x-rate-limit-remaining": "198",
        "x-rate-limit-reset": str(int((T0 + timedelta(minutes=15)).timestamp())),
        "x-user-limit-24hour-limit": "17",
        "x-user-limit-24hour-remaining": "0",
        "x-user-limit-24hour-reset": str(int((T0 + timedelta(hours=10)).timestamp())),
    }
    fake_x.on("POST", "/2/tweets", Answer(429, TOO_MANY, headers))
    with pytest.raises(RateLimited) as caught:
        make_x(fake_x.base, session).publish(OutgoingPost("s:1:clip:x", "Episode 1"))
    assert caught.value.reset_at == T0 + timedelta(hours=10)


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        (Answer(503, UNAVAILABLE), TransientError, "Service Unavailable"),
        (Answer(401, UNAUTHORIZED), PermanentError, "check the four X credentials"),
        (Answer(403, NOT_ENROLLED), PermanentError, "attached to a Project"),
    ],
)
def test_http_errors(
    fake_x: FakeX, session: SpecSession, answer: Answer, error: type[Exception], words: str
) -> None:
    fake_x.on("POST", "/2/tweets", answer)
    with pytest.raises(error, match=words) as caught:
        make_x(fake_x.base, session).publish(OutgoingPost("s:1:clip:x", "Episode 1"))
    assert type(caught.value) is not RateLimited
    assert caught.value.__cause__ is not None


def test_network_failure_is_transient(session: SpecSession) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(TransientError) as caught:
        make_x(f"http://127.0.0.1:{port}", session).publish(OutgoingPost("k", "Episode 1"))
    assert isinstance(caught.value.__cause__, requests.ConnectionError)


# -- idempotency --------------------------------------------------------------------------------


def _timeline(*posts: dict[str, Any]) -> Answer:
    return Answer(body=_page(list(posts)))


def test_duplicate_in_post_only_mode(fake_x: FakeX, session: SpecSession) -> None:
    fake_x.on("POST", "/2/tweets", Answer(403, DUPLICATE))
    with pytest.raises(PermanentError, match=r"duplicate content.*post-only") as caught:
        make_x(fake_x.base, session).publish(OutgoingPost("s:2:clip:x", "Episode 2", POLL))
    assert "s:2:clip:x" in str(caught.value)
    assert [s.path for s in session.sent] == ["/2/tweets"]  # no reads on a post-only account


def test_earlier_attempt_found_before_posting(fake_x: FakeX, session: SpecSession) -> None:
    text = "Episode 2 & the storm"
    # As X gives it back: HTML-escaped, with the video's t.co link appended.
    earlier = post("1880000000000000001", "Episode 2 &amp; the storm https://t.co/Ab12Cd34Ef",
                   author_id=ME, replied_to=POLL)  # fmt: skip
    other = post("1880000000000000000", "Episode 2 &amp; the storm", author_id=ME, replied_to=CLIP)
    fake_x.on("GET", f"/2/users/{ME}/tweets", _timeline(earlier, other))
    x = make_x(fake_x.base, session, post_only=False, user_id=ME)

    ref = x.publish(OutgoingPost("s:2:clip:x", text, POLL))

    assert ref.remote_id == "1880000000000000001"
    (lookup,) = session.sent  # nothing was posted
    assert lookup.query["max_results"] == "20"


def test_duplicate_found_after_posting(fake_x: FakeX, session: SpecSession) -> None:
    made = post("1880000000000000002", "Episode 2", author_id=ME, replied_to=POLL)
    fake_x.on("GET", f"/2/users/{ME}/tweets", _timeline(), _timeline(made))
    fake_x.on("POST", "/2/tweets", Answer(403, DUPLICATE))
    x = make_x(fake_x.base, session, post_only=False, user_id=ME)

    assert x.publish(OutgoingPost("s:2:clip:x", "Episode 2", POLL)).remote_id == made["id"]
    timeline = f"/2/users/{ME}/tweets"
    assert [s.path for s in session.sent] == [timeline, "/2/tweets", timeline]


def test_duplicate_of_another_post_is_retried_later(fake_x: FakeX, session: SpecSession) -> None:
    other = post("1880000000000000003", "Episode 2", author_id=ME, replied_to=CLIP)
    fake_x.on("GET", f"/2/users/{ME}/tweets", _timeline(other))
    fake_x.on("POST", "/2/tweets", Answer(403, DUPLICATE))
    x = make_x(fake_x.base, session, post_only=False, user_id=ME)
    with pytest.raises(TransientError, match="make the text unique"):
        x.publish(OutgoingPost("s:2:clip:x", "Episode 2", POLL))


def test_account_id_is_looked_up_once(fake_x: FakeX, session: SpecSession) -> None:
    fake_x.on("GET", "/2/users/me", Answer(body={"data": user(ME, "storybot", "Storybot")}))
    fake_x.on("GET", f"/2/users/{ME}/tweets", _timeline())
    fake_x.on("POST", "/2/tweets", created(CLIP, "Episode 1"), created(POLL, "Next?"))
    x = make_x(fake_x.base, session, post_only=False)
    x.publish(OutgoingPost("s:1:clip:x", "Episode 1"))
    x.publish(OutgoingPost("s:1:poll:x", "Next?", CLIP))
    assert len(session.calls("GET", "/2/users/me")) == 1


# -- video ----------------------------------------------------------------------------------


def _script_upload(fake_x: FakeX, *statuses: dict[str, Any]) -> None:
    fake_x.on(
        "POST",
        "/2/media/upload/initialize",
        Answer(
            body={"data": {"id": MEDIA, "media_key": f"7_{MEDIA}", "expires_after_secs": 86399}}
        ),
    )
    expires = int((T0 + timedelta(days=1)).timestamp())
    fake_x.on(
        "POST", f"/2/media/upload/{MEDIA}/append", Answer(body={"data": {"expires_at": expires}})
    )
    final = {
        "id": MEDIA,
        "media_key": f"7_{MEDIA}",
        "size": 10,
        "expires_after_secs": 86399,
        "processing_info": {"state": "pending", "check_after_secs": 2},
    }
    fake_x.on("POST", f"/2/media/upload/{MEDIA}/finalize", Answer(body={"data": final}))
    fake_x.on(
        "GET",
        "/2/media/upload",
        *(Answer(body={"data": {"id": MEDIA, "processing_info": s}}) for s in statuses),
    )
    fake_x.on("POST", "/2/media/metadata", Answer(body={"data": {"id": MEDIA}}))


def _sleeper(clock: Clock, slept: list[float]) -> Callable[[float], None]:
    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += timedelta(seconds=seconds)

    return sleep


def test_video_post(fake_x: FakeX, session: SpecSession, tmp_path: Path, clock: Clock) -> None:
    _script_upload(
        fake_x,
        {"state": "in_progress", "check_after_secs": 3, "progress_percent": 40},
        {"state": "succeeded", "progress_percent": 100},
    )
    fake_x.on("POST", "/2/tweets", created(CLIP, "Episode 2"))
    slept: list[float] = []
    x = make_x(fake_x.base, session, clock, sleep=_sleeper(clock, slept), media_chunk_bytes=4)
    media = _media(tmp_path, b"0123456789", "Narrated still image. Narration: a ship lands.")

    ref = x.publish(OutgoingPost("s:2:clip:x", "Episode 2", POLL, media=(media,)))

    assert ref.remote_id == CLIP
    assert [s.path for s in session.sent] == [
        "/2/media/upload/initialize",
        *[f"/2/media/upload/{MEDIA}/append"] * 3,
        f"/2/media/upload/{MEDIA}/finalize",
        "/2/media/upload",
        "/2/media/upload",
        "/2/media/metadata",
        "/2/tweets",
    ]
    init, *appends = session.sent[:4]
    assert init.json == {
        "media_type": "video/mp4",
        "total_bytes": 10,
        "media_category": "tweet_video",
    }
    assert [a.form["segment_index"] for a in appends] == ["0", "1", "2"]
    assert b"".join(a.form["media"] for a in appends) == b"0123456789"
    assert slept == [2, 3]  # as X's check_after_secs said
    status = session.calls("GET", "/2/media/upload")[0]
    assert status.query == {"media_id": MEDIA, "command": "STATUS"}
    (meta,) = session.calls("POST", "/2/media/metadata")
    assert meta.json == {"id": MEDIA, "metadata": {"alt_text": {"text": media.alt_text}}}
    (tweet,) = session.calls("POST", "/2/tweets")
    assert tweet.json == {
        "text": "Episode 2",
        "reply": {"in_reply_to_tweet_id": POLL},
        "media": {"media_ids": [MEDIA]},
    }


def test_a_failed_chunk_is_sent_again_within_the_upload(
    fake_x: FakeX, session: SpecSession, tmp_path: Path, clock: Clock
) -> None:
    _script_upload(fake_x, {"state": "succeeded", "progress_percent": 100})
    expires = int((T0 + timedelta(days=1)).timestamp())
    appended = Answer(body={"data": {"expires_at": expires}})
    fake_x.on(
        "POST", f"/2/media/upload/{MEDIA}/append", appended, Answer(503, UNAVAILABLE), appended
    )
    metadata = Answer(body={"data": {"id": MEDIA}})
    fake_x.on("POST", "/2/media/metadata", Answer(502, UNAVAILABLE), metadata)
    fake_x.on("POST", "/2/tweets", created(CLIP, "Episode 2"))
    slept: list[float] = []
    x = make_x(fake_x.base, session, clock, sleep=_sleeper(clock, slept), media_chunk_bytes=4)
    media = _media(tmp_path, b"0123456789", "A ship lands.")

    assert x.publish(OutgoingPost("s:2:clip:r", "Episode 2", POLL, media=(media,))).remote_id
    appends = session.calls("POST", f"/2/media/upload/{MEDIA}/append")
    assert [a.form["segment_index"] for a in appends] == ["0", "1", "1", "2"]
    assert b"".join(a.form["media"] for a in appends[:2] + appends[3:]) == b"0123456789"
    assert len(session.calls("POST", "/2/media/upload/initialize")) == 1  # one upload
    assert len(session.calls("POST", "/2/media/metadata")) == 2
    assert slept == [0.5, 2, 0.5]  # chunk retry, X's check_after_secs, alt-text retry


def test_video_processing_failed(
    fake_x: FakeX, session: SpecSession, tmp_path: Path, clock: Clock
) -> None:
    _script_upload(fake_x, {"state": "failed", "progress_percent": 40})
    x = make_x(fake_x.base, session, clock, sleep=_sleeper(clock, []))
    with pytest.raises(PermanentError, match=f"could not process media {MEDIA}"):
        x.publish(OutgoingPost("s:2:clip:x", "Episode 2", POLL, media=(_media(tmp_path),)))
    assert session.calls("POST", "/2/tweets") == []


def test_video_processing_deadline(
    fake_x: FakeX, session: SpecSession, tmp_path: Path, clock: Clock
) -> None:
    _script_upload(fake_x, {"state": "in_progress", "check_after_secs": 5})
    slept: list[float] = []
    x = make_x(fake_x.base, session, clock, sleep=_sleeper(clock, slept), media_deadline_s=12)
    with pytest.raises(TransientError, match="still processing"):
        x.publish(OutgoingPost("s:2:clip:x", "Episode 2", POLL, media=(_media(tmp_path),)))
    assert slept == [2, 5, 5]  # 12 s waited: the next 5 s would pass the deadline
    assert session.calls("POST", "/2/tweets") == []


def test_long_alt_text_is_cut_to_x_limit(
    fake_x: FakeX, session: SpecSession, tmp_path: Path, clock: Clock
) -> None:
    _script_upload(fake_x, {"state": "succeeded"})
    fake_x.on("POST", "/2/tweets", created(CLIP, "Episode 2"))
    x = make_x(fake_x.base, session, clock, sleep=_sleeper(clock, []))
    media = _media(tmp_path, alt="word " * 300)
    x.publish(OutgoingPost("s:2:clip:x", "Episode 2", POLL, media=(media,)))
    (meta,) = session.calls("POST", "/2/media/metadata")
    text = meta.json["metadata"]["alt_text"]["text"]
    assert len(text) <= 1000 and text.endswith("word…")


def test_retry_after_a_failed_post_reuses_the_upload(
    fake_x: FakeX, session: SpecSession, tmp_path: Path, clock: Clock
) -> None:
    _script_upload(fake_x, {"state": "succeeded"})
    fake_x.on("POST", "/2/tweets", Answer(503, UNAVAILABLE), created(CLIP, "Episode 2"))
    x = make_x(fake_x.base, session, clock, sleep=_sleeper(clock, []))
    outgoing = OutgoingPost("s:2:clip:x", "Episode 2", POLL, media=(_media(tmp_path),))
    with pytest.raises(TransientError):
        x.publish(outgoing)
    assert x.publish(outgoing).remote_id == CLIP
    assert len(session.calls("POST", "/2/media/upload/initialize")) == 1
    assert [t.json["media"] for t in session.calls("POST", "/2/tweets")] == [
        {"media_ids": [MEDIA]}
    ] * 2


def test_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tweepy", None)
    with pytest.raises(BackendUnavailable, match=r"storybot\[x\]"):
        XPlatform("ck", "cs", "at", "as")
