"""The server's record against the story's database: duplicates, losses and divergence.

Everything here starts from what the platform shows (chaos/world.py), never from the bot's
tables alone (on Bluesky a status is one post's records folded together: its head, the rest
of its caption, a question's option replies; see chaos/bluesky.py):

- duplicates: bot statuses that answer the same status with the same text, or more bot
  statuses than the story has posts (2 per episode, the last one's clip only), or a tally
  that counts more votes than the server's poll holds;
- lost: replies to the story's posts that the server shows but the database never stored as
  suggestions of that round, and votes in the server's polls missing from the tallies;
- diverged: the database and the server disagree on the thread (a SENT row whose remote id
  the server does not have, a post that answers another status than the database's thread
  says, another text, poll or media than the row), or a suggestion from a reply the server
  does not show.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.platforms.mastodon.text import comparable
from chaos.audience import Ledger
from chaos.world import Status, World
from story_state.lifecycle import PostState
from story_state.models import Episode, Post, Story, Suggestion


@dataclass
class Record:
    """What the comparison found; each list holds one line per thing counted."""

    duplicates: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    followers: list[str] = field(default_factory=list)  # the ledger against the server
    statuses: int = 0  # bot statuses on the server
    replies: int = 0  # replies to the story's posts on the server
    votes: int = 0  # votes in the story's polls on the server


def _short(text: str) -> str:
    return repr(text[:48] + ("…" if len(text) > 48 else ""))


def compare(session: Session, slug: str, world: World, episodes: int, ledger: Ledger) -> Record:
    """The story ``slug`` of ``episodes`` episodes in the database against ``world``'s record,
    and what the followers did (``ledger``) against the same record."""
    record = Record()
    story = session.scalars(select(Story).where(Story.slug == slug)).first()
    eps = sorted(
        (e for e in (story.episodes if story else []) if e.branch == "main"),
        key=lambda e: e.number,
    )
    rows = {
        (p.episode_id, p.kind): p
        for p in session.scalars(
            select(Post).where(
                Post.episode_id.in_([e.id for e in eps]), Post.platform == world.platform
            )
        )
    }
    statuses = world.bot_statuses()
    record.statuses = len(statuses)
    named = {p.remote_id for p in rows.values()}
    _duplicate_posts(record, statuses, 2 * episodes - 1, named)
    _thread(record, eps, rows, {s.id: s for s in statuses})
    _replies(record, session, world, eps, rows, ledger)
    _votes(record, eps, rows, {s.id: s for s in statuses}, world.platform, ledger)
    return record


def _duplicate_posts(
    record: Record, statuses: list[Status], expected: int, named: set[str | None]
) -> None:
    """One line per status too many: repeats of (parent, text), then statuses beyond the
    story's count that no outbox row names."""
    first: dict[tuple[str | None, str], str] = {}
    listed = []
    for s in statuses:
        key = (s.in_reply_to, comparable(s.text))
        if key in first:
            record.duplicates.append(
                f"status {s.id} repeats {first[key]}: answers {s.in_reply_to} with {_short(s.text)}"
            )
            listed.append(s.id)
        else:
            first[key] = s.id
    beyond = len(statuses) - expected - len(listed)
    strays = [s for s in statuses if s.id not in named and s.id not in listed]
    record.duplicates += [
        f"status {s.id} ({_short(s.text)}, answering {s.in_reply_to}) is one of "
        f"{len(statuses)} bot statuses for {expected} posts, and no outbox row names it"
        for s in strays[: max(beyond, 0)]
    ]
    if beyond > len(strays):
        record.duplicates += [f"{len(statuses)} bot statuses for {expected} posts"] * (
            beyond - len(strays)
        )


def _thread(
    record: Record, eps: list[Episode], rows: dict[tuple[int, str], Post], by_id: dict[str, Status]
) -> None:
    previous: str | None = None
    for e in eps:
        for kind in ("clip",) if e.is_final else ("clip", "poll"):
            row = rows.get((e.id, kind))
            if row is None or row.state is not PostState.SENT or row.remote_id is None:
                state = row.state if row is not None else "no row"
                record.diverged.append(f"episode {e.number} {kind}: {state}, not sent")
                previous = None
                continue
            problems = _post_problems(row, e, by_id.get(row.remote_id), previous)
            if problems:
                record.diverged.append(f"{row.idempotency_key}: {'; '.join(problems)}")
            previous = row.remote_id


