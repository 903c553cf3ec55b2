"""The Bluesky adapter piece by piece: record keys, 300-grapheme threads, facets, the vote rule,
the kept session, 429s, video refused, replies and likes, `storybot login bluesky`, the doctor.

The pure parts are checked with tables; everything else against the reference PDS and AppView
(tests/bot/bluesky.py), judged on the server's record. The dev PDS has no rate limits, so the
429 is an answer of the shape its rate limiter gives (headers RateLimit-Limit, -Remaining,
-Reset in Unix seconds, -Policy and Retry-After; body ``{"error": "RateLimitExceeded"}``:
@atproto/xrpc-server 0.x, dist/rate-limiter-http.js), injected in front of the real server.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.app import build_app
from bot.cli.main import cli
from bot.config import parse_config
from bot.doctor.bluesky import bluesky_rows
from bot.doctor.checks import Status
from bot.platforms.base import Media, OutgoingPost, Poll, PostRef
from bot.platforms.bluesky.adapter import BlueskyPlatform
from bot.platforms.bluesky.media import STILL_NAME
from bot.platforms.bluesky.rkeys import OPTION, PART, AtUri, child, is_tid, tid_for
from bot.platforms.bluesky.session import make_client
from bot.platforms.bluesky.text import MAX_GRAPHEMES, facets, graphemes, split_thread
from bot.platforms.bluesky.votes import RULES, Blocklist, Like, count
from story_state.db import session_scope
from story_state.errors import RateLimited
from story_state.models import Post
from story_state.moderation import Rules, moderate
from tests.bot.bluesky import BOT, Bluesky, RateLimitedOnce
from tests.bot.conftest import Clock, small_config
from tests.bot.platform_harness import episode_files

FOLLOWERS = ("ana", "ben", "cyd", "dee")

# -- record keys, text and the vote rule: tables -------------------------------------------------


def test_record_keys_are_tids_derived_from_the_outbox_key() -> None:
    keys = [tid_for(f"salt:{n}:{kind}:bluesky") for n in range(50) for kind in ("clip", "poll")]
    assert all(is_tid(k) for k in keys) and len(set(keys)) == len(keys)
    assert tid_for("salt:1:clip:bluesky") == tid_for("salt:1:clip:bluesky")
    head = tid_for("salt:1:poll:bluesky")
    options = {child(head, OPTION, n) for n in range(1, 5)}
    assert len(options) == 4 and all(is_tid(k) for k in options) and head not in options
    assert child(head, PART, 2) not in options
    assert not is_tid("notatid") and not is_tid("zzzzzzzzzzzzz")  # top bit set
    uri = AtUri.parse(f"at://did:plc:abc/app.bsky.feed.post/{head}")
    assert uri is not None and str(uri.sibling("x")) == "at://did:plc:abc/app.bsky.feed.post/x"
    assert AtUri.parse("https://bsky.app/x") is None


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("a" * 300, 1),
        ("👍🏽" * 300, 1),  # one grapheme of two code points each: 300 fit
        ("Salt. " * 100, 3),
        ("word " * 150 + "\n\n" + "more " * 50, 4),
        ("👨‍👩‍👧" * 200, 2),  # 18 bytes each: the 3000-byte cap cuts before 300 graphemes
        ("x" * 700, 3),  # no space at all: cut mid-word
    ],
)
def test_split_thread_fits_every_part(text: str, parts: int) -> None:
    found = split_thread(text)
    assert len(found) == parts
    for number, part in enumerate(found, start=1):
        assert graphemes(part) <= MAX_GRAPHEMES and len(part.encode()) <= 3000
        if parts > 1:
            assert part.endswith(f" ({number}/{parts})")
    joined = "".join(p.rsplit(" (", 1)[0] if parts > 1 else p for p in found)
    assert joined.replace(" ", "").replace("\n", "") == text.replace(" ", "").replace("\n", "")


def test_facets_use_utf8_byte_offsets() -> None:
    text = "Ünïcödé 🚀 @ana.test see https://example.com/a?b=1. And @nobody.test. Story ideas from "
    text += "Ana Lima, Ben and 2 more. Thank you! Ana Lima again"
    found = facets(
        text,
        handles={"ana.test": "did:plc:ana", "nobody.test": None},
        people={"Ana Lima": "did:plc:ana", "Ben": "did:plc:ben"},
    )
    raw = text.encode()
    shown = [(raw[f.start : f.end].decode(), f.kind, f.value) for f in found]
    assert shown == [
        ("@ana.test", "mention", "did:plc:ana"),
        ("https://example.com/a?b=1", "link", "https://example.com/a?b=1"),
        ("Ana Lima", "mention", "did:plc:ana"),  # in the credit line only, not after it
        ("Ben", "mention", "did:plc:ben"),
    ]


T = datetime(2026, 5, 1, tzinfo=UTC)


def like(voter: str, position: int, seconds: int, blocked: bool = False) -> Like:
    moment = T + timedelta(seconds=seconds)
    return Like(voter, f"{voter}.test", position, moment, moment, blocked)


@pytest.mark.parametrize(
    ("likes", "counts", "voters", "repeated"),
    [
        ([], (0, 0, 0), 0, 0),
        ([like("a", 1, 1), like("b", 2, 2), like("c", 2, 3)], (1, 2, 0), 3, 0),
        ([like("a", 2, 1), like("a", 1, 2)], (0, 1, 0), 1, 1),  # the first like counts
        ([like("a", 1, 5), like("a", 3, 2)], (0, 0, 1), 1, 1),  # by time, not by option
        ([like("a", 1, 1), like("d", 1, 2, blocked=True)], (1, 0, 0), 1, 0),
    ],
)
def test_one_vote_each_and_the_first_like_counts(
    likes: list[Like], counts: tuple[int, ...], voters: int, repeated: int
) -> None:
    counted = count(likes, 3)
    assert (counted.counts, len(counted.voters), counted.repeated) == (counts, voters, repeated)
    assert counted.likes == len(likes)


def test_the_question_post_states_the_one_vote_rule() -> None:
    assert "One vote each" in RULES and "only your first like counts" in RULES


# The operator's settings as they are written in config.toml ([moderation]).
BLOCKS = Blocklist.of(
    accounts=["@Troll.bsky.social", " did:plc:Banned ", ""],
    domains=["spam.example", "@.Bad.Example.", "", " . "],
)


@pytest.mark.parametrize(
    ("handle", "did", "blocked"),
    [
        ("troll.bsky.social", "did:plc:t", True),  # "@Troll.bsky.social" in the settings
        ("TROLL.BSKY.SOCIAL", "did:plc:t", True),
        ("other.bsky.social", "did:plc:o", False),
        ("nottroll.bsky.social", "did:plc:n", False),
        ("renamed.example.com", "did:plc:banned", True),  # by DID: a new handle is no escape
        ("spam.example", "did:plc:s", True),  # the blocked domain itself
        ("troll.spam.example", "did:plc:s", True),  # and every handle under it
        ("a.b.Spam.Example", "did:plc:s", True),
        ("notspam.example", "did:plc:s", False),  # a longer name, not a subdomain
        ("spam.example.com", "did:plc:s", False),
        ("example", "did:plc:s", False),
        ("x.bad.example", "did:plc:x", True),  # "@.Bad.Example." as written
        ("x.bsky.social", "did:plc:x", False),  # empty entries block nobody
    ],
)
def test_blocked_accounts_and_domains(handle: str, did: str, blocked: bool) -> None:
    assert BLOCKS.blocks(handle, did) is blocked


def test_a_whole_blocked_host_blocks_everyone_there() -> None:
    everyone = Blocklist.of(domains=["bsky.social"])  # the operator's choice
    assert everyone.blocks("x.bsky.social") and not everyone.blocks("x.example.com")
    assert not Blocklist.of().blocks("x.bsky.social")


def test_a_blocked_voter_counts_nowhere_and_moves_no_one_else() -> None:
    troll = BLOCKS.blocks("troll.spam.example")
    likes = [
        like("troll", 2, 1, blocked=troll),
        like("troll", 1, 2, blocked=troll),
        like("a", 2, 3),
        like("a", 1, 4),  # a second like: a's first one stands
        like("b", 1, 5),
    ]
    counted = count(likes, 2)
    assert (counted.counts, counted.voters, counted.repeated) == ((1, 1), ("a.test", "b.test"), 1)
    assert counted.excluded == ("troll.test",) and counted.likes == 5


# Ideas are judged by story_state/moderation.py, votes by Blocklist: one rule for both (a
# Bluesky handle has no "@": it is itself a domain name).


@pytest.mark.parametrize(
    "handle",
    [
        "troll.bsky.social",
        "nottroll.bsky.social",
        "notspam.example",
        "spam.example",
        "troll.spam.example",
    ],
)
def test_ideas_and_votes_block_the_same_bluesky_handles(handle: str) -> None:
    rules = Rules(
        blocked_accounts=frozenset({"troll.bsky.social"}),
        blocked_domains=frozenset({"spam.example"}),
    )
    refused = moderate("the miners rebel and take the ship", handle, rules).reason is not None
    votes = Blocklist.of(accounts=rules.blocked_accounts, domains=rules.blocked_domains)
    assert refused is votes.blocks(handle)


# -- on the reference network ----------------------------------------------------------------------


@pytest.fixture
def net(bluesky: Bluesky) -> Bluesky:
    bluesky.reset((BOT, *FOLLOWERS))
    return bluesky


@pytest.fixture
def make_platform(net: Bluesky, tmp_path: Path) -> Iterator[Callable[..., BlueskyPlatform]]:
    made: list[BlueskyPlatform] = []

    def make(**kwargs: Any) -> BlueskyPlatform:
        kwargs.setdefault("session_file", tmp_path / "bluesky.session")
        platform = BlueskyPlatform(net.pds, net.handle(BOT), net.app_password(BOT), **kwargs)
        made.append(platform)
        return platform

    yield make
    for platform in made:
        platform.close()


def clip_post(tmp_path: Path, key: str, text: str = "Episode 1: The derelict.") -> OutgoingPost:
    clip = episode_files(tmp_path / key.replace(":", "-"))
    media = Media(clip, "A narrated still image.", still_alt_text="The still of episode 1.")
    return OutgoingPost(key, text, media=(media,))


def poll_post(
    key: str, clip: PostRef, options: tuple[str, ...] = ("Rebel", "Flee")
) -> OutgoingPost:
    closes = datetime.now(UTC) + timedelta(hours=1)
    return OutgoingPost(key, "What happens next?", in_reply_to=clip.remote_id,
                        poll=Poll(options, closes))  # fmt: skip


def test_a_long_caption_is_a_thread_the_server_takes(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    body = "Sable walks into the 🌪️ storm, and the salt sings under her boots. " * 8
    text = f"Episode 1: Storm\n\n{body}\n\nAsk @ana.test, not @nobody.test: https://example.com/x."
    platform = make_platform()
    ref = platform.publish(clip_post(tmp_path, "long:1:clip:bluesky", text))
    head = ref.remote_id.rsplit("/", 1)[1]
    records = {r.uri.rsplit("/", 1)[1]: r.value for r in net.records(BOT)}
    parts = [head] + [child(head, PART, n) for n in range(2, 7) if child(head, PART, n) in records]
    assert len(parts) == len(records) == len(split_thread(text)) >= 3
    for previous, key in pairwise(parts):
        assert records[key].reply.parent.uri.endswith(previous)  # a chain of self-replies
        assert records[key].reply.root.uri == ref.remote_id
    assert records[head].embed.py_type == "app.bsky.embed.video"
    faceted = []
    for key in parts:
        raw = records[key].text.encode()
        for facet in records[key].facets or []:
            feature = facet.features[0]
            value = getattr(feature, "did", None) or getattr(feature, "uri", None)
            faceted.append((raw[facet.index.byte_start : facet.index.byte_end].decode(), value))
    assert faceted == [
        ("@ana.test", net.did("ana")),
        ("https://example.com/x", "https://example.com/x"),
    ]
    assert platform.publish(clip_post(tmp_path, "long:1:clip:bluesky", text)) == ref
    assert len(net.records(BOT)) == len(parts)


def test_a_restarted_bot_still_credits_followers_as_mentions(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    first = make_platform()
    clip = first.publish(clip_post(tmp_path, "credit:1:clip:bluesky"))
    question = first.publish(poll_post("credit:1:poll:bluesky", clip))
    net.reply("ana", question.remote_id, "the miners rebel")
    net.reply("ben", clip.remote_id, "they flee")
    fresh = make_platform()  # knows nobody yet: reads who answered the post it replies to
    caption = "Episode 2\n\nStory ideas from ana.test and ben.test. Thank you!"
    nxt = OutgoingPost("credit:2:clip:bluesky", caption, in_reply_to=question.remote_id)
    made = net.record(fresh.publish(nxt).remote_id)
    assert made is not None
    raw = made.value.text.encode()
    mentions = {
        raw[f.index.byte_start : f.index.byte_end].decode(): f.features[0].did
        for f in made.value.facets
    }
    assert mentions == {"ana.test": net.did("ana"), "ben.test": net.did("ben")}


def test_a_refused_video_becomes_the_still_with_its_alt_text(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    post = clip_post(tmp_path, "big:1:clip:bluesky")
    with post.media[0].path.open("ab") as fh:
        fh.write(bytes(5 * 1024 * 1024))  # over the dev PDS's 5 MiB blob limit: HTTP 413
    platform = make_platform()
    assert platform.limits().accepts_video
    ref = platform.publish(post)
    made = net.record(ref.remote_id)
    assert made is not None
    embed = made.value.embed
    assert embed.py_type == "app.bsky.embed.images", embed
    assert embed.images[0].alt == "The still of episode 1."
    assert embed.images[0].image.mime_type == "image/png"
    assert (embed.images[0].aspect_ratio.width, embed.images[0].aspect_ratio.height) == (64, 36)
    assert platform.video_refused and not platform.limits().accepts_video
    assert (post.media[0].path.parent / STILL_NAME).is_file()


def test_a_429_while_posting_gives_the_reset_and_posts_nothing(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    reset = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    limiter = RateLimitedOnce("com.atproto.repo.createRecord", reset)
    platform = make_platform(client_factory=lambda url: make_client(url, transport=limiter))
    post = clip_post(tmp_path, "limit:1:clip:bluesky")
    with pytest.raises(RateLimited) as caught:
        platform.publish(post)
    assert caught.value.reset_at == reset
    assert net.records(BOT) == [] and limiter.calls == 1  # not tried again within the call
    ref = platform.publish(post)
    assert [r.uri for r in net.records(BOT)] == [ref.remote_id]


def test_the_runner_waits_for_the_reset(
    net: Bluesky,
    make_platform: Callable[..., BlueskyPlatform],
    tmp_path: Path,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reset = clock.now + timedelta(minutes=10)
    limiter = RateLimitedOnce("com.atproto.repo.createRecord", reset)
    platform = make_platform(
        client_factory=lambda url: make_client(url, transport=limiter), clock=clock
    )
    monkeypatch.setenv("STORYBOT_TEST_BLUESKY_PASSWORD", net.app_password(BOT))
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'story.db'}", episode_cap=2)
    data["story"]["slug"] = f"limit-{tmp_path.name[-20:].lower().replace('_', '-')}"
    data["platforms"] = {"local": {"enabled": False}}
    app = build_app(parse_config(data), platforms={"bluesky": platform}, clock=clock)
    try:
        app.runner.tick()
        with session_scope(app.factory) as session:
            (row,) = session.query(Post).all()
            waits_until = row.next_attempt_at
        assert waits_until is not None and waits_until.replace(tzinfo=UTC) == reset
        clock.now = reset - timedelta(minutes=1)
        app.runner.tick()
        assert limiter.calls == 1 and net.records(BOT) == []  # it waited
        clock.now = reset + timedelta(seconds=1)
        app.runner.tick()
        posted = [r.value for r in net.records(BOT)]
        assert sum(1 for v in posted if v.reply is None) == 1  # the clip, once
    finally:
        app.close()


def test_replies_mentions_pages_deletes_and_blocks(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    platform = make_platform(page_size=2)  # notifications come in pages of 2: cursors
    clip = platform.publish(clip_post(tmp_path, "read:1:clip:bluesky"))
    question = platform.publish(poll_post("read:1:poll:bluesky", clip))
    idea = net.reply("ana", question.remote_id, "the miners rebel")
    under_option = net.reply("ben", net.option_uri("ben", question.remote_id, 2), "flee north")
    nested = net.reply("cyd", idea, "yes, rebel!")  # a reply to a reply: not an idea
    mention = net.mention("cyd", BOT, "a professor walks out of the storm")
    elsewhere = net.post("ben", "an unrelated post")
    net.reply("ana", elsewhere, "unrelated too")
    net.block(BOT, "dee")
    blocked = net.reply("dee", question.remote_id, "sell the ship")
    net.like("ben", idea)

    replies = {r.remote_id: r for r in platform.fetch_replies((clip, question))}
    assert set(replies) == {idea, under_option, mention}, replies
    assert nested not in replies and blocked not in replies
    assert replies[idea].in_reply_to == question.remote_id and replies[idea].likes == 1
    assert replies[under_option].in_reply_to == question.remote_id  # the option's question
    assert replies[mention].in_reply_to == clip.remote_id  # the episode it came during
    assert replies[mention].text.endswith("a professor walks out of the storm")
    assert replies[idea].author_handle == net.handle("ana")

    net.delete("ana", idea)  # a deleted reply stops counting
    again = {r.remote_id for r in make_platform(page_size=2).fetch_replies((clip, question))}
    assert again == {under_option, mention}


def test_votes_are_likes_first_one_counts_withdrawn_and_blocked_do_not(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    platform = make_platform(page_size=1, blocked=lambda: {net.handle("dee")})
    clip = platform.publish(clip_post(tmp_path, "vote:1:clip:bluesky"))
    question = platform.publish(poll_post("vote:1:poll:bluesky", clip, ("Rebel", "Flee", "Hide")))
    option = {n: net.option_uri("ana", question.remote_id, n) for n in (1, 2, 3)}
    net.like("ana", option[1])
    net.like("ben", option[2])
    net.like("ben", option[1])  # a second option: ben's first like stands
    withdrawn = net.like("cyd", option[3])
    net.unlike("cyd", withdrawn, option[3])  # withdrawn: cyd has no vote...
    net.like("cyd", option[1])  # ...until the next like
    net.like("dee", option[3])  # blocked in the config: no vote
    net.like("bob", option[3])
    net.block(BOT, "bob")  # blocked on Bluesky itself: no vote either

    tally = platform.fetch_tally(question)
    assert (tally.counts, tally.voters, tally.closed) == ((2, 1, 0), 3, False)
    # The AppView leaves out bob's like for the account that blocked him; dee's is counted out.
    assert tally.extra == {"likes": 5, "repeated": 1, "blocked": 1}
    restarted = make_platform(blocked=lambda: {net.handle("dee")})
    assert restarted.option_uris(question.remote_id) == tuple(option[n] for n in (1, 2, 3))
    assert restarted.fetch_tally(question).counts == (2, 1, 0)


def test_a_blocked_domain_counts_for_no_option(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    """A handle is a domain name: dee.test is the blocked domain itself here (the dev PDS only
    gives out handles one label under .test, so a handle under it is checked in the table)."""
    platform = make_platform(page_size=1, blocked_domains=["@DEE.Test."])
    clip = platform.publish(clip_post(tmp_path, "domain:1:clip:bluesky"))
    question = platform.publish(poll_post("domain:1:poll:bluesky", clip))
    posted = net.record(question.remote_id)
    assert posted is not None and RULES in posted.value.text  # the rule, as followers see it
    option = {n: net.option_uri("ana", question.remote_id, n) for n in (1, 2)}
    net.like("dee", option[2])
    net.like("dee", option[1])
    net.like("ana", option[1])
    net.like("ben", option[2])
    net.like("ben", option[1])  # ben's second like: his first one stands

    tally = platform.fetch_tally(question)
    assert (tally.counts, tally.voters) == ((1, 1), 2)
    assert tally.extra == {"likes": 5, "repeated": 1, "blocked": 1}
    # Names that only look alike block nobody: dee's first like is a vote again.
    near = make_platform(blocked_domains=["ee.test", "dee.test.example", "dee"])
    assert near.fetch_tally(question).counts == (1, 2)


def test_the_session_is_kept_refreshed_and_renewed(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    path = tmp_path / "bluesky.session"
    first = make_platform()
    assert first.limits().max_post_chars >= 300 and not path.exists()  # no login to build it
    assert first.did == net.did(BOT) and first.account.logins == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    saved = path.read_text()
    assert net.app_password(BOT) not in saved

    second = make_platform()  # a restart: the kept session, no createSession
    second.publish(OutgoingPost("session:1:clip:bluesky", "Episode 1"))
    assert second.account.logins == 0

    # Two hours on, the access token is near its end: the SDK refreshes it and it is kept.
    client = second.account.client
    real_now = client.get_current_time
    client.get_current_time = lambda: real_now() + timedelta(hours=2)
    second.publish(OutgoingPost("session:2:clip:bluesky", "Episode 2"))
    refreshed = path.read_text()
    assert refreshed != saved and second.account.logins == 0

    # The refresh token revoked on the server (a password change would do it): a new login.
    revoker = make_client(net.pds)
    revoker.login(session_string=refreshed.strip(), fetch_bsky_profile=False)
    revoker.com.atproto.server.delete_session(headers=revoker._get_refresh_auth_headers())
    revoker.request.close()
    third = make_platform()
    third.account.client.get_current_time = lambda: real_now() + timedelta(hours=2)
    third.publish(OutgoingPost("session:3:clip:bluesky", "Episode 3"))
    assert third.account.logins == 1 and path.read_text() != refreshed
    assert len(net.records(BOT)) == 3


def test_login_checks_and_stores_an_app_password(net: Bluesky, tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("OTHER=1\n")
    args = ["login", "bluesky", "--handle", f"@{net.handle(BOT)}", "--service", net.pds]
    args += ["--env-file", str(env)]
    runner = CliRunner()
    done = runner.invoke(cli, args, input=net.app_password(BOT) + "\n")
    assert done.exit_code == 0, done.output
    assert f"Logged in as @{net.handle(BOT)}" in done.output
    assert env.read_text() == f"OTHER=1\nSTORYBOT_BLUESKY_APP_PASSWORD={net.app_password(BOT)}\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert net.app_password(BOT) not in done.output

    refused = runner.invoke(cli, args, input=net.password(BOT) + "\n")  # the account password
    assert refused.exit_code == 1 and "app password only" in refused.output
    wrong = runner.invoke(cli, args, input="nope-nope-nope-nope\n")
    assert wrong.exit_code == 1 and "refused that handle and password" in wrong.output
    assert net.password(BOT) not in env.read_text()


def test_doctor_rows_on_the_real_server(
    net: Bluesky, make_platform: Callable[..., BlueskyPlatform], tmp_path: Path
) -> None:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'story.db'}")
    config = parse_config(data)
    platform = make_platform()
    rows = {r.item: r for r in bluesky_rows(platform, config)}
    assert rows["credentials"].status is Status.OK and net.did(BOT) in rows["credentials"].detail
    assert rows["session"].status is Status.OK and "mode 600" in rows["session"].detail
    assert rows["replies and polls"].status is Status.OK
    assert rows["video"].status is Status.UNKNOWN
    assert rows["votes"].status is Status.OK and "first like" in rows["votes"].detail
    probed = {r.item: r for r in bluesky_rows(platform, config, probe=True)}
    assert probed["video"].status is Status.OK, probed["video"].detail
    (tmp_path / "bluesky.session").chmod(0o644)
    assert {r.item: r for r in bluesky_rows(platform, config)}["session"].status is Status.WARN

    broken = BlueskyPlatform(net.pds, net.handle(BOT), "wrong-wrong-wrong-wrong")
    try:
        rows = {r.item: r for r in bluesky_rows(broken, config)}
    finally:
        broken.close()
    assert (
        rows["credentials"].status is Status.FAIL and "login bluesky" in rows["credentials"].detail
    )
