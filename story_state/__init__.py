"""The story's state: models, lifecycle, and the engine's pure decisions."""

from story_state.errors import (
    BackendUnavailable,
    ConfigError,
    GenerationError,
    PermanentError,
    PlatformError,
    RateLimited,
    StateError,
    StorybotError,
    TransientError,
)
from story_state.lifecycle import EpisodeState, PostState, RoundStatus, StoryStatus

__all__ = [
    "BackendUnavailable",
    "ConfigError",
    "EpisodeState",
    "GenerationError",
    "PermanentError",
    "PlatformError",
    "PostState",
    "RateLimited",
    "RoundStatus",
    "StateError",
    "StoryStatus",
    "StorybotError",
    "TransientError",
]
