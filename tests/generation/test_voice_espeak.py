"""The eSpeak NG voice: real synthesis through the CLI and through the wheel's library."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import cast

import pytest

from generation.voice.espeak import Engine, EspeakVoice
from story_state.errors import BackendUnavailable, GenerationError
from tests import needs

LINE = "The beacon is calling again. Nobody on board knows who answered."


def _need_cli() -> None:
    needs.tool("espeak-ng", "apt-get install espeak-ng")


def _need_library() -> None:
    needs.module("espeakng_loader", "pip install 'storybot[espeak-wheel]'")


@pytest.fixture(params=["cli", "library"])
def engine(request: pytest.FixtureRequest) -> Engine:
    (_need_cli if request.param == "cli" else _need_library)()
    return cast(Engine, request.param)


@pytest.fixture
def voice(engine: Engine) -> EspeakVoice:
    return EspeakVoice(engine=engine)


def _wav(path: Path) -> tuple[int, int, int, float]:
    with wave.open(str(path), "rb") as wav:
        n = wav.getnframes()
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), n / wav.getframerate()


def _peak(path: Path) -> int:
    with wave.open(str(path), "rb") as wav:
        data = wav.readframes(wav.getnframes())
    samples = memoryview(data).cast("h")
    return max(abs(s) for s in samples)


def test_writes_a_mono_wav_whose_header_gives_the_duration(
    voice: EspeakVoice, tmp_path: Path
) -> None:
    out = tmp_path / "narration.wav"
    speech = voice.synthesize(LINE, out)
    channels, width, rate, seconds = _wav(out)
    assert speech.path == out
    assert (channels, width) == (1, 2)
    assert rate in (16_000, 22_050, 24_000, 44_100, 48_000)
    assert speech.duration_s == pytest.approx(seconds)
    assert 2.0 < speech.duration_s < 8.0  # eleven words at 150 wpm
    assert _peak(out) > 3_000  # speech, not silence
    assert sorted(p.name for p in tmp_path.iterdir()) == ["narration.wav"]  # no temp files left


def test_text_that_looks_like_options_is_spoken_not_obeyed(
    voice: EspeakVoice, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    evil = f"--help -w {tmp_path / 'stolen.wav'} -f /etc/passwd"
    speech = voice.synthesize(evil, work / "out.wav")
    assert speech.duration_s > 1.0
    assert not (tmp_path / "stolen.wav").exists()
    assert sorted(p.name for p in work.iterdir()) == ["out.wav"]


def test_faster_speech_is_shorter(tmp_path: Path) -> None:
    _need_cli()
    slow = EspeakVoice(speed_wpm=110, engine="cli").synthesize(LINE, tmp_path / "slow.wav")
    fast = EspeakVoice(speed_wpm=260, engine="cli").synthesize(LINE, tmp_path / "fast.wav")
    assert fast.duration_s < slow.duration_s * 0.7


def test_library_speed_setting_takes_effect(tmp_path: Path) -> None:
    _need_library()
    slow = EspeakVoice(speed_wpm=110, engine="library").synthesize(LINE, tmp_path / "slow.wav")
    fast = EspeakVoice(speed_wpm=260, engine="library").synthesize(LINE, tmp_path / "fast.wav")
    assert fast.duration_s < slow.duration_s * 0.7


@pytest.mark.parametrize("text", ["", "   \n\t ", "\x00\x01"])
def test_empty_text_is_refused(voice: EspeakVoice, text: str, tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match="empty"):
        voice.synthesize(text, tmp_path / "out.wav")
    assert not list(tmp_path.iterdir())


def test_unknown_voice_fails_and_leaves_the_old_file(engine: Engine, tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    out.write_bytes(b"previous take")
    with pytest.raises(GenerationError, match="voice"):
        EspeakVoice(voice="xx-nosuchvoice", engine=engine).synthesize(LINE, out)
    assert out.read_bytes() == b"previous take"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"voice": "-w"}, "voice name"),
        ({"voice": "en us"}, "voice name"),
        ({"speed_wpm": 20}, "speed_wpm"),
        ({"pitch": 120}, "pitch"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EspeakVoice(**kwargs)  # type: ignore[arg-type]


def test_forced_cli_without_an_executable_names_the_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="apt-get install espeak-ng"):
        EspeakVoice(engine="cli").synthesize(LINE, tmp_path / "out.wav")


def test_auto_falls_back_to_the_library_without_an_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _need_library()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    speech = EspeakVoice().synthesize("Falling back.", tmp_path / "out.wav")
    assert speech.duration_s > 0.5
