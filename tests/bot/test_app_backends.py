"""Real backends chosen by config.toml, loaded the way an operator's deployment loads them.

Tiny random-weight models stand in for real weights: a Stable Diffusion pipeline and a VITS
voice saved to folders, and a local OpenAI-compatible server on loopback for the writer.
"""

from __future__ import annotations

import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app import App
from bot.config import load_config
from generation.image.diffusers import DiffusersRenderer
from generation.voice.coqui import CoquiVoice
from generation.voice.treatment import TreatedVoice
from generation.writer.openai import OpenAIWriter
from story_state.db import session_scope
from story_state.lifecycle import EpisodeState
from story_state.models import Episode
from tests.bot.conftest import small_config, write_config
from tests.generation.openai_server import FakeOpenAI, chat, serving
from tests.generation.test_openai_backends import VALID, reply
from tests.generation.tiny_models import build_tiny_sd_pipeline
from tests.generation.tiny_vits import build_tiny_vits

MakeApp = Callable[..., App]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("models")
    return build_tiny_sd_pipeline(root / "sd"), build_tiny_vits(root / "vits")


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with serving() as fake:
        yield fake


def first_episode(app: App) -> Episode:
    with session_scope(app.factory) as session:
        return session.scalars(select(Episode)).one()


@pytest.mark.timeout(300)
def test_diffusers_and_coqui_from_config(
    tmp_path: Path, make_app: MakeApp, models: tuple[Path, Path]
) -> None:
    sd, vits = models
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}")
    data["generation"]["image"] = {
        "backend": "diffusers",
        "model": str(sd),
        "steps": 2,
        "gen_width": 64,
        "gen_height": 64,
    }
    data["generation"]["voice"] = {
        "backend": "coqui",
        "model_dir": "models/vits",
        "treatment": "radio",
    }
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "vits").symlink_to(vits)  # relative to the config file
    config = load_config(write_config(tmp_path, data))
    app = make_app("unused", config=config)
    gens = app.runner.generators
    assert isinstance(gens.image, DiffusersRenderer)
    assert isinstance(gens.voice, TreatedVoice) and isinstance(gens.voice.inner, CoquiVoice)
    app.runner.tick()
    episode = first_episode(app)
    assert episode.state is EpisodeState.POLLING
    folder = app.runner.media_root / Path(episode.video_path or "").parent
    with wave.open(str(folder / "narration.wav")) as w:
        assert w.getframerate() == 16000 and w.getnframes() > 0  # the tiny VITS's rate
    assert (folder / "still.png").stat().st_size > 0


def test_openai_writer_from_config(
    tmp_path: Path, make_app: MakeApp, fake_openai: FakeOpenAI
) -> None:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'bot.db'}")
    data["story"]["target_seconds"] = 25.0  # the canned narration is about 25 s long
    data["generation"]["writer"] = {
        "backend": "openai",
        "base_url": fake_openai.base_url,
        "model": "local-llama",
        "api_key_env": "STORYBOT_TEST_NO_KEY",
        "max_retries": 0,
    }
    config = load_config(write_config(tmp_path, data))
    app = make_app("unused", config=config)
    assert isinstance(app.runner.generators.writer, OpenAIWriter)
    fake_openai.queue("/v1/chat/completions", chat(reply(title="The Captain's Voice")))
    app.runner.tick()
    episode = first_episode(app)
    assert episode.title == "Episode 1: The Captain's Voice"
    assert episode.narration == VALID["narration"]
    body = fake_openai.bodies("/v1/chat/completions")[0]
    assert body["model"] == "local-llama"
    assert episode.state is EpisodeState.POLLING
