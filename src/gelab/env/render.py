"""Draw pages with Pillow: white canvas, title, system buttons and icons composited by alpha.

The dynamics never import this module; it is used by environment generation, import and
``GuiNavEnv.render``. The model image is the full canvas resized (not aspect-preserving, LANCZOS)
to ``model_image_size`` × ``model_image_size`` (SPEC §1).
"""

from __future__ import annotations

import functools
import io
from typing import Mapping

from PIL import Image, ImageDraw, ImageFont

from gelab import format as fmt
from gelab.env import icons
from gelab.env.structure import SYSTEM, Page

BACKGROUND = (255, 255, 255)
INK = (60, 64, 67)
PNG_COMPRESS_LEVEL = 1  # fast zlib level; files stay lossless and byte-identical for equal pixels


@functools.lru_cache(maxsize=8)
def _title_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@functools.lru_cache(maxsize=16)
def system_icon(name: str, size: int) -> Image.Image:
    """``back`` (a left chevron) or ``home`` (a house) drawn as an RGBA tile."""
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    d = ImageDraw.Draw(tile)
    s = size / 200
    d.rounded_rectangle((6 * s, 6 * s, 194 * s, 194 * s), radius=36 * s, fill=(241, 243, 244, 255))
    w = max(1, round(16 * s))
    if name == fmt.BACK:
        d.line([(120 * s, 50 * s), (70 * s, 100 * s), (120 * s, 150 * s)], fill=INK + (255,), width=w, joint="curve")
        d.line([(72 * s, 100 * s), (150 * s, 100 * s)], fill=INK + (255,), width=w)
    elif name == fmt.HOME:
        d.polygon([(100 * s, 40 * s), (160 * s, 96 * s), (40 * s, 96 * s)], fill=INK + (255,))
        d.rectangle((58 * s, 94 * s, 142 * s, 160 * s), fill=INK + (255,))
        d.rectangle((88 * s, 118 * s, 112 * s, 160 * s), fill=(241, 243, 244, 255))
    else:
        raise ValueError(f"no system icon called {name!r}")
    return tile


def render_page(page: Page, art: Mapping[str, str], canvas: tuple[int, int],
                title_box: tuple[int, int, int, int]) -> Image.Image:
    """The full-canvas RGB screenshot of ``page``; ``art`` maps icon names to library icons."""
    library = icons.library_by_name()
    img = Image.new("RGBA", canvas, BACKGROUND + (255,))
    for el in page.elements:
        x1, y1, x2, y2 = el.bbox
        size = min(x2 - x1, y2 - y1)
        if el.type == SYSTEM and el.name in fmt.SYSTEM_NAMES:
            tile = system_icon(el.name, size)
        else:
            tile = icons.glyph(library[art[el.name]].emoji, size)
        img.alpha_composite(tile, (x1 + (x2 - x1 - size) // 2, y1 + (y2 - y1 - size) // 2))
    d = ImageDraw.Draw(img)
    tx1, ty1, tx2, ty2 = title_box
    font = _title_font(max(8, (ty2 - ty1) * 2 // 5))
    d.text(((tx1 + tx2) / 2, (ty1 + ty2) / 2), page.id, font=font, fill=INK + (255,), anchor="mm")
    return img.convert("RGB")


def model_image(full: Image.Image, size: int) -> Image.Image:
    """The model's view: ``size`` × ``size``, LANCZOS, aspect ratio not kept."""
    return full.resize((size, size), Image.Resampling.LANCZOS)


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()
