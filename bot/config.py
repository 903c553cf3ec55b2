"""config.toml → validated, frozen settings; secrets come from environment variables only."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from story_state.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorySettings(_Section):
    slug: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")] = "salt-flats"
    title: Annotated[str, Field(min_length=1, max_length=200)] = "Salt"
    premise: Annotated[str, Field(min_length=1, max_length=2000)]
    style: str = "35mm film still, grainy, 1970s science fiction"
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")] = "en"
    round_minutes: Annotated[int, Field(ge=1, le=10080)] = 60
    episode_cap: Annotated[int, Field(ge=1, le=500)] = 12
    seed: int = 1
    poll_question: Annotated[str, Field(min_length=1, max_length=200)] = "What happens next?"
    target_seconds: Annotated[float, Field(ge=5, le=120)] = 20.0
    # Offer "end the story here" in the poll once this few episodes remain before the cap.
    offer_ending_within: Annotated[int, Field(ge=0, le=50)] = 2
    # Lore the writer introduces: "auto" makes it canon, "review" queues it for the operator.
    lore_updates: Literal["auto", "review"] = "auto"


class DatabaseSettings(_Section):
    url: Annotated[str, Field(min_length=1)] = "sqlite:///storybot.db"


class MediaSettings(_Section):
    root: Path = Path("media")


class LocalPlatformSettings(_Section):
    enabled: bool = True
    bot_name: Annotated[str, Field(min_length=1, max_length=64)] = "storybot"


class MastodonSettings(_Section):
    enabled: bool = False
    instance: str = ""
    token_env: str = "STORYBOT_MASTODON_TOKEN"
    visibility: Literal["public", "unlisted", "private"] = "public"

    @model_validator(mode="after")
    def _instance_when_enabled(self) -> MastodonSettings:
        if self.enabled and not self.instance.startswith(("https://", "http://")):
            raise ValueError("instance must be the server's https:// URL when enabled")
        return self


class XSettings(_Section):
    enabled: bool = False
    consumer_key_env: str = "STORYBOT_X_CONSUMER_KEY"
    consumer_secret_env: str = "STORYBOT_X_CONSUMER_SECRET"
    access_token_env: str = "STORYBOT_X_ACCESS_TOKEN"
    access_secret_env: str = "STORYBOT_X_ACCESS_SECRET"
    post_only: bool = True


class PlatformSettings(_Section):
    local: LocalPlatformSettings = LocalPlatformSettings()
    mastodon: MastodonSettings = MastodonSettings()
    x: XSettings = XSettings()


class WriterSettings(_Section):
    backend: Literal["template"] = "template"


class ImageSettings(_Section):
    backend: Literal["procedural"] = "procedural"


class VoiceSettings(_Section):
    backend: Literal["espeak"] = "espeak"
    voice: str = "en-us"
    speed_wpm: Annotated[int, Field(ge=80, le=450)] = 150
    pitch: Annotated[int, Field(ge=0, le=99)] = 40


class ClipSettings(_Section):
    width: Annotated[int, Field(ge=64, le=1920, multiple_of=2)] = 1280
    height: Annotated[int, Field(ge=64, le=1920, multiple_of=2)] = 720
    fps: Annotated[int, Field(ge=12, le=60)] = 24
    look: Literal["clean", "film", "vhs"] = "film"
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"


class GenerationSettings(_Section):
    writer: WriterSettings = WriterSettings()
    image: ImageSettings = ImageSettings()
    voice: VoiceSettings = VoiceSettings()
    clip: ClipSettings = ClipSettings()


class ModerationSettings(_Section):
    blocklist_file: Path | None = None
    max_length: Annotated[int, Field(ge=20, le=5000)] = 400
    blocked_accounts: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    approval_mode: bool = False


class WebSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080


class SchedulerSettings(_Section):
    tick_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    retry_base_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8


class Config(_Section):
    story: StorySettings
    database: DatabaseSettings = DatabaseSettings()
    media: MediaSettings = MediaSettings()
    platforms: PlatformSettings = PlatformSettings()
    generation: GenerationSettings = GenerationSettings()
    moderation: ModerationSettings = ModerationSettings()
    web: WebSettings = WebSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    source: Path | None = Field(default=None, exclude=True)

    def secret(self, env_name: str) -> str:
        """The secret held in ``env_name``; never stored on the config itself."""
        value = os.environ.get(env_name, "")
        if not value:
            raise ConfigError(f"environment variable {env_name} is not set")
        return value


def _required_secrets(config: Config) -> list[tuple[str, str]]:
    """(config key, env var) pairs that an enabled backend needs."""
    needed: list[tuple[str, str]] = []
    mastodon = config.platforms.mastodon
    if mastodon.enabled:
        needed.append(("platforms.mastodon.token_env", mastodon.token_env))
    x = config.platforms.x
    if x.enabled:
        for key in (
            "consumer_key_env",
            "consumer_secret_env",
            "access_token_env",
            "access_secret_env",
        ):
            needed.append((f"platforms.x.{key}", getattr(x, key)))
    return needed


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown key"
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    given = error.get("input")
    shown = f" (got {given!r})" if not isinstance(given, dict | list) else ""
    return f"{key}: {error['msg']}{shown}"


def parse_config(data: dict[str, Any], source: Path | None = None) -> Config:
    where = str(source) if source else "<config>"
    try:
        config = Config.model_validate({**data, "source": source})
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        extra = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{where}: {_describe(dict(first))}{extra}") from None
    for key, env_name in _required_secrets(config):
        if not os.environ.get(env_name):
            raise ConfigError(
                f"{where}: {key}: environment variable {env_name} is not set "
                f"(needed because that backend is enabled)"
            )
    return config


def load_config(path: Path) -> Config:
    """Read and validate ``path``; every problem becomes one ConfigError line."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    return parse_config(data, source=path)
