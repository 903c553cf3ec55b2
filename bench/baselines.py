"""The competent moviepy 2 render of the bench clip: the baseline ``speedup_vs_moviepy`` uses.

The same picture as ``bench.run.moviepy_naive`` (the still zoomed and panned by the
assembler's own motion plan, Pillow bicubic; grain; TextClip subtitles; the narration), done
as someone who knows moviepy would: the grain is a bank of frames drawn once and added as
integers (not a float64 Gaussian per frame), and the encoder gets the render's own x264
settings (preset, CRF, profile, x264 params, rate cap, encoder threads) taken from
``FfmpegAssembler.encoder_args``, so both encode the same way and only the pipeline differs.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np

from generation.clip.base import ClipRequest
from generation.clip.ffmpeg import (
    AUDIO_K,
    ENCODER_THREADS,
    SAMPLE_RATE,
    FfmpegAssembler,
    plan_motion,
)

GRAIN_FRAMES = 24  # one second of distinct grain, then it repeats
GRAIN_SIGMA = 9.0
# The video options of ``encoder_args`` moviepy takes as ``ffmpeg_params`` (it sets the codec,
# preset and thread count itself; its own "-pix_fmt" comes last and x264 settles on 4:2:0).
_VIDEO_OPTIONS = ("-crf", "-profile:v", "-pix_fmt", "-x264-params", "-maxrate", "-bufsize")


def x264_params(assembler: FfmpegAssembler, fps: int) -> list[str]:
    """The render's video encoder options, as ``write_videofile(ffmpeg_params=...)``."""
    args = assembler.encoder_args(fps)
    out: list[str] = []
    for option, value in itertools.pairwise(args):
        if option in _VIDEO_OPTIONS:
            out += [option, value]
    missing = set(_VIDEO_OPTIONS) - set(out)
    if missing:  # the render's encoder changed shape: the baseline would no longer match it
        raise RuntimeError(f"encoder_args no longer has {sorted(missing)}: update the baseline")
    return out


def moviepy_competent(
    request: ClipRequest, out: Path, work: Path, assembler: FfmpegAssembler, seconds: float
) -> None:
    """The clip through moviepy with precomputed grain and the render's encoder settings."""
    from moviepy import (  # type: ignore[import-untyped]
        AudioFileClip,
        CompositeAudioClip,
        CompositeVideoClip,
        ImageClip,
        TextClip,
    )
    from PIL import Image

    w, h, fps, total = request.width, request.height, request.fps, seconds
    motion = plan_motion(request.seed, total)
    rng = np.random.default_rng(request.seed)
    bank = np.clip(rng.normal(0.0, GRAIN_SIGMA, (GRAIN_FRAMES, h, w, 1)), -127, 127)
    grain = bank.astype(np.int8)
    del bank
    buffer = np.empty((h, w, 3), np.int16)

    def ken_burns(get_frame: Callable[[float], np.ndarray], t: float) -> np.ndarray:
        f = min(1.0, t / total)
        zoom = motion.zoom_from + (motion.zoom_to - motion.zoom_from) * f
        cw, ch = w / zoom, h / zoom
        x = (w - cw) * (motion.x_from + (motion.x_to - motion.x_from) * f)
        y = (h - ch) * (motion.y_from + (motion.y_to - motion.y_from) * f)
        frame = Image.fromarray(get_frame(t)).resize(
            (w, h), Image.Resampling.BICUBIC, box=(x, y, x + cw, y + ch)
        )
        np.add(np.asarray(frame), grain[round(t * fps) % GRAIN_FRAMES], out=buffer)
        return np.clip(buffer, 0, 255).astype(np.uint8)

    still = np.asarray(Image.open(request.still).convert("RGB").resize((w, h)))
    picture = ImageClip(still, duration=total).transform(ken_burns)
    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
    subtitles = [
        TextClip(
            font=font if Path(font).is_file() else None,
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
        fps=fps,
        codec="libx264",
        preset=assembler.preset,
        threads=ENCODER_THREADS,
        ffmpeg_params=x264_params(assembler, fps),
        audio_codec="aac",
        audio_bitrate=f"{AUDIO_K}k",
        audio_fps=SAMPLE_RATE,
        temp_audiofile=str(work / "moviepy-competent-audio.m4a"),
        logger=None,
    )
    video.close()
