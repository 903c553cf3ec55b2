"""Replies in, suggestions stored (accepted, held or rejected with a reason), clusters out."""

from __future__ import annotations

import dataclasses
import gc
import logging
import random
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from re import Pattern
from typing import Any, NamedTuple, TypeVar, cast

from sqlalchemy import ColumnElement, Table, bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from bot.config import ModerationSettings
from bot.ideas.moderation_openai import Classifier, ModerationUnavailable
from bot.ideas.parallel import Judging
from bot.platforms.base import Reply
from generation.pipeline import derive_seed
from story_state import engine
from story_state.db import insert_many, select_in, select_where, session_scope
from story_state.errors import ConfigError
from story_state.injection import instructions_reason
from story_state.models import Contributor, Episode, LoreEntry, Round, Suggestion
from story_state.moderation import (
    CanonRule,
    Rules,
    Verdict,
    for_author,
    judge_text,
    normalise_handle,
)
from story_state.text import compile_blocklist

HTML_PLATFORMS = frozenset({"mastodon"})
# Held until the moderation endpoint has judged it (``second_opinion``).
AWAITING_MODERATION = "awaiting moderation"
log = logging.getLogger(__name__)


@lru_cache(maxsize=8)
def _blocklist(path: Path | None, mtime: float) -> tuple[Pattern[str], ...]:
    if path is None:
        return ()
    try:
        return compile_blocklist(path.read_text(encoding="utf-8").splitlines())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"moderation.blocklist_file: cannot read {path}: {exc}") from None
    except re.error as exc:
        raise ConfigError(f"moderation.blocklist_file: bad pattern in {path}: {exc}") from None


def rules_for(
    session: Session,
    story_id: int,
    settings: ModerationSettings,
    own_handles: Iterable[str] = (),
) -> Rules:
    """The story's moderation rules; ``own_handles`` are the bot's (its mention is not spam)."""
    path = settings.blocklist_file
    mtime = path.stat().st_mtime if path is not None and path.exists() else 0.0
    canon = []
    for entry in session.scalars(
        select(LoreEntry).where(LoreEntry.story_id == story_id, LoreEntry.status == "canon")
    ):
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in entry.contradictions)
        if patterns:
            canon.append(CanonRule(entry.name, patterns))
    return Rules(
        blocklist=_blocklist(path, mtime),
        blocked_accounts=frozenset(normalise_handle(h) for h in settings.blocked_accounts),
        blocked_domains=frozenset(d.lower().lstrip("@.") for d in settings.blocked_domains),
        max_length=settings.max_length,
        approval_mode=settings.approval_mode,
        canon=tuple(canon),
        own_handles=frozenset(normalise_handle(h) for h in own_handles if h.strip()),
    )


def contributor(session: Session, platform: str, handle: str, name: str) -> Contributor:
    found = session.scalars(
        select(Contributor).where(Contributor.platform == platform, Contributor.handle == handle)
    ).first()
    if found is None:
        found = _new_contributor(platform, handle, name)
        session.add(found)
        session.flush()
    return found


def _new_contributor(platform: str, handle: str, name: str) -> Contributor:
    return Contributor(platform=platform, handle=handle, display_name=_display_name(handle, name))


def _display_name(handle: str, name: str, judged: dict[str, bool] | None = None) -> str:
    # A display name is shown in credits and handed to the writer: one that reads as
    # instructions to the bot is replaced by the handle. (``judged``: names judged already,
    # by a harvest that adds thousands of people, many of them with the same first name.)
    if not name:
        return handle
    instructions = None if judged is None else judged.get(name)
    if instructions is None:
        instructions = instructions_reason(name) is not None
        if judged is not None:
            judged[name] = instructions
    if instructions:
        return handle
    return name


