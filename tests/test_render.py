"""Rendering: icons composited by alpha on white, the title, the model image size."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gelab.env.envdir import Environment


def test_images_exist_with_sizes(base_env: Environment) -> None:
    for page in ("page_0", "page_230"):
        with Image.open(base_env.image_path(page)) as full, Image.open(base_env.model_image_path(page)) as small:
            assert full.size == (1179, 2556) and full.mode == "RGB"
            assert small.size == (448, 448)


def test_icons_have_no_box_behind_transparent_art(base_env: Environment) -> None:
    page = base_env.structure.pages["page_0"]
    with Image.open(base_env.image_path("page_0")) as im:
        px = np.asarray(im)
    for el in page.elements:
        x1, y1, x2, y2 = el.bbox
        corner = px[y1 + 1, x1 + 1]
        assert tuple(corner) == (255, 255, 255), f"{el.name}: corner of its box is not the white background"
        inside = px[y1:y2, x1:x2].reshape(-1, 3)
        assert (inside != 255).any(axis=1).mean() > 0.1, f"{el.name}: no art drawn"


def test_title_is_drawn(base_env: Environment) -> None:
    with Image.open(base_env.image_path("page_17")) as im:
        title = np.asarray(im)[60:260, 389:789]
    assert (title < 128).any()


def test_pages_differ(base_env: Environment) -> None:
    with Image.open(base_env.model_image_path("page_1")) as a, Image.open(base_env.model_image_path("page_2")) as b:
        assert np.asarray(a).tobytes() != np.asarray(b).tobytes()
