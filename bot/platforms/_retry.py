"""Trying a platform call again within the step, for calls that are safe to repeat."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

from story_state.errors import TransientError

# Pauses before a call that is safe to repeat is tried again within the same step. A step
# makes several calls (look for an earlier attempt, upload, check on the upload, post), and
# retrying the whole step for one failed call makes a flaky server look much worse.
CALL_PAUSES_S = (0.5, 2.0)

log = logging.getLogger(__name__)
T = TypeVar("T")


def again_on_transient(
    call: Callable[[], T], sleep: Callable[[float], None], pauses: Sequence[float] = CALL_PAUSES_S
) -> T:
    """``call()``, tried again after each pause while it fails with a TransientError.

    Only for calls that are safe to repeat: reads, media uploads and their chunks (a repeat
    leaves at most an unattached upload, which the server deletes). Posting is not repeated
    here: a server that ignores idempotency may have made the post before it failed. Rate
    limits are not waited out here either; they go back to the scheduler with their reset.
    """
    for pause in pauses:
        try:
            return call()
        except TransientError as exc:
            log.info("%s; trying again in %g s", exc, pause)
            sleep(pause)
    return call()
