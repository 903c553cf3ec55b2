"""Embeddings of accepted ideas from an OpenAI-compatible /v1/embeddings endpoint.

Each idea is embedded once, after the harvest that accepted it and outside its transaction;
the vector is stored with the suggestion, so ranking a round (at close, or on the dashboard)
never calls the endpoint. An idea without a vector is grouped by its words alone.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.orm import Session, sessionmaker

from bot.ideas.harvest import round_texts
from generation._openai import make_client
from story_state.db import session_scope
from story_state.errors import StorybotError
from story_state.models import Suggestion

if TYPE_CHECKING:
    from openai import OpenAI

log = logging.getLogger(__name__)

BATCH = 64


class EmbeddingUnavailable(StorybotError):
    """The endpoint gave no usable vectors."""


class Embedder(Protocol):
    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class OpenAIEmbeddings:
    """``embeddings.create`` on OpenAI or any server that speaks its API."""

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str = "text-embedding-3-small",
        api_key: str | None,
        dimensions: int | None = 256,
        timeout_s: float = 20.0,
    ) -> None:
        if not model:
            raise ValueError("model must not be empty")
        self.model, self.dimensions = model, dimensions
        self._client: OpenAI = make_client(base_url, api_key, timeout_s, "openai embeddings")

    def close(self) -> None:
        self._client.close()

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            vectors += self._embed(list(texts[start : start + BATCH]))
        return vectors

    def _embed(self, batch: list[str]) -> list[list[float]]:
        import openai

        try:
            answer = self._client.embeddings.create(
                model=self.model,
                input=batch,
                encoding_format="float",  # what every compatible server speaks
                dimensions=openai.omit if self.dimensions is None else self.dimensions,
            )
        except openai.OpenAIError as exc:
            raise EmbeddingUnavailable(f"embedding request failed: {exc}") from exc
        rows = sorted(answer.data, key=lambda d: d.index)
        if [d.index for d in rows] != list(range(len(batch))):
            raise EmbeddingUnavailable(
                f"the embedding endpoint answered {len(rows)} vectors for {len(batch)} ideas"
            )
        return [list(d.embedding) for d in rows]


def embed_new(factory: sessionmaker[Session], episode_id: int, embedder: Embedder) -> int:
    """Embed the round's accepted ideas that have no vector yet; how many were stored."""
    todo = round_texts(
        factory, episode_id, Suggestion.accepted.is_(True), Suggestion.embedding.is_(None)
    )
    if not todo:
        return 0
    try:
        vectors = embedder.embed([text for _, text in todo])
    except EmbeddingUnavailable as exc:
        log.warning("%s; %d idea(s) are grouped by their words for now", exc, len(todo))
        return 0
    with session_scope(factory) as session:
        for (suggestion_id, text), vector in zip(todo, vectors, strict=True):
            suggestion = session.get(Suggestion, suggestion_id)
            if suggestion is not None and suggestion.text == text:  # not edited meanwhile
                suggestion.embedding = vector
    return len(todo)
