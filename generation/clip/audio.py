"""The clip's sound: narration levelled to -16 LUFS over a quiet ducked bed, peaks held down.

Loudness (EBU R 128, ffmpeg's ebur128 filter) is a property of the whole programme, so it is
measured before the render, in short audio-only ffmpeg runs on the narration as it was
written (mono at its own rate: about a quarter of the clip's 48 kHz stereo). The first
measures the raw narration and bed, which sets the bed's gain and a first narration gain. The
compressor and the peak limiter then take a little off, more the harder they are driven, so
the second measures the processed narration at that gain and 3 dB above it, and the gain that
lands on the target is read off the line through the two. The ambient bed is too quiet to
count (-24 LU adds about 0.02 LU); music may be set loud, so with music a third run measures
the whole mix and trims it. The limiter's ceiling sits below the true-peak target, leaving
room for the peaks between samples and for what the AAC encoder adds.

The ambient bed is synthesised by ffmpeg from the clip's seed alone (brown-noise rumble in
two decorrelated channels, a low hum with its harmonics, a slow drift from side to side), so
the same seed gives the same bed. An operator's music file, when there is one, takes its
place; either is pushed down (up to about 10 dB) while the narration speaks.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, replace
from typing import Final

from generation.clip.base import ClipRequest
from generation.tools import run_tool
from story_state.errors import GenerationError

SAMPLE_RATE: Final = 48_000
AMBIENT_RATE: Final = 8_000  # everything in the ambient bed lies below 400 Hz
TARGET_LUFS: Final = -16.0  # integrated, what podcast and social platforms play at
TRUE_PEAK_DBTP: Final = -1.5  # the most a finished clip may peak at
# The limiter's sample-peak ceiling. Measured on espeak-ng and Piper narration encoded as
# 128 kbit/s AAC, true peak lands 0.1-0.6 dB above the ceiling.
CEILING_DB: Final = -2.5
AMBIENT_LU: Final = -24.0  # the ambient bed's loudness relative to the narration's, before ducking
TWO_CHANNELS_LU: Final = 10 * math.log10(2)  # the mono narration goes to both channels
MAX_GAIN_DB: Final = 40.0
MAX_TRIM_DB: Final = 6.0
PROBE_STEP_DB: Final = 3.0
SILENT_LUFS: Final = -69.0  # ebur128 reports -70 for silence
MEASURE_TIMEOUT_S: Final = 300.0
STEREO: Final = f"aformat=sample_fmts=fltp:sample_rates={SAMPLE_RATE}:channel_layouts=stereo"
MONO: Final = "aformat=sample_fmts=fltp:channel_layouts=mono"  # at the narration's own rate
# Evens out the narration once it sits near the target (about -19 dBFS RMS in each channel):
# 2:1 above -15 dBFS takes about 3 dB off its loudest syllables and leaves the limiter little.
COMPRESSOR: Final = "acompressor=threshold=0.18:ratio=2:attack=10:release=150:knee=2"
# Keyed by the levelled narration, 15 dB over this threshold while it speaks: 3:1 pushes the
# bed down about 10 dB under steady speech, less between words.
DUCKER: Final = "sidechaincompress=threshold=0.02:ratio=3:attack=30:release=600"
_SUMMARY = re.compile(r"\[ebur128@(\w+) @ [^\]]*\] Summary:(.*?)(?=\n\[|\Z)", re.DOTALL)
_INTEGRATED = re.compile(r"I:\s+(-?(?:\d+(?:\.\d*)?|inf))\s+LUFS")


@dataclass(frozen=True)
class Levels:
    """Gains in dB: the narration's, the bed's (ambient or music) and the mix's last trim."""

    voice_db: float = 0.0
    bed_db: float = 0.0
    trim_db: float = 0.0


def _limiter() -> str:
    ceiling = 10 ** (CEILING_DB / 20)
    # level=0: no make-up gain to the ceiling; latency=1: no delay added to the sound.
    return f"alimiter=limit={ceiling:.5f}:attack=5:release=80:level=0:latency=1"