_pause_lock = threading.Lock()
_pauses = 0  # steps running with the cycle collector paused
_collector_was_on = False


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cycle collector for a busy round's bulk step (harvest, ranking).

    Such a step makes hundreds of thousands of short-lived rows, tuples and strings, none in a
    reference cycle, and each 700 of them made the collector walk the young objects, and now
    and then the whole heap: about 5 % of a 10,000-reply harvest. Reference counting still
    frees everything as it goes; the collector runs again when the last step ends.
    """
    global _pauses, _collector_was_on
    with _pause_lock:
        if _pauses == 0:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pause_lock:
            _pauses -= 1
            if _pauses == 0 and _collector_was_on:
                gc.enable()


# The tables, for Core inserts: the ORM's bulk insert leaves out a row's None values, so
# rows with and without (say) a reject reason split one executemany into hundreds.
_CONTRIBUTORS = cast(Table, Contributor.__table__)
_SUGGESTIONS = cast(Table, Suggestion.__table__)

# Rows looked up per IN (...) query: well under SQLite's and PostgreSQL's parameter limits.
_CHUNK = 500
T = TypeVar("T")


def _chunks(values: list[T]) -> Iterator[list[T]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def _by_platform(replies: list[Reply], field: str) -> dict[str, list[str]]:
    """The distinct values of ``replies``' ``field`` (remote ids, handles) by platform, in
    order. Most harvests read one platform: then they are taken at once, not one by one."""
    value = attrgetter(field)
    platforms = set(map(_PLATFORM, replies))
    if len(platforms) == 1:
        return {platforms.pop(): list(dict.fromkeys(map(value, replies)))}
    grouped: dict[str, dict[str, None]] = {}
    for reply in replies:
        grouped.setdefault(reply.platform, {})[value(reply)] = None
    return {platform: list(keys) for platform, keys in grouped.items()}


_PLATFORM = attrgetter("platform")


class _Known(NamedTuple):
    """A stored suggestion, as much of it as a harvest compares and judges again."""

    id: int
    platform: str
    raw_text: str
    likes: int
    boosts: int
    handle: str  # its author's
    blocked: bool


def _known_suggestions(session: Session, replies: list[Reply]) -> dict[tuple[str, str], _Known]:
    """The stored suggestions of ``replies``, by (platform, remote id): a query per 500.

    Plain rows, not ORM objects: loading a thousand suggestions (and their authors) as
    objects, then flushing their changes one UPDATE each, took longer than the query. Looked
    up through the driver (``select_in``): a busy round's second poll asks for ten thousand
    ids, most of them new, and SQLAlchemy's handling of the IN lists cost more than the
    lookups. Their authors are read after, for the suggestions found.
    """
    stored: list[tuple[str, int, str, str, int, int, int]] = []
    wanted = _by_platform(replies, "remote_id")
    for platform, ids in wanted.items():
        rows = select_in(
            session, _SUGGESTIONS,
            ("id", "remote_id", "raw_text", "likes", "boosts", "contributor_id"),
            {"platform": platform}, "remote_id", ids, _CHUNK,
        )  # fmt: skip
        stored.extend((platform, *row) for row in rows)
    authors = {
        id: (handle, blocked)
        for id, handle, blocked in select_in(
            session,
            _CONTRIBUTORS,
            ("id", "handle", "blocked"),
            {},
            "id",
            list(dict.fromkeys(row[6] for row in stored)),
            _CHUNK,
        )
    }
    return {
        (platform, remote_id): _Known(id, platform, raw_text, likes, boosts, *authors[person])
        for platform, id, remote_id, raw_text, likes, boosts, person in stored
    }


class _Person(NamedTuple):
    id: int
    handle: str
    blocked: bool


def _people(session: Session, replies: list[Reply]) -> dict[tuple[str, str], _Person]:
    """The contributors behind ``replies``, by (platform, handle); new ones are added."""
    found: dict[tuple[str, str], _Person] = {}

    def load(wanted: dict[str, list[str]]) -> None:
        for platform, handles in wanted.items():
            rows = select_in(
                session, _CONTRIBUTORS, ("id", "handle", "blocked"), {"platform": platform},
                "handle", handles, _CHUNK,
            )  # fmt: skip
            found.update(
                ((platform, handle), _Person(id, handle, blocked)) for id, handle, blocked in rows
            )

    load(_by_platform(replies, "author_handle"))
    missing: dict[tuple[str, str], str] = {}
    for reply in replies:
        key = (reply.platform, reply.author_handle)
        if key not in found:
            missing.setdefault(key, reply.author_name)
    if missing:
        judged: dict[str, bool] = {}
        added = insert_many(
            session,
            _CONTRIBUTORS,
            [
                {
                    "platform": platform,
                    "handle": handle,
                    "display_name": _display_name(handle, name, judged),
                    "blocked": False,
                }
                for (platform, handle), name in missing.items()
            ],
            returning=("id", "platform", "handle"),
        )
        found.update(
            ((platform, handle), _Person(id, handle, False)) for id, platform, handle in added
        )
    return found


def _verdict(
    raw_text: str,
    platform: str,
    handle: str,
    blocked: bool,
    rules: Rules,
    second_opinion: bool = False,
    judged: Verdict | None = None,
) -> dict[str, Any]:
    """The rules' verdict; with ``second_opinion``, what they let through waits for it.

    ``judged`` is the text's verdict if it is known (``parallel.Judging``).
    """
    if judged is None:
        judged = judge_text(raw_text, rules, is_html=platform in HTML_PLATFORMS)
    verdict = for_author(judged, handle, rules)
    fields: dict[str, Any] = {
        "text": verdict.text,
        "accepted": verdict.accepted and not blocked,
        "pending": verdict.pending and not blocked,
        "reject_reason": "blocked account" if blocked else verdict.reason,
        "flag": verdict.flag,
    }
    if second_opinion and (fields["accepted"] or fields["pending"]):
        fields.update(accepted=False, pending=True, flag=AWAITING_MODERATION)
    return fields


def _judge(
    suggestion: Suggestion, person: Contributor, rules: Rules, second_opinion: bool = False
) -> None:
    """Judge a stored suggestion (again): ``_verdict`` on its raw text."""
    fields = _verdict(
        suggestion.raw_text,
        suggestion.platform,
        person.handle,
        person.blocked,
        rules,
        second_opinion,
    )
    for name, value in fields.items():
        setattr(suggestion, name, value)


def harvest(
    session: Session,
    episode_id: int,
    replies: list[Reply],
    settings: ModerationSettings,
    now: datetime,
    later: bool = False,
    own_handles: Iterable[str] = (),
    complete_for: str | None = None,
) -> int:
    """Store new replies as suggestions of the episode's round.

    ``complete_for`` names a platform whose ``replies`` are every reply there is to the round's
    posts: an idea of that platform missing from them was deleted by its author, and no longer
    counts (nor is it credited).

    Known replies get their likes refreshed; an edited reply is judged again (an operator's
    decision on it is kept unless the text changed). With ``later`` (the caller has a
    moderation backend), what the rules let through is held as ``AWAITING_MODERATION`` for
    ``second_opinion``, which asks the endpoint outside this transaction. ``own_handles``
    name the bot ("storybot", "storybot@example.social"): mentioning it is not spam.
    """
    with _collector_paused():
        return _harvest(session, episode_id, replies, settings, later, own_handles, complete_for)


def _harvest(
    session: Session,
    episode_id: int,
    replies: list[Reply],
    settings: ModerationSettings,
    later: bool,
    own_handles: Iterable[str],
    complete_for: str | None,
) -> int:
    episode = session.get(Episode, episode_id)
    if episode is None or episode.round is None:
        return 0
    round_id = episode.round.id
    rules = rules_for(session, episode.story_id, settings, own_handles)
    replies = [_without_nul(reply) for reply in replies]
    # Looked up and written in bulk, not a query (and a flush) a reply: a busy round has
    # thousands. The same reply twice in one batch counts once, as last seen.
    latest = {(r.platform, r.remote_id): r for r in replies}
    known = _known_suggestions(session, list(latest.values()))
    fresh = [r for key, r in latest.items() if key not in known]
    # The texts to judge, new or edited, judged at once: a busy round's on every core.
    judging = Judging(
        [(r.text, r.platform in HTML_PLATFORMS) for r in fresh]
        + [
            (latest[key].text, stored.platform in HTML_PLATFORMS)
            for key, stored in known.items()
            if stored.raw_text != latest[key].text
        ],
        rules,
        settings.workers,
    )
    people = _people(session, fresh)  # meanwhile, when other processes judge a busy round
    # What waits for no verdict is done before the verdicts are gathered: likes counted
    # again, replies their authors deleted, the new rows but for their verdicts.
    _update_each(
        session,
        [
            {"_id": stored.id, "likes": latest[key].likes, "boosts": latest[key].boosts}
            for key, stored in known.items()
            if stored.raw_text == latest[key].text
            and (stored.likes, stored.boosts) != (latest[key].likes, latest[key].boosts)
        ],
    )
    if complete_for is not None:
        _withdraw_deleted(session, round_id, complete_for, replies)
    # The new rows are stored in order as their verdicts come: the first parts' while the
    # workers still judge the next, so little is left to store when the last part is in.
    parts = judging.parts_judged()
    judged: dict[tuple[str, bool], Verdict] = {}
    try:
        ready: list[dict[str, Any]] = []
        for reply in fresh:
            text = (reply.text, reply.platform in HTML_PLATFORMS)
            if text not in judged:
                insert_many(session, _SUGGESTIONS, ready)
                ready = []
                _judged_until(text, judged, parts)
            person = people[(reply.platform, reply.author_handle)]
            ready.append(
                {
                    "round_id": round_id,
                    "contributor_id": person.id,
                    "platform": reply.platform,
                    "remote_id": reply.remote_id,
                    "raw_text": reply.text,
                    "likes": reply.likes,
                    "boosts": reply.boosts,
                    "posted_at": reply.posted_at,
                    **_verdict(
                        reply.text,
                        reply.platform,
                        person.handle,
                        person.blocked,
                        rules,
                        later,
                        judged[text],
                    ),
                }
            )
        insert_many(session, _SUGGESTIONS, ready)
        for verdicts in parts:  # the edited texts' (they come last)
            judged.update(verdicts)
    finally:
        parts.close()
    edited: list[dict[str, Any]] = []  # the text changed: judged again
    for key, stored in known.items():
        reply = latest[key]
        if stored.raw_text != reply.text:
            verdict = _verdict(
                reply.text, stored.platform, stored.handle, stored.blocked, rules, later,
                judged[(reply.text, stored.platform in HTML_PLATFORMS)],
            )  # fmt: skip
            edited.append(
                {"_id": stored.id, "raw_text": reply.text, "likes": reply.likes,
                 "boosts": reply.boosts, **verdict}
            )  # fmt: skip
    _update_each(session, edited)
    session.flush()
    return len(fresh)


def _judged_until(
    text: tuple[str, bool],
    judged: dict[tuple[str, bool], Verdict],
    parts: Iterator[dict[tuple[str, bool], Verdict]],
) -> None:
    """Gather the parts' verdicts into ``judged`` until ``text``'s is among them."""
    for verdicts in parts:
        judged.update(verdicts)
        if text in judged:
            return
    raise AssertionError(f"no verdict for {text[0][:40]!r}: it was never judged")


def _update_each(session: Session, changes: list[dict[str, Any]]) -> None:
    """UPDATE each suggestion ``changes`` names by ``_id`` (one executemany; same keys each)."""
    if not changes:
        return
    columns: dict[str, Any] = {name: bindparam(name) for name in changes[0] if name != "_id"}
    session.execute(
        update(_SUGGESTIONS).where(_SUGGESTIONS.c.id == bindparam("_id")).values(columns), changes
    )


def _without_nul(reply: Reply) -> Reply:
    if "\x00" not in reply.text and "\x00" not in reply.author_handle + reply.author_name:
        return reply
    # PostgreSQL text cannot hold NUL: such a reply would fail every harvest after it.
    return dataclasses.replace(
        reply,
        text=reply.text.replace("\x00", ""),
        author_handle=reply.author_handle.replace("\x00", ""),
        author_name=reply.author_name.replace("\x00", ""),
    )


DELETED = "deleted by its author"


def _withdraw_deleted(session: Session, round_id: int, platform: str, replies: list[Reply]) -> None:
    present = {r.remote_id for r in replies if r.platform == platform}
    # Core, as plain rows: the ORM's handling of a busy round's rows cost ten times the query.
    standing = session.connection().execute(
        select(_SUGGESTIONS.c.id, _SUGGESTIONS.c.remote_id).where(
            _SUGGESTIONS.c.round_id == round_id,
            _SUGGESTIONS.c.platform == platform,
            _SUGGESTIONS.c.reject_reason.is_distinct_from(DELETED),
        )
    )
    gone = [id for id, remote_id in standing if remote_id not in present]
    for chunk in _chunks(gone):
        session.execute(
            update(_SUGGESTIONS)
            .where(_SUGGESTIONS.c.id.in_(chunk))
            .values(accepted=False, pending=False, reject_reason=DELETED)
        )


def round_clusters(
    session: Session, rnd: Round, seed: int, vector_threshold: float = 0.8
) -> list[engine.Cluster]:
    """The round's accepted ideas, each person counted once (their best-supported reply)."""
    with _collector_paused():
        return _round_clusters(session, rnd, seed, vector_threshold)


