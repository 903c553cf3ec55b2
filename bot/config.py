"""config.toml → validated, frozen settings; secrets come from environment variables only."""

from __future__ import annotations

import difflib
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
    language: str | None = "en"
    spoiler_text: str | None = None
    media_deadline_s: Annotated[float, Field(gt=0, le=3600)] = 600.0

    @model_validator(mode="after")
    def _instance_when_enabled(self) -> MastodonSettings:
        if self.enabled and not self.instance.startswith(("https://", "http://")):
            raise ValueError("instance must be the server's https:// URL when enabled")
        return self


class XSettings(_Section):
    enabled: bool = False
    api_base: str = "https://api.x.com"
    media_deadline_s: Annotated[float, Field(gt=0, le=3600)] = 600.0
    user_id: str | None = None
    consumer_key_env: str = "STORYBOT_X_CONSUMER_KEY"
    consumer_secret_env: str = "STORYBOT_X_CONSUMER_SECRET"
    access_token_env: str = "STORYBOT_X_ACCESS_TOKEN"
    access_secret_env: str = "STORYBOT_X_ACCESS_SECRET"
    post_only: bool = True


class BlueskySettings(_Section):
    enabled: bool = False
    # Where the account lives: https://bsky.social for Bluesky's own hosting, or your PDS.
    service: str = "https://bsky.social"
    handle: str = ""
    # An app password (Settings → Privacy and security → App passwords), never the real one.
    password_env: str = "STORYBOT_BLUESKY_APP_PASSWORD"
    # The session (refreshed tokens) kept across restarts, mode 0600; beside the config file.
    session_file: Path = Path("bluesky.session")
    language: str | None = "en"
    video: bool = True  # False: post the clip's still with its alt text instead
    web_url: str = "https://bsky.app"

    @model_validator(mode="after")
    def _account_when_enabled(self) -> BlueskySettings:
        if self.enabled and not self.service.startswith(("https://", "http://")):
            raise ValueError("service must be the server's https:// URL when enabled")
        if self.enabled and "." not in self.handle.lstrip("@"):
            raise ValueError("handle must be the bot's full handle (e.g. storybot.bsky.social)")
        return self


class PlatformSettings(_Section):
    local: LocalPlatformSettings = LocalPlatformSettings()
    mastodon: MastodonSettings = MastodonSettings()
    x: XSettings = XSettings()
    bluesky: BlueskySettings = BlueskySettings()


class WriterSettings(_Section):
    backend: Literal["template", "openai"] = "template"
    # openai: any OpenAI-compatible endpoint ("" = OpenAI itself).
    base_url: str = ""
    model: str = "gpt-4o-mini"
    api_key_env: str = "STORYBOT_OPENAI_API_KEY"
    api: Literal["chat", "responses"] = "chat"
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 2
    temperature: Annotated[float, Field(ge=0, le=2)] | None = 0.9


class ImageSettings(_Section):
    backend: Literal["procedural", "diffusers", "openai"] = "procedural"
    # diffusers: a local pipeline folder or a hub id; openai: the image model.
    model: str = ""
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")] = "auto"
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    steps: Annotated[int, Field(ge=1, le=200)] = 25
    guidance: Annotated[float, Field(ge=0, le=30)] = 7.0
    negative_prompt: str = "text, letters, watermark, logo, blurry, deformed"
    gen_width: Annotated[int, Field(ge=64, le=2048, multiple_of=8)] | None = None
    gen_height: Annotated[int, Field(ge=64, le=2048, multiple_of=8)] | None = None
    local_files_only: bool = True
    scheduler: str | None = None
    base_url: str = ""
    api_key_env: str = "STORYBOT_OPENAI_API_KEY"
    size: str = "1536x1024"
    quality: str | None = None
    timeout_s: Annotated[float, Field(gt=0, le=900)] = 120.0

    @model_validator(mode="after")
    def _model_when_needed(self) -> ImageSettings:
        if self.backend == "diffusers" and not self.model:
            raise ValueError("model: the diffusers backend needs a pipeline folder or hub id")
        return self


