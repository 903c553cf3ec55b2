"""`storybot doctor`'s checks of each platform: the account, what it accepts, what it can read.

The adapters have no "who am I" call in the Platform port, so the account checks use the one
client each adapter already holds (Mastodon.py's client, the X adapter's signed ``_call``), and
translate errors the way the adapters do. Nothing here posts, votes or changes the account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from bot.config import Config
from bot.doctor.bluesky import bluesky_rows
from bot.doctor.checks import Check, Status, guarded
from bot.doctor.limits import limits_rows, video_row
from bot.doctor.mastodon import mastodon_rows
from bot.platforms.base import Platform
from story_state.errors import PermanentError, PlatformError, RateLimited

XCall = Callable[..., dict[str, Any]]


def _readers_note(readers: Sequence[str]) -> str:
    if readers:
        return f"votes and ideas come from {', '.join(readers)}"
    return "no other platform reads them: no votes or ideas will be counted"


# -- x ----------------------------------------------------------------------------------


def _x_account(call: XCall, config: Config) -> tuple[Check, dict[str, Any] | None]:
    try:
        data = call("GET", "/2/users/me").get("data")
    except PlatformError as exc:
        return Check("x", "credentials", Status.FAIL, str(exc)), None
    if not isinstance(data, dict) or not data.get("id"):
        return Check("x", "credentials", Status.FAIL, "/2/users/me did not name the account"), None
    who = f"logged in as @{data.get('username', '?')} (id {data['id']})"
    wanted = config.platforms.x.user_id
    if wanted and wanted != str(data["id"]):
        mismatch = f"{who}, but platforms.x.user_id is {wanted}: remove it or correct it"
        return Check("x", "credentials", Status.FAIL, mismatch), data
    return Check("x", "credentials", Status.OK, who), data


def _x_reads(call: XCall, account: dict[str, Any], readers: Sequence[str]) -> Check:
    from bot.platforms.x.adapter import Forbidden

    item = "replies and polls"
    probes: list[tuple[str, dict[str, str]]] = [
        (f"/2/users/{account['id']}/mentions", {"max_results": "5"}),
        (
            "/2/tweets/search/recent",
            {"query": f"from:{account.get('username')}", "max_results": "10"},
        ),
    ]
    try:
        for path, params in probes:
            call("GET", path, params=params)
    except Forbidden as exc:
        why = (
            f"reading replies and polls needs a paid API tier (X answered {exc}): the bot "
            f"turns post-only at its first read; {_readers_note(readers)}. "
            "Set platforms.x.post_only = true to say so"
        )
        return Check("x", item, Status.WARN, why)
    except RateLimited as exc:
        return Check("x", item, Status.WARN, f"not checked: {exc}")
    except PermanentError as exc:
        return Check("x", item, Status.FAIL, str(exc))
    except PlatformError as exc:
        return Check("x", item, Status.WARN, f"not checked: {exc}")
    return Check("x", item, Status.OK, "read: search and mentions answer")


def x_rows(platform: Platform, config: Config, readers: Sequence[str]) -> list[Check]:
    call = getattr(platform, "_call", None)
    rows: list[Check] = []
    account: dict[str, Any] | None = None
    if callable(call):
        row, account = _x_account(call, config)
        rows.append(row)
    else:
        rows.append(Check("x", "credentials", Status.WARN, "not checked (no API client)"))
    limits = platform.limits()
    rows += limits_rows("x", limits, config.story.round_minutes)
    rows.append(video_row("x", limits, ""))
    if not limits.can_read:
        why = (
            "post-only (platforms.x.post_only = true): reading replies and polls needs a paid "
            f"API tier; {_readers_note(readers)}"
        )
        rows.append(Check("x", "replies and polls", Status.WARN, why))
    elif account is None or not callable(call):
        rows.append(Check("x", "replies and polls", Status.WARN, "not checked: no account"))
    else:
        rows.append(_x_reads(call, account, readers))
    return rows


# -- local and the rest -------------------------------------------------------------------


def other_rows(name: str, platform: Platform, config: Config) -> list[Check]:
    rows: list[Check] = []
    if name == "local":
        where = "posts, polls, replies, likes and votes kept in the story database"
        rows.append(Check(name, "sandbox", Status.OK, where))
    limits = platform.limits()
    rows += limits_rows(name, limits, config.story.round_minutes)
    rows.append(video_row(name, limits, "clips go out without video"))
    reading = Status.OK if limits.can_read else Status.WARN
    rows.append(
        Check(name, "replies and polls", reading, "read" if limits.can_read else "not read")
    )
    return rows


def platform_rows(
    name: str, platform: Platform, config: Config, readers: Sequence[str], *, probe: bool = False
) -> list[Check]:
    """Every row for one platform; any error becomes a row, never a traceback."""
    if name == "mastodon":
        return guarded(name, lambda: mastodon_rows(platform, config, probe=probe))
    if name == "x":
        return guarded(name, lambda: x_rows(platform, config, readers))
    if name == "bluesky":
        return guarded(name, lambda: bluesky_rows(platform, config, probe=probe))
    return guarded(name, lambda: other_rows(name, platform, config))


def reads(rows: Sequence[Check]) -> bool:
    """Whether a platform's rows say it reads votes and works."""
    broken = any(r.status is Status.FAIL for r in rows)
    return not broken and any(r.item == "replies and polls" and r.status is Status.OK for r in rows)
