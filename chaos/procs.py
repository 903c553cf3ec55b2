"""The processes the harness starts: `storybot run` lives and `storybot round close` calls."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from bot.loop.failpoints import ENV as FAILPOINTS_ENV
from bot.loop.failpoints import Failpoint

ROOT = Path(__file__).resolve().parents[1]
FIRED = re.compile(r"storybot failpoint (\w+)#(\d+): kill")
ERROR_LINE = re.compile(r"^(Error: |[\w.]+(Error|Exception)\b)")
READY = "storybot is running"  # `storybot run` logs it as its first tick starts


@dataclass
class Proc:
    """One child process, its output going to its own log file."""

    popen: subprocess.Popen[bytes]
    log: Path
    started: float
    name: str
    ready_at: float | None = None

    @property
    def age(self) -> float:
        return time.monotonic() - self.started

    def up_for(self) -> float | None:
        """Seconds since it said it is running; None before (a loaded machine takes many
        seconds just to import)."""
        if self.ready_at is None and READY in self.output():
            self.ready_at = time.monotonic()
        return None if self.ready_at is None else time.monotonic() - self.ready_at

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def fired(self) -> str | None:
        """``name#n`` of the failpoint that killed it, if one did."""
        found = FIRED.search(self.output())
        return f"{found.group(1)}#{found.group(2)}" if found else None

    def kill(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        return self.popen.wait(timeout=30)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as an operator stops it; SIGKILL if it does not stop in time."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return self.kill()

    def last_line(self) -> str:
        """The line that says what went wrong: an exception's, else the last one."""
        return cause(self.output())


def cause(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(" ")]
    found = next((ln for ln in reversed(lines) if ERROR_LINE.match(ln)), None)
    return (found or (lines[-1] if lines else "(no output)"))[:240]


def child_env(
    failpoint: Failpoint | None, extra: Mapping[str, str] = MappingProxyType({})
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != FAILPOINTS_ENV}
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    if failpoint is not None:
        env[FAILPOINTS_ENV] = failpoint.spec()
    return env


def start(
    config: Path,
    logs: Path,
    name: str,
    *args: str,
    failpoint: Failpoint | None = None,
    env: Mapping[str, str] = MappingProxyType({}),
) -> Proc:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with open(log, "wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "bot", "--config", str(config), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=child_env(failpoint, env),
        )
    return Proc(popen, log, time.monotonic(), name)


def write_config(
    workdir: Path, url: str, rounds: int, seed: int, platform: Sequence[str] = ()
) -> Path:
    """A fast story: tiny clips, one-second ticks, rounds that only close when told to.

    ``platform`` holds the TOML lines of the platform settings (default: the local sandbox).
    """

    def q(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string

    lines = [
        "[story]",
        'slug = "chaos"',
        'premise = "A crew of miners finds a derelict ship on the salt flats."',
        "target_seconds = 6.0",
        "round_minutes = 600",
        f"episode_cap = {rounds + 1}",
        "offer_ending_within = 0",
        f"seed = {seed}",
        "[database]",
        f"url = {q(url)}",
        "[media]",
        f"root = {q(workdir / 'media')}",
        "[generation.clip]",
        'width = 320\nheight = 180\nfps = 12\npreset = "ultrafast"',
        "[generation.voice]",
        "speed_wpm = 220",
        "[web]",
        "enabled = false",
        "[scheduler]",
        "tick_seconds = 1\nretry_base_seconds = 1\nmax_attempts = 8",
        *platform,
    ]
    path = workdir / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path
