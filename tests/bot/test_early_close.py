"""A round closed before its poll ends says so in the next clip's caption."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import App
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Episode, LocalPost
from tests.bot.conftest import Clock


def run_to_episode_two(app: App, clock: Clock, early: bool) -> str:
    for _ in range(6):
        app.runner.tick()
    if early:
        clock.now += timedelta(minutes=7)
        app.runner.close_round_now()  # the poll itself stays open on the platform
    else:
        clock.now += timedelta(minutes=31)  # the round's own end (round_minutes = 30)
    for _ in range(8):
        app.runner.tick()
    with session_scope(app.factory) as session:
        second = session.scalars(select(Episode).where(Episode.number == 2)).one()
        assert second.state in (EpisodeState.PUBLISHED, EpisodeState.POLLING)
        clips = session.scalars(
            select(LocalPost.text).where(LocalPost.is_bot.is_(True)).order_by(LocalPost.id)
        ).all()
        return clips[2]  # clip 1, poll 1, clip 2


@pytest.mark.parametrize("early", [True, False])
def test_the_next_caption_says_when_voting_was_cut_short(
    sqlite_url: str, make_app: Callable[..., App], clock: Clock, early: bool
) -> None:
    app = make_app(sqlite_url)
    caption = run_to_episode_two(app, clock, early)
    note = "Voting closed at 20:07 UTC; later votes were not counted."  # T0 is 20:00 UTC
    assert (note in caption) is early, caption
