"""Clip backend: one ffmpeg run turns a still and its narration into a Ken Burns MP4.

The same run writes a poster frame (JPEG); the subtitles go beside the clip as ASS and SRT
sidecars. The finished file is probed (codec, profile, pixel format, AAC-LC, size, duration,
faststart) before it replaces anything.
"""

from __future__ import annotations

import math
import random
import re
import subprocess
import wave
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from generation.clip.base import ClipInfo, ClipRequest, Cue
from generation.clip.probe import validate_clip
from generation.clip.subtitles import to_ass, to_srt
from generation.files import atomic_output
from story_state.errors import BackendUnavailable, GenerationError

LOOKS = ("clean", "film", "vhs")
OVERSAMPLE = 2  # zoompan crops whole source pixels; a 2x source halves the visible stepping
ENCODER_THREADS = 4  # fixed, because x264's output depends on its thread count
SAMPLE_RATE = 48_000
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


def pan_zoom(motion: Motion, frames: int, width: int, height: int, fps: int) -> str:
    """The zoompan filter that moves the camera along ``motion`` over ``frames`` frames."""
    step = f"on/{max(1, frames - 1)}"

    def lerp(a: float, b: float) -> str:
        return f"({a:.6f}+({b - a:.6f})*{step})"

    z = lerp(motion.zoom_from, motion.zoom_to)
    x = f"(iw-iw/zoom)*{lerp(motion.x_from, motion.x_to)}"
    y = f"(ih-ih/zoom)*{lerp(motion.y_from, motion.y_to)}"
    return f"zoompan=z='{z}':x='{x}':y='{y}':d={frames}:s={width}x{height}:fps={fps}"


def _mask(look: str, width: int, height: int) -> str:
    """One black frame whose alpha holds the vignette (and VHS scanlines); clean: none."""
    base = f"color=c=black@0:s={width}x{height}:d=1:r=1,format=yuva420p"
    if look == "clean":
        return base
    radius = "hypot((X-W/2)/(W/2),(Y-H/2)/(H/2))/sqrt(2)"
    vignette = f"{0.8 if look == 'vhs' else 0.72}*pow({radius},2.4)"
    period = max(2, round(height / 240))
    scan = f"0.22*eq(mod(Y,{period}),0)" if look == "vhs" else "0"
    alpha = f"255*(1-(1-{vignette})*(1-{scan}))"
    return f"{base},geq=lum=16:cb=128:cr=128:a='{alpha}'"


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
    if look == "vhs":
        shift = 2 * OVERSAMPLE * max(1, round(width / 640))
        pre += [
            "format=yuv444p",
            "eq=saturation=0.82:contrast=0.94",
            f"gblur=sigma={0.8 * OVERSAMPLE:.1f}",
            f"gblur=sigma={2.5 * OVERSAMPLE:.1f}:planes=6",  # smeared colour, sharper luma
            f"chromashift=cbh={shift}:crh={-shift}",
        ]
    return pre, [*grain_filters(look, seed), *post]


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


def _layer(request: ClipRequest, total_s: float, ass: Path | None) -> list[str]:
    """The overlay layer: the vignette mask with the subtitles drawn on it by libass.

    libass draws only at the few instants the cues change (``cue_changes``), not on every
    frame; overlay then holds each drawn layer until the next one. One blend per frame
    does both the vignette and the subtitles.
    """
    mask = _mask(request.look, request.width, request.height)
    if ass is None:
        return [mask + "[m]"]
    changes = cue_changes(request.cues, total_s)
    at = "+".join(f"{round(t * 1000)}*eq(N,{i})" for i, t in enumerate(changes) if i) or "0"
    return [
        f"{mask},loop=loop={len(changes) - 1}:size=1,settb=1/1000,setpts='{at}',"
        f"ass=filename={filter_path(ass)}:alpha=1[m]"
    ]


def _audio(request: ClipRequest, total_s: float) -> list[str]:
    """Narration after the lead-in, padded to the clip; a looped, ducked music bed if any."""
    fmt = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
    delay = round(request.lead_in_s * SAMPLE_RATE)
    voice = (
        f"[1:a]aresample={SAMPLE_RATE},adelay=delays={delay}S:all=1,"
        f"apad=whole_dur={total_s:.6f},{fmt}"
    )
    if request.music is None:
        return [voice + "[a]"]
    fade_in, fade_out = min(1.0, total_s / 4), min(1.5, total_s / 4)
    return [
        voice + ",asplit[voice][key]",
        f"[2:a]aresample={SAMPLE_RATE},{fmt},atrim=duration={total_s:.6f},"
        f"volume={request.music_gain_db:.2f}dB,afade=t=in:d={fade_in:.3f},"
        f"afade=t=out:st={total_s - fade_out:.6f}:d={fade_out:.3f}[bed]",
        # The voice pushes the bed down about 10 dB while it speaks, and lets it back up.
        "[bed][key]sidechaincompress=threshold=0.05:ratio=3:attack=30:release=600[ducked]",
        f"[voice][ducked]amix=inputs=2:duration=first:normalize=0,{fmt}[a]",
    ]


