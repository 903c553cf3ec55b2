"""What `storybot doctor` reports: what will work with this config, what will not, and why.

It checks the config and its secrets (by variable name; values never shown), the database and
its migration revision, ffmpeg, the voice and the other generators, the media folder, and each
enabled platform: the account, what the server accepts and whether replies and polls can be
read. It changes nothing: no post, no migration, no new database file. Exit status 1 means
something storybot needs is broken; the report is printed either way.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import sessionmaker

from bot.app import build_platforms
from bot.config import Config, load_config
from bot.doctor.checks import (
    Check,
    Status,
    database_rows,
    ffmpeg_rows,
    generator_rows,
    guarded,
    media_rows,
    secret_rows,
    web_rows,
)
from bot.doctor.platforms import platform_rows, reads
from bot.platforms.base import Platform
from story_state.errors import ConfigError, StorybotError

__all__ = ["Check", "DoctorReport", "Status", "report_for", "run_doctor"]

PLATFORM_ORDER = ("local", "mastodon", "bluesky", "x")
# x last: its post-only row names the readers
_RANK = {"local": 0, "mastodon": 1, "bluesky": 2, "x": 9}
_MARKS = {
    Status.OK: ("ok", "green"),
    Status.WARN: ("warn", "yellow"),
    Status.FAIL: ("FAIL", "red"),
    Status.UNKNOWN: ("??", "magenta"),
}


@dataclass(frozen=True)
class DoctorReport:
    checks: tuple[Check, ...]
    config: str | None = None

    @property
    def ok(self) -> bool:
        """True when everything storybot needs was shown to work (warnings allowed): nothing
        broken and nothing left unverified."""
        return not self.failures and not self.unknowns

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.FAIL)

    @property
    def unknowns(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.status is Status.UNKNOWN)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "config": self.config,
            "checks": [
                {"area": c.area, "item": c.item, "status": str(c.status), "detail": c.detail}
                for c in self.checks
            ],
        }

    def render(self, *, styled: bool = False) -> str:
        area_w = max((len(c.area) for c in self.checks), default=0)
        item_w = max((len(c.item) for c in self.checks), default=0)
        lines = [f"storybot doctor: {self.config or '(no config)'}", ""]
        for c in self.checks:
            mark, colour = _MARKS[c.status]
            shown = click.style(f"{mark:<4}", fg=colour, bold=True) if styled else f"{mark:<4}"
            lines.append(f"  {shown}  {c.area:<{area_w}}  {c.item:<{item_w}}  {c.detail}")
        lines.append("")
        warned = sum(c.status is Status.WARN for c in self.checks)
        if self.failures:
            broken = ", ".join(f"{c.area} {c.item}" for c in self.failures)
            lines.append(f"{len(self.failures)} to fix before storybot can run: {broken}")
        if self.unknowns:
            unsure = ", ".join(f"{c.area} {c.item}" for c in self.unknowns)
            lines.append(
                f"{len(self.unknowns)} could not be verified: {unsure} "
                "(`storybot doctor --probe` tries an upload)"
            )
        if self.failures or self.unknowns:
            lines.append("Not everything needed is known to work: see the rows above.")
        elif warned:
            lines.append(f"Everything needed works; {warned} with limits (warn rows say why).")
        else:
            lines.append("Everything works.")
        return "\n".join(lines)


def _env_names(model: BaseModel) -> set[str]:
    names: set[str] = set()
    for field, value in model:
        if isinstance(value, BaseModel):
            names |= _env_names(value)
        elif field.endswith("_env") and isinstance(value, str):
            names.add(value)
    return names


def _secret_values(config: Config) -> list[str]:
    """Every secret this config can reach; no row may contain one."""
    values = [os.environ.get(name, "") for name in _env_names(config)]
    with contextlib.suppress(ArgumentError):
        values.append(make_url(config.database.url).password or "")
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def _scrubbed(checks: Iterable[Check], secrets: list[str]) -> tuple[Check, ...]:
    out = []
    for check in checks:
        detail = check.detail
        for secret in secrets:
            detail = detail.replace(secret, "****")
        out.append(Check(check.area, check.item, check.status, detail))
    return tuple(out)


def _grouped(checks: list[Check]) -> list[Check]:
    """Each area's rows together (a platform's secrets beside its account), in first-seen order."""
    first: dict[str, int] = {}
    for index, check in enumerate(checks):
        if check.item != "secret":
            first.setdefault(check.area, index)
    ranked = sorted(enumerate(checks), key=lambda pair: first.get(pair[1].area, pair[0]))
    return [check for _, check in ranked]


def _build(config: Config, name: str) -> Platform | Check | None:
    """One enabled platform, wired by the composition root with the others switched off."""
    sections = {
        n: getattr(config.platforms, n).model_copy(update={"enabled": n == name})
        for n in PLATFORM_ORDER
    }
    alone = config.model_copy(update={"platforms": config.platforms.model_copy(update=sections)})
    try:
        # The sandbox's session factory is never used: the doctor only reads its limits.
        return build_platforms(alone, sessionmaker(), lambda: datetime.now(UTC))[name]
    except ConfigError:
        return None  # a secret is missing: its row already says which
    except StorybotError as exc:
        return Check(name, "adapter", Status.FAIL, str(exc))


def run_doctor(
    config: Config, *, platforms: Mapping[str, Platform] | None = None, probe: bool = False
) -> DoctorReport:
    """Check everything ``config`` needs; ``platforms`` replaces the adapters it would build.

    ``probe`` also uploads a test clip (unattached, deleted where allowed) where a server does
    not say whether it takes video."""
    checks = [Check("config", "file", Status.OK, "valid")]
    probes: list[tuple[str, Callable[[Config], list[Check]]]] = [
        ("config", secret_rows),
        ("database", database_rows),
        ("media", media_rows),
        ("clip", lambda _config: ffmpeg_rows()),
        ("generation", generator_rows),
        ("web", web_rows),
    ]
    for area, rows_of in probes:
        checks += guarded(area, partial(rows_of, config))
    built: dict[str, Platform] = {}
    if platforms is None:
        for name in PLATFORM_ORDER:
            if getattr(config.platforms, name).enabled:
                made = _build(config, name)
                if isinstance(made, Check):
                    checks.append(made)
                elif made is not None:
                    built[name] = made
        chosen: Mapping[str, Platform] = built
    else:
        chosen = platforms
    if not any(getattr(config.platforms, n).enabled for n in PLATFORM_ORDER) and not chosen:
        checks.append(Check("platforms", "enabled", Status.FAIL, "enable at least one platform"))
    readers: list[str] = []
    order = sorted(chosen, key=lambda n: _RANK.get(n, 5))
    try:
        for name in order:
            rows = platform_rows(name, chosen[name], config, readers, probe=probe)
            checks += rows
            if reads(rows):
                readers.append(name)
    finally:
        for platform in built.values():
            close = getattr(platform, "close", None)
            if callable(close):
                close()
    shown = str(config.source) if config.source else None
    return DoctorReport(_scrubbed(_grouped(checks), _secret_values(config)), shown)


def _lenient(path: Path) -> Config | None:
    """The config without the missing-secret check (the report lists missing secrets)."""
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8"))
        return Config.model_validate({**data, "source": path})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError):
        return None


def report_for(path: Path, *, probe: bool = False) -> DoctorReport:
    try:
        config = load_config(path)
    except ConfigError as exc:
        lenient = _lenient(path)
        if lenient is None:
            return DoctorReport((Check("config", "file", Status.FAIL, str(exc)),), str(path))
        config = lenient
    return run_doctor(config, probe=probe)
