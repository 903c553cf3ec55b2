"""Render benchmark: ``python -m bench.run`` from the repository root.

One process renders a 20 s 1280x720 24 fps "film" clip with :class:`FfmpegAssembler` and
compares it with

- the floor: the same still, frame count, size, grain, audio, encoder settings and one filter
  thread (``-filter_complex_threads 1``, as the render), encoded by ffmpeg without pan/zoom,
  grade, vignette or subtitles (the still is decoded once and repeated by the ``loop``
  filter; ``-loop 1`` on a PNG input would decode it 480 times and make the floor look
  slower than it is);
- the naive moviepy 2 render people write first: an ImageClip whose per-frame ``transform``
  zooms and crops with Pillow and adds a float64 numpy Gaussian as grain, TextClip subtitles
  in a CompositeVideoClip, the narration, and ``write_videofile`` with libx264 at the same
  preset and CRF (moviepy's own default, ``medium``, would make it slower still);
- a competent moviepy render (``bench.baselines``): the same picture with grain drawn once
  and the render's own x264 settings and encoder threads. ``speedup_vs_moviepy`` is measured
  against this one; ``speedup_vs_moviepy_naive`` against the first. Both are best of
  ``--moviepy-repeat``.

A second floor adds the assembler's camera move to the first: the render minus its look
(grade, vignette, subtitles), which shows what the look itself costs.

The harvest figures (``bench.harvest``: the real ``harvest()`` and ``round_clusters()`` on
SQLite and PostgreSQL, result checked) and the render fleet's scaling (``bench.scale``: two
real ``storybot worker`` processes on Redis against one) follow. The figures, the machine and
each target's verdict go to ``bench/results.json`` (``--results``); ``--check`` exits 1 when
any target (``bench.targets``) is missed.

``peak_rss_mb`` is the larger of this process's own peak (imports, painting the still) and the
largest child it has waited for (the ffmpeg render; espeak-ng and ffprobe are far smaller),
read right after the first render, before any baseline runs.

``voice_realtime_factor`` is seconds of speech per second of wall time for the Piper voice (the
offline default) on a narration of about 20 s, best of three, with the voice already loaded
(``voice_load_s``, once per process).

Render and floors alternate ``--repeat`` times and the fastest wall time of each counts, since
other jobs share this machine; CPU seconds (this process plus its children) are reported
beside every wall time. Human-readable lines come first; the last stdout line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.baselines import moviepy_competent
from bench.harvest import figures as harvest_figures
from bench.scale import run as scale_run
from bench.targets import RESULTS, cpu_ticks, machine, steal_pct, verdicts, write
from generation.clip.base import ClipRequest
from generation.clip.ffmpeg import (
    SAMPLE_RATE,
    FfmpegAssembler,
    build_graph,
    camera,
    grain_filters,
    hold_still,
    plan_motion,
    source_size,
)
from generation.clip.subtitles import split_lines, time_cues, to_ass
from generation.image.base import ImageRequest
from generation.image.procedural import ProceduralRenderer

WIDTH, HEIGHT, FPS, SECONDS = 1280, 720, 24, 20.0
LEAD_IN, TAIL = 0.25, 1.0
SEED = 11
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
NARRATION = (
    "The freighter drifted over the salt flats, its engines coughing in the thin air. "
    "Captain Vey watched the horizon for the beacon. Nobody aboard remembered the way home, "
    "and the radio only hissed. Then, beyond the dead moons of Kessler's Reach, "
    "a signal answered."
)
# About 20 s from the Piper voice.
VOICE_TEXT = NARRATION + " It spoke in a voice that every one of them had known, long ago."


@dataclass
class Timing:
    wall_s: float
    cpu_s: float  # user + system, this process and the children it waited for


@contextmanager
def timed() -> Iterator[list[Timing]]:
    box: list[Timing] = []
    cpu0 = _cpu()
    t0 = time.perf_counter()
    yield box
    box.append(Timing(time.perf_counter() - t0, _cpu() - cpu0))


def _cpu() -> float:
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def _max_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def prepare(work: Path) -> ClipRequest:
    """The still and a narration of exactly the right length; not part of any timing."""
    still = ProceduralRenderer().render(
        ImageRequest(prompt="a freighter over the salt desert", seed=SEED), work / "still.png"
    )
    speech_s = SECONDS - LEAD_IN - TAIL
    raw = work / "espeak.wav"
    try:
        from generation.voice.espeak import EspeakVoice

        EspeakVoice().synthesize(NARRATION, raw)
        with wave.open(str(raw), "rb") as wav:
            rate, width = wav.getframerate(), wav.getsampwidth()
            pcm = np.frombuffer(wav.readframes(wav.getnframes()), np.int16)
    except Exception as exc:  # any voice failure: a stand-in keeps the bench running
        print(f"note: no espeak voice ({exc}); using a synthetic narration", file=sys.stderr)
        rate, width = 22_050, 2
        t = np.arange(int(speech_s * rate)) / rate
        pcm = (8000 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(
            np.int16
        )
    samples = int(speech_s * rate)
    pcm = np.pad(pcm[:samples], (0, max(0, samples - len(pcm))))
    narration = work / "narration.wav"
    with wave.open(str(narration), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype(np.int16).tobytes())
    cues = time_cues(split_lines(NARRATION), speech_s, LEAD_IN)
    return ClipRequest(
        still=still,
        narration=narration,
        cues=cues,
        seed=SEED,
        width=WIDTH,
        height=HEIGHT,
        fps=FPS,
        lead_in_s=LEAD_IN,
        tail_s=TAIL,
        look="film",
    )


def _encode_command(
    assembler: FfmpegAssembler,
    request: ClipRequest,
    video: list[str],
    out: Path,
    filter_threads: list[str],
) -> list[str]:
    """The still through ``video``, the narration padded, both encoded as the assembler does."""
    audio = (
        f"aresample={SAMPLE_RATE},apad=whole_dur={SECONDS},"
        f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
    )
    graph = f"[0:v]{','.join(video)}[v];[1:a]{audio}[a]"
    return [
        assembler.ffmpeg, "-nostdin", "-loglevel", "error", "-y",
        "-i", f"file:{request.still}", "-i", f"file:{request.narration}",
        *filter_threads, "-filter_complex", graph,
        "-map", "[v]", "-map", "[a]", "-t", f"{SECONDS}",
        *assembler.encoder_args(request.fps), str(out),
    ]  # fmt: skip


def floor_command(assembler: FfmpegAssembler, request: ClipRequest, out: Path) -> list[str]:
    """Same frames, size, grain, audio, encoder and filter threads; no motion, grade, vignette
    or subtitles."""
    w, h = request.width, request.height
    video = [
        f"scale={w}:{h}:force_original_aspect_ratio=increase",
        f"crop={w}:{h}",
        "format=yuv420p",
        *hold_still(round(SECONDS * request.fps), request.fps),
        *grain_filters(request.look, request.seed),
    ]
    return _encode_command(assembler, request, video, out, ["-filter_complex_threads", "1"])


def motion_floor_command(assembler: FfmpegAssembler, request: ClipRequest, out: Path) -> list[str]:
    """The floor plus the assembler's camera move: no look."""
    w, h, fps = request.width, request.height, request.fps
    frames = round(SECONDS * fps)
    motion = plan_motion(request.seed, SECONDS)
    big_w, big_h = source_size(motion, w, h)
    video = [
        f"scale={big_w}:{big_h}:force_original_aspect_ratio=increase:flags=lanczos",
        f"crop={big_w}:{big_h}",
        "format=yuv420p",
        *hold_still(frames, fps),
        camera(motion, frames, w, h, fps),
        *grain_filters(request.look, request.seed),
    ]
    return _encode_command(assembler, request, video, out, ["-filter_complex_threads", "1"])