def _source(request: ClipRequest) -> list[str]:
    """The still at twice the frame size, graded once: everything zoompan samples from."""
    big_w, big_h = request.width * OVERSAMPLE, request.height * OVERSAMPLE
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
    request: ClipRequest, total_s: float, ass: Path | None, poster: bool = False
) -> str:
    """The whole -filter_complex: [0:v] still → [v], [1:a] narration (+ [2:a] music) → [a].

    With ``poster``, [p] is one frame a third of the way in, with the look but without the
    subtitles. It branches off the graded still (a single frame) and crops the window
    zoompan uses then: a branch off the moving picture would make ffmpeg queue every frame
    before the poster in memory.
    """
    w, h, fps = request.width, request.height, request.fps
    frames = max(1, round(total_s * fps))
    _, post = _look(request.look, request.seed, w)
    motion = plan_motion(request.seed, total_s)
    source = "[0:v]" + ",".join(_source(request))
    chains = [f"{source},split[src][psrc]" if poster else f"{source}[src]"]
    chains.append("[src]" + ",".join([pan_zoom(motion, frames, w, h, fps), *post]) + "[z]")
    if request.look != "clean" or ass is not None:
        chains += _layer(request, total_s, ass)
        chains.append("[z][m]overlay=format=yuv420:eof_action=repeat,setsar=1[v]")
    else:
        chains.append("[z]setsar=1[v]")
    if poster:
        chains += _poster(request, motion, frames)
    chains += _audio(request, total_s)
    return ";".join(chains)


def _poster(request: ClipRequest, motion: Motion, frames: int) -> list[str]:
    """[psrc] (the graded still) → [p]: the window zoompan shows a third of the way in."""
    w, h = request.width, request.height
    f = min(frames - 1, frames // 3) / max(1, frames - 1)
    zoom = min(max(motion.zoom_from + (motion.zoom_to - motion.zoom_from) * f, 1.0), 10.0)
    big_w, big_h = w * OVERSAMPLE, h * OVERSAMPLE
    x = (big_w - big_w / zoom) * (motion.x_from + (motion.x_to - motion.x_from) * f)
    y = (big_h - big_h / zoom) * (motion.y_from + (motion.y_to - motion.y_from) * f)
    crop = f"crop={int(big_w / zoom)}:{int(big_h / zoom)}:{int(max(0.0, x))}:{int(max(0.0, y))}"
    _, post = _look(request.look, request.seed, w)
    jpeg = "scale=out_range=full,format=yuvj420p"  # JPEG wants full range
    chain = "[psrc]" + ",".join([crop, f"scale={w}:{h}:flags=bicubic", *post])
    if request.look == "clean":
        return [f"{chain},{jpeg}[p]"]
    mask = _mask(request.look, w, h)
    return [f"{chain}[pz]", f"{mask}[pm]", f"[pz][pm]overlay=format=yuv420,{jpeg}[p]"]


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
    """H.264 High / AAC-LC MP4 with faststart; the same request gives the same frames."""

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
    ) -> None:
        self._ffmpeg = ffmpeg
        self.preset, self.crf, self.x264_params = preset, crf, x264_params
        self.max_seconds, self.poster = max_seconds, poster

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
            self._run(self.command(request, total, ass, tmp, poster_tmp))
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
    ) -> list[str]:
        # "file:" keeps a name like "http:x.png" or "concat:a|b" from choosing a protocol.
        inputs = ["-i", f"file:{request.still}", "-i", f"file:{request.narration}"]
        if request.music is not None:
            inputs += ["-stream_loop", "-1", "-i", f"file:{request.music}"]
        args = [
            self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *inputs,
            "-filter_complex", build_graph(request, total_s, ass, poster is not None),
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
        try:
            proc = subprocess.run(args, capture_output=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise GenerationError(f"ffmpeg took longer than {TIMEOUT_S:.0f}s") from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot run {args[0]}: {exc}") from exc
        if proc.returncode != 0:
            tail = proc.stderr.decode("utf-8", "replace").strip()[-1500:] or "(no output)"
            raise GenerationError(f"ffmpeg exited with {proc.returncode}: {tail}")
