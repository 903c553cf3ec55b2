"""config.toml validation: every problem is one line naming the key and the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_the_shipped_config_is_valid_and_offline() -> None:
    config = load_config(ROOT / "config.toml")
    assert config.platforms.local.enabled
    assert not config.platforms.mastodon.enabled and not config.platforms.x.enabled
    assert config.generation.writer.backend == "template"
    assert config.database.url.startswith("sqlite:///")


def test_every_shipped_key_is_commented() -> None:
    lines = (ROOT / "config.toml").read_text().splitlines()
    for i, line in enumerate(lines):
        if "=" in line and not line.lstrip().startswith("#"):
            above = lines[i - 1].strip()
            assert above.startswith("#") or "=" in above, f"uncommented key: {line}"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[story]\npremise = "x"\nbogus = 1\n', "story.bogus: unknown key"),
        ('[story]\npremise = "x"\n[colour]\n', "colour: unknown key"),
        ('[story]\npremise = "x"\nround_minutes = "soon"\n', "story.round_minutes:"),
        ('[story]\npremise = "x"\nround_minutes = 0\n', "story.round_minutes:"),
        ("[story]\n", "story.premise: required key is missing"),
        ('[story]\npremise = "x"\n[generation.clip]\nwidth = 641\n', "generation.clip.width"),
        (
            '[story]\npremise = "x"\n[generation.writer]\nbackend = "gpt"\n',
            "generation.writer.backend",
        ),
        ("[story\n", "invalid TOML"),
        (
            '[story]\npremise = "x"\nrond_minutes = 5\n',
            "story.rond_minutes: unknown key; did you mean 'round_minutes'?",
        ),
        (
            '[story]\npremise = "x"\n[moderaton]\nmax_length = 300\n',
            "moderaton: unknown key; did you mean 'moderation'?",
        ),
        (
            '[story]\npremise = "x"\n[generation.clip]\nwidht = 640\n',
            "generation.clip.widht: unknown key; did you mean 'width'?",
        ),
    ],
)
def test_bad_config_names_key_and_file(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(Exception) as info:
        load_config(path)
    text = str(info.value)
    assert type(info.value).__name__ == "ConfigError"
    assert text.startswith(str(path))
    assert message in text
    assert "\n" not in text


def test_an_unknown_key_far_from_any_known_one_gets_no_guess(tmp_path: Path) -> None:
    with pytest.raises(Exception) as info:
        load_config(write(tmp_path, '[story]\npremise = "x"\nbogus = 1\n'))
    assert str(info.value).endswith("story.bogus: unknown key")


def test_enabled_backend_without_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MY_TOKEN", raising=False)
    path = write(
        tmp_path,
        '[story]\npremise = "x"\n[platforms.mastodon]\nenabled = true\n'
        'instance = "https://example.social"\ntoken_env = "MY_TOKEN"\n',
    )
    with pytest.raises(
        Exception, match=r"platforms\.mastodon\.token_env: environment variable MY_TOKEN is not set"
    ):
        load_config(path)
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    config = load_config(path)
    assert "s3cret" not in config.model_dump_json()  # secrets are never kept on the config
    assert config.secret("MY_TOKEN") == "s3cret"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="config file not found"):
        load_config(tmp_path / "nope.toml")