def ambient_sources(seed: int, total_s: float) -> list[str]:
    """The ambient bed, raw, as chains ending in ``[amb]``: stereo at ``AMBIENT_RATE``.

    Made at 8 kHz (it has nothing above 400 Hz) and resampled once where it is mixed: a sixth
    of the work of making it at 48 kHz.
    """
    rng = random.Random(seed ^ 0xA3B1E7)
    left, right = rng.randrange(1, 2**31), rng.randrange(1, 2**31)
    hum = rng.uniform(46.0, 62.0)
    drift = rng.uniform(0.03, 0.07)  # side-to-side cycles per second
    span = f"r={AMBIENT_RATE}:d={total_s:.6f}"
    stereo = f"aformat=sample_fmts=fltp:sample_rates={AMBIENT_RATE}:channel_layouts=stereo"
    rumble = "lowpass=f=380:p=2,lowpass=f=380:p=2"
    hums = [(1.0, 0.05), (2.006, 0.03), (2.994, 0.015)]  # slightly off harmonics beat slowly
    return [
        f"anoisesrc={span}:c=brown:a=0.5:s={left},{rumble}[aml]",
        f"anoisesrc={span}:c=brown:a=0.5:s={right},{rumble}[amr]",
        "[aml][amr]join=inputs=2:channel_layout=stereo[amn]",
        *(
            f"sine=f={hum * k:.3f}:{span},volume={level},{stereo}[amh{i}]"
            for i, (k, level) in enumerate(hums)
        ),
        "[amn][amh0][amh1][amh2]amix=inputs=4:duration=first:normalize=0,"
        f"apulsator=hz={drift:.4f}:amount=0.3:offset_r=0.5,highpass=f=30,{stereo}[amb]",
    ]


def _bed(request: ClipRequest, total_s: float, ambient: bool, music: str) -> list[str] | None:
    """The raw bed as chains ending in ``[bed0]``, at its own rate: the music (``music`` is
    its input) or the ambient bed; None when there is neither."""
    if request.music is not None:
        stereo = "aformat=sample_fmts=fltp:channel_layouts=stereo"  # measured as it is mixed
        return [f"{music}{stereo},atrim=duration={total_s:.6f}[bed0]"]
    if ambient:
        return [*ambient_sources(request.seed, total_s), "[amb]anull[bed0]"]
    return None


def _narration(voice: str, gain_db: float | None) -> str:
    """The narration, mono at its own rate: levelled by ``gain_db`` and compressed, or as it
    is (None, for measuring). No label."""
    level = "" if gain_db is None else f",volume={gain_db:.3f}dB,{COMPRESSOR}"
    return f"{voice}{MONO}{level}"


def soundtrack(
    request: ClipRequest,
    total_s: float,
    levels: Levels,
    ambient: bool,
    voice: str = "[1:a]",
    music: str = "[2:a]",
) -> list[str]:
    """The audio chains of the render: ``voice`` (and ``music``) in, ``[a]`` out."""
    delay = round(request.lead_in_s * SAMPLE_RATE)
    narration = (
        f"{_narration(voice, levels.voice_db)},aresample={SAMPLE_RATE},"
        f"adelay=delays={delay}S:all=1,apad=whole_dur={total_s:.6f},"
        f"pan=stereo|c0=c0|c1=c0,{STEREO}"
    )
    finish = f"volume={levels.trim_db:.3f}dB,{_limiter()},{STEREO}[a]"
    bed = _bed(request, total_s, ambient, music)
    if bed is None:
        return [f"{narration},{finish}"]
    fade_in = min(1.0 if request.music is not None else 0.3, total_s / 4)
    fade_out = min(1.5, total_s / 4)
    return [
        f"{narration},asplit[avoice][akey]",
        *bed,
        f"[bed0]aresample={SAMPLE_RATE},{STEREO},volume={levels.bed_db:.3f}dB,"
        f"afade=t=in:d={fade_in:.3f},afade=t=out:st={total_s - fade_out:.6f}:d={fade_out:.3f}"
        "[abed]",
        f"[abed][akey]{DUCKER}[aducked]",
        f"[avoice][aducked]amix=inputs=2:duration=first:normalize=0,{finish}",
    ]


