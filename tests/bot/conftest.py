"""Fixtures for the bot layer: small, fast configs on a real database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bot.app import App, build_app
from bot.config import Config, parse_config
from tests.bot.bluesky import Bluesky, running_bluesky

T0 = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def small_config(tmp_path: Path, url: str, **story: Any) -> dict[str, Any]:
    """A real config with tiny, quick clips (the media pipeline is the real one)."""
    return {
        "story": {
            "premise": "A crew of miners finds a derelict ship on the salt flats.",
            "target_seconds": 6.0,
            "round_minutes": 30,
            "episode_cap": 5,
            **story,
        },
        "database": {"url": url},
        "media": {"root": str(tmp_path / "media")},
        "generation": {
            "clip": {"width": 320, "height": 180, "fps": 12, "preset": "ultrafast"},
            "voice": {"speed_wpm": 220},
        },
        "web": {"host": "127.0.0.1", "port": 0},
        "scheduler": {"tick_seconds": 1, "retry_base_seconds": 5, "max_attempts": 3},
    }


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    """The same settings as a TOML file, for tests that run the real `storybot` command."""
    lines: list[str] = []

    def emit(prefix: str, table: dict[str, Any]) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        for key, value in scalars.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, int | float):
                lines.append(f"{key} = {value}")
            else:
                escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
                lines.append(f'{key} = "{escaped}"')
        for key, value in table.items():
            if isinstance(value, dict):
                emit(f"{prefix}.{key}" if prefix else key, value)

    emit("", data)
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        url: str = request.getfixturevalue("sqlite_url")
    else:
        url = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def make_app(tmp_path: Path, clock: Clock) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(url: str, *, config: Config | None = None, **kwargs: Any) -> App:
        story = kwargs.pop("story", {})
        cfg = config or parse_config(small_config(tmp_path, url, **story))
        app = build_app(cfg, clock=clock, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


@pytest.fixture(scope="session")
def bluesky(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bluesky]:
    """One real AT Protocol network for the whole test session (see tests/bot/bluesky.py)."""
    with running_bluesky(tmp_path_factory.mktemp("bluesky")) as network:
        yield network