def _round_clusters(
    session: Session, rnd: Round, seed: int, vector_threshold: float
) -> list[engine.Cluster]:
    # The columns ranking needs, not whole rows: a busy round has thousands. Read through
    # the driver (after a flush, as the ORM's autoflush would): the ORM's row handling
    # doubled it, and Core's still cost more than the query.
    session.flush()
    rows = select_where(
        session,
        _SUGGESTIONS,
        ("id", "contributor_id", "text", "likes", "boosts", "platform", "embedding"),
        {"round_id": rnd.id, "accepted": True},
    )
    ideas = engine.one_per_person(cast(list[engine.IdeaRow], rows))
    rng = random.Random(derive_seed(seed, "rank", rnd.id))
    return engine.cluster_suggestions(ideas, rng, vector_threshold=vector_threshold)


def leftover_clusters(episode: Episode) -> list[engine.Cluster]:
    """The ideas of the round before ``episode``, ranked as at its close, for its poll.

    All but the one ``episode`` tells: an idea woven into it as a rumour may still be voted
    on, so the idea most people asked for is offered in the poll (``engine.community_pick``),
    not only mentioned.
    """
    previous = episode.parent
    if previous is None or previous.round is None or not previous.round.decision:
        return []
    decision = previous.round.decision
    return [
        engine.Cluster(
            key=c["key"],
            suggestion_ids=(),
            authors=tuple(c["authors"]),
            support=float(c["support"]),
            why=c["why"],
        )
        for c in decision.get("clusters", ())
        if c["key"].strip() != episode.beat.strip()
    ]


