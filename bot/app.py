"""The composition root: wires storage, platforms and generators from the config."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot.config import Config, base_dir, database_url, media_root
from bot.ideas.embeddings_openai import Embedder
from bot.ideas.moderation_openai import Classifier
from bot.loop.runner import StoryRunner
from bot.platforms.base import Platform
from bot.platforms.local import LocalPlatform
from bot.workers.queue import build_jobs, job_timeout
from generation.clip.base import ClipAssembler
from generation.clip.ffmpeg import FfmpegAssembler
from generation.image.base import ImageRenderer
from generation.pipeline import Generators
from generation.voice.base import Voice
from generation.writer.base import Writer
from generation.writer.template import TemplateWriter
from story_state import migrate
from story_state.clock import Clock, utcnow
from story_state.db import make_engine, session_factory, session_scope
from story_state.errors import ConfigError
from story_state.models import Contributor


def _key(env_name: str) -> str | None:
    return os.environ.get(env_name) or None


# Each backend is built by one factory, chosen by one config key. Heavy libraries are
# imported inside the factory, so an operator only installs the extras they use.


def _moderation(config: Config) -> Classifier | None:
    cfg = config.moderation
    if cfg.backend != "openai":
        return None
    from bot.ideas.moderation_openai import OpenAIModeration

    return OpenAIModeration(
        base_url=cfg.base_url or None,
        model=cfg.model,
        api_key=_key(cfg.api_key_env),
        timeout_s=cfg.timeout_s,
    )


def _embedder(config: Config) -> Embedder | None:
    cfg = config.clustering
    if cfg.backend != "openai":
        return None
    from bot.ideas.embeddings_openai import OpenAIEmbeddings

    return OpenAIEmbeddings(
        base_url=cfg.base_url or None,
        model=cfg.model,
        api_key=_key(cfg.api_key_env),
        dimensions=cfg.dimensions,
        timeout_s=cfg.timeout_s,
    )


def _writer(config: Config) -> Writer:
    cfg = config.generation.writer
    if cfg.backend == "openai":
        from generation.writer.openai import OpenAIWriter

        return OpenAIWriter(
            base_url=cfg.base_url or None,
            model=cfg.model,
            api_key=_key(cfg.api_key_env),
            timeout_s=cfg.timeout_s,
            max_retries=cfg.max_retries,
            temperature=cfg.temperature,
            fallback=TemplateWriter(),
            api=cfg.api,
        )
    return TemplateWriter()


def _image(config: Config) -> ImageRenderer:
    cfg = config.generation.image
    if cfg.backend == "diffusers":
        from generation.image.diffusers import DiffusersRenderer

        model = cfg.model
        if (base_dir(config) / model).is_dir():
            model = str(base_dir(config) / model)
        return DiffusersRenderer(
            model=model,
            device=cfg.device,
            dtype=cfg.dtype,
            steps=cfg.steps,
            guidance=cfg.guidance,
            negative_prompt=cfg.negative_prompt,
            gen_width=cfg.gen_width,
            gen_height=cfg.gen_height,
            local_files_only=cfg.local_files_only,
            scheduler=cfg.scheduler,
        )
    if cfg.backend == "openai":
        from generation.image.openai import OpenAIImages

        return OpenAIImages(
            base_url=cfg.base_url or None,
            model=cfg.model or "gpt-image-1",
            api_key=_key(cfg.api_key_env),
            size=cfg.size,
            quality=cfg.quality,
            timeout_s=cfg.timeout_s,
        )
    from generation.image.procedural import ProceduralRenderer

    return ProceduralRenderer()


def _voice(config: Config) -> Voice:
    cfg = config.generation.voice
    voice: Voice
    if cfg.backend == "coqui":
        from generation.voice.coqui import CoquiVoice

        assert cfg.model_dir is not None  # the config validator guarantees it
        model_dir = (
            cfg.model_dir if cfg.model_dir.is_absolute() else base_dir(config) / cfg.model_dir
        )
        voice = CoquiVoice(
            model_dir=model_dir,
            speaker=cfg.speaker,
            character_voices=cfg.character_voices,
            language=cfg.language,
            device=cfg.device,
        )
    elif cfg.backend == "piper":
        from generation.voice.espeak import EspeakVoice
        from generation.voice.piper import PiperVoice

        model = cfg.piper_model
        if model is not None and not model.is_absolute():
            model = base_dir(config) / model
        voice = PiperVoice(
            model=model,
            speaker=cfg.speaker,
            character_voices=cfg.character_voices,
            length_scale=cfg.length_scale,
            noise_scale=cfg.noise_scale,
            noise_w=cfg.noise_w,
            # Speaks when the Piper voice cannot load (extra missing, model file broken).
            fallback=EspeakVoice(voice=cfg.voice, speed_wpm=cfg.speed_wpm, pitch=cfg.pitch),
        )
    elif cfg.backend == "openai":
        from generation.voice.openai import OpenAISpeech

        voice = OpenAISpeech(
            base_url=cfg.base_url or None,
            model=cfg.model,
            voice=cfg.openai_voice,
            api_key=_key(cfg.api_key_env),
            instructions=cfg.instructions,
            timeout_s=cfg.timeout_s,
        )
    else:
        from generation.voice.espeak import EspeakVoice

        voice = EspeakVoice(voice=cfg.voice, speed_wpm=cfg.speed_wpm, pitch=cfg.pitch)
    if cfg.treatment != "none":
        from generation.voice.treatment import TreatedVoice

        voice = TreatedVoice(voice, cfg.treatment)
    return voice


def _clip(config: Config) -> ClipAssembler:
    clip = config.generation.clip
    return FfmpegAssembler(preset=clip.preset, max_seconds=clip.max_seconds, ambient=clip.ambient)


def _blocked_handles(config: Config, factory: sessionmaker[Session], platform: str) -> set[str]:
    """Accounts whose votes do not count where votes are public: the config's
    moderation.blocked_accounts and the people the operator blocked on ``platform``."""
    handles = {h.strip().lstrip("@").lower() for h in config.moderation.blocked_accounts}
    with session_scope(factory) as session:
        rows = session.scalars(
            select(Contributor.handle).where(
                Contributor.platform == platform, Contributor.blocked.is_(True)
            )
        )
        handles |= {h.lower() for h in rows}
    return handles


def build_platforms(
    config: Config, factory: sessionmaker[Session], clock: Clock
) -> dict[str, Platform]:
    chosen: dict[str, Platform] = {}
    if config.platforms.local.enabled:
        chosen["local"] = LocalPlatform(factory, config.platforms.local.bot_name, clock)
    mastodon = config.platforms.mastodon
    if mastodon.enabled:
        from bot.platforms.mastodon.adapter import MastodonPlatform

        chosen["mastodon"] = MastodonPlatform(
            mastodon.instance,
            config.secret(mastodon.token_env),
            visibility=mastodon.visibility,
            language=mastodon.language or None,
            spoiler_text=mastodon.spoiler_text or None,
            media_deadline_s=mastodon.media_deadline_s,
            clock=clock,
        )
    x = config.platforms.x
    if x.enabled:
        from bot.platforms.x.adapter import XPlatform

        chosen["x"] = XPlatform(
            config.secret(x.consumer_key_env),
            config.secret(x.consumer_secret_env),
            config.secret(x.access_token_env),
            config.secret(x.access_secret_env),
            post_only=x.post_only,
            api_base=x.api_base,
            media_deadline_s=x.media_deadline_s,
            user_id=x.user_id,
            clock=clock,
        )
    bluesky = config.platforms.bluesky
    if bluesky.enabled:
        from bot.platforms.bluesky.adapter import BlueskyPlatform

        session_file = bluesky.session_file
        if not session_file.is_absolute():
            session_file = base_dir(config) / session_file
        chosen["bluesky"] = BlueskyPlatform(
            bluesky.service,
            bluesky.handle,
            lambda: os.environ.get(bluesky.password_env, ""),
            session_file=session_file,
            language=bluesky.language or None,
            web_url=bluesky.web_url,
            video=bluesky.video,
            blocked=lambda: _blocked_handles(config, factory, "bluesky"),
            blocked_domains=config.moderation.blocked_domains,
            clock=clock,
        )
    if not chosen:
        raise ConfigError(f"{config.source}: platforms: enable at least one platform")
    return chosen


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
        """Close what holds connections: platform sessions, API clients, the job queue."""
        gens = self.runner.generators
        parts = (*self.platforms.values(), gens.writer, gens.image, gens.voice, gens.clip)
        for part in (*parts, self.runner.moderation, self.runner.embedder):
            close = getattr(part, "close", None)
            if callable(close):
                close()
        close_jobs = getattr(self.runner.jobs, "close", None)
        if callable(close_jobs):  # a broker's connections
            close_jobs()
        self.engine.dispose()


def build_app(
    config: Config,
    *,
    platforms: Mapping[str, Platform] | None = None,
    generators: Generators | None = None,
    clock: Clock = utcnow,
    migrate_db: bool = True,
) -> App:
    """Everything the CLI, the scheduler and the tests need, built one way."""
    url = database_url(config)
    if migrate_db:
        migrate.upgrade(url)
    engine = make_engine(url)
    factory = session_factory(engine)
    chosen = dict(platforms) if platforms is not None else build_platforms(config, factory, clock)
    found = chosen.get("local")
    local = found if isinstance(found, LocalPlatform) else None
    if generators is None:
        generators = Generators(_writer(config), _image(config), _voice(config), _clip(config))
    runner = StoryRunner(
        config,
        factory,
        chosen,
        generators,
        media_root(config),
        clock,
        jobs=build_jobs(config),
        job_timeout=job_timeout(config),
        moderation=_moderation(config),
        embedder=_embedder(config),
    )
    return App(config, engine, factory, chosen, local, runner)
