"""The Coqui voice, run for real on tiny random-weight VITS models saved as operators' folders."""

from __future__ import annotations

import json
import os
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from generation.voice.coqui import (
    MODELS,
    SENTENCE_PAUSE_S,
    TURN_PAUSE_S,
    CoquiVoice,
    _import,
    split_sentences,
    split_voices,
)
from generation.voice.treatment import TreatedVoice
from story_state.errors import BackendUnavailable, GenerationError
from tests import needs
from tests.generation.tiny_vits import SAMPLE_RATE, build_tiny_vits

needs.module("TTS", "pip install 'storybot[coqui]'")

LINE = "The beacon is calling again. Nobody on board knows who answered."


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and spinning workers crawl on a busy 2-core box."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vits(tmp_path_factory.mktemp("single"))


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vits(tmp_path_factory.mktemp("multi"), speakers=("ann", "bob"))


def _header(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()


def _frames(path: Path) -> int:
    return _header(path)[3]


def _say(folder: Path, text: str, out: Path, **options: Any) -> bytes:
    CoquiVoice(model_dir=folder, device="cpu", **options).synthesize(text, out)
    return out.read_bytes()


def test_writes_a_mono_16_bit_wav_at_the_models_rate(single: Path, tmp_path: Path) -> None:
    out = tmp_path / "narration.wav"
    speech = CoquiVoice(model_dir=single).synthesize(LINE, out)
    channels, width, rate, frames = _header(out)
    assert speech.path == out
    assert (channels, width) == (1, 2)
    assert rate == json.loads((single / "config.json").read_text())["audio"]["sample_rate"]
    assert rate == SAMPLE_RATE
    assert speech.duration_s == pytest.approx(frames / rate)
    assert speech.duration_s > 0.2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["narration.wav"]  # no temp files left


def test_the_same_script_gives_the_same_audio(single: Path, tmp_path: Path) -> None:
    assert _say(single, LINE, tmp_path / "a.wav") == _say(single, LINE, tmp_path / "b.wav")


def test_a_model_is_loaded_once_per_folder_and_device(tmp_path: Path) -> None:
    folder = build_tiny_vits(tmp_path / "fresh")
    before = MODELS.loads
    first = CoquiVoice(model_dir=folder, device="cpu")
    second = CoquiVoice(model_dir=Path(os.path.relpath(folder)), device="cpu")
    first.synthesize("One.", tmp_path / "1.wav")
    first.synthesize("Two.", tmp_path / "2.wav")
    second.synthesize("Three.", tmp_path / "3.wav")
    assert MODELS.loads - before == 1
    assert first.model is second.model


def test_sentences_are_spoken_one_by_one_with_a_pause_between(single: Path, tmp_path: Path) -> None:
    one, two = "The hull groans.", "Something knocks back."
    _say(single, one, tmp_path / "one.wav")
    _say(single, two, tmp_path / "two.wav")
    _say(single, f"{one} {two}", tmp_path / "both.wav")
    pause = round(SENTENCE_PAUSE_S * SAMPLE_RATE)
    expected = _frames(tmp_path / "one.wav") + _frames(tmp_path / "two.wav") + pause
    assert _frames(tmp_path / "both.wav") == expected


def test_long_text_is_cut_into_speakable_chunks() -> None:
    long = ", ".join(["the corridor stretches on past the dark hatches"] * 12) + "."
    chunks = split_sentences(f"First. {long} Last? ...")
    assert chunks[0] == "First." and chunks[-1] == "Last?"
    assert all(0 < len(c) <= 300 for c in chunks)
    assert len(chunks) > 3
    assert " ".join(chunks[1:-1]) == long  # nothing lost, nothing invented


def test_a_multi_speaker_model_narrates_with_its_first_speaker_by_default(
    multi: Path, tmp_path: Path
) -> None:
    default = _say(multi, LINE, tmp_path / "default.wav")
    assert default == _say(multi, LINE, tmp_path / "ann.wav", speaker="ann")
    assert default != _say(multi, LINE, tmp_path / "bob.wav", speaker="bob")


def test_an_unknown_speaker_is_refused_with_the_known_ones(multi: Path, tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match=r"'zed'.*known speakers: ann, bob"):
        CoquiVoice(model_dir=multi, speaker="zed").synthesize(LINE, tmp_path / "x.wav")
    voice = CoquiVoice(model_dir=multi, character_voices={"Varga": "p999"})
    with pytest.raises(GenerationError, match=r"character_voices\['Varga'\].*ann, bob"):
        voice.synthesize(LINE, tmp_path / "x.wav")
    assert not list(tmp_path.iterdir())


def test_a_characters_line_is_spoken_in_their_voice(multi: Path, tmp_path: Path) -> None:
    cast = {"character_voices": {"Varga": "bob"}, "speaker": "ann"}
    quoted = _say(multi, 'Varga: "Hold fast."', tmp_path / "quoted.wav", **cast)
    assert quoted == _say(multi, "Hold fast.", tmp_path / "as-bob.wav", speaker="bob")
    assert quoted != _say(multi, "Hold fast.", tmp_path / "as-ann.wav", speaker="ann")
    assert quoted == _say(multi, "VARGA: Hold fast.", tmp_path / "label.wav", **cast)


def test_narration_and_dialogue_alternate_with_turn_pauses(multi: Path, tmp_path: Path) -> None:
    cast = {"character_voices": {"Varga": "bob"}, "speaker": "ann"}
    _say(multi, "The hatch opens.", tmp_path / "a.wav", speaker="ann")
    _say(multi, "Hold fast.", tmp_path / "b.wav", speaker="bob")
    _say(multi, "Nobody moves.", tmp_path / "c.wav", speaker="ann")
    line = 'The hatch opens. Varga: "Hold fast." Nobody moves.'
    _say(multi, line, tmp_path / "all.wav", **cast)
    parts = sum(_frames(tmp_path / f"{n}.wav") for n in "abc")
    assert _frames(tmp_path / "all.wav") == parts + 2 * round(TURN_PAUSE_S * SAMPLE_RATE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("No one speaks.", [(None, "No one speaks.")]),
        ("Varga: Move!", [("Varga", "Move!")]),
        ('varga: "Move!" She runs.', [("Varga", "Move!"), (None, "She runs.")]),
        (
            "He waits. Quill: “Now?” Varga: “Now.”",
            [(None, "He waits."), ("Quill", "Now?"), ("Varga", "Now.")],
        ),
        ("Her orders were: Varga: hold", [(None, "Her orders were: Varga: hold")]),
        ("Vargas: not her", [(None, "Vargas: not her")]),
        ('Quill: "One." Quill: "Two."', [("Quill", "One. Two.")]),
        (
            "A line.\nQuill: Another line.\nThe end.",
            [(None, "A line."), ("Quill", "Another line."), (None, "The end.")],
        ),
    ],
)
def test_split_voices(text: str, expected: list[tuple[str | None, str]]) -> None:
    assert split_voices(text, ["Varga", "Quill"]) == expected