def round_texts(
    factory: sessionmaker[Session], episode_id: int, *where: ColumnElement[bool]
) -> list[tuple[int, str]]:
    """(id, cleaned text) of the episode's round's suggestions that match ``where``, in order.

    Read in a short transaction of its own, for work that then calls out to a server.
    """
    with session_scope(factory) as session:
        episode = session.get(Episode, episode_id)
        if episode is None or episode.round is None:
            return []
        rows = session.execute(
            select(Suggestion.id, Suggestion.text)
            .where(Suggestion.round_id == episode.round.id, *where)
            .order_by(Suggestion.id)
        ).all()
        return [(row.id, row.text) for row in rows]


def second_opinion(
    factory: sessionmaker[Session],
    episode_id: int,
    classifier: Classifier,
    settings: ModerationSettings,
    own_handles: Iterable[str] = (),
) -> int:
    """Ask the moderation endpoint about the round's suggestions awaiting it; how many it judged.

    No database transaction is open while the endpoint answers. A flagged suggestion is
    rejected with the categories as the reason; the others get the rules' verdict again
    (accepted, or held for approval or a canon flag). If the endpoint cannot answer,
    ``on_error = "hold"`` leaves them waiting for the next harvest (the operator may approve
    them meanwhile) and ``"allow"`` gives them the rules' verdict.
    """
    waiting = round_texts(
        factory,
        episode_id,
        Suggestion.pending.is_(True),
        Suggestion.flag == AWAITING_MODERATION,
    )
    if not waiting:
        return 0
    try:
        verdicts: list[str | None] | None = classifier.check([text for _, text in waiting])
    except ModerationUnavailable as exc:
        if settings.on_error == "hold":
            log.warning("%s; %d suggestion(s) wait for the next harvest", exc, len(waiting))
            return 0
        log.warning("%s; %d suggestion(s) judged by the rules alone", exc, len(waiting))
        verdicts = None
    with session_scope(factory) as session:
        episode = session.get(Episode, episode_id)
        assert episode is not None
        rules = rules_for(session, episode.story_id, settings, own_handles)
        for index, (suggestion_id, text) in enumerate(waiting):
            suggestion = session.get(Suggestion, suggestion_id)
            if suggestion is None or suggestion.flag != AWAITING_MODERATION:
                continue  # the operator decided meanwhile
            if suggestion.text != text or not suggestion.pending:
                continue  # edited meanwhile: it waits for the next round of questions
            _judge(suggestion, suggestion.contributor, rules)
            reason = verdicts[index] if verdicts is not None else None
            if reason is not None and (suggestion.accepted or suggestion.pending):
                suggestion.accepted = suggestion.pending = False
                suggestion.flag, suggestion.reject_reason = None, reason
    return len(waiting)
