"""The openai moderation backend against a loopback server answering in the API's own shapes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai.types import ModerationCreateResponse
from sqlalchemy import select

from bot.app import App
from bot.config import parse_config
from bot.ideas.harvest import AWAITING_MODERATION
from bot.ideas.moderation_openai import BATCH, ModerationUnavailable, OpenAIModeration
from bot.platforms.local import LocalAction
from story_state.db import session_scope
from story_state.errors import ConfigError
from story_state.models import Episode, Suggestion
from tests.bot.conftest import small_config
from tests.generation.openai_server import (
    MODERATIONS,
    FakeOpenAI,
    failure,
    moderation,
    moderation_response,
    serving,
)

MakeApp = Callable[..., App]
CLEAN: tuple[str, ...] = ()


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with serving() as server:
        yield server


def test_the_fake_answers_in_the_real_type() -> None:
    body = moderation_response(CLEAN, ("violence", "harassment/threatening"))
    parsed = ModerationCreateResponse.model_validate(body)
    assert [r.flagged for r in parsed.results] == [False, True]
    assert parsed.results[1].categories.harassment_threatening


def test_flagged_replies_name_their_categories_and_batches_are_split(fake: FakeOpenAI) -> None:
    texts = [f"idea {i}" for i in range(BATCH + 3)]
    first = [CLEAN] * BATCH
    first[2] = ("violence", "harassment/threatening")
    fake.queue(MODERATIONS, moderation(*first), moderation(CLEAN, CLEAN, ("hate",)))
    judge = OpenAIModeration(base_url=fake.base_url, api_key=None, timeout_s=10)
    try:
        verdicts = judge.check(texts)
    finally:
        judge.close()
    assert verdicts[2] == "flagged by moderation: harassment/threatening, violence"
    assert verdicts[-1] == "flagged by moderation: hate"
    assert sum(v is not None for v in verdicts) == 2
    bodies = fake.bodies(MODERATIONS)
    assert [len(b["input"]) for b in bodies] == [BATCH, 3]
    assert bodies[0]["model"] == "omni-moderation-latest" and bodies[1]["input"][0] == texts[BATCH]


def test_an_endpoint_that_cannot_answer_is_reported(fake: FakeOpenAI) -> None:
    fake.queue(MODERATIONS, failure(500), moderation(CLEAN))
    judge = OpenAIModeration(base_url=fake.base_url, api_key=None, timeout_s=10)
    try:
        with pytest.raises(ModerationUnavailable, match="moderation request failed"):
            judge.check(["one"])
        with pytest.raises(ModerationUnavailable, match="judged 1 of 2"):
            judge.check(["one", "two"])  # an answer that does not fit the question
    finally:
        judge.close()


def _app(make_app: MakeApp, tmp_path: Path, url: str, fake: FakeOpenAI, on_error: str) -> App:
    data = small_config(tmp_path, url)
    data["moderation"] = {"backend": "openai", "base_url": fake.base_url, "on_error": on_error}
    app = make_app(url, config=parse_config(data))
    assert app.local is not None
    app.runner.tick()  # episode 1 posted, the round open
    return app


def _suggestions(app: App) -> dict[str, Suggestion]:
    with session_scope(app.factory) as session:
        rows = list(session.scalars(select(Suggestion)))
        session.expunge_all()
    return {s.text: s for s in rows}


def test_the_runner_holds_until_the_endpoint_answers_then_rejects_what_it_flags(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path, fake: FakeOpenAI
) -> None:
    app = _app(make_app, tmp_path, sqlite_url, fake, "hold")
    assert app.local is not None
    app.local.act(LocalAction("ana", reply="The miners rebel"))
    app.local.act(LocalAction("ben", reply="They hurt the captain badly"))
    app.local.act(LocalAction("cy", reply="<script>x</script>"))  # the rules reject this

    fake.queue(MODERATIONS, failure(503))
    app.runner.tick()  # harvest; the endpoint is down
    held = _suggestions(app)
    assert {t: (s.pending, s.flag) for t, s in held.items() if s.pending} == {
        "The miners rebel": (True, AWAITING_MODERATION),
        "They hurt the captain badly": (True, AWAITING_MODERATION),
    }
    assert not any(s.accepted for s in held.values())

    fake.queue(MODERATIONS, moderation(CLEAN, ("violence",)))
    app.runner.tick()  # the next harvest asks again
    assert fake.bodies(MODERATIONS)[-1]["input"] == [
        "The miners rebel",
        "They hurt the captain badly",
    ]  # only what the rules let through, cleaned
    judged = _suggestions(app)
    ok, flagged = judged["The miners rebel"], judged["They hurt the captain badly"]
    assert (ok.accepted, ok.pending, ok.flag) == (True, False, None)
    assert (flagged.accepted, flagged.pending) == (False, False)
    assert flagged.reject_reason == "flagged by moderation: violence"

    app.runner.tick()  # nothing is waiting: no request
    assert len(fake.bodies(MODERATIONS)) == 2
    app.runner.close_round_now()
    with session_scope(app.factory) as session:
        second = session.scalars(select(Episode).where(Episode.number == 2)).one()
        credited = {name for idea in second.ideas for name in idea["authors"]}
    assert "ana" in credited and "ben" not in credited


def test_allow_falls_back_to_the_rules_when_the_endpoint_is_down(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path, fake: FakeOpenAI
) -> None:
    app = _app(make_app, tmp_path, sqlite_url, fake, "allow")
    assert app.local is not None
    app.local.act(LocalAction("ana", reply="The miners rebel"))
    fake.queue(MODERATIONS, failure(500))
    app.runner.tick()
    accepted = _suggestions(app)["The miners rebel"]
    assert (accepted.accepted, accepted.pending, accepted.flag) == (True, False, None)


def test_the_openai_backend_needs_a_key_only_for_openai_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORYBOT_OPENAI_API_KEY", raising=False)
    data = small_config(tmp_path, "sqlite://")
    data["moderation"] = {"backend": "openai"}
    with pytest.raises(ConfigError, match=r"moderation\.api_key_env: environment variable"):
        parse_config(data)
    data["moderation"]["base_url"] = "http://127.0.0.1:8000/v1"  # a local server: no key
    assert parse_config(data).moderation.backend == "openai"
