"""The official OpenAI client, built the same way for the writer, image and voice backends."""

from __future__ import annotations

from typing import TYPE_CHECKING

from story_state.errors import BackendUnavailable

if TYPE_CHECKING:
    from openai import OpenAI

INSTALL = "pip install 'storybot[openai]'"


def make_client(base_url: str | None, api_key: str | None, timeout_s: float, what: str) -> OpenAI:
    """A client with its own retries off (callers decide what is worth retrying).

    ``what`` names the backend in the error when the package is missing. Local servers
    (llama.cpp, vLLM, Ollama) take any key, so a missing one is sent as a placeholder.
    """
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be positive, got {timeout_s}")
    try:
        import openai
    except ImportError as exc:
        raise BackendUnavailable(f"the {what} backend needs the openai package: {INSTALL}") from exc
    return openai.OpenAI(
        base_url=base_url, api_key=api_key or "not-needed", timeout=timeout_s, max_retries=0
    )