def test_a_single_speaker_model_ignores_speaker_choices(single: Path, tmp_path: Path) -> None:
    plain = _say(single, "Hold fast.", tmp_path / "plain.wav")
    chosen = _say(
        single,
        'Varga: "Hold fast."',
        tmp_path / "chosen.wav",
        speaker="bob",
        character_voices={"Varga": "ann"},
    )
    assert plain == chosen


@pytest.mark.parametrize("text", ["", "   \n\t ", "... !?", "\x00\x07"])
def test_nothing_to_say_is_an_error(single: Path, tmp_path: Path, text: str) -> None:
    with pytest.raises(GenerationError, match=r"empty|nothing speakable"):
        CoquiVoice(model_dir=single).synthesize(text, tmp_path / "x.wav")
    assert not list(tmp_path.iterdir())


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(GenerationError, match=f"folder not found: {tmp_path / 'nope'}"):
        CoquiVoice(model_dir=tmp_path / "nope").synthesize(LINE, tmp_path / "x.wav")


def test_a_folder_without_config_or_model_says_what_is_missing(
    single: Path, tmp_path: Path
) -> None:
    no_config = tmp_path / "no-config"
    no_config.mkdir()
    shutil.copy(single / "model.pth", no_config)
    with pytest.raises(GenerationError, match=f"{no_config} has no config.json"):
        CoquiVoice(model_dir=no_config).synthesize(LINE, tmp_path / "x.wav")
    no_model = tmp_path / "no-model"
    no_model.mkdir()
    shutil.copy(single / "config.json", no_model)
    with pytest.raises(GenerationError, match=f"{no_model} has no model file"):
        CoquiVoice(model_dir=no_model).synthesize(LINE, tmp_path / "x.wav")


