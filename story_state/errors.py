"""The one error tree every storybot layer raises from.

StorybotError
├── ConfigError            bad or missing configuration (names the key and the file)
├── StateError             an illegal lifecycle move or an inconsistent database
├── GenerationError        a writer, image, voice or clip backend failed
│   └── BackendUnavailable an optional extra or system tool is not installed
└── PlatformError          a social platform refused or failed a call
    ├── RateLimited        try again at ``reset_at``
    ├── TransientError     a network blip or a 5xx: retry with backoff
    └── PermanentError     the request itself is wrong: retrying will not help
"""

from __future__ import annotations

from datetime import datetime


class StorybotError(Exception):
    """Root of every error storybot raises on purpose."""


class ConfigError(StorybotError):
    """The configuration is invalid; the message names the key and the file."""


class StateError(StorybotError):
    """An illegal lifecycle transition or an inconsistent stored state."""


class GenerationError(StorybotError):
    """A generation backend could not produce its output."""


class BackendUnavailable(GenerationError):
    """An optional dependency is missing; the message names the install command."""


class PlatformError(StorybotError):
    """A platform call failed."""


class RateLimited(PlatformError):
    """The platform asked us to wait until ``reset_at``."""

    def __init__(self, message: str, reset_at: datetime | None = None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class TransientError(PlatformError):
    """Worth retrying later with backoff."""


class PermanentError(PlatformError):
    """The request is wrong; retrying the same call will fail again."""
