"""Driver-level bulk writes and reads: the rows are those SQLAlchemy's Core would store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from story_state import migrate
from story_state.db import insert_many, make_engine, select_in, select_where, session_factory
from story_state.lifecycle import EpisodeState, RoundStatus, StoryStatus
from story_state.models import Contributor, Episode, Round, Story, Suggestion

BACKENDS = ["sqlite_url", pytest.param("pg_url", marks=pytest.mark.postgres)]
CONTRIBUTORS = cast(Table, Contributor.__table__)
SUGGESTIONS = cast(Table, Suggestion.__table__)
# Stored as UTC by the column type (UTCDateTime), which the driver alone would not do.
PARIS = timezone(timedelta(hours=1))
T0 = datetime(2026, 12, 3, 7, 30, 15, 123456, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def session(request: pytest.FixtureRequest) -> Iterator[Session]:
    url: str = request.getfixturevalue(request.param)
    migrate.upgrade(url)
    engine = make_engine(url)
    with session_factory(engine)() as session:
        yield session
    engine.dispose()


def _round(session: Session) -> int:
    story = Story(
        slug="s", title="Salt", premise="Miners.", status=StoryStatus.ACTIVE, seed=1, episode_cap=3
    )
    session.add(story)
    session.flush()
    episode = Episode(
        story_id=story.id, number=1, state=EpisodeState.POLLING, beat="The beacon wakes.", seed=1
    )
    session.add(episode)
    session.flush()
    rnd = Round(
        episode_id=episode.id, status=RoundStatus.OPEN, opens_at=T0,
        closes_at=T0 + timedelta(hours=1),
    )  # fmt: skip
    session.add(rnd)
    session.flush()
    return rnd.id


def _people(n: int, prefix: str) -> list[dict[str, Any]]:
    return [
        {"platform": "mastodon", "handle": f"{prefix}{i}@example.social",
         "display_name": f"Ana ’{i}’ 🚀", "blocked": i % 3 == 0}
        for i in range(n)
    ]  # fmt: skip


def test_insert_many_stores_what_a_core_insert_stores(session: Session) -> None:
    round_id = _round(session)
    insert_many(session, CONTRIBUTORS, _people(1200, "fast"))  # more than one chunk of reads
    session.execute(insert(CONTRIBUTORS), _people(1200, "core"))
    ids = {
        row.handle: row.id for row in session.execute(select(Contributor.handle, Contributor.id))
    }
    rows = [
        {"round_id": round_id, "contributor_id": ids[f"{kind}{i}@example.social"],
         "platform": "mastodon", "remote_id": f"{kind}-{i}", "raw_text": "<p>hi</p>",
         "text": "hi", "likes": i, "boosts": 0, "accepted": i % 2 == 0, "pending": False,
         "reject_reason": None if i % 2 == 0 else "blocked word", "flag": None,
         "posted_at": (T0 + timedelta(seconds=i)).astimezone(PARIS)}
        for kind in ("fast", "core") for i in range(50)
    ]  # fmt: skip
    insert_many(session, SUGGESTIONS, [r for r in rows if r["remote_id"].startswith("fast")])
    session.execute(insert(SUGGESTIONS), [r for r in rows if r["remote_id"].startswith("core")])

    # As the database holds them, not only as the ORM reads them back.
    raw = {
        row[0]: tuple(row[1:])
        for row in session.connection().exec_driver_sql(
            "SELECT remote_id, posted_at, accepted, pending FROM suggestions"
        )
    }
    for i in range(50):
        assert raw[f"fast-{i}"] == raw[f"core-{i}"]
    stored = {s.remote_id: s for s in session.scalars(select(Suggestion).order_by(Suggestion.id))}
    for i in range(50):
        fast, core = stored[f"fast-{i}"], stored[f"core-{i}"]
        assert fast.posted_at == core.posted_at == T0 + timedelta(seconds=i)
        assert fast.posted_at.tzinfo is not None
        assert (fast.accepted, fast.reject_reason, fast.likes) == (
            core.accepted, core.reject_reason, core.likes,
        )  # fmt: skip
        assert fast.contributor.display_name == core.contributor.display_name == f"Ana ’{i}’ 🚀"
        assert fast.contributor.blocked is core.contributor.blocked is (i % 3 == 0)


def test_select_in_reads_chunks_with_the_columns_types(session: Session) -> None:
    insert_many(session, CONTRIBUTORS, _people(1200, "a"))
    insert_many(session, CONTRIBUTORS, [{**p, "platform": "bluesky"} for p in _people(5, "a")])
    wanted = [f"a{i}@example.social" for i in range(0, 1200, 2)] + ["nobody@example.social"]
    found = list(
        select_in(
            session, CONTRIBUTORS, ("handle", "blocked"), {"platform": "mastodon"},
            "handle", wanted, chunk=250,
        )
    )  # fmt: skip
    assert sorted(found) == sorted((f"a{i}@example.social", i % 3 == 0) for i in range(0, 1200, 2))
    assert all(type(blocked) is bool for _, blocked in found)
    assert list(select_in(session, CONTRIBUTORS, ("id",), {"platform": "x"}, "handle", [])) == []


def test_select_where_reads_what_a_core_select_reads(session: Session) -> None:
    """A boolean and an integer to match (bound as their columns bind them), and a JSON list,
    a UTC datetime and a boolean read back through their result processors."""
    round_id = _round(session)
    people = insert_many(session, CONTRIBUTORS, _people(3, "w"), returning=("id",))
    insert_many(
        session,
        SUGGESTIONS,
        [
            {"round_id": round_id, "contributor_id": people[i % 3][0], "platform": "mastodon",
             "remote_id": str(i), "raw_text": f"idea {i}", "text": f"idea {i}", "likes": i,
             "boosts": 0, "accepted": i % 4 != 0, "pending": False,
             "embedding": [0.5, i / 8] if i % 2 else None, "posted_at": T0.astimezone(PARIS)}
            for i in range(40)
        ],
    )  # fmt: skip
    columns = ("id", "embedding", "posted_at", "accepted", "likes")
    found = select_where(session, SUGGESTIONS, columns, {"round_id": round_id, "accepted": True})
    core = session.execute(
        select(*(SUGGESTIONS.c[name] for name in columns)).where(
            SUGGESTIONS.c.round_id == round_id, SUGGESTIONS.c.accepted.is_(True)
        )
    ).all()
    assert sorted(found) == sorted(tuple(row) for row in core)
    assert len(found) == 30
    assert {type(row[3]) for row in found} == {bool}
    assert all(row[2] == T0 and row[2].tzinfo is UTC for row in found)
    assert [row[1] for row in sorted(found)][:2] == [[0.5, 1 / 8], None]
    assert select_where(session, SUGGESTIONS, ("id",), {"round_id": round_id + 1}) == []


def test_insert_many_returns_the_columns_asked_for(session: Session) -> None:
    added = insert_many(
        session, CONTRIBUTORS, _people(1500, "r"), returning=("id", "handle", "blocked")
    )
    stored = {
        (row.id, row.handle, row.blocked)
        for row in session.execute(select(Contributor.id, Contributor.handle, Contributor.blocked))
    }
    assert len(added) == 1500 and set(added) == stored
    assert all(type(blocked) is bool for _, _, blocked in added)
    assert insert_many(session, CONTRIBUTORS, [], returning=("id",)) == []


@pytest.mark.parametrize("value", ["yes", 2])
def test_insert_many_refuses_what_a_core_insert_refuses(session: Session, value: object) -> None:
    """Only True and False skip the column type's processor: anything else meets its check."""
    person = {**_people(1, "bad")[0], "blocked": value}
    with pytest.raises((TypeError, ValueError), match=r"boolean|True, or False"):
        insert_many(session, CONTRIBUTORS, [person])