class VoiceSettings(_Section):
    backend: Literal["espeak", "piper", "coqui", "openai"] = "espeak"
    voice: str = "en-us"
    speed_wpm: Annotated[int, Field(ge=80, le=450)] = 150
    pitch: Annotated[int, Field(ge=0, le=99)] = 40
    # piper: a .onnx voice with its .onnx.json beside it (None: the bundled en_US "joe" voice),
    # and overrides of the voice's own pace and variation (None: the voice's settings).
    piper_model: Path | None = None
    length_scale: Annotated[float, Field(ge=0.25, le=4)] | None = None
    noise_scale: Annotated[float, Field(ge=0, le=2)] | None = None
    noise_w: Annotated[float, Field(ge=0, le=2)] | None = None
    # coqui: a model folder (model file + config.json), speakers for multi-speaker models.
    model_dir: Path | None = None
    speaker: str | None = None
    character_voices: dict[str, str] = Field(default_factory=dict)
    language: str | None = None
    device: Annotated[str, Field(pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$")] = "auto"
    # openai speech.
    model: str = "gpt-4o-mini-tts"
    openai_voice: str = "onyx"
    base_url: str = ""
    api_key_env: str = "STORYBOT_OPENAI_API_KEY"
    instructions: str | None = "Narrate like a 1970s sci-fi radio serial."
    timeout_s: Annotated[float, Field(gt=0, le=900)] = 120.0
    # An audio treatment for any backend.
    treatment: Literal["none", "radio", "tape"] = "none"

    @model_validator(mode="after")
    def _model_dir_when_needed(self) -> VoiceSettings:
        if self.backend == "coqui" and self.model_dir is None:
            raise ValueError("model_dir: the coqui backend needs a model folder")
        return self


class ClipSettings(_Section):
    width: Annotated[int, Field(ge=64, le=1920, multiple_of=2)] = 1280
    height: Annotated[int, Field(ge=64, le=1920, multiple_of=2)] = 720
    fps: Annotated[int, Field(ge=12, le=60)] = 24
    look: Literal["clean", "film", "vhs"] = "film"
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    music: Path | None = None
    music_gain_db: Annotated[float, Field(ge=-60, le=0)] = -20.0
    # A quiet procedural bed under the narration when there is no music.
    ambient: bool = True
    max_seconds: Annotated[float, Field(gt=5, le=140)] = 140.0


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
    # "rules" (the checks above) or "openai": replies the rules let through are also checked
    # by an OpenAI-compatible moderation endpoint.
    backend: Literal["rules", "openai"] = "rules"
    base_url: str = ""
    model: str = "omni-moderation-latest"
    api_key_env: str = "STORYBOT_OPENAI_API_KEY"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 20.0
    on_error: Literal["hold", "allow"] = "hold"
    # Processes besides the runner that judge a busy round's replies (bot.ideas.parallel):
    # None is one a core but one (at most 3); 0 judges everything in the runner.
    workers: Annotated[int, Field(ge=0, le=16)] | None = None


class ClusteringSettings(_Section):
    # "lexical" (shared words) or "openai": also join ideas whose embeddings are close.
    backend: Literal["lexical", "openai"] = "lexical"
    base_url: str = ""
    model: str = "text-embedding-3-small"
    api_key_env: str = "STORYBOT_OPENAI_API_KEY"
    dimensions: Annotated[int, Field(ge=16, le=4096)] | None = 256
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.8
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 20.0


class WebSettings(_Section):
    enabled: bool = True
    admin_token_env: str = "STORYBOT_ADMIN_TOKEN"
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080


class SchedulerSettings(_Section):
    tick_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    retry_base_seconds: Annotated[int, Field(ge=1, le=3600)] = 30
    max_attempts: Annotated[int, Field(ge=1, le=100)] = 8


class WorkersSettings(_Section):
    # "" renders in the scheduler's process; a redis:// URL sends writing and rendering to
    # `storybot worker` processes (extra `workers`). Put no password here: see password_env.
    broker_url: Annotated[str, Field(pattern=r"^(rediss?://\S+)?$")] = ""
    # The broker's password, if it needs one, from this environment variable.
    password_env: str = "STORYBOT_BROKER_PASSWORD"
    # Where Celery keeps task results ("" = nowhere; the database already holds the outcome).
    result_backend: str = ""
    queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "render"
    # Stories whose image or voice backend needs a GPU (diffusers, coqui) queue here instead.
    gpu_queue: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] = "render-gpu"
    # A job not finished this long after it was queued is queued again (its worker was lost).
    job_timeout_minutes: Annotated[float, Field(gt=0, le=1440)] = 30.0


class Config(_Section):
    story: StorySettings
    database: DatabaseSettings = DatabaseSettings()
    media: MediaSettings = MediaSettings()
    platforms: PlatformSettings = PlatformSettings()
    generation: GenerationSettings = GenerationSettings()
    moderation: ModerationSettings = ModerationSettings()
    clustering: ClusteringSettings = ClusteringSettings()
    web: WebSettings = WebSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    workers: WorkersSettings = WorkersSettings()
    source: Path | None = Field(default=None, exclude=True)

    def secret(self, env_name: str) -> str:
        """The secret held in ``env_name``; never stored on the config itself."""
        value = os.environ.get(env_name, "")
        if not value:
            raise ConfigError(f"environment variable {env_name} is not set")
        return value


def _needs_openai_key(backend: str, base_url: str) -> bool:
    """OpenAI itself needs a key; a local OpenAI-compatible server usually does not."""
    return backend == "openai" and (not base_url or "api.openai.com" in base_url)


def _required_secrets(config: Config) -> list[tuple[str, str]]:
    """(config key, env var) pairs that an enabled backend needs."""
    needed: list[tuple[str, str]] = []
    gen = config.generation
    for part in ("writer", "image", "voice"):
        settings = getattr(gen, part)
        if _needs_openai_key(settings.backend, settings.base_url):
            needed.append((f"generation.{part}.api_key_env", settings.api_key_env))
    for section in ("moderation", "clustering"):
        settings = getattr(config, section)
        if _needs_openai_key(settings.backend, settings.base_url):
            needed.append((f"{section}.api_key_env", settings.api_key_env))
    mastodon = config.platforms.mastodon
    if mastodon.enabled:
        needed.append(("platforms.mastodon.token_env", mastodon.token_env))
    bluesky = config.platforms.bluesky
    if bluesky.enabled:
        needed.append(("platforms.bluesky.password_env", bluesky.password_env))
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


def _close_key(loc: tuple[Any, ...]) -> str | None:
    """The known key nearest to the unknown ``loc[-1]`` in its table, for "did you mean"."""
    model: type[BaseModel] = Config
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        if field is None or not (
            isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
        ):
            return None
        model = field.annotation
    known = [name for name in model.model_fields if name != "source"]
    found = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.7)
    return found[0] if found else None


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        near = _close_key(tuple(error["loc"])) if error["loc"] else None
        return f"{key}: unknown key" + (f"; did you mean '{near}'?" if near else "")
    if error["type"] == "missing":
        return f"{key}: required key is missing"
    given = error.get("input")
    shown = f" (got {given!r})" if not isinstance(given, dict | list) else ""
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{key}: {message}{shown}"


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
