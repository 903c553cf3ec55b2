"""Period sound for any voice: one ffmpeg filter graph turns clean narration into radio or tape.

The treatment runs after synthesis, so it works the same behind every voice backend; wrap a
voice in ``TreatedVoice`` or call ``apply_treatment`` on a finished WAV. Noise beds and the
wow/flutter rates come from ``seed`` alone, so a stored seed gives the same file again.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import wave
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from generation.tools import run_tool
from generation.voice.base import Speech, Voice
from story_state.errors import BackendUnavailable, GenerationError

Treatment = Literal["none", "radio", "tape"]
TREATMENTS: Final[tuple[Treatment, ...]] = get_args(Treatment)
TIMEOUT_S: Final = 300.0
_LEAD_IN_S: Final = 0.05
_FIX: Final = "pip install imageio-ffmpeg (a dependency of storybot)"


@dataclass(frozen=True)
class WavInfo:
    channels: int
    sample_width: int  # bytes per sample
    sample_rate: int
    frames: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def read_wav_info(path: Path) -> WavInfo:
    """The header of a PCM WAV file; GenerationError when it is not one or holds no audio."""
    try:
        with wave.open(str(path), "rb") as wav:
            info = WavInfo(
                wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()
            )
    except (OSError, EOFError, wave.Error) as exc:
        raise GenerationError(f"not a readable PCM WAV file: {path}: {exc}") from exc
    if info.frames <= 0 or info.sample_rate <= 0:
        raise GenerationError(f"WAV file holds no audio: {path}")
    return info


def text_seed(text: str) -> int:
    """A seed that depends on the words alone (stable across runs, unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


def _ffmpeg() -> str:
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except (ImportError, RuntimeError) as exc:
        raise BackendUnavailable(f"no ffmpeg for the voice treatment ({exc}): {_FIX}") from exc


def _lowpass(freq: float, rate: int) -> str:
    # A cut-off at or above Nyquist makes the biquad unstable; 16 kHz voices have little up there.
    return f"lowpass=f={min(freq, 0.45 * rate):.0f}:p=2"


def treatment_graph(kind: Treatment, rate: int, frames: int, seed: int) -> str:
    """The ``-filter_complex`` graph for ``kind``: input ``[0:a]``, output ``[out]``."""
    rng = random.Random(seed)
    noise_seed = seed % 2**32
    mono = "aformat=sample_fmts=fltp:channel_layouts=mono"
    if kind == "radio":
        # Squash the dynamics and clip softly, then band-limit everything (clipping makes
        # harmonics, so the telephone-like band-pass comes last) over a faint hiss bed.
        voice = (
            f"[0:a]{mono},highpass=f=300:p=2,{_lowpass(3400, rate)},"
            "acompressor=threshold=0.1:ratio=6:attack=5:release=60:makeup=3,"
            "asoftclip=type=tanh:threshold=0.6[v]"
        )
        noise = f"anoisesrc=r={rate}:c=white:a=0.012:s={noise_seed},{mono}[n]"
        band = "highpass=f=300:p=2,highpass=f=300:p=2," + ",".join([_lowpass(3400, rate)] * 3)
        mix = f"[v][n]amix=inputs=2:duration=first:normalize=0,{band}"
    elif kind == "tape":
        # Slow wow plus faster flutter (tiny pitch wobbles), a softened top, soft saturation
        # and pink hiss; the rates drift a little with the seed so no two reels sound alike.
        wow = f"vibrato=f={rng.uniform(0.45, 0.9):.3f}:d={rng.uniform(0.25, 0.35):.3f}"
        flutter = f"vibrato=f={rng.uniform(4.5, 6.5):.3f}:d={rng.uniform(0.02, 0.04):.3f}"
        # vibrato reads its delay line before filling it (ffmpeg 9 emits heap garbage, even
        # NaN, for the first few ms): run it over a lead-in of silence, then cut that off.
        lead = round(_LEAD_IN_S * rate)
        voice = (
            f"[0:a]{mono},adelay=delays={lead}S:all=1,{wow},{flutter},"
            f"atrim=start_sample={lead},asetpts=N/SR/TB,"
            "acompressor=threshold=0.3:ratio=2:attack=20:release=250:makeup=1.4,"
            f"volume=1.1,asoftclip=type=atan:threshold=0.8,{_lowpass(9000, rate)}[v]"
        )
        noise = f"anoisesrc=r={rate}:c=pink:a=0.008:s={noise_seed},{mono},highpass=f=1500[n]"
        mix = "[v][n]amix=inputs=2:duration=first:normalize=0"
    else:
        raise ValueError(f"no filter graph for treatment {kind!r}")
    # The noise source never ends; pad/trim pin the output to the input's exact length.
    return f"{voice};{noise};{mix},apad=whole_len={frames},atrim=end_sample={frames}[out]"


def apply_treatment(wav_in: Path, wav_out: Path, kind: Treatment, seed: int = 0) -> Path:
    """Write ``wav_in`` with the ``kind`` treatment to ``wav_out`` (mono 16-bit, same rate).

    ``wav_out`` may be ``wav_in``; it is replaced atomically, never left half-written.
    """
    if kind not in TREATMENTS:
        raise ValueError(f"treatment must be one of {', '.join(TREATMENTS)}; got {kind!r}")
    info = read_wav_info(wav_in)
    wav_out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{wav_out.name}.", suffix=".wav", dir=wav_out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        if kind == "none":
            shutil.copyfile(wav_in, tmp)
        else:
            _run_ffmpeg(wav_in, tmp, treatment_graph(kind, info.sample_rate, info.frames, seed))
            read_wav_info(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; narration is meant to be shared
        os.replace(tmp, wav_out)
    finally:
        tmp.unlink(missing_ok=True)
    return wav_out


def _run_ffmpeg(wav_in: Path, tmp: Path, graph: str) -> None:
    exe = _ffmpeg()
    args = [exe, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-i", str(wav_in)]
    args += ["-filter_complex", graph, "-map", "[out]", "-ac", "1", "-c:a", "pcm_s16le"]
    # bitexact keeps the encoder's version string out of the header: same seed, same bytes.
    args += ["-fflags", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1"]
    args += ["-f", "wav", str(tmp)]
    run_tool(args, what="ffmpeg voice treatment", timeout_s=TIMEOUT_S, fix=_FIX)


class TreatedVoice:
    """Any voice with a treatment on top; the seed comes from the words, so reruns match."""

    def __init__(self, inner: Voice, kind: Treatment) -> None:
        if kind not in TREATMENTS:
            raise ValueError(f"treatment must be one of {', '.join(TREATMENTS)}; got {kind!r}")
        self.inner, self.kind = inner, kind

    def synthesize(self, text: str, out: Path) -> Speech:
        if self.kind == "none":
            return self.inner.synthesize(text, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".raw.wav", dir=out.parent)
        os.close(fd)
        raw = Path(name)
        try:
            self.inner.synthesize(text, raw)
            apply_treatment(raw, out, self.kind, seed=text_seed(text))
        finally:
            raw.unlink(missing_ok=True)
        return Speech(path=out, duration_s=read_wav_info(out).duration_s)
