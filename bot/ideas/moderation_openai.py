"""A second opinion on replies from an OpenAI-compatible moderation endpoint (/v1/moderations).

Only replies the local rules let through are sent, and only their cleaned text: the part that
could reach the writer. The endpoint takes a list of inputs, so a harvest makes one request
per ``BATCH`` replies, not one per reply.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from generation._openai import make_client
from story_state.errors import StorybotError

if TYPE_CHECKING:
    from openai import OpenAI

log = logging.getLogger(__name__)

BATCH = 32


class ModerationUnavailable(StorybotError):
    """The endpoint could not give a verdict (down, refused, or an answer that does not fit)."""


class Classifier(Protocol):
    def check(self, texts: Sequence[str]) -> list[str | None]:
        """For each text, why it is flagged, or None; ModerationUnavailable if it can't tell."""
        ...


class OpenAIModeration:
    """``moderations.create`` on OpenAI or any server that speaks its API."""

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str = "omni-moderation-latest",
        api_key: str | None,
        timeout_s: float = 20.0,
    ) -> None:
        if not model:
            raise ValueError("model must not be empty")
        self.model = model
        self._client: OpenAI = make_client(base_url, api_key, timeout_s, "openai moderation")

    def close(self) -> None:
        self._client.close()

    def check(self, texts: Sequence[str]) -> list[str | None]:
        verdicts: list[str | None] = []
        for start in range(0, len(texts), BATCH):
            verdicts += self._check(list(texts[start : start + BATCH]))
        return verdicts

    def _check(self, batch: list[str]) -> list[str | None]:
        import openai

        try:
            answer = self._client.moderations.create(model=self.model, input=batch)
        except openai.OpenAIError as exc:
            raise ModerationUnavailable(f"moderation request failed: {exc}") from exc
        if len(answer.results) != len(batch):
            raise ModerationUnavailable(
                f"the moderation endpoint judged {len(answer.results)} of {len(batch)} replies"
            )
        verdicts: list[str | None] = []
        for result in answer.results:
            if not result.flagged:
                verdicts.append(None)
                continue
            # Category names as the API spells them ("harassment/threatening"), not the
            # Python attribute names.
            flags = result.categories.model_dump(by_alias=True)
            names = sorted(name for name, on in flags.items() if on)
            verdicts.append(f"flagged by moderation: {', '.join(names) or 'unspecified'}")
        return verdicts