def test_a_corrupt_model_file_is_a_generation_error(single: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(single, broken)
    (broken / "model.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(GenerationError, match=f"cannot load the Coqui model in {broken}"):
        CoquiVoice(model_dir=broken).synthesize(LINE, tmp_path / "x.wav")
    (broken / "config.json").write_text("{not json")
    with pytest.raises(GenerationError, match=r"config\.json"):
        CoquiVoice(model_dir=broken).synthesize(LINE, tmp_path / "x.wav")


def test_a_moved_folder_still_finds_its_speaker_file(tmp_path: Path) -> None:
    # Coqui's downloader writes the speaker file's absolute path into config.json.
    moved = tmp_path / "moved"
    shutil.move(build_tiny_vits(tmp_path / "original", speakers=("ann", "bob")), moved)
    assert not (tmp_path / "original").exists()
    voice = CoquiVoice(model_dir=moved, speaker="bob")
    assert voice.synthesize(LINE, tmp_path / "x.wav").duration_s > 0
    assert voice.model.speakers == ("ann", "bob")
    assert "original" in (moved / "config.json").read_text()  # the operator's file untouched


def test_a_missing_speaker_file_is_named(multi: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lost"
    shutil.copytree(multi, folder)
    (folder / "speaker_ids.json").unlink()
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["speakers_file"] = config["speakers_file"] = "/gone/speaker_ids.json"
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(GenerationError, match=f"{folder} lacks speaker_ids.json"):
        CoquiVoice(model_dir=folder).synthesize(LINE, tmp_path / "x.wav")


def test_a_treatment_keeps_the_length(single: Path, tmp_path: Path) -> None:
    clean = CoquiVoice(model_dir=single).synthesize(LINE, tmp_path / "clean.wav")
    radio = CoquiVoice(model_dir=single, treatment="radio").synthesize(LINE, tmp_path / "r.wav")
    assert radio.duration_s == pytest.approx(clean.duration_s, abs=0.01)
    assert _header(radio.path)[:3] == (1, 2, SAMPLE_RATE)
    assert radio.path.read_bytes() != clean.path.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.wav", "r.wav"]


def test_the_built_in_treatment_matches_the_wrapper(single: Path, tmp_path: Path) -> None:
    built_in = _say(single, LINE, tmp_path / "built-in.wav", treatment="tape")
    wrapped = TreatedVoice(CoquiVoice(model_dir=single, device="cpu"), "tape")
    assert wrapped.synthesize(LINE, tmp_path / "wrapped.wav").path.read_bytes() == built_in


def test_bad_options_fail_at_construction(single: Path) -> None:
    with pytest.raises(ValueError, match="device"):
        CoquiVoice(model_dir=single, device="gpu")
    with pytest.raises(ValueError, match="treatment"):
        CoquiVoice(model_dir=single, treatment="vinyl")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="character_voices"):
        CoquiVoice(model_dir=single, character_voices={"": "ann"})


def test_a_missing_extra_names_the_install_command() -> None:
    with pytest.raises(BackendUnavailable, match=r"pip install 'storybot\[coqui\]'"):
        _import("TTS.no_such_module")
