"""`storybot demo`: a whole offline story, checked the way a viewer's player would see it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import pytest

from tests.bot.conftest import small_config, write_config

ROOT = Path(__file__).resolve().parents[1]


def ffprobe(path: Path) -> dict[str, Any]:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_streams",
            "-show_format",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def top_level_boxes(path: Path) -> list[str]:
    boxes = []
    with path.open("rb") as f:
        while header := f.read(8):
            size = int.from_bytes(header[:4], "big")
            boxes.append(header[4:8].decode("latin-1"))
            if size == 1:
                size = int.from_bytes(f.read(8), "big") - 8
            f.seek(size - 8, 1)
    return boxes


def demo(out: Path, *args: str, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "bot"]
    if config is not None:
        cmd += ["--config", str(config)]
    result = subprocess.run(
        [*cmd, "demo", "--out", str(out), *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    demo(out, "--rounds", "3", "--seed", "4", "--audience", "10")  # the shipped config.toml
    return out


def test_demo_writes_three_playable_episodes(demo_dir: Path) -> None:
    story = json.loads((demo_dir / "story.json").read_text())
    assert [e["number"] for e in story["episodes"]] == [1, 2, 3]
    for episode in story["episodes"]:
        video = demo_dir / episode["video"]
        assert video.name == f"episode-{episode['number']:03d}.mp4"
        probe = ffprobe(video)
        streams = {s["codec_type"]: s for s in probe["streams"]}
        v, a = streams["video"], streams["audio"]
        assert (v["codec_name"], v["profile"], v["pix_fmt"]) == ("h264", "High", "yuv420p")
        assert (v["width"], v["height"]) == (1280, 720)
        assert (a["codec_name"], a["profile"]) == ("aac", "LC")
        narration = next(
            (demo_dir / "media").rglob(f"episode-{episode['number']:03d}/narration.wav")
        )
        with wave.open(str(narration)) as w:
            spoken = w.getnframes() / w.getframerate()
        assert spoken > 5
        assert abs(float(probe["format"]["duration"]) - spoken) <= 1.0
        boxes = top_level_boxes(video)
        assert boxes.index("moov") < boxes.index("mdat")  # faststart


def test_each_winner_is_the_next_beat_and_people_are_credited(demo_dir: Path) -> None:
    episodes = json.loads((demo_dir / "story.json").read_text())["episodes"]
    for before, after in itertools.pairwise(episodes):
        poll = before["poll"]
        assert 2 <= len(poll["options"]) <= 4
        assert sum(o["votes"] for o in poll["options"]) > 0
        assert after["beat"] == poll["winner"]
        assert after["credits"], "ideas from the audience were woven in and credited"
        assert after["ideas"] and any(
            idea.lower()[:12] in after["narration"].lower() for idea in after["ideas"]
        )
    assert episodes[-1]["poll"]["winner"]


def test_thread_page_embeds_the_clips_and_escapes_text(demo_dir: Path) -> None:
    page = (demo_dir / "thread.html").read_text()
    for n in (1, 2, 3):
        assert f'src="episode-{n:03d}.mp4"' in page
    assert "What happens next?" in page
    assert "<script" not in page


def test_same_seed_same_story(tmp_path: Path) -> None:
    data = small_config(tmp_path, "sqlite:///unused.db")
    config = write_config(tmp_path, data)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    demo(a, "--rounds", "2", "--seed", "9", "--audience", "6", config=config)
    demo(b, "--rounds", "2", "--seed", "9", "--audience", "6", config=config)
    demo(c, "--rounds", "2", "--seed", "10", "--audience", "6", config=config)

    def story(folder: Path) -> list[dict[str, Any]]:
        episodes: list[dict[str, Any]] = json.loads((folder / "story.json").read_text())["episodes"]
        return episodes

    assert story(a) == story(b)
    assert story(a) != story(c)
    assert (a / "episode-001.mp4").read_bytes() == (b / "episode-001.mp4").read_bytes()
