"""Throughput: whole episodes (write → still → voice → clip) per hour with offline backends.

One process renders episodes one after another; two processes (as two render workers would)
share the 2 cores. The ratio of their throughputs is how rendering scales from 1 to 2 workers.
"""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from generation.clip.ffmpeg import FfmpegAssembler
from generation.image.procedural import ProceduralRenderer
from generation.pipeline import Generators, RenderJob, render_episode
from generation.voice.espeak import EspeakVoice
from generation.writer.base import StoryContext, WriteRequest
from generation.writer.template import TemplateWriter

PREMISE = "On the salt flats of a dying moon, miners find a derelict ship that should not exist."


def episode(folder: str, number: int) -> float:
    """Write and render one 1280×720 episode of about 20 s; returns its wall time."""
    started = time.perf_counter()
    writer = TemplateWriter()
    context = StoryContext("Salt", PREMISE, "35mm film still, grainy", "en")
    script = writer.write(WriteRequest(context, number, "The beacon wakes", seed=number))
    generators = Generators(writer, ProceduralRenderer(), EspeakVoice(), FfmpegAssembler())
    job = RenderJob(script.narration, script.subtitles, script.image_prompt, "", seed=number)
    render_episode(generators, job, Path(folder) / f"episode-{number:03d}")
    return time.perf_counter() - started


def run(work: Path, episodes: int = 4) -> dict[str, float]:
    """``episodes_per_hour_2core`` (best of the two layouts) and ``worker_scaling_2x``."""
    started = time.perf_counter()
    for n in range(episodes):
        episode(str(work / "one"), n + 1)
    one = time.perf_counter() - started
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(episode, [str(work / "two")] * episodes, range(1, episodes + 1)))
    two = time.perf_counter() - started
    return {
        "episodes_per_hour_1worker": round(3600 * episodes / one, 1),
        "episodes_per_hour_2core": round(3600 * episodes / min(one, two), 1),
        "worker_scaling_2x": round(one / two, 2),
    }