def graph_only_command(assembler: FfmpegAssembler, request: ClipRequest, ass: Path) -> list[str]:
    """The assembler's own filter graph with nothing encoded: what the look costs."""
    return [
        assembler.ffmpeg, "-nostdin", "-loglevel", "error", "-y",
        "-i", f"file:{request.still}", "-i", f"file:{request.narration}",
        "-filter_complex", build_graph(request, SECONDS, ass, ambient=assembler.ambient),
        "-map", "[v]", "-map", "[a]", "-t", f"{SECONDS}", "-f", "null", "-",
    ]  # fmt: skip


def moviepy_naive(request: ClipRequest, out: Path, work: Path) -> None:
    """The straightforward moviepy 2 version of the same clip, frame by frame in Python."""
    from moviepy import (  # type: ignore[import-untyped]
        AudioFileClip,
        CompositeAudioClip,
        CompositeVideoClip,
        ImageClip,
        TextClip,
    )
    from PIL import Image

    w, h, total = request.width, request.height, SECONDS
    motion = plan_motion(request.seed, total)
    rng = np.random.default_rng(request.seed)

    def ken_burns(get_frame: Callable[[float], np.ndarray], t: float) -> np.ndarray:
        f = min(1.0, t / total)
        zoom = motion.zoom_from + (motion.zoom_to - motion.zoom_from) * f
        cw, ch = w / zoom, h / zoom
        x = (w - cw) * (motion.x_from + (motion.x_to - motion.x_from) * f)
        y = (h - ch) * (motion.y_from + (motion.y_to - motion.y_from) * f)
        frame = Image.fromarray(get_frame(t)).resize(
            (w, h), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch)
        )
        grain = rng.normal(0.0, 9.0, (h, w, 1))
        return np.clip(np.asarray(frame, np.float32) + grain, 0, 255).astype(np.uint8)

    still = np.asarray(Image.open(request.still).convert("RGB").resize((w, h)))
    picture = ImageClip(still, duration=total).transform(ken_burns)
    font = str(FONT) if FONT.is_file() else None
    subtitles = [
        TextClip(
            font=font,
            text=cue.text,
            font_size=round(h * 0.058),
            color="#FFEEB0",
            stroke_color="#080C14",
            stroke_width=3,
        )
        .with_start(cue.start_s)
        .with_duration(cue.end_s - cue.start_s)
        .with_position(("center", h - round(h * 0.06) - round(h * 0.058) * 2))
        for cue in request.cues
    ]
    voice = AudioFileClip(str(request.narration)).with_start(request.lead_in_s)
    video = CompositeVideoClip([picture, *subtitles], size=(w, h)).with_duration(total)
    video = video.with_audio(CompositeAudioClip([voice]).with_duration(total))
    video.write_videofile(
        str(out),
        fps=request.fps,
        codec="libx264",
        audio_codec="aac",
        preset="veryfast",
        ffmpeg_params=["-crf", "23", "-pix_fmt", "yuv420p"],
        temp_audiofile=str(work / "moviepy-audio.m4a"),
        logger=None,
    )
    video.close()


