"""Image backend for the OpenAI Images API (gpt-image-*, dall-e-*) and compatible servers.

The API takes no seed, so the same request does not give the same picture twice. That is
acceptable because a still is rendered once and stored; a crash mid-render draws a new one.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageOps, UnidentifiedImageError

from generation._openai import make_client
from generation.files import atomic_output
from generation.image.base import ImageRequest
from story_state.errors import GenerationError

if TYPE_CHECKING:
    from openai import OpenAI

MIN_SIDE, MAX_SIDE = 64, 4096
# GPT image models always answer in base64 and reject ``response_format``; others need it.
_ALWAYS_B64 = ("gpt-image", "chatgpt-image")


class OpenAIImages:
    """One ``images.generate`` call per still, cover-cropped to the requested size."""

    def __init__(
        self,
        *,
        base_url: str | None,
        model: str = "gpt-image-1",
        api_key: str | None,
        size: str = "1536x1024",
        quality: str | None = None,
        timeout_s: float = 120,
    ) -> None:
        if not model:
            raise ValueError("model must not be empty")
        self.model, self.size, self.quality = model, size, quality
        self._client: OpenAI = make_client(base_url, api_key, timeout_s, "openai image")

    def close(self) -> None:
        self._client.close()

    def render(self, request: ImageRequest, out: Path) -> Path:
        for side, name in ((request.width, "width"), (request.height, "height")):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise GenerationError(f"image {name} must be {MIN_SIDE}..{MAX_SIDE} px, got {side}")
        prompt = ", ".join(p.strip() for p in (request.style, request.prompt) if p.strip())
        if not prompt:
            raise GenerationError("cannot draw an empty image prompt")
        picture = _fit(_decode(self._generate(prompt)), request.width, request.height)
        with atomic_output(out) as tmp:
            picture.save(tmp, format="PNG")
        return out

    def _generate(self, prompt: str) -> str:
        import openai

        always_b64 = self.model.startswith(_ALWAYS_B64)
        try:
            result = self._client.images.generate(
                model=self.model,
                prompt=prompt,
                size=self.size,
                n=1,
                quality=openai.omit if self.quality is None else self.quality,  # type: ignore[arg-type]
                response_format=openai.omit if always_b64 else "b64_json",
            )
        except openai.OpenAIError as exc:
            raise GenerationError(f"OpenAI image request failed: {exc}") from exc
        image = result.data[0] if result.data else None
        if image is None or not image.b64_json:
            got = "a URL" if image is not None and image.url else "no image"
            raise GenerationError(f"the image endpoint returned {got} instead of base64 data")
        return image.b64_json


def _decode(b64: str) -> Image.Image:
    try:
        raw = base64.b64decode(b64, validate=True)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            picture = Image.open(io.BytesIO(raw))
            picture.load()
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as exc:
        raise GenerationError(f"the image endpoint returned an unreadable image: {exc}") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise GenerationError(f"the image endpoint returned an oversized image: {exc}") from exc
    return picture


def _fit(picture: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover ``width``×``height`` and crop the overflow evenly from both sides."""
    if picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info:
        rgba = picture.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (0, 0, 0))  # transparent areas become night sky
        flat.paste(rgba, mask=rgba.getchannel("A"))
        picture = flat
    else:
        picture = picture.convert("RGB")
    return ImageOps.fit(picture, (width, height), Image.Resampling.LANCZOS, centering=(0.5, 0.5))
