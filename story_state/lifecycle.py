"""Episode and round lifecycles: the states and the only moves allowed between them."""

from __future__ import annotations

from enum import StrEnum

from story_state.errors import StateError


class EpisodeState(StrEnum):
    PLANNED = "planned"  # beat chosen, nothing generated yet
    WRITTEN = "written"  # script stored
    RENDERED = "rendered"  # still, narration and clip on disk
    PUBLISHED = "published"  # clip posted on every platform
    POLLING = "polling"  # poll posted, round open
    CLOSED = "closed"  # round tallied, next beat chosen
    ENDED = "ended"  # last episode of the story
    FAILED = "failed"  # held: see failure_reason / failed_from


class RoundStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class StoryStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    ENDED = "ended"


class PostState(StrEnum):
    PENDING = "pending"  # intended; the call may or may not have reached the platform
    SENT = "sent"  # the platform answered with a remote id
    FAILED = "failed"  # gave up; the operator must look


_FORWARD: dict[EpisodeState, frozenset[EpisodeState]] = {
    EpisodeState.PLANNED: frozenset({EpisodeState.WRITTEN}),
    EpisodeState.WRITTEN: frozenset({EpisodeState.RENDERED}),
    EpisodeState.RENDERED: frozenset({EpisodeState.PUBLISHED}),
    EpisodeState.PUBLISHED: frozenset({EpisodeState.POLLING, EpisodeState.ENDED}),
    EpisodeState.POLLING: frozenset({EpisodeState.CLOSED}),
    EpisodeState.CLOSED: frozenset({EpisodeState.ENDED}),
    EpisodeState.ENDED: frozenset(),
    EpisodeState.FAILED: frozenset(),
}

ALLOWED: dict[EpisodeState, frozenset[EpisodeState]] = {
    state: (targets | {EpisodeState.FAILED})
    if state not in (EpisodeState.ENDED, EpisodeState.FAILED)
    else targets
    for state, targets in _FORWARD.items()
}


def check_transition(
    current: EpisodeState, target: EpisodeState, failed_from: EpisodeState | None = None
) -> None:
    """Raise StateError unless ``current → target`` is allowed.

    A FAILED episode may only go back to the state it failed from (a retry).
    """
    if current is EpisodeState.FAILED:
        if failed_from is not None and target is failed_from:
            return
        raise StateError(f"episode failed in {failed_from}; it can only be retried from there")
    if target not in ALLOWED[current]:
        raise StateError(f"illegal episode transition {current} → {target}")
