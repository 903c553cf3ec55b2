"""The ffmpeg clip assembler: real renders, checked with ffprobe and by reading frames back."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image, ImageDraw

from generation.clip.base import ClipRequest, Cue
from generation.clip.ffmpeg import FfmpegAssembler
from generation.voice.base import Speech
from generation.voice.espeak import EspeakVoice
from story_state.errors import BackendUnavailable, GenerationError

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
WEIRD_DIR = "it's [odd], a; b:c=d\\e"  # every character the filter graph treats specially


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    try:
        return EspeakVoice().synthesize("Signal found.", tmp_path_factory.mktemp("voice") / "n.wav")
    except BackendUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory) -> Path:
    w, h = 640, 400
    y, x = np.mgrid[0:h, 0:w]
    pixels = np.stack([40 + 150 * x / w, 20 + 80 * y / h, 120 + 100 * (1 - y / h)], axis=-1)
    image = Image.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((400, 40, 580, 220), fill=(250, 200, 90))
    draw.rectangle((40, 250, 260, 390), fill=(30, 30, 60))
    draw.polygon([(300, 400), (360, 160), (420, 400)], fill=(200, 60, 60))
    path = tmp_path_factory.mktemp("still") / "still.png"
    image.save(path)
    return path


def _request(still: Path, speech: Speech, **changes: object) -> ClipRequest:
    base = ClipRequest(still=still, narration=speech.path, cues=(), seed=3, width=320, height=180)
    return replace(base, **changes)  # type: ignore[arg-type]


def _probe(path: Path) -> dict[str, object]:
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        pytest.skip("ffprobe is not on PATH (apt-get install ffmpeg)")
    args = [ffprobe, "-v", "error", "-print_format", "json", "-show_streams", "-show_format"]
    out = subprocess.run([*args, str(path)], capture_output=True, check=True).stdout
    return dict(json.loads(out))


def _top_level_boxes(path: Path) -> list[str]:
    data, boxes, at = path.read_bytes(), [], 0
    while at + 8 <= len(data):
        size, kind = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8].decode()
        if size == 1:
            size = int.from_bytes(data[at + 8 : at + 16], "big")
        boxes.append(kind)
        at = len(data) if size == 0 else at + size
    return boxes


def _frame(path: Path, at_s: float, width: int, height: int) -> np.ndarray:
    args = [FFMPEG, "-v", "error", "-i", str(path), "-ss", f"{at_s:.3f}", "-frames:v", "1"]
    raw = subprocess.run(
        [*args, "-f", "rawvideo", "-pix_fmt", "gray", "-"], capture_output=True, check=True
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width).astype(np.float64)


def _audio(path: Path) -> np.ndarray:
    args = [FFMPEG, "-v", "error", "-i", str(path), "-ac", "1", "-ar", "48000", "-f", "s16le", "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.int16).astype(np.float64)


def test_clip_is_h264_high_aac_faststart_of_the_right_length(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    request = _request(still, speech, width=1280, height=720, lead_in_s=0.5, tail_s=1.0)
    info = FfmpegAssembler().assemble(request, tmp_path / "clip.mp4")
    expected = 0.5 + speech.duration_s + 1.0
    assert info.path == tmp_path / "clip.mp4"
    assert info.duration_s == pytest.approx(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]  # no cues: no .ass

    probe = _probe(info.path)
    streams = {s["codec_type"]: s for s in probe["streams"]}  # type: ignore[attr-defined]
    video, audio = streams["video"], streams["audio"]
    assert (video["codec_name"], video["profile"], video["pix_fmt"]) == ("h264", "High", "yuv420p")
    assert (video["width"], video["height"], video["r_frame_rate"]) == (1280, 720, "24/1")
    assert (audio["codec_name"], audio["profile"], audio["sample_rate"]) == ("aac", "LC", "48000")
    assert float(probe["format"]["duration"]) == pytest.approx(expected, abs=0.2)  # type: ignore[index]
    assert float(video["duration"]) == pytest.approx(expected, abs=0.2)
    boxes = _top_level_boxes(info.path)
    assert boxes.index("moov") < boxes.index("mdat")

    sound = _audio(info.path)
    lead, speaking = sound[: int(0.45 * 48_000)], sound[int(0.6 * 48_000) : int(1.2 * 48_000)]
    assert np.abs(lead).max() < 50  # the lead-in is silent...
    assert np.sqrt(np.mean(speaking**2)) > 500  # ...then the narration starts
    assert len(sound) / 48_000 == pytest.approx(expected, abs=0.2)


@pytest.mark.parametrize("look", ["film", "vhs"])
def test_vertical_frames_and_every_look_render(
    look: str, still: Path, speech: Speech, tmp_path: Path
) -> None:
    request = _request(still, speech, width=180, height=320, look=look, fps=30)
    info = FfmpegAssembler().assemble(request, tmp_path / "v.mp4")
    video = next(s for s in _probe(info.path)["streams"] if s["codec_type"] == "video")  # type: ignore[attr-defined]
    assert (video["width"], video["height"], video["r_frame_rate"]) == (180, 320, "30/1")


def test_same_request_gives_the_same_file_and_the_seed_moves_the_camera(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    assembler, request = FfmpegAssembler(), _request(still, speech, look="film")
    first = assembler.assemble(request, tmp_path / "a.mp4").path.read_bytes()
    again = assembler.assemble(request, tmp_path / "b.mp4").path.read_bytes()
    assert first == again
    other = assembler.assemble(replace(request, seed=4), tmp_path / "c.mp4")
    end = speech.duration_s + 1.2
    moved = np.abs(_frame(other.path, end, 320, 180) - _frame(tmp_path / "a.mp4", end, 320, 180))
    assert moved.mean() > 2.0


def test_the_camera_moves_smoothly(still: Path, speech: Speech, tmp_path: Path) -> None:
    request = _request(still, speech, look="clean", tail_s=2.0)
    clip = FfmpegAssembler().assemble(request, tmp_path / "m.mp4").path
    total = request.lead_in_s + speech.duration_s + request.tail_s
    start, end = _frame(clip, 0.0, 320, 180), _frame(clip, total - 0.1, 320, 180)
    a, b = _frame(clip, 1.0, 320, 180), _frame(clip, 1.0 + 1 / 24, 320, 180)
    journey, step = np.abs(end - start).mean(), np.abs(b - a).mean()
    assert journey > 1.5  # it moved over the clip...
    assert step < journey / 6  # ...in small steps, not jumps


def test_subtitles_are_burned_in_and_hostile_text_stays_at_the_bottom(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    folder = tmp_path / WEIRD_DIR
    assembler, plain = FfmpegAssembler(), _request(still, speech, look="clean")
    cue = Cue(0.0, 60.0, "SIGNAL FOUND")
    hostile = Cue(0.0, 60.0, "{\\an8}HACK\\N{\\fs90}OWNED")
    frames = {}
    for name, cues in {"none": (), "cue": (cue,), "hostile": (hostile,)}.items():
        clip = assembler.assemble(replace(plain, cues=cues), folder / f"{name}.mp4").path
        frames[name] = _frame(clip, 1.0, 320, 180)
    assert (folder / "cue.ass").read_text().count("SIGNAL FOUND") == 1
    assert sorted(p.name for p in folder.iterdir()) == [
        "cue.ass", "cue.mp4", "hostile.ass", "hostile.mp4", "none.mp4"
    ]  # fmt: skip
    for name in ("cue", "hostile"):
        changed = np.abs(frames[name] - frames["none"]) > 40
        assert changed[135:].mean() > 0.01, name  # glyphs in the bottom quarter
        assert changed[:90].mean() < 0.001, name  # and nothing moved to the top by {\an8}


def test_bad_inputs_fail_cleanly(still: Path, speech: Speech, tmp_path: Path) -> None:
    assembler = FfmpegAssembler()
    not_wav = tmp_path / "n.wav"
    not_wav.write_text("not audio")
    with pytest.raises(GenerationError, match="WAV"):
        assembler.assemble(_request(still, speech, narration=not_wav), tmp_path / "x.mp4")
    not_image = tmp_path / "still.png"
    not_image.write_text("not an image")
    out = tmp_path / "out" / "x.mp4"
    with pytest.raises(GenerationError, match=r"ffmpeg exited with \d+: .+"):
        assembler.assemble(_request(not_image, speech), out)
    assert list(out.parent.iterdir()) == []  # no clip and no temp file left behind
    with pytest.raises(ValueError, match="look"):
        assembler.assemble(_request(still, speech, look="sepia"), tmp_path / "y.mp4")
    with pytest.raises(ValueError, match="even"):
        assembler.assemble(_request(still, speech, width=321), tmp_path / "y.mp4")


def test_a_missing_ffmpeg_binary_is_reported(still: Path, speech: Speech, tmp_path: Path) -> None:
    assembler = FfmpegAssembler(ffmpeg=str(tmp_path / "no-ffmpeg"))
    with pytest.raises(BackendUnavailable, match="no-ffmpeg"):
        assembler.assemble(_request(still, speech), tmp_path / "x.mp4")