def voice_speed(work: Path, repeat: int) -> dict[str, Any]:
    """Piper's speed: seconds of speech per second of wall (and CPU) time, best of ``repeat``."""
    from generation.voice.piper import PiperVoice, load_model
    from story_state.errors import BackendUnavailable

    try:
        with timed() as box:
            load_model(None)
    except BackendUnavailable as exc:
        print(f"note: no Piper voice ({exc})", file=sys.stderr)
        return {"voice_realtime_factor": None}
    load = box[0]
    voice, runs = PiperVoice(), []
    for _ in range(repeat):
        with timed() as box:
            speech = voice.synthesize(VOICE_TEXT, work / "piper.wav")
        runs.append(box[0])
    best = min(runs, key=lambda t: t.wall_s)
    return {
        "voice_realtime_factor": round(speech.duration_s / best.wall_s, 2),
        "voice_realtime_factor_cpu": round(speech.duration_s / best.cpu_s, 2),
        "voice_speech_s": round(speech.duration_s, 2),
        "voice_runs_s": [round(t.wall_s, 3) for t in runs],
        "voice_load_s": round(load.wall_s, 3),
    }


def harvest() -> dict[str, Any]:
    """The real ``harvest()`` + ``round_clusters()`` on 10k replies (SQLite, PostgreSQL) and
    100k (SQLite), each result checked (``bench.harvest``)."""
    return harvest_figures()


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--repeat", type=int, default=3, help="render/floor runs (best counts)")
    parser.add_argument("--skip-moviepy", action="store_true", help="leave the slow baseline")
    parser.add_argument("--keep", type=Path, help="keep the rendered files in this folder")
    parser.add_argument(
        "--moviepy-repeat", type=int, default=2, help="runs of each moviepy baseline (best counts)"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS, help="the results file [bench/results.json]"
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    where = machine()  # the load average before the bench adds its own
    work_dir = tempfile.mkdtemp(prefix="storybot-bench-")
    work = Path(work_dir)
    try:
        result = _bench(
            work, max(1, args.repeat), args.skip_moviepy, args.keep, max(1, args.moviepy_repeat)
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write(result, where, args.results)
    found = verdicts(result)
    for _, _, line in found:
        print(line, file=sys.stderr)  # stdout's last line stays the JSON object
    if args.check and not all(met for _, met, _ in found):
        raise SystemExit(f"targets missed; figures in {args.results}")
    return result


def _bench(
    work: Path, repeat: int, skip_moviepy: bool, keep: Path | None, moviepy_repeat: int = 2
) -> dict[str, Any]:
    load_before = os.getloadavg()
    ticks_before = cpu_ticks()
    request = prepare(work)
    assembler = FfmpegAssembler()
    renders: list[Timing] = []
    floors: list[Timing] = []
    motions: list[Timing] = []
    clip = None
    for i in range(repeat):
        with timed() as box:
            clip = assembler.assemble(request, work / "clip.mp4")
        renders.append(box[0])
        if i == 0:
            # Peak memory of the pipeline so far: this process (still painting included)
            # and the largest child it has waited for (the ffmpeg render).
            rss_self, rss_children = (
                _max_rss_mb(resource.RUSAGE_SELF),
                _max_rss_mb(resource.RUSAGE_CHILDREN),
            )
        with timed() as box:
            _run(floor_command(assembler, request, work / "floor.mp4"))
        floors.append(box[0])
        with timed() as box:
            _run(motion_floor_command(assembler, request, work / "motion.mp4"))
        motions.append(box[0])
    assert clip is not None
    render = min(renders, key=lambda t: t.wall_s)
    floor = min(floors, key=lambda t: t.wall_s)
    motion = min(motions, key=lambda t: t.wall_s)
    ass = work / "graph.ass"
    ass.write_text(to_ass(request.cues, request.width, request.height), "utf-8")
    with timed() as box:
        _run(graph_only_command(assembler, request, ass))
    graph_only = box[0]

    naive: Timing | None = None
    competent: Timing | None = None
    naives: list[Timing] = []
    competents: list[Timing] = []
    if not skip_moviepy:
        for _ in range(moviepy_repeat):  # alternating, as the render and floors do
            with timed() as box:
                moviepy_naive(request, work / "moviepy.mp4", work)
            naives.append(box[0])
            with timed() as box:
                moviepy_competent(request, work / "moviepy-competent.mp4", work, assembler, SECONDS)
            competents.append(box[0])
        naive = min(naives, key=lambda t: t.wall_s)
        competent = min(competents, key=lambda t: t.wall_s)
    harvested = harvest()
    scale = scale_run(work / "scale")
    voice = voice_speed(work, repeat)
    load_after = os.getloadavg()
    stolen = steal_pct(ticks_before, cpu_ticks())

    mb_per_20s = clip.size_bytes / 1e6 * 20.0 / clip.duration_s
    result: dict[str, Any] = {
        "render_s": round(render.wall_s, 3),
        "render_cpu_s": round(render.cpu_s, 3),
        "floor_s": round(floor.wall_s, 3),
        "floor_cpu_s": round(floor.cpu_s, 3),
        "render_vs_floor": round(render.wall_s / floor.wall_s, 3),
        "render_vs_floor_cpu": round(render.cpu_s / floor.cpu_s, 3),
        "motion_floor_s": round(motion.wall_s, 3),
        "motion_floor_cpu_s": round(motion.cpu_s, 3),
        "render_vs_motion_floor": round(render.wall_s / motion.wall_s, 3),
        "render_vs_motion_floor_cpu": round(render.cpu_s / motion.cpu_s, 3),
        "graph_only_s": round(graph_only.wall_s, 3),
        "graph_only_cpu_s": round(graph_only.cpu_s, 3),
        "moviepy_naive_s": round(naive.wall_s, 3) if naive else None,
        "moviepy_naive_cpu_s": round(naive.cpu_s, 3) if naive else None,
        "moviepy_naive_runs_s": [round(t.wall_s, 3) for t in naives],
        "moviepy_s": round(competent.wall_s, 3) if competent else None,
        "moviepy_cpu_s": round(competent.cpu_s, 3) if competent else None,
        "moviepy_runs_s": [round(t.wall_s, 3) for t in competents],
        "speedup_vs_moviepy": round(competent.wall_s / render.wall_s, 2) if competent else None,
        "speedup_vs_moviepy_cpu": round(competent.cpu_s / render.cpu_s, 2) if competent else None,
        "speedup_vs_moviepy_naive": round(naive.wall_s / render.wall_s, 2) if naive else None,
        "episode_mb_per_20s": round(mb_per_20s, 3),
        "episode_bytes": clip.size_bytes,
        "peak_rss_mb": round(max(rss_self, rss_children), 1),
        "peak_rss_self_mb": round(rss_self, 1),
        "peak_rss_children_mb": round(rss_children, 1),
        **harvested,
        **scale,
        **voice,
        "render_runs_s": [round(t.wall_s, 3) for t in renders],
        "floor_runs_s": [round(t.wall_s, 3) for t in floors],
        "cpus": os.cpu_count(),
        "load_avg_before": [round(x, 2) for x in load_before],
        "load_avg_after": [round(x, 2) for x in load_after],
        "cpu_steal_pct": stolen,
        "clip": f"{WIDTH}x{HEIGHT} {FPS}fps {SECONDS:g}s film",
    }
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        for name in ("clip.mp4", "clip.jpg", "clip.srt", "floor.mp4", "moviepy.mp4",
                     "moviepy-competent.mp4"):  # fmt: skip
            if (work / name).exists():
                shutil.copy2(work / name, keep / name)
    _report(result)
    return result


def _report(r: dict[str, Any]) -> None:
    print(
        f"clip: {r['clip']}, {r['cpus']} CPUs, load {r['load_avg_before']}, "
        f"{r['cpu_steal_pct']}% of CPU time stolen by the hypervisor during the run"
    )
    print(f"render        {r['render_s']:7.2f} s wall {r['render_cpu_s']:7.2f} s CPU")
    print(f"floor         {r['floor_s']:7.2f} s wall {r['floor_cpu_s']:7.2f} s CPU")
    print(
        f"render/floor  {r['render_vs_floor']:7.2f} wall   {r['render_vs_floor_cpu']:7.2f} CPU"
        "   (target <= 1.3)"
    )
    print(
        f"motion floor  {r['motion_floor_s']:7.2f} s wall {r['motion_floor_cpu_s']:7.2f} s CPU"
        f"   render/motion floor {r['render_vs_motion_floor']:.2f} wall, "
        f"{r['render_vs_motion_floor_cpu']:.2f} CPU"
    )
    print(f"graph only    {r['graph_only_s']:7.2f} s wall {r['graph_only_cpu_s']:7.2f} s CPU")
    if r["moviepy_naive_s"] is not None:
        print(
            f"moviepy naive {r['moviepy_naive_s']:7.2f} s wall {r['moviepy_naive_cpu_s']:7.2f} s "
            f"CPU, speedup {r['speedup_vs_moviepy_naive']:.1f}x wall"
        )
        print(
            f"moviepy       {r['moviepy_s']:7.2f} s wall {r['moviepy_cpu_s']:7.2f} s CPU, "
            f"speedup {r['speedup_vs_moviepy']:.1f}x wall, "
            f"{r['speedup_vs_moviepy_cpu']:.1f}x CPU (target >= 3; grain drawn once, the "
            "render's x264 settings)"
        )
    print(f"episode       {r['episode_mb_per_20s']:7.2f} MB per 20 s (target <= 8)")
    print(
        f"peak RSS      {r['peak_rss_mb']:7.1f} MB (process {r['peak_rss_self_mb']:.0f}, "
        f"largest child {r['peak_rss_children_mb']:.0f}; target <= 400)"
    )
    if r["voice_realtime_factor"] is not None:
        print(
            f"piper voice   {r['voice_realtime_factor']:7.2f}x real time on "
            f"{r['voice_speech_s']:.1f} s of speech ({r['voice_realtime_factor_cpu']:.2f}x per "
            f"CPU second; load {r['voice_load_s']:.2f} s; target >= 5)"
        )
    print(
        f"harvest 10k   {r['harvest_10k_s']:7.2f} s SQLite, median of {r['harvest_10k_runs_s']} "
        f"({r['harvest_10k_cpu_s']:.2f} s CPU here, {r['harvest_workers']} moderation "
        f"worker(s), {r['harvest_10k_steal_pct']}% stolen; target <= 1), "
        f"{r['harvest_10k_pg_s']:.2f} s PostgreSQL; results checked"
    )
    big = r["harvest_100k_s"]
    print(
        "harvest 100k  "
        + (
            f"{big:7.2f} s SQLite, median of {r['harvest_100k_runs_s']} (target <= 12)"
            if big is not None
            else r["harvest_100k_s_note"]
        )
    )
    print(
        f"throughput    {r['episodes_per_hour_1worker']:7.0f} episodes/hour with 1 worker, "
        f"{r['episodes_per_hour_2workers']:.0f} with 2; 1→2 workers ×{r['worker_scaling_2x']} "
        f"(median of {r['worker_scaling_2x_runs']})"
    )
    print(json.dumps(r, sort_keys=True))


if __name__ == "__main__":
    main()
