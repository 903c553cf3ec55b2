"""X media upload over API v2: initialize, append chunks, finalize, wait, set alt text.

The steps and shapes follow X's OpenAPI description of API v2 (operation ids in brackets):

1. ``POST /2/media/upload/initialize`` [initializeMediaUpload], JSON ``media_type``,
   ``total_bytes``, ``media_category`` → ``data.id`` (the media id), ``data.expires_after_secs``;
2. ``POST /2/media/upload/{id}/append`` [appendMediaUpload], multipart ``media`` (raw bytes) and
   ``segment_index`` (0–999), once per chunk, in order;
3. ``POST /2/media/upload/{id}/finalize`` [finalizeMediaUpload] → ``data.processing_info``;
4. while ``processing_info.state`` is ``pending`` or ``in_progress``: wait ``check_after_secs``,
   then ``GET /2/media/upload?media_id=…&command=STATUS`` [getMediaUploadStatus];
   ``succeeded`` (or no ``processing_info``) means ready, ``failed`` is final;
5. ``POST /2/media/metadata`` [createMediaMetadata], JSON
   ``{"id": …, "metadata": {"alt_text": {"text": …}}}`` (at most 1000 characters).

The spec gives no chunk size limit. X documents at most 5 MB per chunk and answers 413 at its
edge for bodies near that size, so chunks are 4 MiB by default. The upload is the only place
this adapter sleeps: waiting for processing (past ``deadline_s`` it gives up with a
TransientError and the outbox tries the whole post again later), and short pauses before a
chunk, a status check or the alt text that failed with a TransientError is sent again.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from bot.platforms._retry import again_on_transient
from story_state.errors import PermanentError, TransientError
from story_state.text import shorten

log = logging.getLogger(__name__)

CHUNK_BYTES = 4 * 1024 * 1024
MAX_CHUNK_BYTES = 5 * 1000 * 1000
MAX_SEGMENTS = 1000  # segment_index is 0–999
MAX_ALT_TEXT = 1000  # CreateMediaMetadataMetadataAltText.text maxLength
DEFAULT_CHECK_AFTER_S = 5
DEFAULT_EXPIRES_S = 24 * 3600

# InitializeMediaUploadRequest.media_type values that a post can carry, by media_category.
_CATEGORIES = {
    "video/mp4": "tweet_video",
    "video/quicktime": "tweet_video",
    "video/webm": "tweet_video",
    "video/mp2t": "tweet_video",
    "image/gif": "tweet_gif",
    "image/jpeg": "tweet_image",
    "image/pjpeg": "tweet_image",
    "image/png": "tweet_image",
    "image/webp": "tweet_image",
    "image/bmp": "tweet_image",
    "image/tiff": "tweet_image",
}


class Call(Protocol):
    """One API call that returns the decoded JSON body or raises a PlatformError."""

    def __call__(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Uploaded:
    """A processed upload that a post can attach until ``expires_at``."""

    media_id: str
    expires_at: datetime


def media_category(mime_type: str) -> str:
    """X's ``media_category`` for a MIME type; PermanentError for a type X does not take."""
    try:
        return _CATEGORIES[mime_type]
    except KeyError:
        raise PermanentError(
            f"X does not accept {mime_type!r} in a post (one of: {', '.join(_CATEGORIES)})"
        ) from None


def fit_alt_text(text: str) -> str:
    """Alt text cut to X's 1000 characters at a word boundary."""
    text = text.strip()
    if len(text) <= MAX_ALT_TEXT:
        return text
    return shorten(text, MAX_ALT_TEXT - 1) + "…"


def upload(
    call: Call,
    path: Path,
    mime_type: str,
    alt_text: str,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    deadline_s: float,
    chunk_bytes: int = CHUNK_BYTES,
) -> Uploaded:
    """Upload ``path`` in chunks, wait until X has processed it, and set its alt text."""
    if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes must be 1–{MAX_CHUNK_BYTES}")
    category = media_category(mime_type)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise PermanentError(f"cannot read media file {path}: {exc}") from exc
    segments = math.ceil(size / chunk_bytes)
    if size == 0 or segments > MAX_SEGMENTS:
        raise PermanentError(
            f"media file {path} has {size} bytes; X takes 1–{MAX_SEGMENTS} chunks "
            f"of {chunk_bytes} bytes"
        )
    started = clock()
    init = _data(
        call(
            "POST",
            "/2/media/upload/initialize",
            json={"media_type": mime_type, "total_bytes": size, "media_category": category},
        ),
        "initialize",
    )
    media_id = str(init["id"])
    sent = 0
    with path.open("rb") as fh:
        for index in range(segments):
            chunk = fh.read(chunk_bytes)
            sent += len(chunk)
            # A segment sent twice replaces itself: safe to repeat within the upload.
            again_on_transient(
                partial(
                    call,
                    "POST",
                    f"/2/media/upload/{media_id}/append",
                    data={"segment_index": str(index)},
                    files={"media": ("blob", chunk, "application/octet-stream")},
                ),
                sleep,
            )
    if sent != size:
        raise TransientError(f"media file {path} changed while it was uploaded")
    final = _data(call("POST", f"/2/media/upload/{media_id}/finalize"), "finalize")
    _wait(call, media_id, final.get("processing_info"), clock, sleep, deadline_s)
    if alt_text.strip():
        alt = {"id": media_id, "metadata": {"alt_text": {"text": fit_alt_text(alt_text)}}}
        again_on_transient(partial(call, "POST", "/2/media/metadata", json=alt), sleep)
    expires_s = int(final.get("expires_after_secs") or DEFAULT_EXPIRES_S)
    log.info(
        "x: uploaded %s (%d bytes, %d chunks) as media %s", path.name, size, segments, media_id
    )
    # Counted from the start, so an attachment is never tried after X has dropped the media.
    return Uploaded(media_id, started + timedelta(seconds=expires_s))


def _wait(
    call: Call,
    media_id: str,
    info: Any,
    clock: Callable[[], datetime],
    sleep: Callable[[float], None],
    deadline_s: float,
) -> None:
    start = clock()
    waited = 0.0
    while isinstance(info, dict):
        state = info.get("state")
        if state in (None, "succeeded"):
            return
        if state == "failed":
            error = info.get("error")
            why = f": {error.get('message') or error}" if isinstance(error, dict) else ""
            raise PermanentError(f"X could not process media {media_id}{why}")
        delay = max(1, int(info.get("check_after_secs") or DEFAULT_CHECK_AFTER_S))
        elapsed = max(waited, (clock() - start).total_seconds())
        if elapsed + delay > deadline_s:
            raise TransientError(
                f"X is still processing media {media_id} ({state}) after {elapsed:.0f} s; "
                f"giving up at the {deadline_s:.0f} s deadline, the post will be retried"
            )
        sleep(delay)
        waited += delay
        query = {"media_id": media_id, "command": "STATUS"}
        status = _data(
            again_on_transient(partial(call, "GET", "/2/media/upload", params=query), sleep),
            "status",
        )
        info = status.get("processing_info")


def _data(body: dict[str, Any], step: str) -> dict[str, Any]:
    data = body.get("data")
    if not isinstance(data, dict) or ("id" not in data and step != "status"):
        raise PermanentError(f"X media {step}: unexpected answer {str(body)[:300]}")
    return data
