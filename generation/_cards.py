"""Title, chapter and end-credit cards for the Community's Cut, drawn with Pillow."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FontType = ImageFont.FreeTypeFont | ImageFont.ImageFont
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
INK = (255, 238, 176)  # the subtitles' pale yellow
DIM = (196, 178, 140)
PAPER = (14, 11, 16)
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")


def font(size: int, style: str = "") -> FontType:
    """DejaVu Sans (``style`` "Bold" or "Oblique") where installed, else Pillow's own font."""
    path = FONT_DIR / f"DejaVuSans{'-' + style if style else ''}.ttf"
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return ImageFont.load_default(size)


def clean(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


def wrap(text: str, face: FontType, max_width: float) -> list[str]:
    """Greedy word wrap by rendered width; a word wider than a line is cut with an ellipsis."""
    lines: list[str] = []
    for word in clean(text).split():
        word = ellipsize(word, face, max_width)
        if lines and face.getlength(f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def ellipsize(text: str, face: FontType, max_width: float) -> str:
    if face.getlength(text) <= max_width:
        return text
    while text and face.getlength(text + "…") > max_width:
        text = text[:-1]
    return text + "…"


def _canvas(width: int, height: int) -> Image.Image:
    return Image.new("RGB", (width, height), PAPER)


def _block(
    draw: ImageDraw.ImageDraw,
    parts: Sequence[tuple[list[str], FontType, tuple[int, int, int]]],
    width: int,
    height: int,
) -> None:
    """Lines of text, each part in its own face and colour, centred as one block."""
    rows = [(line, face, colour) for lines, face, colour in parts for line in lines]
    heights = [round(_size(face) * 1.3) for _, face, _ in rows]
    y = (height - sum(heights)) / 2
    for (line, face, colour), step in zip(rows, heights, strict=True):
        draw.text((width / 2, y + step / 2), line, font=face, fill=colour, anchor="mm")
        y += step


def _size(face: FontType) -> float:
    return float(getattr(face, "size", 11))


def title_card(title: str, date: str | None, width: int, height: int) -> Image.Image:
    image = _canvas(width, height)
    big, small = font(round(height * 0.085), "Bold"), font(round(height * 0.045), "Oblique")
    parts = [
        (wrap(title, big, width * 0.84)[:3], big, INK),
        ([""], small, DIM),
        (["a Community's Cut"], small, DIM),
    ]
    if date:
        note = font(round(height * 0.032))
        parts.append(([ellipsize(clean(date), note, width * 0.84)], note, DIM))
    _block(ImageDraw.Draw(image), parts, width, height)
    return image


def chapter_card(number: int, title: str, width: int, height: int) -> Image.Image:
    image = _canvas(width, height)
    label, name = font(round(height * 0.05)), font(round(height * 0.075), "Bold")
    parts = [([f"Chapter {number}"], label, DIM), (wrap(title, name, width * 0.84)[:3], name, INK)]
    _block(ImageDraw.Draw(image), parts, width, height)
    return image


@dataclass(frozen=True)
class Roll:
    """A credits image one screen taller at each end than its text, scrolled bottom to top."""

    image: Image.Image
    shown: int  # names on the roll
    left_out: int  # names that did not fit ("…and N more")
    columns: int


def credits_roll(
    heading: str, names: Sequence[str], width: int, height: int, easy_lines: int, max_lines: int
) -> Roll:
    """The heading, then the names in the fewest columns (1–4) that fit in ``easy_lines``
    rows (the roll at a relaxed pace); past that, four columns up to ``max_lines`` rows (a
    faster roll), and whoever is still left over is counted in "…and N more".
    """
    names = list(dict.fromkeys(n for n in (clean(x) for x in names) if n))
    face, head = font(round(height * 0.04)), font(round(height * 0.06), "Bold")
    line = round(height * 0.06)
    head_lines = wrap(heading, head, width * 0.84)[:3]
    spare = len(head_lines) + 3  # a gap under the heading and room for "…and N more"
    easy_rows, max_rows = max(1, easy_lines - spare), max(1, max_lines - spare)
    columns = next((c for c in (1, 2, 3, 4) if len(names) <= easy_rows * c), 4)
    capacity = max_rows * columns
    left_out = 0
    if len(names) > capacity:
        left_out = len(names) - (capacity - 1)
        names = names[: capacity - 1]
    rows = -(-len(names) // columns) if names else 0
    text_h = (len(head_lines) + 1) * line + (rows + (2 if left_out else 0)) * line
    image = Image.new("L", (width, text_h + 2 * height), 0)
    draw = ImageDraw.Draw(image)
    y = height
    for text in head_lines:
        draw.text((width / 2, y + line / 2), text, font=head, fill=255, anchor="mm")
        y += line
    y += line
    column_w = width * 0.84 / columns
    left = width * 0.08
    for i, name in enumerate(names):
        col, row = divmod(i, rows) if columns > 1 else (0, i)
        x = left + column_w * (col + 0.5)
        text = ellipsize(name, face, column_w * 0.94)
        draw.text((x, y + row * line + line / 2), text, font=face, fill=230, anchor="mm")
    if left_out:
        more = f"…and {left_out} more"
        draw.text((width / 2, y + (rows + 1.5) * line), more, font=face, fill=200, anchor="mm")
    # Grey levels become the card colours through a palette: one byte a pixel, however tall.
    palette = [
        round(PAPER[c] + (INK[c] - PAPER[c]) * level / 255)
        for level in range(256)
        for c in range(3)
    ]
    roll = Image.frombytes("P", image.size, image.tobytes())
    roll.putpalette(palette)
    return Roll(roll, len(names), left_out, columns)
