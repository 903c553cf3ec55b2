"""The clip's sound: -16 LUFS and true peak at most -1.5 dBTP, measured on the rendered MP4 by
ffmpeg's own EBU R 128 meter, with and without the procedural ambient bed."""

from __future__ import annotations

import re
import subprocess
import wave
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from generation.clip.audio import AMBIENT_RATE, TARGET_LUFS, TRUE_PEAK_DBTP, ambient_sources
from generation.clip.base import ClipRequest
from generation.clip.ffmpeg import FfmpegAssembler
from generation.voice.espeak import EspeakVoice
from generation.voice.piper import PiperVoice

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
RATE = 48_000
SCRIPT = (
    "The freighter drifted over the salt flats. Captain Vey watched the horizon. "
    "Then, beyond the dead moons, a signal answered."
)
LEAD_IN, TAIL = 1.0, 1.5


def loudness(path: Path) -> tuple[float, float]:
    """(integrated LUFS, true peak dBTP) of a media file, from ffmpeg's ebur128 summary."""
    args = [FFMPEG, "-nostdin", "-hide_banner", "-nostats", "-i", str(path)]
    log = subprocess.run(
        [*args, "-af", "ebur128=peak=true", "-f", "null", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    summary = log[log.rindex("Summary:") :]
    integrated = re.search(r"I:\s+(-?[\d.]+) LUFS", summary)
    peak = re.search(r"Peak:\s+(-?[\d.]+|-inf) dBFS", summary)
    assert integrated is not None and peak is not None, summary
    return float(integrated.group(1)), float(peak.group(1))


def pcm(path: Path) -> np.ndarray:
    """The clip's sound as 48 kHz mono floats in -1..1."""
    args = [FFMPEG, "-v", "error", "-i", str(path), "-ac", "1", "-ar", str(RATE), "-f", "f32le"]
    raw = subprocess.run([*args, "-"], capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.float32).astype(np.float64)


def dbfs(samples: np.ndarray) -> float:
    return float(20 * np.log10(max(np.sqrt(np.mean(samples**2)), 1e-10)))


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        data = np.frombuffer(wav.readframes(wav.getnframes()), "<i2") / 32768.0
        return data, wav.getframerate()


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("still") / "still.png"
    Image.new("RGB", (320, 180), (60, 50, 80)).save(path)
    return path


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real narration from both offline voices, and the espeak one made very quiet and very
    loud (clipped), so the levelling has to work in both directions."""
    folder = tmp_path_factory.mktemp("voices")
    espeak = EspeakVoice().synthesize(SCRIPT, folder / "espeak.wav").path
    piper = PiperVoice().synthesize(SCRIPT, folder / "piper.wav").path
    samples, rate = read_wav(espeak)
    quiet = write_wav(folder / "quiet.wav", samples * 10 ** (-30 / 20), rate)
    loud = write_wav(folder / "loud.wav", np.clip(samples * 6, -0.99, 0.99), rate)
    return {"espeak": espeak, "piper": piper, "quiet": quiet, "loud": loud}


def request(still: Path, narration: Path, **changes: object) -> ClipRequest:
    base = ClipRequest(
        still=still, narration=narration, cues=(), seed=7, width=320, height=180, fps=12,
        lead_in_s=LEAD_IN, tail_s=TAIL, look="clean",
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def render(req: ClipRequest, out: Path, ambient: bool = True) -> Path:
    return (
        FfmpegAssembler(preset="ultrafast", poster=False, ambient=ambient).assemble(req, out).path
    )


@pytest.mark.parametrize("ambient", [True, False], ids=["bed", "no-bed"])
@pytest.mark.parametrize("voice", ["espeak", "piper", "quiet", "loud"])
def test_every_clip_plays_at_minus_16_lufs_under_the_true_peak_limit(
    voice: str, ambient: bool, voices: dict[str, Path], still: Path, tmp_path: Path
) -> None:
    before, _ = loudness(voices[voice])
    clip = render(request(still, voices[voice]), tmp_path / "clip.mp4", ambient)
    integrated, true_peak = loudness(clip)
    assert integrated == pytest.approx(TARGET_LUFS, abs=1.0), (voice, before)
    assert true_peak <= TRUE_PEAK_DBTP


def test_the_bed_fills_the_pauses_and_is_off_when_switched_off(
    voices: dict[str, Path], still: Path, tmp_path: Path
) -> None:
    req = request(still, voices["espeak"])
    with_bed, without = (
        pcm(render(req, tmp_path / f"{name}.mp4", ambient=on))
        for name, on in (("bed", True), ("none", False))
    )
    lead = slice(int(0.4 * RATE), int(0.95 * LEAD_IN * RATE))  # after the bed has faded in
    spoken = slice(int((LEAD_IN + 0.2) * RATE), int((LEAD_IN + 2.0) * RATE))
    bed = dbfs(with_bed[lead])
    assert -55 < bed < -30  # clearly there, and quiet: well under the speech...
    assert dbfs(with_bed[spoken]) - bed > 12
    assert dbfs(without[lead]) < -90  # ...and digital silence without it


def test_the_ambient_bed_is_ducked_under_the_voice(
    voices: dict[str, Path], still: Path, tmp_path: Path
) -> None:
    tone = np.sin(2 * np.pi * 1000 * np.arange(3 * 22_050) / 22_050) * 0.3  # a steady "voice"
    voice = write_wav(tmp_path / "tone.wav", tone, 22_050)
    req = request(still, voice, tail_s=3.0)
    sound = pcm(render(req, tmp_path / "d.mp4"))

    def rumble(start: float, end: float) -> float:
        """Level of the bed's band (20-200 Hz), far below the 1 kHz tone."""
        part = sound[int(start * RATE) : int(end * RATE)]
        spectrum = np.abs(np.fft.rfft(part * np.hanning(len(part)))) ** 2
        freqs = np.fft.rfftfreq(len(part), 1 / RATE)
        return float(10 * np.log10(spectrum[(freqs > 20) & (freqs < 200)].sum() / len(part)))

    before, under = rumble(0.4, 1.0), rumble(LEAD_IN + 1.0, LEAD_IN + 2.8)
    assert 5 < before - under < 16  # pushed down about 10 dB while the voice speaks


def test_the_bed_comes_from_the_seed(tmp_path: Path) -> None:
    def bed(seed: int) -> bytes:
        graph = ";".join(ambient_sources(seed, 3.0))
        args = [FFMPEG, "-v", "error", "-filter_complex", graph, "-map", "[amb]"]
        return subprocess.run([*args, "-f", "s16le", "-"], capture_output=True, check=True).stdout

    first, again, other = bed(3), bed(3), bed(4)
    assert len(first) == 3 * AMBIENT_RATE * 2 * 2  # three seconds of 16-bit stereo
    assert first == again
    assert first != other
    left, right = np.frombuffer(first, "<i2").reshape(-1, 2).T.astype(np.float64)
    assert abs(np.corrcoef(left, right)[0, 1]) < 0.9  # two channels, not one copied


def test_whole_clips_with_the_bed_are_the_same_for_the_same_seed(
    voices: dict[str, Path], still: Path, tmp_path: Path
) -> None:
    req = request(still, voices["espeak"])
    a = render(req, tmp_path / "a.mp4").read_bytes()
    b = render(req, tmp_path / "b.mp4").read_bytes()
    c = render(replace(req, seed=8), tmp_path / "c.mp4").read_bytes()
    assert a == b
    assert a != c


def test_music_takes_the_place_of_the_bed_and_is_levelled_under_the_voice(
    voices: dict[str, Path], still: Path, tmp_path: Path
) -> None:
    t = np.arange(2 * 44_100) / 44_100
    music = write_wav(tmp_path / "music.wav", 0.9 * np.sin(2 * np.pi * 440 * t), 44_100)
    req = request(still, voices["piper"], music=music, music_gain_db=-20.0)
    on, off = render(req, tmp_path / "on.mp4"), render(req, tmp_path / "off.mp4", False)
    assert on.read_bytes() == off.read_bytes()  # the ambient switch has no say with music
    integrated, true_peak = loudness(on)
    assert integrated == pytest.approx(TARGET_LUFS, abs=1.0)
    assert true_peak <= TRUE_PEAK_DBTP
    sound = pcm(on)
    lead = sound[int(0.5 * RATE) : int(0.95 * RATE)]
    spectrum = np.abs(np.fft.rfft(lead))
    assert abs(np.argmax(spectrum) * RATE / len(lead) - 440) < 10  # the music, in the lead-in
    # Its level follows the narration's, not the file's: -20 LU is about -39 dBFS per channel
    # (fading in still), and a full-scale file would be -3.
    assert -48 < dbfs(lead) < -30


def test_silent_narration_stays_silent(still: Path, tmp_path: Path) -> None:
    silent = write_wav(tmp_path / "silent.wav", np.zeros(22_050), 22_050)
    sound = pcm(render(request(still, silent), tmp_path / "s.mp4", ambient=False))
    assert np.abs(sound).max() < 1e-3
