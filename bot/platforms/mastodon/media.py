"""Media for Mastodon: pick the file the server accepts, upload it, wait until it is processed."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from mastodon import Mastodon
from mastodon.errors import MastodonAPIError

from bot.platforms._retry import CALL_PAUSES_S, again_on_transient
from bot.platforms.base import Media
from bot.platforms.mastodon.caps import Capabilities, as_str, get
from bot.platforms.mastodon.errors import error_status, translated
from story_state.errors import PermanentError, RateLimited, TransientError

log = logging.getLogger(__name__)

STILL_NAME = "still.png"  # the renderer writes <episode dir>/clip.mp4 beside still.png
UPLOADS_PER_WINDOW = 30  # Mastodon's media rate limit: 30 uploads per 30 minutes
UPLOAD_WINDOW = timedelta(minutes=30)
_FIRST_POLL_S = 1.0
_MAX_POLL_S = 15.0
# What a server that takes no video answers to one: Mastodon 422 or 415; Takahe and others
# 500. A 500 only counts where the server did not list its media types (else it is an outage).
_TYPE_REFUSED = {415, 422}
_TYPE_REFUSED_UNLISTED = {500}
STILL_ALT_PREFIX = "Still image from the episode (this server takes no video)."


class _VideoRefused(Exception):
    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)].rstrip() + "…"


def _too_big(path: Path, limit: int | None) -> bool:
    try:
        return limit is not None and limit > 0 and path.stat().st_size > limit
    except OSError:
        return False  # a missing file is reported by the upload itself


class MediaUploader:
    """Uploads through ``/api/v2/media`` and polls ``GET /api/v1/media/:id`` until ready."""

    def __init__(
        self,
        client: Mastodon,
        *,
        clock: Callable[[], datetime],
        sleep: Callable[[float], None],
        deadline_s: float,
        call_pauses: Sequence[float] = CALL_PAUSES_S,
    ) -> None:
        self._client = client
        self._pauses = tuple(call_pauses)
        self._clock = clock
        self._sleep = sleep
        self._deadline_s = deadline_s
        self._recent: deque[datetime] = deque()  # upload attempts inside the window
        # Learnt from this server's own answer to a video upload; kept while the process runs.
        self.video_refused = False

    def upload_all(self, media: tuple[Media, ...], caps: Capabilities) -> list[str]:
        """Media ids, each processed and ready to attach; nothing is uploaded over budget."""
        if not media:
            return []
        if len(media) > min(caps.max_media_attachments, UPLOADS_PER_WINDOW):
            raise PermanentError(
                f"{caps.domain} takes at most {caps.max_media_attachments} attachments a post"
            )
        self._check_budget(len(media))
        return [self._upload(item, caps) for item in media]

    def _check_budget(self, wanted: int) -> None:
        now = self._clock()
        while self._recent and self._recent[0] <= now - UPLOAD_WINDOW:
            self._recent.popleft()
        excess = len(self._recent) + wanted - UPLOADS_PER_WINDOW
        if excess > 0:
            reset = self._recent[excess - 1] + UPLOAD_WINDOW
            raise RateLimited(
                f"media upload budget spent ({UPLOADS_PER_WINDOW} per 30 minutes)", reset
            )

    def choose(self, media: Media, caps: Capabilities) -> tuple[Path, str]:
        """The file to upload and its type: the video, or the still where video won't do."""
        mime = media.mime_type
        if not mime.startswith("video/"):
            if not caps.accepts(mime):
                raise PermanentError(f"{caps.domain} does not accept {mime} uploads")
            return media.path, mime
        if (
            caps.accepts(mime)
            and not self.video_refused
            and not _too_big(media.path, caps.video_size_limit)
        ):
            return media.path, mime
        if self.video_refused:
            reason = f"refused a {mime} upload earlier"
        elif not caps.accepts(mime):
            reason = f"does not accept {mime}"
        else:
            reason = f"takes videos up to {caps.video_size_limit} bytes"
        still = media.path.with_name(STILL_NAME)
        if not still.is_file() or not caps.accepts("image/png"):
            raise PermanentError(f"{caps.domain} {reason} and there is no {still} to post instead")
        if _too_big(still, caps.image_size_limit):
            raise PermanentError(f"{caps.domain} {reason}, and {still} is over its image limit")
        log.warning(
            "%s (%s) %s: posting the still image %s instead of the video",
            caps.domain,
            caps.software,
            reason,
            still,
        )
        return still, "image/png"

    def _upload(self, media: Media, caps: Capabilities) -> str:
        path, mime = self.choose(media, caps)
        try:
            return self._upload_file(path, mime, self._alt_text(media, path), caps)
        except _VideoRefused as refused:
            # The server's answer is the truth about what it takes: remember it, post the still.
            self.video_refused = True
            log.warning(
                "%s (%s) refused the video upload (%s): posting stills from now on",
                caps.domain,
                caps.software_name,
                refused,
            )
            path, mime = self.choose(media, caps)
            return self._upload_file(path, mime, self._alt_text(media, path), caps)

    @staticmethod
    def _alt_text(media: Media, path: Path) -> str:
        """The video's alt text, or the still's where the still goes instead of the clip."""
        if path == media.path:
            return media.alt_text
        return media.still_alt_text or f"{STILL_ALT_PREFIX} {media.alt_text}"

    def _upload_file(self, path: Path, mime: str, alt: str, caps: Capabilities) -> str:
        self._recent.append(self._clock())
        refused = _TYPE_REFUSED | (set() if caps.media_known else _TYPE_REFUSED_UNLISTED)

        def send(upload: object) -> object:
            try:
                return self._client.media_post(
                    upload,
                    mime_type=mime,
                    description=_truncate(alt, caps.description_limit),
                    file_name=path.name,
                )
            except MastodonAPIError as exc:
                status, message = error_status(exc)
                if mime.startswith("video/") and status in refused:
                    raise _VideoRefused(status, message) from exc
                raise

        def post() -> object:
            with translated(self._client, f"uploading {path.name}"):
                try:
                    upload = path.open("rb")  # Mastodon.py never closes a file it opened itself
                except OSError as exc:
                    raise PermanentError(f"cannot read {path}: {exc}") from exc
                with upload:
                    return send(upload)

        attachment = again_on_transient(post, self._sleep, self._pauses)
        media_id = as_str(get(attachment, "id"))
        if not media_id:
            raise TransientError(f"the server answered the upload of {path.name} without an id")
        if get(attachment, "url") is None:
            self._wait_until_processed(media_id, path.name)
        return media_id

    def _wait_until_processed(self, media_id: str, name: str) -> None:
        # Not Mastodon.py's synchronous=True: it sleeps 5 s a round with no deadline.
        deadline = self._clock() + timedelta(seconds=self._deadline_s)
        delay = _FIRST_POLL_S
        while True:
            left = (deadline - self._clock()).total_seconds()
            if left <= 0:
                raise TransientError(
                    f"{name} (media {media_id}) was still processing after {self._deadline_s:g} s"
                )
            self._sleep(min(delay, left))
            delay = min(delay * 2, _MAX_POLL_S)

            def check() -> object:
                with translated(self._client, f"checking on {name} (media {media_id})"):
                    return self._client.media(media_id)  # 206 while processing, 200 when done

            attachment = again_on_transient(check, self._sleep, self._pauses)
            if get(attachment, "url") is not None:
                return
