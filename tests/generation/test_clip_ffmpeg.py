"""The ffmpeg clip assembler: real renders, checked with ffprobe and by reading frames back."""

from __future__ import annotations

import json
import subprocess
import wave
from dataclasses import replace
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image, ImageDraw

from generation.clip.base import ClipRequest, Cue
from generation.clip.ffmpeg import FfmpegAssembler
from generation.voice.base import Speech
from generation.voice.espeak import EspeakVoice
from story_state.errors import BackendUnavailable, GenerationError
from tests import needs

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
WEIRD_DIR = "it's [odd], a; b:c=d\\e"  # every character the filter graph treats specially


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    try:
        return EspeakVoice().synthesize("Signal found.", tmp_path_factory.mktemp("voice") / "n.wav")
    except BackendUnavailable as exc:  # `make test` installs espeak-ng: its absence is a failure
        pytest.fail(f"{exc}; `make test` installs it", pytrace=False)


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
    ffprobe = needs.tool("ffprobe", "apt-get install ffmpeg")
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
    info = FfmpegAssembler(ambient=False).assemble(request, tmp_path / "clip.mp4")
    expected = 0.5 + speech.duration_s + 1.0
    assert info.path == tmp_path / "clip.mp4"
    assert info.duration_s == pytest.approx(expected)
    # No cues: no .ass or .srt sidecar, but a poster.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.jpg", "clip.mp4"]
    assert (info.srt, info.poster) == (None, tmp_path / "clip.jpg")
    assert info.size_bytes == info.path.stat().st_size

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
    assert np.abs(lead).max() < 50  # the lead-in is silent (no ambient bed)...
    assert np.sqrt(np.mean(speaking**2)) > 500  # ...then the narration starts
    assert len(sound) / 48_000 == pytest.approx(expected, abs=0.2)


