"""What a Mastodon-API server accepts, read from ``/api/v2/instance`` (or v1), and field access.

Servers that speak the Mastodon API without being Mastodon (Pleroma, Akkoma, GoToSocial,
glitch-soc, Hometown) report odd version strings and leave out fields; every reader here
falls back to Mastodon's own defaults instead of failing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

from bot.platforms.base import Limits

DEFAULT_DESCRIPTION_LIMIT = 1500
_VERSION = re.compile(r"^\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")
_COMPATIBLE = re.compile(r"\(compatible;\s*([A-Za-z][\w-]*)", re.IGNORECASE)
_PLUS_FORK = re.compile(r"\+([A-Za-z][A-Za-z-]*)")
_NAME_SLASH = re.compile(r"^\s*([A-Za-z][\w-]*)/")  # "takahe/0.11.0"
# Server software that speaks the Mastodon client API, as it names itself somewhere in the
# instance document (version string, source_url); Misskey's family answers as "misskey".
KNOWN_SOFTWARE = (
    "takahe",
    "gotosocial",
    "akkoma",
    "pleroma",
    "hometown",
    "glitch",
    "sharkey",
    "iceshrimp",
    "firefish",
    "catodon",
    "misskey",
    "snac",
    "mitra",
    "friendica",
    "wordpress",
)
MISSKEY_FAMILY = {"misskey", "sharkey", "iceshrimp", "firefish", "catodon"}


def get(obj: object, *path: str) -> object:
    """``obj[path[0]][path[1]]...``, or None where any step is missing or not a mapping."""
    current = obj
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def as_str(value: object, default: str = "") -> str:
    return default if value is None else str(value)


def as_utc(value: object, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return fallback
    if not isinstance(value, datetime):
        return fallback
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def items(value: object) -> list[object]:
    return list(value) if isinstance(value, Iterable) and not isinstance(value, str | dict) else []


@dataclass(frozen=True)
class Capabilities:
    """The server's limits as it advertises them (for ``limits()`` and ``storybot doctor``)."""

    version: str
    software: str  # best guess: mastodon, glitch, hometown, pleroma, akkoma, gotosocial, ...
    api_version: tuple[int, int, int]  # the Mastodon API level the version string claims
    domain: str  # the part after @ in local handles
    source: str  # "v2" or "v1": which instance endpoint answered; "defaults": neither did
    max_post_chars: int = 500
    max_media_attachments: int = 4
    max_poll_options: int = 4
    max_option_chars: int = 50
    min_poll_seconds: int = 300
    max_poll_seconds: int = 2629746
    media_mime_types: tuple[str, ...] = ()  # empty: the server did not say
    video_size_limit: int | None = None
    image_size_limit: int | None = None
    description_limit: int = DEFAULT_DESCRIPTION_LIMIT

    def accepts(self, mime_type: str) -> bool:
        return not self.media_mime_types or mime_type in self.media_mime_types

    @property
    def accepts_video(self) -> bool:
        return self.accepts("video/mp4")

    @property
    def media_known(self) -> bool:
        """Whether the server said which media types it takes (else the first upload tells)."""
        return bool(self.media_mime_types)

    @property
    def software_name(self) -> str:
        """For people: "Takahe", "GoToSocial", "Misskey (sharkey)", "unknown software"."""
        names = {"gotosocial": "GoToSocial", "glitch": "glitch-soc", "wordpress": "WordPress"}
        name = names.get(self.software, self.software.capitalize())
        if self.software in MISSKEY_FAMILY - {"misskey"}:
            return f"{name} (Misskey family)"
        return name if self.software != "unknown" else "unknown software"

    def limits(self) -> Limits:
        low = max(1, math.ceil(self.min_poll_seconds / 60))
        return Limits(
            max_poll_options=self.max_poll_options,
            max_option_chars=self.max_option_chars,
            min_poll_minutes=low,
            max_poll_minutes=max(low, self.max_poll_seconds // 60),
            max_post_chars=self.max_post_chars,
            accepts_video=self.accepts_video,
        )

    def clamp_poll_seconds(self, seconds: int) -> int:
        return max(self.min_poll_seconds, min(self.max_poll_seconds, seconds))


def parse_version(version: str) -> tuple[int, int, int]:
    """ "4.2.0+glitch" → (4, 2, 0); "2.7.2 (compatible; Pleroma 2.5.0)" → (2, 7, 2); junk → 0s."""
    match = _VERSION.match(version)
    if match is None:
        return (0, 0, 0)
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return (major, minor, patch)


def guess_software(version: str, source_url: str = "") -> str:
    """The server software's name from what the instance document says about itself."""
    compatible = _COMPATIBLE.search(version)
    if compatible:  # "2.7.2 (compatible; Pleroma 2.5.0)", "3.0.0 (compatible; Akkoma 3.9)"
        return compatible.group(1).lower()
    named = _NAME_SLASH.match(version)
    if named:  # "takahe/0.11.0"
        return named.group(1).lower()
    lowered = f"{version} {source_url}".lower()
    for name in KNOWN_SOFTWARE:
        if name in lowered:
            return name
    fork = _PLUS_FORK.search(version)
    if fork:
        return fork.group(1).lower().rstrip("-")
    return "mastodon" if parse_version(version)[0] >= 1 else "unknown"


def conservative(domain: str, why: str) -> Capabilities:
    """What to assume when no instance document can be read: Mastodon's smallest limits.

    The media types stay unknown, so the first video upload finds out (and is remembered).
    """
    return Capabilities(f"unknown ({why})", "unknown", (0, 0, 0), domain, "defaults")


def _host(value: str) -> str:
    """A bare host from "example.social", "https://example.social/" or a v1 ``uri``."""
    if "://" in value:
        return urlparse(value).netloc
    return value.strip().strip("/")


def parse_instance(data: object, source: str, fallback_domain: str) -> Capabilities:
    """Read an instance document (v2, or v1 with Pleroma's older field names)."""
    config = get(data, "configuration")
    version = as_str(get(data, "version"), "0.0.0")
    domain = _host(as_str(get(data, "domain") or get(data, "uri"))) or fallback_domain
    polls = get(config, "polls") or get(data, "poll_limits")
    media = get(config, "media_attachments")
    mimes = get(media, "supported_mime_types")
    defaults = Capabilities(version, "", (0, 0, 0), domain, source)

    def pick(value: object, default: int) -> int:
        number = as_int(value)
        return default if number is None or number < 0 else number

    return Capabilities(
        version=version,
        software=guess_software(version, as_str(get(data, "source_url"))),
        api_version=parse_version(version),
        domain=domain,
        source=source,
        max_post_chars=pick(
            get(config, "statuses", "max_characters") or get(data, "max_toot_chars"),
            defaults.max_post_chars,
        ),
        max_media_attachments=pick(
            get(config, "statuses", "max_media_attachments"), defaults.max_media_attachments
        ),
        max_poll_options=pick(get(polls, "max_options"), defaults.max_poll_options),
        max_option_chars=pick(
            get(polls, "max_characters_per_option") or get(polls, "max_option_chars"),
            defaults.max_option_chars,
        ),
        min_poll_seconds=pick(get(polls, "min_expiration"), defaults.min_poll_seconds),
        max_poll_seconds=pick(get(polls, "max_expiration"), defaults.max_poll_seconds),
        media_mime_types=tuple(str(m) for m in mimes) if isinstance(mimes, list) else (),
        video_size_limit=as_int(get(media, "video_size_limit") or get(data, "upload_limit")),
        image_size_limit=as_int(get(media, "image_size_limit") or get(data, "upload_limit")),
        description_limit=pick(get(media, "description_limit"), DEFAULT_DESCRIPTION_LIMIT)
        or DEFAULT_DESCRIPTION_LIMIT,
    )
