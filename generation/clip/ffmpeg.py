"""Clip backend: one ffmpeg run turns a still and its narration into a Ken Burns MP4."""

from __future__ import annotations

import math
import random
import re
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from generation.clip.base import ClipInfo, ClipRequest
from generation.clip.subtitles import to_ass
from generation.files import atomic_output
from story_state.errors import BackendUnavailable, GenerationError

LOOKS = ("clean", "film", "vhs")
OVERSAMPLE = 2  # zoompan crops whole source pixels; a 2x source halves the visible stepping
ENCODER_THREADS = 4  # fixed, because x264's output depends on its thread count
SAMPLE_RATE = 48_000
TIMEOUT_S = 600.0
_GRAPH_SPECIAL = re.compile(r"([\\'\[\],;])")


@dataclass(frozen=True)
class Motion:
    """A pan/zoom path: zoom factors and window positions (0..1 of the free margin)."""

    zoom_from: float
    zoom_to: float
    x_from: float
    x_to: float
    y_from: float
    y_to: float


def plan_motion(seed: int, duration_s: float) -> Motion:
    """Zoom in or out and drift one way, all chosen by the seed; slower over longer clips."""
    rng = random.Random(seed)
    amount = min(0.2, max(0.06, 0.008 * duration_s)) * rng.uniform(0.85, 1.15)
    zoom_in = rng.random() < 0.5
    angle = rng.uniform(0.0, 2.0 * math.pi)
    reach = rng.uniform(0.3, 0.5)
    dx, dy = reach * math.cos(angle), reach * math.sin(angle) * 0.6
    zooms = (1.0, 1.0 + amount) if zoom_in else (1.0 + amount, 1.0)
    return Motion(*zooms, 0.5 - dx, 0.5 + dx, 0.5 - dy, 0.5 + dy)


def filter_path(path: Path) -> str:
    """Quote a file name as a filter option value, then escape that for the graph parser."""
    quoted = "'" + str(path).replace("'", "'\\''") + "'"
    return _GRAPH_SPECIAL.sub(r"\\\1", quoted)


def _zoompan(motion: Motion, frames: int, width: int, height: int, fps: int) -> str:
    step = f"on/{max(1, frames - 1)}"

    def lerp(a: float, b: float) -> str:
        return f"({a:.6f}+({b - a:.6f})*{step})"

    z = lerp(motion.zoom_from, motion.zoom_to)
    x = f"(iw-iw/zoom)*{lerp(motion.x_from, motion.x_to)}"
    y = f"(ih-ih/zoom)*{lerp(motion.y_from, motion.y_to)}"
    return f"zoompan=z='{z}':x='{x}':y='{y}':d={frames}:s={width}x{height}:fps={fps}"


def _mask(look: str, width: int, height: int) -> str:
    """A one-frame black layer whose alpha holds the vignette (and VHS scanlines)."""
    radius = "hypot((X-W/2)/(W/2),(Y-H/2)/(H/2))/sqrt(2)"
    vignette = f"{0.8 if look == 'vhs' else 0.72}*pow({radius},2.4)"
    period = max(2, round(height / 240))
    scan = f"0.22*eq(mod(Y,{period}),0)" if look == "vhs" else "0"
    alpha = f"255*(1-(1-{vignette})*(1-{scan}))"
    return (
        f"color=c=black:s={width}x{height}:d=1:r=1,format=yuva420p,"
        f"geq=lum=16:cb=128:cr=128:a='{alpha}'"
    )


def _look(look: str, seed: int, width: int) -> tuple[list[str], list[str]]:
    """Filters before zoompan (once, on the still) and after it (every frame)."""
    if look == "clean":
        return [], []
    rng = random.Random(seed ^ 0x5EED)
    phase = rng.uniform(0, 1000)
    # A warm grade with lifted blacks, as a print of an old negative would have.
    pre = ["curves=r='0/0.05 0.5/0.54 1/0.98':g='0/0.04 0.5/0.5 1/0.95':b='0/0.07 0.5/0.45 1/0.86'"]
    # Projector flicker: a pseudo-random level held for 1/8 s. Changing it every frame would
    # cost x264 about 20% more CPU and bits for a difference nobody sees.
    flicker = f"0.011*sin(floor(t*8)*12.9898+{phase:.3f})"
    post = [f"eq=brightness='{flicker}':eval=frame"]
    grain = 13
    if look == "vhs":
        shift = 2 * OVERSAMPLE * max(1, round(width / 640))
        pre += [
            "format=yuv444p",
            "eq=saturation=0.82:contrast=0.94",
            f"gblur=sigma={0.8 * OVERSAMPLE:.1f}",
            f"gblur=sigma={2.5 * OVERSAMPLE:.1f}:planes=6",  # smeared colour, sharper luma
            f"chromashift=cbh={shift}:crh={-shift}",
        ]
        grain = 15
    # Per-pixel noise is what x264 discards first; softened into clumps it survives encoding.
    post[:0] = [f"noise=c0s={grain}:c0f=t+u:all_seed={seed % 2**31}", "avgblur=sizeX=1:planes=1"]
    return pre, post


