"""A busy round's replies judged on every core: the moderation rules are CPU-bound Python.

Below ``MIN_PARALLEL`` distinct texts, or with one core, they are judged in this process.
Otherwise they are split into parts: worker processes judge all parts but the first, a smaller
one, which this process judges after its own database work. The workers' share goes out in
pieces of at most ``PIECE`` texts, which come back in order (``Judging.parts_judged``): the
caller stores the rows of the first while the workers judge the next. A verdict is a pure
function of the text and the rules (``story_state.moderation.judge_texts``), so where a text
was judged changes nothing.

The workers start at the first busy round (or at ``start()``) and stay for the next. They are
started by ``forkserver``, as clean interpreters: a fork of a runner with threads could
inherit a lock another thread held. A pool that breaks (a worker killed) or does not answer
in time is dropped, and its parts are judged here; the next busy round starts a new one.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import threading
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from story_state.moderation import (
    Rules,
    Verdict,
    VerdictRow,
    from_rows,
    judge_texts,
    verdict_rows,
)

MIN_PARALLEL = 400  # distinct texts; fewer are judged here faster than they are shipped
MAX_WORKERS = 3
OWN_SHARE = 0.4  # this process's part, against a worker's: it has a harvest to run, too
PIECE = 600  # a worker's texts a task: the last piece's rows are what is left to store at the end
# A worker judges about 10,000 replies a second: a part that takes this long is stuck.
PART_TIMEOUT_S = 120.0
log = logging.getLogger(__name__)

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


def cores() -> int:
    """The CPUs this process may run on (a container's limit, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def workers(configured: int | None = None) -> int:
    """How many worker processes a busy round uses: as configured, or one a core but one."""
    if configured is not None:
        return configured
    return min(MAX_WORKERS, cores() - 1)


def start(configured: int | None = None) -> int:
    """Start the workers now, not at the first busy round; how many are running."""
    count = workers(configured)
    if count < 1:
        return 0
    pool = _get_pool(count)
    # A forkserver worker starts on the first task; one task each waits for all of them.
    for done in [pool.submit(judge_texts, [], Rules()) for _ in range(count)]:
        done.result(timeout=PART_TIMEOUT_S)
    return count


def stop() -> None:
    """Stop the workers (they stop with this process anyway)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


class Judging:
    """The text verdicts (``judge_text``) of each distinct (raw, is_html) in ``texts``.

    The workers start on their pieces at once; ``parts_judged()`` judges this process's part,
    then hands back theirs in order. Whatever the caller does in between (a harvest's
    database work) overlaps with them, so this process takes a smaller part (``OWN_SHARE``
    of a worker's).
    """

    def __init__(
        self, texts: Sequence[tuple[str, bool]], rules: Rules, configured: int | None = None
    ) -> None:
        self.rules = rules
        self.distinct = list(dict.fromkeys(texts))
        count = workers(configured) if len(self.distinct) >= MIN_PARALLEL else 0
        if count < 1:
            self.parts = [self.distinct]
        else:
            own = round(len(self.distinct) * OWN_SHARE / (count + OWN_SHARE))
            rest = len(self.distinct) - own
            pieces = max(count, -(-rest // PIECE))
            size = -(-rest // pieces)
            self.parts = [self.distinct[:own]] + [
                self.distinct[start : start + size]
                for start in range(own, len(self.distinct), size)
            ]
        self.pending: list[Future[list[VerdictRow]]] = []
        self.broken = False  # the workers failed: the rest is judged here
        if len(self.parts) > 1:
            try:
                pool = _get_pool(count)
                self.pending = [pool.submit(_judge_part, part, rules) for part in self.parts[1:]]
            except Exception as exc:  # no pool: the work is still done, here
                self._broke(exc)

    def parts_judged(self) -> Generator[dict[tuple[str, bool], Verdict], None, None]:
        """Each part's verdicts, in order: this process's (judged now), then the workers'."""
        try:
            for index, part in enumerate(self.parts):
                yield dict(zip(part, self._verdicts(index, part), strict=True))
        finally:
            self.cancel()

    def result(self) -> dict[tuple[str, bool], Verdict]:
        """Every verdict, once all parts are judged."""
        found: dict[tuple[str, bool], Verdict] = {}
        for verdicts in self.parts_judged():
            found.update(verdicts)
        return found

    def cancel(self) -> None:
        """Take back the pieces no worker has started (the caller failed, or is done)."""
        for future in self.pending:
            future.cancel()

    def _verdicts(self, index: int, part: list[tuple[str, bool]]) -> list[Verdict]:
        if index > 0 and not self.broken and index - 1 < len(self.pending):
            try:
                return from_rows(self.pending[index - 1].result(timeout=PART_TIMEOUT_S))
            except (Exception, FutureTimeout) as exc:  # judged here instead
                self._broke(exc)
        return judge_texts(part, self.rules)

    def _broke(self, exc: BaseException) -> None:
        self.broken = True
        self.cancel()
        _drop(exc)


def _judge_part(texts: Sequence[tuple[str, bool]], rules: Rules) -> list[VerdictRow]:
    """A worker's part, judged with the cycle collector paused (see ``harvest``'s reason),
    sent back as plain values (``verdict_rows``)."""
    gc.disable()
    try:
        return verdict_rows(judge_texts(texts, rules))
    finally:
        gc.enable()


def _get_pool(count: int) -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["story_state.moderation"])
            _pool = ProcessPoolExecutor(max_workers=count, mp_context=context)
        return _pool


def _drop(exc: BaseException) -> None:
    global _pool
    with _lock:
        pool, _pool = _pool, None
    log.warning("moderation workers failed (%r): judging in this process", exc)
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
