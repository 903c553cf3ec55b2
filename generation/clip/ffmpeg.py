"""Clip backend: one ffmpeg run turns a still and its narration into a Ken Burns MP4.

The same run writes a poster frame (JPEG); the subtitles go beside the clip as ASS and SRT
sidecars. The finished file is probed (codec, profile, pixel format, AAC-LC, size, duration,
faststart) before it replaces anything.
"""

from __future__ import annotations

import math
import random
import re
import wave
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from generation.clip.audio import SAMPLE_RATE as SAMPLE_RATE  # the cut and the bench use it
from generation.clip.audio import Levels, measure_levels, soundtrack
from generation.clip.base import ClipInfo, ClipRequest, Cue
from generation.clip.probe import validate_clip
from generation.clip.subtitles import to_ass, to_srt
from generation.files import atomic_output
from generation.tools import run_tool
from story_state.errors import BackendUnavailable, GenerationError

LOOKS = ("clean", "film", "vhs")
# The camera always shows at least this much zoom, so that there is room to pan at the edges.
PAN_ROOM = 1.06
# The most the zoom changes over a clip. Each distinct zoom level is a picture x264 must encode
# from scratch rather than predict by a whole-pixel shift, so this range, not the clip's length,
# sets what the camera move costs: 0.08 at 1280 px is about 100 levels (see ``make bench``).
MAX_ZOOM_CHANGE = 0.08
ENCODER_THREADS = 4  # fixed, because x264's output depends on its thread count
TIMEOUT_S = 600.0
MAX_SECONDS = 140.0  # X's cap for ordinary accounts; Mastodon servers allow about as long
MAX_LONG_SIDE, MAX_SHORT_SIDE = 1280, 720  # 720p, landscape or vertical
GOP_SECONDS = 2  # a closed GOP this long: platforms cut and seek at keyframes
# Video rate cap: (2.8 Mbit/s * 20 s + 4 Mbit VBV buffer) / 8 = 7.5 MB, plus 0.3 MB of audio,
# keeps even a worst-case still under 8 MB per 20 s. Typical clips use a third of it.
VIDEO_MAXRATE_K, VIDEO_BUFSIZE_K, AUDIO_K = 2800, 4000, 128
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

    def at(self, frame: int, frames: int) -> tuple[float, float, float]:
        """Zoom and window position (fractions of the margin) at ``frame`` of ``frames``."""
        f = min(max(frame, 0), frames - 1) / max(1, frames - 1)
        return (
            self.zoom_from + (self.zoom_to - self.zoom_from) * f,
            self.x_from + (self.x_to - self.x_from) * f,
            self.y_from + (self.y_to - self.y_from) * f,
        )


def plan_motion(seed: int, duration_s: float) -> Motion:
    """Zoom in or out a little and pan across, directions chosen by the seed.

    The zoom alone changes by at most MAX_ZOOM_CHANGE (under 8 % of the picture), so the pan
    always crosses the whole horizontal margin, edge to edge: about 9 % of the frame's width
    at a 20 s clip's smallest zoom change. Only the gentle vertical drift varies in size.
    """
    rng = random.Random(seed)
    amount = min(MAX_ZOOM_CHANGE, max(0.03, 0.004 * duration_s)) * rng.uniform(0.85, 1.0)
    zoom_in = rng.random() < 0.5
    rightward = rng.random() < 0.5
    dy = rng.uniform(-0.3, 0.3)
    low, high = PAN_ROOM, PAN_ROOM + amount
    zooms = (low, high) if zoom_in else (high, low)
    xs = (0.0, 1.0) if rightward else (1.0, 0.0)
    return Motion(*zooms, *xs, 0.5 - dy, 0.5 + dy)


def filter_path(path: Path) -> str:
    """Quote a file name as a filter option value, then escape that for the graph parser."""
    quoted = "'" + str(path).replace("'", "'\\''") + "'"
    return _GRAPH_SPECIAL.sub(r"\\\1", quoted)


def _round(value: float) -> int:
    """ffmpeg's round(): halves away from zero (Python's round() goes to even)."""
    return math.floor(value + 0.5)