def _post_problems(row: Post, e: Episode, status: Status | None, previous: str | None) -> list[str]:
    if status is None:
        return [f"SENT with remote id {row.remote_id}, which the server does not have"]
    problems = []
    if status.in_reply_to != previous:
        problems.append(
            f"on the server it answers {status.in_reply_to}, the thread wants {previous}"
        )
    if row.in_reply_to != previous:
        problems.append(f"the database says it answers {row.in_reply_to}, not {previous}")
    want = str((row.payload or {}).get("text", ""))
    if comparable(status.text) != comparable(want):
        problems.append(f"the server shows {_short(status.text)}, the row {_short(want)}")
    if row.kind == "clip" and status.media != 1:
        problems.append(f"the clip carries {status.media} attachments")
    if row.kind == "poll":
        labels = tuple(o.label for o in e.round.options) if e.round else ()
        if status.poll != labels:
            problems.append(f"the poll shows {status.poll}, the round {labels}")
    return problems


def _replies(
    record: Record,
    session: Session,
    world: World,
    eps: list[Episode],
    rows: dict[tuple[int, str], Post],
    ledger: Ledger,
) -> None:
    round_of: dict[str, int] = {}  # a story post's remote id → its round
    for e in eps:
        for kind in ("clip", "poll"):
            row = rows.get((e.id, kind))
            if e.round is not None and row is not None and row.remote_id:
                round_of[row.remote_id] = e.round.id
    replies = world.replies_to(list(round_of))
    record.replies = len(replies)
    rounds = [e.round.id for e in eps if e.round is not None]
    stored_rows = session.scalars(
        select(Suggestion).where(
            Suggestion.round_id.in_(rounds), Suggestion.platform == world.platform
        )
    ).all()
    seen = Counter(s.remote_id for s in stored_rows)
    record.duplicates += [f"reply {r} stored {n} times" for r, n in seen.items() if n > 1]
    stored = {s.remote_id: s.round_id for s in stored_rows}
    for reply in replies:
        want = round_of[reply.in_reply_to or ""]
        if stored.get(reply.id) != want:
            where = stored.get(reply.id)
            record.lost.append(
                f"reply {reply.id} by {reply.author} to {reply.in_reply_to} "
                f"({_short(reply.text)}): stored in round {where}, want round {want}"
            )
    shown = {r.id for r in replies}
    record.diverged += [
        f"suggestion from reply {r}, which the server does not show answering the story"
        for r in sorted(set(stored) - shown)
    ]
    parents = {r.id: r.in_reply_to for r in replies}
    for reply_id, parent in ledger.parents.items():
        if parents.get(reply_id) != parent:
            record.followers.append(
                f"reply {reply_id} to {parent}: the server shows {parents.get(reply_id)}"
            )
    record.followers += [
        f"reply {r} on the server was made by no follower"
        for r in sorted(shown - set(ledger.parents))
    ]


def _votes(
    record: Record,
    eps: list[Episode],
    rows: dict[tuple[int, str], Post],
    by_id: dict[str, Status],
    platform: str,
    ledger: Ledger,
) -> None:
    for e in eps:
        row = rows.get((e.id, "poll"))
        if e.round is None or row is None or row.remote_id is None:
            continue
        status = by_id.get(row.remote_id)
        if status is None or status.votes is None:
            continue  # counted as diverged already
        record.votes += sum(status.votes)
        cast = Counter(ledger.votes.get(row.remote_id, {}).values())
        if status.votes != tuple(cast.get(i, 0) for i in range(1, len(status.votes) + 1)):
            record.followers.append(f"poll {row.remote_id} shows {status.votes}, cast {dict(cast)}")
        tallies = [t for t in e.round.tallies if t.platform == platform]
        positions = Counter(t.position for t in tallies)
        record.duplicates += [
            f"round {e.number}: option {p} tallied {n} times" for p, n in positions.items() if n > 1
        ]
        got = {t.position: t.votes for t in tallies}
        for position, on_server in enumerate(status.votes, start=1):
            tallied = got.get(position)
            if tallied is None:
                record.lost += [f"round {e.number}: option {position} has no tally"] * on_server
            elif tallied < on_server:
                record.lost += [
                    f"round {e.number}: option {position} tallied {tallied}, server {on_server}"
                ] * (on_server - tallied)
            elif tallied > on_server:
                record.duplicates += [
                    f"round {e.number}: option {position} tallied {tallied}, server {on_server}"
                ] * (tallied - on_server)