def measure_levels(
    ffmpeg: str, request: ClipRequest, total_s: float, ambient: bool, target: float = TARGET_LUFS
) -> Levels:
    """The gains that put the finished clip at ``target`` LUFS (short audio-only ffmpeg runs)."""
    inputs = ["-i", f"file:{request.narration}"]
    if request.music is not None:
        inputs += ["-stream_loop", "-1", "-i", f"file:{request.music}"]
    chains = [f"{_narration('[0:a]', None)},ebur128@voice=framelog=verbose[mv]"]
    bed = _bed(request, total_s, ambient, "[1:a]")
    if bed is not None:
        chains += [*bed, "[bed0]ebur128@bed=framelog=verbose[mb]"]
    raw = _measure(ffmpeg, inputs, chains, ["[mv]", "[mb]"] if bed else ["[mv]"])
    bed_target = target + (request.music_gain_db if request.music is not None else AMBIENT_LU)
    bed_db = _gain(bed_target, raw["bed"]) if bed else 0.0
    if raw["voice"] <= SILENT_LUFS:  # nothing to level: leave silence as it is
        return Levels(0.0, bed_db)
    voice_db = _voice_gain(ffmpeg, inputs, target, _gain(target, raw["voice"] + TWO_CHANNELS_LU))
    if request.music is None:  # the ambient bed adds a few hundredths of a LU: leave it out
        return Levels(voice_db, bed_db)
    # Music can be set loud enough to count: measure the whole mix and trim it.
    levels = Levels(voice_db, bed_db)
    mix = soundtrack(request, total_s, levels, ambient, "[0:a]", "[1:a]")
    chains = [*mix, "[a]ebur128@mix=framelog=verbose[mm]"]
    trim = target - _measure(ffmpeg, inputs, chains, ["[mm]"])["mix"]
    return replace(levels, trim_db=max(-MAX_TRIM_DB, min(MAX_TRIM_DB, trim)))


def _voice_gain(ffmpeg: str, inputs: list[str], target: float, linear_db: float) -> float:
    """The narration's gain with compression and limiting taken into account.

    ``linear_db`` would be right if nothing but the gain touched the sound. The compressor
    and limiter take a little off, and more the louder they are fed, so the processed
    narration is measured at that gain and at ``PROBE_STEP_DB`` more, and the gain that
    lands on ``target`` is read off the line through the two.
    """
    low, high = linear_db, linear_db + PROBE_STEP_DB
    chains = ["[0:a]asplit[plo][phi]"]
    for name, gain in (("lo", low), ("hi", high)):
        processed = f"{_narration(f'[p{name}]', gain)},{_limiter()}"
        chains.append(f"{processed},ebur128@{name}=framelog=verbose[m{name}]")
    found = _measure(ffmpeg, inputs, chains, ["[mlo]", "[mhi]"])
    at_low, at_high = found["lo"] + TWO_CHANNELS_LU, found["hi"] + TWO_CHANNELS_LU
    slope = (at_high - at_low) / PROBE_STEP_DB
    if slope < 0.2:  # the limiter holds it flat: a straight line would overshoot
        return low + (target - at_low)
    solved = low + (target - at_low) / slope
    return max(low - MAX_TRIM_DB, min(low + 2 * MAX_TRIM_DB, solved))


def _gain(target: float, measured: float) -> float:
    if measured <= SILENT_LUFS:  # nothing to level
        return 0.0
    return max(-MAX_GAIN_DB, min(MAX_GAIN_DB, target - measured))


def _measure(
    ffmpeg: str, inputs: list[str], chains: list[str], outs: list[str]
) -> dict[str, float]:
    """Integrated loudness from each named ebur128 in ``chains`` (outputs discarded)."""
    args = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info", *inputs]
    args += ["-filter_complex_threads", "1", "-filter_complex", ";".join(chains)]
    for label in outs:
        args += ["-map", label, "-f", "null", "-"]
    proc = run_tool(args, what="ffmpeg loudness measurement", timeout_s=MEASURE_TIMEOUT_S)
    return parse_loudness(proc.stderr.decode("utf-8", "replace"))


def parse_loudness(log: str) -> dict[str, float]:
    """``{name: integrated LUFS}`` from the summaries that ``ebur128@name`` filters print."""
    found: dict[str, float] = {}
    for name, summary in _SUMMARY.findall(log):
        match = _INTEGRATED.search(summary)
        if match is None:
            raise GenerationError(f"ebur128 printed no integrated loudness for {name}")
        value = float(match.group(1))
        found[name] = value if math.isfinite(value) else -70.0
    if not found:
        raise GenerationError("ffmpeg's ebur128 printed no loudness summary")
    return found


__all__ = [
    "CEILING_DB",
    "SAMPLE_RATE",
    "TARGET_LUFS",
    "TRUE_PEAK_DBTP",
    "Levels",
    "ambient_sources",
    "measure_levels",
    "parse_loudness",
    "soundtrack",
]
