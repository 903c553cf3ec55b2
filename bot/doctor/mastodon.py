"""`storybot doctor`'s Mastodon rows: a row is "ok" only when the server itself showed it.

The account is read with the token, the limits come from the instance document (or are marked
unknown when none answers), reading is tried on the notifications the bot will read, and video
support is known only where the server lists its media types, or after ``--probe`` uploads a
one-second test clip as unattached media (deleted again where the server allows).
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.doctor.checks import Check, Status
from bot.doctor.limits import limits_rows
from bot.platforms.base import Limits, Platform
from generation.tools import run_tool
from story_state.errors import PlatformError

AREA = "mastodon"
STILL_INSTEAD = "the server takes no video: the still is posted instead, narration as its alt text"
ANONYMOUS_VOTES = (
    "poll votes are anonymous on Mastodon: blocked_accounts keeps their replies out, "
    "but their votes still count; a server cannot end a poll early, so a round closed by hand "
    "stops counting then (the next caption says so)"
)


def _account(client: Any) -> Check:
    from bot.platforms.mastodon.errors import translated

    try:
        with translated(client, "reading the bot's account"):
            account = client.account_verify_credentials()
    except PlatformError as exc:
        return Check(AREA, "credentials", Status.FAIL, str(exc))
    acct = account["acct"] if "acct" in account else account.get("username", "?")
    return Check(AREA, "credentials", Status.OK, f"logged in as @{acct}")


def _reads(client: Any) -> Check:
    """Reading mentions is what the harvest does with this token: try it."""
    from bot.platforms.mastodon.errors import translated

    try:
        with translated(client, "reading mentions"):
            client.notifications(types=["mention"], limit=1)
    except PlatformError as exc:
        return Check(AREA, "replies and polls", Status.FAIL, f"cannot read: {exc}")
    reads = "mentions (checked), thread context, likes, boosts and poll results"
    return Check(AREA, "replies and polls", Status.OK, f"read: {reads}")


def _video(platform: Platform, caps: Any, probe: bool) -> Check:
    if probe:
        return _probe(platform, caps)
    if getattr(platform, "video_refused", False):
        return Check(AREA, "video", Status.WARN, STILL_INSTEAD + " (it refused a video upload)")
    if caps is None or not caps.media_known:
        why = (
            "unknown: the server does not say which media types it takes; the first clip "
            "tries video and falls back to the still (`storybot doctor --probe` finds out now)"
        )
        return Check(AREA, "video", Status.UNKNOWN, why)
    if caps.accepts_video:
        return Check(AREA, "video", Status.OK, "clips are posted as video (the server lists MP4)")
    if caps.accepts("image/png"):
        return Check(AREA, "video", Status.WARN, STILL_INSTEAD)
    why = "the server takes neither video/mp4 nor image/png: clips cannot be posted"
    return Check(AREA, "video", Status.FAIL, why)


def _probe_files(folder: Path) -> tuple[Path, Path]:
    """A one-second H.264/AAC clip and a small PNG, as the renderer would make them."""
    from imageio_ffmpeg import get_ffmpeg_exe
    from PIL import Image

    clip, still = folder / "probe.mp4", folder / "probe.png"
    args = [get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
    args += ["-f", "lavfi", "-i", "color=c=0x203040:s=320x240:d=1:r=25"]
    args += ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-t", "1"]
    args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest"]
    args += ["-movflags", "+faststart", str(clip)]
    run_tool(args, what="ffmpeg making the probe clip", timeout_s=60)
    Image.new("RGB", (64, 36), (32, 48, 64)).save(still)
    return clip, still


def _upload(client: Any, path: Path, mime: str) -> str:
    """Upload as unattached media; the id, deleted again where the server allows it."""
    from bot.platforms.mastodon.errors import translated

    with translated(client, f"uploading a test {mime} file"), path.open("rb") as fh:
        media = client.media_post(fh, mime_type=mime, description="storybot doctor probe")
    media_id = str(media["id"])
    base = str(client.api_base_url).rstrip("/")
    # Unattached media can be deleted on Mastodon >= 4.0; other servers keep it until their
    # cleanup. The probe's answer stands whatever the deletion does.
    with contextlib.suppress(Exception):
        client.session.delete(
            f"{base}/api/v1/media/{media_id}",
            headers={"Authorization": f"Bearer {client.access_token}"},
            timeout=30,
        )
    return media_id


def _probe(platform: Platform, caps: Any) -> Check:
    client = getattr(platform, "_client", None)
    if client is None:
        return Check(AREA, "video", Status.UNKNOWN, "not probed (no client)")
    with tempfile.TemporaryDirectory(prefix="storybot-probe-") as tmp:
        clip, still = _probe_files(Path(tmp))
        try:
            _upload(client, clip, "video/mp4")
            return Check(AREA, "video", Status.OK, "video accepted (probe: a test clip uploaded)")
        except PlatformError as video_error:
            refused = video_error
        try:
            _upload(client, still, "image/png")
        except PlatformError as exc:
            why = f"the server refused a test clip ({refused}) and a test image ({exc})"
            return Check(AREA, "video", Status.FAIL, why)
    return Check(AREA, "video", Status.WARN, f"{STILL_INSTEAD} (probe: {refused})")


def mastodon_rows(platform: Platform, config: Config, *, probe: bool = False) -> list[Check]:
    client = getattr(platform, "_client", None)
    rows = [
        _account(client)
        if client is not None
        else Check(AREA, "credentials", Status.UNKNOWN, "not checked (no client)")
    ]
    caps = None
    caps_of = getattr(platform, "capabilities", None)
    if callable(caps_of):
        try:
            caps = caps_of()
        except PlatformError as exc:
            rows.append(Check(AREA, "server", Status.FAIL, f"cannot reach the server: {exc}"))
    if caps is not None and caps.source == "defaults":
        why = (
            f"{caps.domain}: no readable /api/v2/instance or /api/v1/instance "
            f"({caps.version}): posting with conservative limits"
        )
        rows.append(Check(AREA, "server", Status.UNKNOWN, why))
    elif caps is not None:
        where = (
            f"{caps.software_name} {caps.version} at {caps.domain} (/api/{caps.source}/instance)"
        )
        rows.append(Check(AREA, "server", Status.OK, where))
    limits = caps.limits() if caps is not None else Limits()
    assumed = caps is None or caps.source == "defaults"
    rows += limits_rows(AREA, limits, config.story.round_minutes, assumed=assumed)
    rows.append(_video(platform, caps, probe))
    if client is None:
        rows.append(Check(AREA, "replies and polls", Status.UNKNOWN, "not checked (no client)"))
    else:
        rows.append(_reads(client))
    blocked = bool(config.moderation.blocked_accounts)
    rows.append(Check(AREA, "votes", Status.WARN if blocked else Status.OK, ANONYMOUS_VOTES))
    return rows


__all__ = ["ANONYMOUS_VOTES", "STILL_INSTEAD", "mastodon_rows"]
