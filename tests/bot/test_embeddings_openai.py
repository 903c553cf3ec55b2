"""The openai embedding backend: paraphrases join one cluster, through the runner, on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openai.types import CreateEmbeddingResponse
from sqlalchemy import select

from bot.app import App
from bot.config import parse_config
from bot.ideas.embeddings_openai import EmbeddingUnavailable, OpenAIEmbeddings
from bot.platforms.local import LocalAction
from story_state.db import session_scope
from story_state.models import Contributor, Episode, Suggestion
from tests.bot.conftest import small_config
from tests.generation.openai_server import (
    EMBEDDINGS,
    FakeOpenAI,
    embeddings,
    embeddings_response,
    failure,
    serving,
)

MakeApp = Callable[..., App]
REBEL, STOWAWAY = [1.0, 0.1, 0.0, 0.0], [0.0, 0.0, 1.0, 0.2]


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with serving() as server:
        yield server


def test_the_fake_answers_in_the_real_type() -> None:
    parsed = CreateEmbeddingResponse.model_validate(embeddings_response(REBEL, STOWAWAY))
    assert [d.embedding for d in parsed.data] == [REBEL, STOWAWAY]


def test_vectors_come_back_in_input_order_and_failures_are_reported(fake: FakeOpenAI) -> None:
    fake.queue(EMBEDDINGS, embeddings(REBEL, STOWAWAY), failure(500), embeddings(REBEL))
    embedder = OpenAIEmbeddings(base_url=fake.base_url, api_key=None, timeout_s=10)
    try:
        assert embedder.embed(["a", "b"]) == [REBEL, STOWAWAY]
        with pytest.raises(EmbeddingUnavailable, match="embedding request failed"):
            embedder.embed(["a"])
        with pytest.raises(EmbeddingUnavailable, match="1 vectors for 2 ideas"):
            embedder.embed(["a", "b"])
    finally:
        embedder.close()
    first = fake.bodies(EMBEDDINGS)[0]
    assert first == {
        "model": "text-embedding-3-small",
        "input": ["a", "b"],
        "encoding_format": "float",
        "dimensions": 256,
    }


def test_paraphrases_with_no_shared_words_win_together(
    sqlite_url: str, make_app: MakeApp, tmp_path: Path, fake: FakeOpenAI
) -> None:
    data = small_config(tmp_path, sqlite_url)
    data["clustering"] = {"backend": "openai", "base_url": fake.base_url}
    app = make_app(sqlite_url, config=parse_config(data))
    assert app.local is not None
    app.runner.tick()  # episode 1 posted, the round open
    app.local.act(LocalAction("ana", reply="The miners rebel"))
    app.local.act(LocalAction("ben", reply="The crew mutinies"))
    app.local.act(LocalAction("cy", reply="A stowaway hides aboard"))
    app.local.act(LocalAction("dee", reply="Somebody sneaks onto the ship"))
    app.local.act(LocalAction("eve", reply="Someone stowed away in the hold"))

    fake.queue(EMBEDDINGS, failure(503))
    app.runner.tick()  # harvested; the endpoint is down: words only for now
    with session_scope(app.factory) as session:
        assert all(s.embedding is None for s in session.scalars(select(Suggestion)))
    near_rebel, near_stowaway = [0.98, 0.15, 0.0, 0.05], [0.05, 0.0, 0.97, 0.25]
    fake.queue(
        EMBEDDINGS, embeddings(REBEL, near_rebel, STOWAWAY, near_stowaway, [0.0, 0.1, 0.95, 0.3])
    )
    app.runner.tick()  # asked again
    assert fake.bodies(EMBEDDINGS)[-1]["input"] == [
        "The miners rebel",
        "The crew mutinies",
        "A stowaway hides aboard",
        "Somebody sneaks onto the ship",
        "Someone stowed away in the hold",
    ]
    app.runner.tick()  # every idea has its vector: no request
    assert len(fake.bodies(EMBEDDINGS)) == 2

    app.runner.close_round_now()
    with session_scope(app.factory) as session:
        first = session.scalars(select(Episode).where(Episode.number == 1)).one()
        assert first.round is not None and first.round.decision is not None
        clusters = first.round.decision["clusters"]
        handle = {str(c.id): c.handle for c in session.scalars(select(Contributor))}
    groups = sorted(sorted(handle[a] for a in c["authors"]) for c in clusters)
    assert groups == [["ana", "ben"], ["cy", "dee", "eve"]]
