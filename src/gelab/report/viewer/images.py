"""Page screenshots for the site and the case figures: the environment's full-canvas ``images/``
(or, when absent, its ``model_images/``) resized to a given width at the canvas aspect ratio."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from gelab.env.envdir import IMAGES, MODEL_IMAGES, Environment
from gelab.errors import InputError

IMAGE_SUFFIX = ".jpg"
JPEG_QUALITY = 85
REDUCING_GAP = 1.0  # shrink by a whole factor first (box filter), then LANCZOS: ~4x faster, same look


def source_image(env: Environment, page: str) -> Path:
    """The best stored picture of ``page``: the full canvas, else the model's (square) input."""
    name = env.structure.pages[page].image
    for folder in (IMAGES, MODEL_IMAGES):
        path = env.root / folder / name
        if path.is_file():
            return path
    raise InputError(f"{env.root}: no picture of {page} (neither {IMAGES}/{name} nor {MODEL_IMAGES}/{name})")


def page_picture(env: Environment, page: str, width: int) -> Image.Image:
    """``page`` as an RGB image ``width`` wide at the canvas aspect (a square model image is stretched back)."""
    cw, ch = env.structure.canvas
    size = (width, max(1, round(width * ch / cw)))
    path = source_image(env, page)
    try:
        with Image.open(path) as img:
            return img.convert("RGB").resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
    except OSError as exc:
        raise InputError(f"{path}: not a readable image ({exc})") from None


def jpeg_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False, progressive=False)
    return buf.getvalue()
