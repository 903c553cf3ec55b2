"""The `storybot` command as operators and followers use it: real processes, real signals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from bot.app import build_app
from bot.config import load_config
from bot.operator.cut import render_story_cut
from story_state.errors import ConfigError
from tests.bot.conftest import small_config, write_config

ROOT = Path(__file__).resolve().parents[2]


def storybot(config: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "bot", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"storybot {args} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return write_config(tmp_path, small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}"))


def test_broken_config_fails_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[story]\npremise = "x"\nround_minutes = "soon"\n')
    result = storybot(broken, "run", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {broken}: story.round_minutes: Input should be a valid integer, "
        "unable to parse string as an integer (got 'soon')"
    ]
    missing = storybot(tmp_path / "nope.toml", "status", check=False)
    assert missing.returncode == 1 and "config file not found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_follower_commands_and_status(config_file: Path, tmp_path: Path) -> None:
    assert "opened the round after episode 1" in storybot(config_file, "tick").stdout
    assert storybot(config_file, "tick").stdout.strip() == "nothing due"
    assert (
        "reply 3 by ana"
        in storybot(config_file, "local", "reply", "--as", "ana", "The miners rebel").stdout
    )
    assert "ben liked post 3" in storybot(config_file, "local", "like", "--as", "ben", "3").stdout
    thread = json.loads(storybot(config_file, "local", "thread", "--json").stdout)
    label = thread["posts"][1]["poll"]["options"][1]["label"]
    assert "voted 2" in storybot(config_file, "local", "vote", "--as", "ben", label).stdout
    again = storybot(config_file, "local", "vote", "--as", "ben", "1", check=False)
    assert again.returncode == 1 and "ben already voted" in again.stderr
    actions = tmp_path / "actions.jsonl"
    actions.write_text('{"as": "cy", "vote": 2}\n{"as": "dara", "reply": "a second sun"}\n')
    assert "imported 2 action(s)" in storybot(config_file, "local", "import", str(actions)).stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"as": "eli", "vote": 9}\n')
    result = storybot(config_file, "local", "import", str(bad), check=False)
    assert result.returncode == 1 and "line 1: option 9 does not exist" in result.stderr

    doc = json.loads(storybot(config_file, "status", "--json").stdout)
    story = doc["stories"][0]
    assert story["open_round"]["suggestions"] == 0  # harvested at the next tick
    assert [e["state"] for e in story["episodes"]] == ["polling"]
    closed = storybot(config_file, "round", "close").stdout
    assert f"closed round 1: {label!r} (most votes (2))" in closed
    doc = json.loads(storybot(config_file, "status", "--json").stdout)
    assert [e["state"] for e in doc["stories"][0]["episodes"]] == ["closed", "planned"]
    assert doc["stories"][0]["episodes"][1]["credits"] == ["ana", "dara"]
    assert "open round" not in storybot(config_file, "status").stdout
    text_thread = storybot(config_file, "local", "thread").stdout
    assert "storybot (bot)" in text_thread and "ana: The miners rebel" in text_thread


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def query(db: Path, sql: str) -> list[Any]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)))
    finally:
        engine.dispose()


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # the database may not exist yet
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []

    def start(config: Path, *args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), "run", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def test_kill_mid_render_then_resume_without_a_second_post(
    tmp_path: Path, running: Callable[..., subprocess.Popen[str]]
) -> None:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}")
    data["generation"]["clip"].update(width=960, height=540, fps=24, preset="medium")
    data["story"]["target_seconds"] = 12.0
    config = write_config(tmp_path, data)
    db = tmp_path / "bot.db"
    state = "SELECT state FROM episodes WHERE number = 1"

    first = running(config, "--no-web")
    wait_for("episode 1 to be written", lambda: query(db, state) == [("written",)])
    time.sleep(1.0)  # well inside the render
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    assert query(db, state) == [("written",)], "the kill did not land mid-render"
    assert query(db, "SELECT count(*) FROM local_posts") == [(0,)]

    second = running(config, "--no-web")
    wait_for("the round to open", lambda: query(db, state) == [("polling",)])
    second.send_signal(signal.SIGTERM)
    out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, out
    assert "stopping after the current step" in out and "stopped" in out
    posts = query(db, "SELECT idempotency_key, in_reply_to FROM local_posts ORDER BY id")
    assert posts == [("salt-flats:1:clip:local", None), ("salt-flats:1:poll:local", 1)]
    assert query(db, "SELECT count(*) FROM apscheduler_jobs") == [(1,)]  # jobs live in the DB


def test_run_serves_healthz(tmp_path: Path, running: Callable[..., subprocess.Popen[str]]) -> None:
    port = free_port()
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}")
    data["web"]["port"] = port
    proc = running(write_config(tmp_path, data))

    def healthy() -> bool:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        return response.status_code == 200 and response.json()["database"] == "ok"

    wait_for("/healthz", healthy, timeout=60)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out


def test_run_refuses_a_busy_port_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}")
        data["web"]["port"] = busy.getsockname()[1]
        result = storybot(write_config(tmp_path, data), "run", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("Error: web.port: cannot serve on")
    assert "Traceback" not in result.stderr


def test_secrets_can_come_from_an_env_file_beside_the_config(tmp_path: Path) -> None:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}")
    data["generation"]["writer"] = {"backend": "openai", "api_key_env": "STORYBOT_TEST_ENV_KEY"}
    config = write_config(tmp_path, data)
    missing = storybot(config, "status", check=False)
    assert missing.returncode == 1
    assert "STORYBOT_TEST_ENV_KEY is not set" in missing.stderr
    (tmp_path / ".env").write_text("export STORYBOT_TEST_ENV_KEY='sk-from-file'\n")
    assert "no stories yet" in storybot(config, "status").stdout


def test_cut_joins_the_story_and_rerenders_missing_files(config_file: Path, tmp_path: Path) -> None:
    storybot(config_file, "tick")
    storybot(config_file, "local", "reply", "--as", "ana", "The miners rebel")
    storybot(config_file, "round", "close")
    storybot(config_file, "tick")
    clips = sorted((tmp_path / "media").rglob("clip.mp4"))
    assert len(clips) == 2
    clips[0].unlink()  # the cut renders it again from the stored script
    out = tmp_path / "cut.mp4"
    result = storybot(config_file, "cut", "--out", str(out))
    assert "1 name(s) in the credits" in result.stdout
    assert clips[0].is_file() and out.stat().st_size > 0
    chapters = json.loads(
        subprocess.run(
            ["ffprobe", "-v", "error", "-print_format", "json", "-show_chapters", str(out)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["chapters"]
    titles = [c["tags"]["title"] for c in chapters]
    assert titles[0] == "Salt" and titles[-1] == "Credits"
    assert [t.split(" — ")[0] for t in titles[1:3]] == ["Chapter 1", "Chapter 2"]


def test_cut_into_a_missing_folder_is_one_line_and_makes_no_folder(
    config_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "nonexistent" / "dir" / "f.mp4"
    result = storybot(config_file, "cut", "--out", str(out), check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: --out: the folder {out.parent} does not exist"
    ]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "nonexistent").exists()
    # The same refusal inside, for any other caller that asks for it (the dashboard's cut
    # writes into the media root and keeps making its folder).
    app = build_app(load_config(config_file))
    try:
        with pytest.raises(ConfigError, match="does not exist"):
            render_story_cut(app, "main", out, datetime.now(UTC), make_folder=False)
    finally:
        app.close()
    assert not (tmp_path / "nonexistent").exists()


def test_operator_commands_are_kept_in_the_operator_log(config_file: Path) -> None:
    assert storybot(config_file, "audit").stdout.strip() == "no operator actions yet"
    storybot(config_file, "tick")
    assert "paused" in storybot(config_file, "pause").stdout
    storybot(config_file, "resume")
    fork = ("fork", "--from", "9", "--option", "1", "--name", "b")
    refused = storybot(config_file, *fork, check=False)
    assert refused.returncode == 1
    rows = json.loads(storybot(config_file, "audit", "--json").stdout)["actions"]
    assert [(r["source"], r["action"], r["ok"]) for r in rows] == [
        ("cli", "fork --from 9 --option 1 --name b", False),
        ("cli", "resume", True),
        ("cli", "pause", True),
    ]
    assert "no episode 9" in rows[0]["outcome"] and "paused" in rows[2]["outcome"]
    assert all(r["actor"] for r in rows)
    text = storybot(config_file, "audit", "--limit", "1").stdout.strip().splitlines()
    assert len(text) == 1 and "fork --from 9" in text[0] and "FAILED" in text[0]