def level_size(zoom: float, width: int, height: int) -> tuple[int, int]:
    """The size the whole still is scaled to at ``zoom``; the frame is a crop of it.

    The long side is rounded and the short side follows it, so the picture changes size
    only when the long side does. The ``camera`` expressions compute the same numbers.
    """
    if width >= height:
        w = _round(width * zoom)
        return w, _round(w * height / width)
    h = _round(height * zoom)
    return _round(h * width / height), h


def source_size(motion: Motion, width: int, height: int) -> tuple[int, int]:
    """The graded still the camera samples from: the picture at the path's widest zoom."""
    return level_size(max(motion.zoom_from, motion.zoom_to), width, height)


def hold_still(frames: int, fps: int) -> list[str]:
    """The one decoded still repeated as ``frames`` frames at ``fps`` (no copies are made)."""
    return [f"loop=loop={frames - 1}:size=1", f"settb=1/{fps}", "setpts=N"]


def camera(motion: Motion, frames: int, width: int, height: int, fps: int) -> str:
    """The filters that turn the looped, graded still into the moving frames.

    The zoom is quantised to whole pixels of the picture's long side: ``select`` keeps only
    the frames where that size changes, ``scale`` resizes the still once for each of them,
    ``fps`` repeats each level until the next, and ``crop`` pans across it a whole pixel at
    a time. Between two levels consecutive frames differ by a whole-pixel shift, which x264
    predicts almost for free; zoompan would resample every frame, and its crop (rounded to
    even pixels in 4:2:0) makes the picture step back and forth.
    """
    last = max(1, frames - 1)
    z0, z1 = motion.zoom_from, motion.zoom_to

    def zoom(frame: str) -> str:
        return f"({z0:.6f}+({z1 - z0:.6f})*({frame})/{last})"

    def lerp(a: float, b: float) -> str:
        return f"({a:.6f}+({b - a:.6f})*n/{last})"

    long_side = max(width, height)
    changes = f"not(eq(round({long_side}*{zoom('n')}),round({long_side}*{zoom('n-1')})))"

    def size(frame: str) -> tuple[str, str]:  # level_size() as expressions
        if width >= height:
            w = f"round({width}*{zoom(frame)})"
            return w, f"round({w}*{height}/{width})"
        h = f"round({height}*{zoom(frame)})"
        return f"round({h}*{width}/{height})", h

    level_w, level_h = size(f"round(t*{fps})")
    # crop's iw/ih keep the first frame's size, so the level size is worked out again here;
    # crop itself never reads past the frame it is given.
    crop_w, crop_h = size("n")
    return ",".join(
        [
            f"select='eq(n,0)+eq(n,{last})+{changes}'",
            f"scale=w='{level_w}':h='{level_h}':eval=frame:flags=bicubic",
            f"fps={fps}",
            f"crop={width}:{height}:x='({crop_w}-{width})*{lerp(motion.x_from, motion.x_to)}'"
            f":y='({crop_h}-{height})*{lerp(motion.y_from, motion.y_to)}':exact=1",
        ]
    )


def _mask(look: str, width: int, height: int) -> str:
    """One black frame whose alpha holds the vignette (and VHS scanlines); clean: none."""
    base = f"color=c=black@0:s={width}x{height}:d=1:r=1,format=yuva420p"
    if look == "clean":
        return base
    # The vignette is smooth: worked out on a frame an eighth the size and scaled up, it
    # costs 1/64 of evaluating the expression for every pixel (about 0.2 s CPU at 720p).
    small = f"s={2 * max(1, width // 16)}x{2 * max(1, height // 16)}"
    radius = "hypot((X-W/2)/(W/2),(Y-H/2)/(H/2))/sqrt(2)"
    strength = 0.8 if look == "vhs" else 0.72
    chain = (
        f"color=c=black@0:{small}:d=1:r=1,format=yuva420p,"
        f"geq=lum=16:cb=128:cr=128:a='255*{strength}*pow({radius},2.4)',"
        f"scale={width}:{height}:flags=bicubic"
    )
    if look == "vhs":
        period = max(2, round(height / 240))
        scan = f"0.22*eq(mod(Y,{period}),0)"
        chain += f",geq=lum=16:cb=128:cr=128:a='255-(255-alpha(X,Y))*(1-{scan})'"
    return chain