@pytest.mark.parametrize("look", ["film", "vhs"])
def test_vertical_frames_and_every_look_render(
    look: str, still: Path, speech: Speech, tmp_path: Path
) -> None:
    request = _request(still, speech, width=180, height=320, look=look, fps=30, tail_s=3.0)
    info = FfmpegAssembler().assemble(request, tmp_path / "v.mp4")
    video = next(s for s in _probe(info.path)["streams"] if s["codec_type"] == "video")  # type: ignore[attr-defined]
    assert (video["width"], video["height"], video["r_frame_rate"]) == (180, 320, "30/1")
    # The camera's size and position sums for a tall frame agree with the poster's.
    clean = FfmpegAssembler().assemble(replace(request, look="clean"), tmp_path / "c.mp4")
    assert clean.poster is not None
    frames = round(clean.duration_s * 30)
    third = _frame(clean.path, (frames // 3) / 30, 180, 320)
    assert np.abs(_gray(clean.poster, 180, 320) - third).mean() < 0.8


def test_same_request_gives_the_same_file_and_the_seed_moves_the_camera(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    assembler, request = FfmpegAssembler(), _request(still, speech, look="film")
    first = assembler.assemble(request, tmp_path / "a.mp4").path.read_bytes()
    again = assembler.assemble(request, tmp_path / "b.mp4").path.read_bytes()
    assert first == again
    # Without grain (which the seed also changes), what differs is where the camera went.
    clean = {seed: replace(request, look="clean", seed=seed) for seed in (3, 4)}
    end = speech.duration_s + 1.2
    frames = {
        seed: _frame(assembler.assemble(r, tmp_path / f"clean{seed}.mp4").path, end, 320, 180)
        for seed, r in clean.items()
    }
    moved = np.abs(frames[3] - frames[4]).mean()
    assert moved > 1.0


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
        "cue.ass", "cue.jpg", "cue.mp4", "cue.srt",
        "hostile.ass", "hostile.jpg", "hostile.mp4", "hostile.srt",
        "none.jpg", "none.mp4",
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


def _gray(path: Path, width: int, height: int) -> np.ndarray:
    """An image file (the poster) decoded the way ``_frame`` decodes a clip frame."""
    args = [FFMPEG, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    raw = subprocess.run(args, capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width).astype(np.float64)


def _ffprobe_json(*args: str) -> dict[str, Any]:
    ffprobe = needs.tool("ffprobe", "apt-get install ffmpeg")
    out = subprocess.run(
        [ffprobe, "-v", "error", "-print_format", "json", *args], capture_output=True, check=True
    ).stdout
    return dict(json.loads(out))


def _tone(path: Path, seconds: float, freq: float = 440.0, rate: int = 44_100) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    pcm = (16_000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return path


def test_srt_sidecar_holds_the_burned_in_cues(still: Path, speech: Speech, tmp_path: Path) -> None:
    end = 0.5 + speech.duration_s
    cues = (Cue(0.5, 1.25, "SIGNAL FOUND"), Cue(1.25, end, "Nobody\r\nanswered."))
    info = FfmpegAssembler().assemble(_request(still, speech, cues=cues), tmp_path / "clip.mp4")
    assert info.srt == tmp_path / "clip.srt"
    millis = round(end * 1000)
    stamp = f"00:00:0{millis // 1000},{millis % 1000:03d}"
    assert info.srt.read_text("utf-8") == (
        "1\n00:00:00,500 --> 00:00:01,250\nSIGNAL FOUND\n\n"
        f"2\n00:00:01,250 --> {stamp}\nNobody\nanswered.\n"
    )
    ass_events = [
        line for line in (tmp_path / "clip.ass").read_text().splitlines() if "Dialogue" in line
    ]
    assert [e.rsplit(",", 1)[1] for e in ass_events] == ["SIGNAL FOUND", "Nobody answered."]


def test_poster_is_the_frame_a_third_in_without_subtitles(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    assembler = FfmpegAssembler()
    request = _request(still, speech, look="clean", tail_s=6.0)
    plain = assembler.assemble(request, tmp_path / "plain.mp4")
    cue = Cue(0.0, 60.0, "SIGNAL FOUND")
    titled = assembler.assemble(replace(request, cues=(cue,)), tmp_path / "titled.mp4")
    assert plain.poster is not None and titled.poster is not None
    with Image.open(plain.poster) as image:
        assert (image.format, image.size) == ("JPEG", (320, 180))
    assert plain.poster.read_bytes() == titled.poster.read_bytes()  # no subtitles on it

    total = request.lead_in_s + speech.duration_s + request.tail_s
    frames = round(total * 24)
    poster = _gray(plain.poster, 320, 180)
    third = _frame(plain.path, (frames // 3) / 24, 320, 180)
    first, last = _frame(plain.path, 0.0, 320, 180), _frame(plain.path, total - 0.1, 320, 180)
    near = np.abs(poster - third).mean()
    assert near < 1.2
    assert near < 0.5 * min(np.abs(poster - first).mean(), np.abs(poster - last).mean())

    for look in ("film", "vhs"):
        graded = assembler.assemble(replace(request, look=look), tmp_path / f"{look}.mp4")
        assert graded.poster is not None
        corner = _gray(graded.poster, 320, 180)[:20, :20].mean()
        centre = _gray(graded.poster, 320, 180)[80:100, 150:170].mean()
        assert corner < centre  # the vignette is on the poster too


def test_keyframes_every_two_seconds_in_closed_gops(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    request = _request(still, speech, look="film", tail_s=4.0)
    clip = FfmpegAssembler().assemble(request, tmp_path / "g.mp4").path
    shown = _ffprobe_json(
        "-select_streams", "v", "-show_frames", "-show_entries", "frame=key_frame,pict_type",
        str(clip),
    )["frames"]  # fmt: skip
    keys = [i for i, f in enumerate(shown) if f["key_frame"] == 1]
    intra = [i for i, f in enumerate(shown) if f["pict_type"] == "I"]
    assert len(shown) > 120
    assert keys == intra == list(range(0, len(shown), 48))
    # Closed GOPs: nothing decoded after a keyframe is shown before it.
    packets = _ffprobe_json(
        "-select_streams", "v", "-show_packets", "-show_entries", "packet=pts,flags", str(clip)
    )["packets"]
    pts = [int(p["pts"]) for p in packets]
    for i, packet in enumerate(packets):
        if packet["flags"].startswith("K"):
            assert min(pts[i:]) == pts[i], f"open GOP at packet {i}"


def test_a_music_bed_plays_under_the_lead_in_and_loops(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    bed = _tone(tmp_path / "bed.wav", 0.7)
    request = _request(
        still, speech, look="clean", lead_in_s=1.0, tail_s=2.0, music=bed, music_gain_db=-12.0
    )
    info = FfmpegAssembler().assemble(request, tmp_path / "m.mp4")
    sound = _audio(info.path)
    rate = 48_000
    lead = sound[int(0.5 * rate) : int(0.95 * rate)]
    assert np.sqrt(np.mean(lead**2)) > 500  # heard before the narration starts...
    spectrum = np.abs(np.fft.rfft(lead))
    assert abs(np.argmax(spectrum) * rate / len(lead) - 440) < 10  # ...and it is the bed
    speaking = sound[int(1.1 * rate) : int((1.0 + speech.duration_s) * rate)]
    tail_start = 1.0 + speech.duration_s + 0.6
    tail = sound[int(tail_start * rate) : int((tail_start + 0.3) * rate)]
    assert np.sqrt(np.mean(tail**2)) > 500  # still there after 0.7 s: looped
    assert np.sqrt(np.mean(speaking**2)) > np.sqrt(np.mean(tail**2))  # the voice on top
    assert len(sound) / rate == pytest.approx(info.duration_s, abs=0.1)
    quiet = FfmpegAssembler(ambient=False).assemble(
        replace(request, music=None), tmp_path / "q.mp4"
    )
    assert np.abs(_audio(quiet.path)[: int(0.95 * rate)]).max() < 50


def test_too_long_or_too_large_requests_are_refused(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    with pytest.raises(GenerationError, match=r"would run 2\.9s .* over the 2\.5s .* shorten"):
        FfmpegAssembler(max_seconds=2.5).assemble(_request(still, speech), tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="1280x720 or 720x1280"):
        FfmpegAssembler().assemble(
            _request(still, speech, width=1920, height=1080), tmp_path / "y.mp4"
        )
    with pytest.raises(GenerationError, match="music bed not found"):
        FfmpegAssembler().assemble(
            _request(still, speech, music=tmp_path / "none.wav"), tmp_path / "z.mp4"
        )
    assert list(tmp_path.iterdir()) == []


def test_a_clip_failing_the_platform_check_leaves_nothing_behind(
    still: Path, speech: Speech, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked: list[tuple[str, int]] = []

    def refuse(path: Path, **limits: object) -> None:
        checked.append((path.suffix, path.stat().st_size))
        raise GenerationError("clip.mp4 is not safe to post: pixel format is yuv444p")

    monkeypatch.setattr("generation.clip.ffmpeg.validate_clip", refuse)
    request = _request(still, speech, cues=(Cue(0.0, 1.0, "hello"),))
    with pytest.raises(GenerationError, match="not safe to post"):
        FfmpegAssembler().assemble(request, tmp_path / "out" / "clip.mp4")
    assert len(checked) == 1 and checked[0][0] == ".mp4" and checked[0][1] > 0  # a real render
    assert list((tmp_path / "out").iterdir()) == []


def test_the_voice_ducks_the_bed_by_about_ten_db(still: Path, tmp_path: Path) -> None:
    voice = _tone(tmp_path / "voice.wav", 1.5, freq=200.0)  # a steady "voice" the bed can't mask
    bed = _tone(tmp_path / "bed.wav", 1.0)
    request = ClipRequest(
        still=still, narration=voice, cues=(), seed=1, width=320, height=180, look="clean",
        lead_in_s=1.5, tail_s=3.0, music=bed, music_gain_db=-12.0,
    )  # fmt: skip
    sound = _audio(FfmpegAssembler().assemble(request, tmp_path / "d.mp4").path)

    def bed_level(start: float, end: float) -> float:
        part = sound[int(start * 48_000) : int(end * 48_000)]
        spectrum = np.abs(np.fft.rfft(part)) / len(part)
        return float(spectrum[round(440 * len(part) / 48_000)])

    before, under, after = bed_level(1.0, 1.5), bed_level(2.2, 3.0), bed_level(4.0, 4.4)
    assert before == pytest.approx(after, rel=0.1)
    assert 6 < 20 * np.log10(before / under) < 14


def test_each_subtitle_appears_on_the_frame_its_cue_starts(
    still: Path, speech: Speech, tmp_path: Path
) -> None:
    assembler, plain = FfmpegAssembler(poster=False), _request(still, speech, look="clean")
    first, second = Cue(0.0, 1.0, "FIRST LINE HERE"), Cue(1.0, 60.0, "and then another")
    both = assembler.assemble(replace(plain, cues=(first, second)), tmp_path / "ab.mp4").path
    only_a = assembler.assemble(
        replace(plain, cues=(replace(first, end_s=60.0),)), tmp_path / "a.mp4"
    )
    only_b = assembler.assemble(
        replace(plain, cues=(replace(second, start_s=0.0),)), tmp_path / "b.mp4"
    )
    for at, expected in ((0.5, only_a), (23 / 24, only_a), (24 / 24, only_b), (1.5, only_b)):
        got, want = _frame(both, at, 320, 180), _frame(expected.path, at, 320, 180)
        other = _frame((only_b if expected is only_a else only_a).path, at, 320, 180)
        near, far = np.abs(got - want)[135:].mean(), np.abs(got - other)[135:].mean()
        assert near < 1.5 and far > 3.0, at  # encoding noise vs another line of text