def build_graph(request: ClipRequest, total_s: float, ass: Path | None) -> str:
    """The whole -filter_complex: [0:v] still → [v], [1:a] narration → [a]."""
    w, h, fps = request.width, request.height, request.fps
    frames = max(1, round(total_s * fps))
    big_w, big_h = w * OVERSAMPLE, h * OVERSAMPLE
    pre, post = _look(request.look, request.seed, w)
    video = [
        f"scale={big_w}:{big_h}:force_original_aspect_ratio=increase:flags=lanczos",
        f"crop={big_w}:{big_h}",
        "setsar=1",
        "format=rgb24",
        *pre,
        "format=yuv420p",
        _zoompan(plan_motion(request.seed, total_s), frames, w, h, fps),
    ]
    chains = []
    if request.look == "clean":
        chains.append("[0:v]" + ",".join(video) + "[z]")
    else:
        chains.append("[0:v]" + ",".join(video) + "[k]")
        chains.append(_mask(request.look, w, h) + "[m]")
        chains.append("[k][m]overlay=format=yuv420:eof_action=repeat[z]")
    tail = [*post]
    if ass is not None:
        tail.append(f"ass=filename={filter_path(ass)}")
    tail += ["format=yuv420p", "setsar=1"]
    chains.append("[z]" + ",".join(tail) + "[v]")
    delay = round(request.lead_in_s * SAMPLE_RATE)
    chains.append(
        f"[1:a]aresample={SAMPLE_RATE},adelay=delays={delay}S:all=1,"
        f"apad=whole_dur={total_s:.6f},"
        f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo[a]"
    )
    return ";".join(chains)


def speech_seconds(path: Path) -> float:
    try:
        with wave.open(str(path), "rb") as wav:
            return wav.getnframes() / wav.getframerate()
    except (OSError, EOFError, wave.Error, ZeroDivisionError) as exc:
        raise GenerationError(f"narration is not a readable WAV file: {path}: {exc}") from exc


def _check(request: ClipRequest) -> None:
    if request.look not in LOOKS:
        raise ValueError(f"look must be one of {LOOKS}, got {request.look!r}")
    if request.width < 16 or request.height < 16 or request.width % 2 or request.height % 2:
        raise ValueError(
            f"frame size must be even and at least 16: {request.width}x{request.height}"
        )
    if not 1 <= request.fps <= 120:
        raise ValueError(f"fps must be 1..120, got {request.fps}")
    if request.lead_in_s < 0 or request.tail_s < 0:
        raise ValueError("lead_in_s and tail_s must not be negative")


class FfmpegAssembler:
    """H.264 High / AAC-LC MP4 with faststart; the same request gives the same frames."""

    def __init__(
        self,
        ffmpeg: str | None = None,
        preset: str = "veryfast",
        crf: int = 23,
        x264_params: str = "subme=1",  # ~40% less encoder CPU than veryfast's subme=2, ~1% larger
    ) -> None:
        self._ffmpeg = ffmpeg
        self.preset, self.crf, self.x264_params = preset, crf, x264_params

    @property
    def ffmpeg(self) -> str:
        if self._ffmpeg is None:
            try:
                import imageio_ffmpeg

                self._ffmpeg = str(imageio_ffmpeg.get_ffmpeg_exe())
            except (ImportError, RuntimeError) as exc:
                raise BackendUnavailable(f"no ffmpeg: pip install imageio-ffmpeg ({exc})") from exc
        return self._ffmpeg

    def assemble(self, request: ClipRequest, out: Path) -> ClipInfo:
        _check(request)
        total = request.lead_in_s + speech_seconds(request.narration) + request.tail_s
        with atomic_output(out) as tmp:
            ass = None
            if request.cues:
                # Kept beside the clip as a sidecar for players and platforms.
                with atomic_output(out.with_suffix(".ass")) as ass_tmp:
                    ass_tmp.write_text(to_ass(request.cues, request.width, request.height), "utf-8")
                ass = out.with_suffix(".ass")
            self._run(self.command(request, total, ass, tmp))
        return ClipInfo(path=out, duration_s=total)

    def command(
        self, request: ClipRequest, total_s: float, ass: Path | None, out: Path
    ) -> list[str]:
        rate = str(request.fps)
        # "file:" keeps a name like "http:x.png" or "concat:a|b" from choosing a protocol.
        return [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-i", f"file:{request.still}", "-i", f"file:{request.narration}",
            "-filter_complex", build_graph(request, total_s, ass),
            "-map", "[v]", "-map", "[a]", "-t", f"{total_s:.6f}",
            "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf),
            "-profile:v", "high", "-pix_fmt", "yuv420p", "-r", rate,
            *(["-x264-params", self.x264_params] if self.x264_params else []),
            "-maxrate", "4M", "-bufsize", "8M", "-threads:v", str(ENCODER_THREADS),
            "-c:a", "aac", "-b:a", "128k", "-ar", str(SAMPLE_RATE), "-ac", "2",
            "-map_metadata", "-1", "-map_chapters", "-1",
            "-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4", str(out),
        ]  # fmt: skip

    def _run(self, args: list[str]) -> None:
        try:
            proc = subprocess.run(args, capture_output=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise GenerationError(f"ffmpeg took longer than {TIMEOUT_S:.0f}s") from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot run {args[0]}: {exc}") from exc
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-1500:] or "(no output)"
            raise GenerationError(f"ffmpeg exited with {proc.returncode}: {tail}")
