"""The Ken Burns move is visible: every seed zooms at least 8 % or pans at least 8 % of the frame.

The numbers are the ones the ``camera`` filters use: the still is scaled to ``level_size``
at the path's zoom, and the frame is a crop of it at ``x`` (0..1) of the free margin.
"""

from __future__ import annotations

import pytest

from generation.clip.ffmpeg import MAX_ZOOM_CHANGE, Motion, level_size, plan_motion

SEEDS = range(50)
VISIBLE = 0.08  # the "visible camera move": 8 % zoom, or a pan of 8 % of the width


def window(motion: Motion, frame: int, frames: int, width: int, height: int) -> tuple[int, float]:
    """The scaled still's width and the frame's centre on it (0..1 of the still) at ``frame``."""
    zoom, x, _ = motion.at(frame, frames)
    level_w, _ = level_size(zoom, width, height)
    left = round((level_w - width) * x)
    return level_w, (left + width / 2) / level_w


def move(motion: Motion, seconds: float, fps: int, width: int, height: int) -> tuple[float, float]:
    """(zoom change, pan as a fraction of the frame's width) between the first and last frame."""
    frames = round(seconds * fps)
    w0, c0 = window(motion, 0, frames, width, height)
    w1, c1 = window(motion, frames - 1, frames, width, height)
    zoom = max(w0, w1) / min(w0, w1) - 1.0
    # The centre moved |c1 - c0| of the still; the frame shows width / level_w of it.
    pan = abs(c1 - c0) * min(w0, w1) / width
    return zoom, pan


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (720, 1280), (640, 360)])
def test_every_seed_gets_a_visible_move_over_twenty_seconds(width: int, height: int) -> None:
    weak = []
    for seed in SEEDS:
        zoom, pan = move(plan_motion(seed, 20.0), 20.0, 24, width, height)
        if zoom < VISIBLE and pan < VISIBLE:
            weak.append((seed, round(zoom, 4), round(pan, 4)))
    assert weak == []


def test_the_zoom_never_grows_past_its_render_budget() -> None:
    for seed in SEEDS:
        for seconds in (5.0, 20.0, 60.0, 140.0):
            motion = plan_motion(seed, seconds)
            assert abs(motion.zoom_to - motion.zoom_from) <= MAX_ZOOM_CHANGE + 1e-9


def test_the_seed_still_chooses_the_directions() -> None:
    ways = set()
    for seed in SEEDS:
        m = plan_motion(seed, 20.0)
        ways.add((m.zoom_to > m.zoom_from, m.x_to > m.x_from, m.y_to > m.y_from))
    assert len(ways) == 8
    assert plan_motion(7, 20.0) == plan_motion(7, 20.0)


def test_the_crop_stays_inside_the_scaled_still() -> None:
    for seed in SEEDS:
        m = plan_motion(seed, 20.0)
        for frame in (0, 240, 479):
            zoom, x, y = m.at(frame, 480)
            assert zoom >= 1.0 and 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0