def _look(look: str, seed: int, width: int) -> tuple[list[str], list[str]]:
    """Filters on the still (once, before the camera) and on every frame (after it)."""
    if look == "clean":
        return [], []
    # A warm grade with lifted blacks, as a print of an old negative would have.
    pre = ["curves=r='0/0.05 0.5/0.54 1/0.98':g='0/0.04 0.5/0.5 1/0.95':b='0/0.07 0.5/0.45 1/0.86'"]
    if look == "film":
        return pre, grain_filters(look, seed)
    # VHS: tape flicker, a pseudo-random level held for 1/8 s. It is left out of "film":
    # each change of the whole picture's level costs x264 about 10% more CPU and bits.
    phase = random.Random(seed ^ 0x5EED).uniform(0, 1000)
    flicker = f"0.011*sin(floor(t*8)*12.9898+{phase:.3f})"
    shift = 2 * max(1, round(width / 640))
    pre += [
        "format=yuv444p",
        "eq=saturation=0.82:contrast=0.94",
        "gblur=sigma=0.8",
        "gblur=sigma=2.5:planes=6",  # smeared colour, sharper luma
        f"chromashift=cbh={shift}:crh={-shift}",
    ]
    return pre, [*grain_filters(look, seed), f"eq=brightness='{flicker}':eval=frame"]


def grain_filters(look: str, seed: int) -> list[str]:
    """Film grain that changes every frame; none for the clean look."""
    if look == "clean":
        return []
    strength = 15 if look == "vhs" else 13
    # Per-pixel noise is what x264 discards first; softened into clumps it survives encoding.
    return [f"noise=c0s={strength}:c0f=t+u:all_seed={seed % 2**31}", "avgblur=sizeX=1:planes=1"]


def cue_changes(cues: Sequence[Cue], total_s: float) -> list[float]:
    """Times (on the ASS centisecond grid) where the set of visible subtitles can change."""
    times = {0.0}
    for cue in cues:
        if cue.end_s > cue.start_s:
            times |= {round(cue.start_s, 2), round(cue.end_s, 2)}
    return sorted(t for t in times if 0 <= t < total_s)


def _layer(request: ClipRequest, total_s: float, ass: Path | None, mask: str) -> list[str]:
    """The overlay layer: the vignette mask with the subtitles drawn on it by libass.

    libass draws only at the few instants the cues change (``cue_changes``), not on every
    frame; overlay then holds each drawn layer until the next one. One blend per frame
    does both the vignette and the subtitles.
    """
    if ass is None:
        return [f"{mask}null[m]"]
    changes = cue_changes(request.cues, total_s)
    at = "+".join(f"{round(t * 1000)}*eq(N,{i})" for i, t in enumerate(changes) if i) or "0"
    return [
        f"{mask}loop=loop={len(changes) - 1}:size=1,settb=1/1000,setpts='{at}',"
        f"ass=filename={filter_path(ass)}:alpha=1[m]"
    ]


def _source(request: ClipRequest, motion: Motion) -> list[str]:
    """The still at the path's widest zoom, graded once: everything the camera samples from."""
    big_w, big_h = source_size(motion, request.width, request.height)
    pre, _ = _look(request.look, request.seed, request.width)
    return [
        f"scale={big_w}:{big_h}:force_original_aspect_ratio=increase:flags=lanczos",
        f"crop={big_w}:{big_h}",
        "setsar=1",
        "format=rgb24",
        *pre,
        "format=yuv420p",
    ]


