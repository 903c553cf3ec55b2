"""The runner's lock: one story step or operator action at a time, handed back around slow calls.

The scheduler's thread and the dashboard's both act on the story; each state change happens
under this lock. A step that calls a writer or renders (seconds to minutes) hands the lock back
for that call, so an operator's button never waits behind a render; the step then takes it
again and checks that the episode is still where it left it before storing anything.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType


class StepLock:
    """A re-entrant lock whose holder can release it, fully, around one slow call."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._owner: int | None = None
        self._depth = 0

    def acquire(self) -> None:
        self._lock.acquire()
        self._owner = threading.get_ident()
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
        self._lock.release()

    def __enter__(self) -> StepLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let others act during the block; a thread that does not hold the lock just runs it."""
        if self._owner != threading.get_ident():
            yield
            return
        depth = self._depth
        for _ in range(depth):
            self.release()
        try:
            yield
        finally:
            for _ in range(depth):
                self.acquire()


__all__ = ["StepLock"]
