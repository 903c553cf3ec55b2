"""The composition root: wires storage, platforms and generators from the config."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config
from bot.platforms.base import Platform
from bot.platforms.local import LocalPlatform
from bot.runner import StoryRunner
from generation.clip.base import ClipAssembler
from generation.clip.ffmpeg import FfmpegAssembler
from generation.image.base import ImageRenderer
from generation.image.procedural import ProceduralRenderer
from generation.pipeline import Generators
from generation.voice.base import Voice
from generation.voice.espeak import EspeakVoice
from generation.writer.base import Writer
from generation.writer.template import TemplateWriter
from story_state import migrate
from story_state.db import make_engine, session_factory
from story_state.errors import ConfigError


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _writer(config: Config) -> Writer:
    return {"template": TemplateWriter}[config.generation.writer.backend]()


def _image(config: Config) -> ImageRenderer:
    return {"procedural": ProceduralRenderer}[config.generation.image.backend]()


def _voice(config: Config) -> Voice:
    cfg = config.generation.voice
    factories: dict[str, Callable[[], Voice]] = {
        "espeak": lambda: EspeakVoice(voice=cfg.voice, speed_wpm=cfg.speed_wpm, pitch=cfg.pitch),
    }
    return factories[cfg.backend]()


def _clip(config: Config) -> ClipAssembler:
    return FfmpegAssembler(preset=config.generation.clip.preset)


def base_dir(config: Config) -> Path:
    """Relative paths in a config file are relative to the file's folder."""
    return config.source.resolve().parent if config.source else Path.cwd()


def database_url(config: Config) -> str:
    url = config.database.url
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(base_dir(config) / url[len(prefix) :])
    return url


def media_root(config: Config) -> Path:
    root = config.media.root
    return root if root.is_absolute() else base_dir(config) / root


@dataclass
class App:
    config: Config
    engine: Engine
    factory: sessionmaker[Session]
    platforms: dict[str, Platform]
    local: LocalPlatform | None
    runner: StoryRunner
    heartbeat: datetime | None = None

    def close(self) -> None:
        self.engine.dispose()


def build_app(
    config: Config,
    *,
    platforms: Mapping[str, Platform] | None = None,
    generators: Generators | None = None,
    clock: Callable[[], datetime] = _utcnow,
    migrate_db: bool = True,
) -> App:
    """Everything the CLI, the scheduler and the tests need, built one way."""
    url = database_url(config)
    if migrate_db:
        migrate.upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    local = None
    if platforms is None:
        chosen: dict[str, Platform] = {}
        if config.platforms.local.enabled:
            local = LocalPlatform(factory, config.platforms.local.bot_name, clock)
            chosen["local"] = local
        for name in ("mastodon", "x"):
            if getattr(config.platforms, name).enabled:
                raise ConfigError(
                    f"{config.source}: platforms.{name}.enabled: the {name} adapter is not "
                    "part of this release yet; set enabled = false"
                )
        if not chosen:
            raise ConfigError(f"{config.source}: platforms: enable at least one platform")
        platforms = chosen
    else:
        found = platforms.get("local")
        local = found if isinstance(found, LocalPlatform) else None
    if generators is None:
        generators = Generators(_writer(config), _image(config), _voice(config), _clip(config))
    runner = StoryRunner(config, factory, platforms, generators, media_root(config), clock)
    return App(config, engine, factory, dict(platforms), local, runner)