def build_graph(
    request: ClipRequest,
    total_s: float,
    ass: Path | None,
    poster: bool = False,
    levels: Levels | None = None,
    ambient: bool = False,
) -> str:
    """The whole -filter_complex: [0:v] still → [v], [1:a] narration (+ [2:a] music) → [a].

    ``levels`` are the measured gains (``measure_levels``; None: unity) and ``ambient`` adds
    the procedural bed when there is no music (see ``generation.clip.audio``).

    With ``poster``, [p] is one frame a third of the way in, with the look but without the
    subtitles. It branches off the graded still (a single frame) and takes the level and
    crop the camera shows then: a branch off the moving picture would make ffmpeg queue
    every frame before the poster in memory.
    """
    w, h, fps = request.width, request.height, request.fps
    frames = max(1, round(total_s * fps))
    _, post = _look(request.look, request.seed, w)
    motion = plan_motion(request.seed, total_s)
    source = "[0:v]" + ",".join(_source(request, motion))
    chains = [f"{source},split[src][psrc]" if poster else f"{source}[src]"]
    moving = [*hold_still(frames, fps), camera(motion, frames, w, h, fps), *post]
    chains.append("[src]" + ",".join(moving) + "[z]")
    layered = request.look != "clean" or ass is not None
    masked_poster = poster and request.look != "clean"
    if layered or masked_poster:
        # One mask frame for the video's layer and the poster.
        mask = _mask(request.look, w, h)
        if layered and masked_poster:
            chains.append(f"{mask},split[mask][pm]")
        else:
            chains.append(f"{mask}[{'mask' if layered else 'pm'}]")
    if layered:
        chains += _layer(request, total_s, ass, "[mask]")
        chains.append("[z][m]overlay=format=yuv420:eof_action=repeat,setsar=1[v]")
    else:
        chains.append("[z]setsar=1[v]")
    if poster:
        chains += _poster(request, motion, frames)
    chains += soundtrack(request, total_s, levels or Levels(), ambient)
    return ";".join(chains)


