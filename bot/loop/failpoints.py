"""Named crash points for the chaos harness: no-ops unless ``STORYBOT_FAILPOINTS`` names them.

``STORYBOT_FAILPOINTS`` holds comma-separated ``name=action[@n]`` entries, e.g.
``after_publish=kill`` or ``mid_render=kill@2,before_close=raise``. The action runs on the
``n``-th hit of that point in this process (the first when ``@n`` is left out):

- ``kill``: SIGKILL this process, as a power cut or the OOM killer would;
- ``raise``: raise :class:`FailpointError` (a crash the caller may see);
- ``sleep:S``: sleep S seconds, then carry on (widens a race window).

The variable is read once, at the first hit; when it is unset a hit costs one dict lookup.
Before acting, a hit writes one line ``storybot failpoint NAME#N: ACTION`` to stderr, so a
harness reading the output knows exactly where the process died.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

ENV = "STORYBOT_FAILPOINTS"
ACTIONS = ("kill", "raise", "sleep")

# The points the code base calls, in lifecycle order (the harness picks among these).
POINTS = (
    "mid_render",  # render_episode's checkpoint: the still and the voice exist, the clip not yet
    "after_render",  # runner._render: media written, the RENDERED state not yet committed
    "before_publish",  # outbox: the attempt is committed, the platform not called yet
    "after_publish",  # outbox: the platform has the post, its remote id is not stored yet
    "before_close",  # runner._poll: replies harvested and committed, the round not closed
    "in_close",  # rounds.close: round marked closed in the open transaction, no next episode
)


class FailpointError(RuntimeError):
    """Raised by a failpoint whose action is ``raise``."""


@dataclass(frozen=True)
class Failpoint:
    name: str
    action: str
    nth: int = 1
    seconds: float = 0.0

    def spec(self) -> str:
        action = f"sleep:{self.seconds:g}" if self.action == "sleep" else self.action
        return f"{self.name}={action}" + (f"@{self.nth}" if self.nth != 1 else "")


def parse(value: str) -> dict[str, Failpoint]:
    """``name=action[@n],…`` → points by name; a malformed entry raises ValueError."""
    points: dict[str, Failpoint] = {}
    for raw in value.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, rest = entry.partition("=")
        action, _, nth_text = rest.partition("@")
        kind, _, arg = action.partition(":")
        if not sep or not name.strip() or kind not in ACTIONS:
            raise ValueError(f"{ENV}: bad entry {entry!r}; expected name=kill|raise|sleep:S[@n]")
        try:
            nth = int(nth_text) if nth_text else 1
            seconds = float(arg) if kind == "sleep" else 0.0
        except ValueError:
            raise ValueError(f"{ENV}: bad number in {entry!r}") from None
        if nth < 1 or seconds < 0:
            raise ValueError(f"{ENV}: {entry!r}: n must be ≥ 1 and S ≥ 0")
        points[name.strip()] = Failpoint(name.strip(), kind, nth, seconds)
    return points


def render(points: list[Failpoint]) -> str:
    """The environment value that arms ``points``."""
    return ",".join(p.spec() for p in points)


_armed: dict[str, Failpoint] | None = None
_hits: dict[str, int] = {}
_guard = threading.Lock()


def _load() -> dict[str, Failpoint]:
    global _armed
    if _armed is None:
        _armed = parse(os.environ.get(ENV, ""))
    return _armed


def reset() -> None:
    """Forget the parsed variable and the hit counts (tests change the environment)."""
    global _armed
    with _guard:
        _armed = None
        _hits.clear()


def hit(name: str) -> None:
    """Mark that execution reached ``name``; acts only when the environment arms it."""
    armed = _armed if _armed is not None else _load()
    point = armed.get(name)
    if point is None:
        return
    with _guard:
        count = _hits[name] = _hits.get(name, 0) + 1
    if count != point.nth:
        return
    sys.stderr.write(f"storybot failpoint {name}#{count}: {point.action}\n")
    sys.stderr.flush()
    if point.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # SIGKILL is delivered asynchronously; never run past the point
    elif point.action == "raise":
        raise FailpointError(f"failpoint {name} (hit {count})")
    else:
        time.sleep(point.seconds)
