"""The clip or its still, as Bluesky takes them: sizes, aspect ratio, a small enough image."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from story_state.errors import PermanentError

STILL_NAME = "still.png"  # the renderer writes <episode dir>/clip.mp4 beside still.png
STILL_ALT_PREFIX = "Still image from the episode (the video could not be posted)."
IMAGE_MAX_BYTES = 1_000_000  # app.bsky.embed.images: maxSize of each image
VIDEO_ALT_GRAPHEMES = 1000  # app.bsky.embed.video: alt maxGraphemes


def aspect(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image (the still has the clip's frame size), None if unreadable."""
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        return None
    return width, height


def small_image(path: Path) -> tuple[bytes, str]:
    """The image's bytes and type, as JPEG where it is over Bluesky's 1 MB image limit."""
    try:
        data = path.read_bytes()
        with Image.open(path) as image:
            kind = (image.format or "png").lower()
            if len(data) <= IMAGE_MAX_BYTES:
                return data, f"image/{kind}"
            rgb = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as exc:
        raise PermanentError(f"cannot read the image {path}: {exc}") from exc
    for quality in (90, 80, 70, 55, 40):
        out = io.BytesIO()
        rgb.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= IMAGE_MAX_BYTES:
            return out.getvalue(), "image/jpeg"
        rgb = rgb.resize((max(1, rgb.width * 4 // 5), max(1, rgb.height * 4 // 5)))
    raise PermanentError(f"{path} stays over Bluesky's {IMAGE_MAX_BYTES} byte image limit")
