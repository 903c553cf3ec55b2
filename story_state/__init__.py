"""The story's state: models, lifecycle, and the engine's pure decisions."""

import logging
import os
from importlib.machinery import EXTENSION_SUFFIXES

# Modules `make compiled` builds with mypyc: story_state/NAME.cpython-*.so beside NAME.py.
COMPILED = ("text", "injection", "cluster", "moderation", "engine")


def _drop_stale_builds() -> None:
    """Remove a compiled module older than its source, before anything imports it.

    Python imports an extension module ahead of the .py of the same name, so after an edit
    without `make compiled` the old build would run, silently. Without it the pure-Python
    module runs (slower) until the next `make compiled`.
    """
    here = os.path.dirname(__file__)
    for name in COMPILED:
        for suffix in EXTENSION_SUFFIXES:
            built = os.path.join(here, name + suffix)
            try:
                if os.stat(built).st_mtime >= os.stat(os.path.join(here, name + ".py")).st_mtime:
                    continue
            except OSError:
                continue  # not built (the usual case), or no source to compare with
            for path in (built, os.path.join(here, f"{name}__mypyc{suffix}")):
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass  # never built, or another process was first
                except OSError as error:
                    raise ImportError(
                        f"{built} is older than {name}.py and could not be removed ({error}): "
                        "run `make compiled` or remove it"
                    ) from error
            logging.getLogger(__name__).warning(
                "compiled story_state.%s was older than its source and was removed; the "
                "pure-Python module runs until `make compiled`",
                name,
            )


_drop_stale_builds()

from story_state.errors import (  # noqa: E402  (after the stale-build check)
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
from story_state.lifecycle import EpisodeState, PostState, RoundStatus, StoryStatus  # noqa: E402

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
