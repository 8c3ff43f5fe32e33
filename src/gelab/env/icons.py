"""The icon library: Unicode emoji drawn with the Noto Color Emoji font.

Source and licence
------------------
- Art: Noto Color Emoji (Debian package ``fonts-noto-color-emoji``), SIL Open Font License 1.1.
- Categories: Unicode's emoji groups file ``emoji-test.txt`` (Debian package ``unicode-data``),
  Unicode License v3. Each emoji *subgroup* is a category (``animal-mammal``, ``food-fruit``,
  ``sky_and_weather``, ...); an icon's name is ``<category>_<N>`` with N its 1-based position in the
  subgroup, e.g. ``animal-mammal_3``. Single-code-point, fully-qualified emoji only (they render
  without a text-shaping engine); the ``Component`` group and the ``arrow`` subgroup are left out
  (arrows would look like the ``back`` button). About 1,300 icons in about 90 categories.

The paths can be overridden with ``GELAB_EMOJI_FONT`` and ``GELAB_EMOJI_TEST``. The pipeline draws
from its own copies in ``data/emoji`` (tracked by ``data.dvc``, filled from these paths by
``gelab env inputs``), so a different font or emoji list shows in ``dvc status``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from gelab.errors import GelabError

EMOJI_FONT = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf"
EMOJI_TEST = "/usr/share/unicode/emoji/emoji-test.txt"
INSTALL_HINT = "install it with: apt-get install fonts-noto-color-emoji unicode-data"
_FONT_SIZE = 109  # the only bitmap strike of Noto Color Emoji
_EXCLUDED_GROUPS = {"Component"}
_EXCLUDED_SUBGROUPS = {"arrow"}


class IconLibraryMissing(GelabError):
    """The emoji font or the Unicode emoji list is not installed."""


@dataclass(frozen=True, slots=True)
class Icon:
    name: str  # <category>_<N>
    category: str  # emoji subgroup, spaces and '&' spelled with underscores
    group: str  # emoji group, e.g. "Animals & Nature"
    emoji: str  # the character drawn
    label: str  # Unicode short name, e.g. "dog face"


def _path(env: str, default: str) -> Path:
    path = Path(os.environ.get(env, default))
    if not path.is_file():
        raise IconLibraryMissing(f"{path} not found ({env}); {INSTALL_HINT}")
    return path


FONT_FILE = "NotoColorEmoji.ttf"  # file names in an inputs folder such as data/emoji
TEST_FILE = "emoji-test.txt"


def source_files() -> dict[str, Path]:
    """The font and the emoji list in use (``GELAB_EMOJI_*`` or the Debian paths), by inputs-folder name."""
    return {FONT_FILE: _path("GELAB_EMOJI_FONT", EMOJI_FONT), TEST_FILE: _path("GELAB_EMOJI_TEST", EMOJI_TEST)}


def use_inputs(folder: str | Path) -> None:
    """Draw with the font and emoji list of ``folder`` (rendering workers inherit the choice)."""
    folder = Path(folder)
    for env, name in (("GELAB_EMOJI_FONT", FONT_FILE), ("GELAB_EMOJI_TEST", TEST_FILE)):
        if not (folder / name).is_file():
            raise IconLibraryMissing(f"{folder / name} not found: fill {folder} with `gelab env inputs --out {folder}`")
        os.environ[env] = str((folder / name).resolve())
    load_library.cache_clear()
    _font.cache_clear()
    glyph.cache_clear()


def category_name(subgroup: str) -> str:
    """``sky & weather`` -> ``sky_and_weather``: names never contain spaces."""
    return subgroup.replace(" & ", "_and_").replace("&", "_and_").replace(" ", "_")


@functools.lru_cache(maxsize=1)
def load_library() -> tuple[Icon, ...]:
    """Every icon of the library, in Unicode's order."""
    group = subgroup = ""
    counts: dict[str, int] = {}
    icons = []
    for line in _path("GELAB_EMOJI_TEST", EMOJI_TEST).read_text(encoding="utf-8").splitlines():
        if line.startswith("# group:"):
            group = line.split(":", 1)[1].strip()
        elif line.startswith("# subgroup:"):
            subgroup = line.split(":", 1)[1].strip()
        elif line and not line.startswith("#"):
            codes, _, rest = line.partition(";")
            status, _, comment = rest.partition("#")
            points = [c for c in codes.split() if c != "FE0F"]
            if (status.strip() != "fully-qualified" or len(points) != 1 or group in _EXCLUDED_GROUPS
                    or subgroup in _EXCLUDED_SUBGROUPS):
                continue
            category = category_name(subgroup)
            counts[category] = counts.get(category, 0) + 1
            # comment: " 😀 E1.0 grinning face"
            label = comment.strip().split(" ", 2)[2] if comment.strip().count(" ") >= 2 else ""
            icons.append(Icon(f"{category}_{counts[category]}", category, group, chr(int(points[0], 16)), label))
    return tuple(icons)


def library_by_name() -> dict[str, Icon]:
    return {icon.name: icon for icon in load_library()}


@functools.lru_cache(maxsize=1)
def _font():  # type: ignore[no-untyped-def]
    from PIL import ImageFont

    return ImageFont.truetype(str(_path("GELAB_EMOJI_FONT", EMOJI_FONT)), _FONT_SIZE)


@functools.lru_cache(maxsize=4096)
def glyph(emoji: str, size: int):  # type: ignore[no-untyped-def]
    """The emoji as an RGBA tile of ``size`` × ``size`` (transparent background, art centred)."""
    from PIL import Image, ImageDraw

    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((8, 8), emoji, font=_font(), embedded_color=True)
    box = canvas.getbbox()
    tile = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    if box is None:
        return tile
    art = canvas.crop(box)
    scale = (size * 0.9) / max(art.width, art.height)
    art = art.resize((max(1, round(art.width * scale)), max(1, round(art.height * scale))), Image.Resampling.LANCZOS)
    tile.alpha_composite(art, ((size - art.width) // 2, (size - art.height) // 2))
    return tile
