"""Writer backend for any OpenAI-compatible endpoint (OpenAI, llama.cpp, vLLM, Ollama).

The model answers with structured JSON; every reply is checked and, where safe, repaired.
Bad output is retried with a note saying what was wrong, and after the last retry the
fallback writer (the offline template writer by default) writes the episode instead, so a
flaky or hijacked model never stops the story and never publishes half a script.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Literal

from generation._openai import make_client
from generation.writer._prompt import SYSTEM_PROMPT, repair_message, user_message
from generation.writer._schema import EpisodeScript, InvalidOutput, episode_schema, parse_reply
from generation.writer.base import Script, Writer, WriteRequest
from generation.writer.template import TemplateWriter

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam
    from openai.types.responses import ResponseInputParam

__all__ = ["EpisodeScript", "OpenAIWriter"]

log = logging.getLogger(__name__)

Api = Literal["chat", "responses"]
Turn = tuple[Literal["user", "assistant"], str]
_MAX_ECHOED_CHARS = 8000  # a failed reply is shown back to the model, capped
_RETRY_STATUS = frozenset({408, 409, 429})


class _Transient(Exception):
    """A network error, a timeout or a server error: worth another try."""


class _Refused(Exception):
    """The endpoint rejected the request itself (bad key, unknown model): retrying won't help."""


class OpenAIWriter:
    """Structured-output writer; ``write`` never raises for bad model output or a dead server."""

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str,
        api_key: str | None,
        timeout_s: float = 60,
        max_retries: int = 2,
        temperature: float | None = 0.9,
        max_option_chars: int = 25,
        fallback: Writer | None = None,
        api: Api = "chat",
        retry_backoff_s: float = 1.0,
    ) -> None:
        if not model:
            raise ValueError("model must not be empty")
        if timeout_s <= 0 or max_retries < 0 or retry_backoff_s < 0:
            raise ValueError("timeout_s must be positive; max_retries, retry_backoff_s >= 0")
        if not 8 <= max_option_chars <= 200:
            raise ValueError(f"max_option_chars must be 8..200, got {max_option_chars}")
        if api not in ("chat", "responses"):
            raise ValueError(f"api must be 'chat' or 'responses', got {api!r}")
        self.model, self.api = model, api
        self.max_retries, self.temperature = max_retries, temperature
        self.max_option_chars, self.retry_backoff_s = max_option_chars, retry_backoff_s
        self.fallback: Writer = fallback if fallback is not None else TemplateWriter()
        self._client = make_client(base_url, api_key, timeout_s, "openai writer")

    def close(self) -> None:
        self._client.close()

    def write(self, request: WriteRequest) -> Script:
        schema = episode_schema(request.is_final, request.max_options)
        first: Turn = ("user", user_message(request, self.max_option_chars))
        turns: list[Turn] = [first]
        reason = "no attempt was made"
        for attempt in range(self.max_retries + 1):
            try:
                text, problem = self._ask(turns, schema, request.seed)
            except _Refused as exc:
                reason = str(exc)
                break
            except _Transient as exc:
                reason = str(exc)
                log.info("openai writer: attempt %d failed: %s", attempt + 1, reason)
                if attempt < self.max_retries:
                    time.sleep(min(30.0, self.retry_backoff_s * 2**attempt))
                continue
            try:
                if problem:
                    raise InvalidOutput(problem)
                return parse_reply(text, request, self.max_option_chars)
            except InvalidOutput as exc:
                reason = str(exc)
                log.info("openai writer: attempt %d gave unusable output: %s", attempt + 1, reason)
                echoed = text[:_MAX_ECHOED_CHARS] or "(no reply)"
                turns = [first, ("assistant", echoed), ("user", repair_message(reason))]
        log.warning(
            "openai writer (%s, model %s): episode %d falls back to %s: %s",
            self.api,
            self.model,
            request.number,
            type(self.fallback).__name__,
            reason,
        )
        return self.fallback.write(request)

    def _ask(self, turns: list[Turn], schema: dict[str, Any], seed: int) -> tuple[str, str | None]:
        """The reply text and, if it cannot be complete, why not; API errors are translated."""
        import openai

        try:
            if self.api == "responses":
                return self._ask_responses(turns, schema)
            return self._ask_chat(turns, schema, seed)
        except openai.APIStatusError as exc:
            what = f"HTTP {exc.status_code} from the endpoint: {exc.message}"
            if exc.status_code in _RETRY_STATUS or exc.status_code >= 500:
                raise _Transient(what) from exc
            raise _Refused(what) from exc
        except openai.APITimeoutError as exc:
            raise _Transient("the endpoint did not answer in time") from exc
        except openai.OpenAIError as exc:
            raise _Transient(f"{type(exc).__name__}: {exc}") from exc
        except (AttributeError, IndexError, TypeError, ValueError) as exc:
            return "", f"the endpoint sent a malformed response ({type(exc).__name__})"

    def _ask_chat(
        self, turns: list[Turn], schema: dict[str, Any], seed: int
    ) -> tuple[str, str | None]:
        import openai

        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": SYSTEM_PROMPT}]
        for role, content in turns:
            if role == "user":
                messages.append({"role": "user", "content": content})
            else:
                messages.append({"role": "assistant", "content": content})
        completion = self._client.chat.completions.create(
            model=self.model,
            messages=messages,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "episode", "strict": True, "schema": schema},
            },
            temperature=openai.omit if self.temperature is None else self.temperature,
            seed=seed,
        )
        if not completion.choices:
            return "", "the endpoint sent no choices"
        choice = completion.choices[0]
        text = choice.message.content or ""
        if choice.message.refusal:
            return text, "the model refused to write this episode"
        if choice.finish_reason == "length":
            return text, "the reply was cut off before the JSON was complete; write less"
        if choice.finish_reason == "content_filter":
            return text, "the reply was stopped by the content filter"
        return text, None

    def _ask_responses(self, turns: list[Turn], schema: dict[str, Any]) -> tuple[str, str | None]:
        import openai

        items: ResponseInputParam = []
        for role, content in turns:
            if role == "user":
                items.append({"role": "user", "content": content})
            else:
                items.append({"role": "assistant", "content": content})
        response = self._client.responses.create(
            model=self.model,
            instructions=SYSTEM_PROMPT,
            input=items,
            text={
                "format": {
                    "type": "json_schema",
                    "name": "episode",
                    "strict": True,
                    "schema": schema,
                }
            },
            temperature=openai.omit if self.temperature is None else self.temperature,
            store=False,
        )
        text = response.output_text
        if response.status == "incomplete":
            why = response.incomplete_details.reason if response.incomplete_details else None
            return text, f"the reply was cut off ({why or 'incomplete'}); write less"
        if response.status == "failed":
            return text, f"the response failed: {response.error.message if response.error else '?'}"
        for item in response.output:
            if item.type == "message" and any(c.type == "refusal" for c in item.content):
                return text, "the model refused to write this episode"
        return text, None
