"""`storybot doctor`'s Bluesky rows: a row is "ok" only when the server itself showed it.

The account is checked by reading its own profile with the kept session (or a new one made
from the app password), the session file by its mode and place, reading by the notifications
and likes the bot reads, and video by ``--probe`` (a one-second test clip uploaded as a blob the
PDS then drops, never posted). Bluesky has no polls and no instance document: its limits are the
lexicon's and the adapter's own, shown as such.
"""

from __future__ import annotations

import stat
import tempfile
from pathlib import Path
from typing import Any

from bot.config import Config
from bot.doctor.checks import Check, Status
from bot.doctor.limits import limits_rows
from bot.platforms.base import Platform
from story_state.errors import PlatformError

AREA = "bluesky"
VOTES = (
    "votes are likes on the question's option replies, one a person (only the first like "
    "counts); likes are public, so votes of blocked accounts and of handles under "
    "blocked_domains are left out too"
)
STILL_INSTEAD = "the clip's still is posted instead, the narration as its alt text"


def _account(platform: Any) -> tuple[Check, bool]:
    account = platform.account
    try:
        profile = account.call(
            "reading the bot's profile",
            lambda c: c.app.bsky.actor.get_profile(params={"actor": account.did}),
        )
    except PlatformError as exc:
        return Check(AREA, "credentials", Status.FAIL, str(exc)), False
    how = "a new session from the app password" if account.logins else "the kept session"
    who = f"logged in as @{profile.handle} ({profile.did}) on {account.service}, with {how}"
    return Check(AREA, "credentials", Status.OK, who), True


def _session(platform: Any) -> Check:
    path: Path | None = platform.account.store.path
    if path is None:
        return Check(AREA, "session", Status.WARN, "kept in memory only: every start logs in")
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        why = f"no session kept yet in {path}: the first call logs in and creates it (0600)"
        return Check(AREA, "session", Status.UNKNOWN, why)
    except OSError as exc:
        return Check(AREA, "session", Status.FAIL, f"cannot read {path}: {exc}")
    if mode & 0o077:
        why = f"{path} is readable by others (mode {mode:o}): chmod 600 it, it holds tokens"
        return Check(AREA, "session", Status.WARN, why)
    detail = (
        f"kept in {path} (mode 600) and refreshed by the SDK before it expires: no login per tick"
    )
    return Check(AREA, "session", Status.OK, detail)


def _reads(platform: Any) -> Check:
    account = platform.account
    try:
        account.call(
            "reading notifications",
            lambda c: c.app.bsky.notification.list_notifications(
                params={"limit": 1, "reasons": ["reply", "mention"]}
            ),
        )
        account.call(
            "reading likes",
            lambda c: c.app.bsky.feed.get_actor_likes(params={"actor": account.did, "limit": 1}),
        )
    except PlatformError as exc:
        return Check(AREA, "replies and polls", Status.FAIL, f"cannot read: {exc}")
    reads = "threads, notifications (replies and mentions, checked) and likes (checked)"
    return Check(AREA, "replies and polls", Status.OK, f"read: {reads}")


def _probe(platform: Any) -> Check:
    from bot.doctor.mastodon import _probe_files

    account = platform.account
    with tempfile.TemporaryDirectory(prefix="storybot-probe-") as tmp:
        clip, _ = _probe_files(Path(tmp))
        data = clip.read_bytes()
        try:
            account.call(
                "uploading a test clip",
                lambda c: c.com.atproto.repo.upload_blob(
                    data, headers={"Content-Type": "video/mp4"}
                ),
            )
        except PlatformError as exc:
            return Check(AREA, "video", Status.WARN, f"{STILL_INSTEAD} (probe: {exc})")
    return Check(AREA, "video", Status.OK, "the PDS takes video (probe: a test clip uploaded)")


def _video(platform: Any, config: Config, probe: bool) -> Check:
    if not config.platforms.bluesky.video:
        return Check(AREA, "video", Status.WARN, f"{STILL_INSTEAD} (platforms.bluesky.video)")
    if getattr(platform, "video_refused", False):
        return Check(AREA, "video", Status.WARN, STILL_INSTEAD + " (it refused a clip)")
    if probe:
        return _probe(platform)
    why = (
        "unknown: clips go to the PDS as video blobs, and the first one shows whether it takes "
        "them (a refused clip is posted as its still); `storybot doctor --probe` finds out now"
    )
    return Check(AREA, "video", Status.UNKNOWN, why)


def bluesky_rows(platform: Platform, config: Config, *, probe: bool = False) -> list[Check]:
    if getattr(platform, "account", None) is None:
        return [Check(AREA, "credentials", Status.UNKNOWN, "not checked (no client)")]
    account_row, logged_in = _account(platform)
    rows = [account_row, _session(platform)]
    posts, *polls = limits_rows(AREA, platform.limits(), config.story.round_minutes)
    split = f"{posts.detail}: posts of 300 graphemes, a longer caption goes on in self-replies"
    rows += [Check(AREA, "posts", posts.status, split), *polls]
    if logged_in:
        rows.append(_video(platform, config, probe))
        rows.append(_reads(platform))
    else:
        rows.append(Check(AREA, "video", Status.UNKNOWN, "not checked: not logged in"))
        rows.append(Check(AREA, "replies and polls", Status.UNKNOWN, "not checked: no login"))
    rows.append(Check(AREA, "votes", Status.OK, VOTES))
    return rows


__all__ = ["VOTES", "bluesky_rows"]