def _poster(request: ClipRequest, motion: Motion, frames: int) -> list[str]:
    """[psrc] (the graded still) → [p]: the frame the camera shows a third of the way in."""
    w, h = request.width, request.height
    zoom, fx, fy = motion.at(frames // 3, frames)
    level_w, level_h = level_size(zoom, w, h)
    x, y = round((level_w - w) * fx), round((level_h - h) * fy)  # crop uses lrint()
    _, post = _look(request.look, request.seed, w)
    jpeg = "scale=out_range=full,format=yuvj420p"  # JPEG wants full range
    frame = [f"scale={level_w}:{level_h}:flags=bicubic", f"crop={w}:{h}:{x}:{y}:exact=1"]
    chain = "[psrc]" + ",".join([*frame, *post])
    if request.look == "clean":
        return [f"{chain},{jpeg}[p]"]
    return [f"{chain}[pz]", f"[pz][pm]overlay=format=yuv420,{jpeg}[p]"]


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
    long_side, short_side = max(request.width, request.height), min(request.width, request.height)
    if long_side > MAX_LONG_SIDE or short_side > MAX_SHORT_SIDE:
        raise ValueError(
            f"frame size {request.width}x{request.height} is over what platforms take: "
            f"at most {MAX_LONG_SIDE}x{MAX_SHORT_SIDE} or {MAX_SHORT_SIDE}x{MAX_LONG_SIDE}"
        )
    if not 1 <= request.fps <= 120:
        raise ValueError(f"fps must be 1..120, got {request.fps}")
    if request.lead_in_s < 0 or request.tail_s < 0:
        raise ValueError("lead_in_s and tail_s must not be negative")
    if request.music is not None and not request.music.is_file():
        raise GenerationError(f"music bed not found: {request.music}")


class FfmpegAssembler:
    """H.264 High / AAC-LC MP4 with faststart; the same request gives the same frames.

    The sound is levelled to -16 LUFS with true peaks at or below -1.5 dBTP; ``ambient`` puts
    a quiet procedural bed under the narration when the request brings no music.
    """

    def __init__(
        self,
        ffmpeg: str | None = None,
        preset: str = "veryfast",
        crf: int = 23,
        # Measured on a 20 s 720p film clip against veryfast's own choices: subme=1 ~40% less
        # encoder CPU for ~1% more bits; me=dia finds a camera that moves under a pixel a
        # frame as well as hex does, ~8% less CPU; partitions=none (no 4x4/8x8 intra) ~15%
        # less CPU and ~9% smaller for an SSIM 0.0004 lower: grain hides what they add.
        x264_params: str = "subme=1:me=dia:partitions=none",
        max_seconds: float = MAX_SECONDS,
        poster: bool = True,
        ambient: bool = True,
    ) -> None:
        self._ffmpeg = ffmpeg
        self.preset, self.crf, self.x264_params = preset, crf, x264_params
        self.max_seconds, self.poster, self.ambient = max_seconds, poster, ambient

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
        speech = speech_seconds(request.narration)
        total = request.lead_in_s + speech + request.tail_s
        if total > self.max_seconds - 1.0 / request.fps:
            raise GenerationError(
                f"the clip would run {total:.1f}s (narration {speech:.1f}s + "
                f"{request.lead_in_s:g}s lead-in + {request.tail_s:g}s tail), over the "
                f"{self.max_seconds:g}s platforms accept: shorten the narration"
            )
        srt = out.with_suffix(".srt") if request.cues else None
        poster = out.with_suffix(".jpg") if self.poster else None
        levels = self.levels(request, total)
        # Every file goes to a temp name; on success all replace their targets together, the
        # clip last. On any failure, the platform check included, none of them does.
        with ExitStack() as stack:
            tmp = stack.enter_context(atomic_output(out))
            poster_tmp = stack.enter_context(atomic_output(poster)) if poster else None
            ass = None
            if srt is not None:
                # Sidecars for players and platforms that take captions as a file.
                ass = stack.enter_context(atomic_output(out.with_suffix(".ass")))
                ass.write_text(to_ass(request.cues, request.width, request.height), "utf-8")
                srt_tmp = stack.enter_context(atomic_output(srt))
                srt_tmp.write_text(to_srt(request.cues), "utf-8")
            self._run(self.command(request, total, ass, tmp, poster_tmp, levels))
            probe = validate_clip(
                tmp,
                max_width=MAX_LONG_SIDE,
                max_height=MAX_LONG_SIDE,
                max_seconds=self.max_seconds,
                name=out.name,
            )
        return ClipInfo(
            path=out, duration_s=total, srt=srt, poster=poster, size_bytes=probe.size_bytes
        )

    def levels(self, request: ClipRequest, total_s: float) -> Levels:
        """The gains that bring this clip's sound to -16 LUFS (two quick audio-only runs)."""
        return measure_levels(self.ffmpeg, request, total_s, self.ambient)

    def encoder_args(self, fps: int) -> list[str]:
        """x264 High with a closed GOP of ``GOP_SECONDS`` and a rate cap; shared with the cut."""
        gop = f"keyint={GOP_SECONDS * fps}:min-keyint={fps}:scenecut=0:open-gop=0"
        params = f"{gop}:{self.x264_params}" if self.x264_params else gop
        return [
            "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf),
            "-profile:v", "high", "-pix_fmt", "yuv420p", "-r", str(fps),
            "-x264-params", params,
            "-maxrate", f"{VIDEO_MAXRATE_K}k", "-bufsize", f"{VIDEO_BUFSIZE_K}k",
            "-threads:v", str(ENCODER_THREADS),
            "-c:a", "aac", "-b:a", f"{AUDIO_K}k", "-ar", str(SAMPLE_RATE), "-ac", "2",
            "-fflags", "+bitexact", "-flags:v", "+bitexact+cgop", "-flags:a", "+bitexact",
            "-movflags", "+faststart", "-f", "mp4",
        ]  # fmt: skip

    def command(
        self,
        request: ClipRequest,
        total_s: float,
        ass: Path | None,
        out: Path,
        poster: Path | None = None,
        levels: Levels | None = None,
    ) -> list[str]:
        # "file:" keeps a name like "http:x.png" or "concat:a|b" from choosing a protocol.
        inputs = ["-i", f"file:{request.still}", "-i", f"file:{request.narration}"]
        if request.music is not None:
            inputs += ["-stream_loop", "-1", "-i", f"file:{request.music}"]
        args = [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *inputs,
            # One filter thread: x264's threads already fill the cores, and slice-threaded
            # filters then wait on their slowest slice (measured: 12% longer wall time on
            # 2 cores, for the same CPU time). A fixed count also keeps output identical.
            "-filter_complex_threads", "1",
            "-filter_complex",
            build_graph(request, total_s, ass, poster is not None, levels, self.ambient),
            "-map", "[v]", "-map", "[a]", "-t", f"{total_s:.6f}",
            *self.encoder_args(request.fps),
            "-map_metadata", "-1", "-map_chapters", "-1", str(out),
        ]  # fmt: skip
        if poster is not None:
            args += [
                "-map", "[p]", "-frames:v", "1", "-c:v", "mjpeg", "-q:v", "3",
                "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact",
                "-f", "image2", "-update", "1", str(poster),
            ]  # fmt: skip
        return args

    def _run(self, args: list[str]) -> None:
        run_tool(args, what="ffmpeg", timeout_s=TIMEOUT_S)
