"""An environment folder: the structure, its art map and the rendered pages.

Layout::

    DIR/ui_structure.json        released schema, pixel boxes (SPEC §1)
    DIR/icons.json               icon name -> library icon drawn for it, plus render settings
    DIR/images/page_N.png        full canvas
    DIR/model_images/page_N.png  the model's input (model_image_size²)

The folder is written atomically: it appears whole or not at all. It is checked (the structure
before rendering, the written folder before it replaces the old one), so a failure leaves an
earlier folder at ``DIR`` untouched.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gelab.env.structure import (
    MAX_CANVAS,
    STRUCTURE_FILE,
    SYSTEM,
    EnvFileError,
    EnvStructure,
    load_structure,
    parse_structure,
)
from gelab.errors import quote
from gelab.interrupts import quiet_worker
from gelab.io import atomic_directory, atomic_write_bytes, atomic_write_text
from gelab.params import PATCH_GROUP, EnvParams

ART_FILE = "icons.json"
IMAGES, MODEL_IMAGES = "images", "model_images"


@dataclass(frozen=True)
class RenderSettings:
    """How pages are drawn beyond the structure; defaults are the env params' (one place: gelab.params)."""

    model_image_size: int = EnvParams().model_image_size
    title_box: tuple[int, int, int, int] = tuple(EnvParams().title_box)  # type: ignore[assignment]


@dataclass
class Environment:
    """A loaded environment folder."""

    root: Path
    structure: EnvStructure
    art: dict[str, str]
    settings: RenderSettings

    def image_path(self, page: str) -> Path:
        return self.root / IMAGES / self.structure.pages[page].image

    def model_image_path(self, page: str) -> Path:
        return self.root / MODEL_IMAGES / self.structure.pages[page].image


def _art_document(art: dict[str, str], settings: RenderSettings, extra: dict[str, Any] | None) -> str:
    doc = {
        "library": "Noto Color Emoji (SIL OFL 1.1), categories from Unicode emoji-test.txt",
        "model_image_size": settings.model_image_size,
        "title_box": list(settings.title_box),
        "art": art,
        **(extra or {}),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


_WORKER_STATE: dict[str, Any] = {}


def _render_one(page_id: str) -> tuple[str, bytes, bytes]:
    from gelab.env import render

    s: EnvStructure = _WORKER_STATE["structure"]
    settings: RenderSettings = _WORKER_STATE["settings"]
    full = render.render_page(s.pages[page_id], _WORKER_STATE["art"], s.canvas, settings.title_box)
    small = render.model_image(full, settings.model_image_size)
    return page_id, render.png_bytes(full), render.png_bytes(small)


def write_environment(out: str | Path, structure: EnvStructure, art: dict[str, str],
                      settings: RenderSettings = RenderSettings(), workers: int = 1,
                      extra: dict[str, Any] | None = None, progress: bool = True) -> Environment:
    """Check, render every page and write the folder atomically; returns the loaded environment.

    The structure is validated before anything is drawn and the folder is loaded back before it
    replaces ``out``: on any error ``out`` is left as it was.
    """
    out = Path(out)
    parse_structure(structure.to_json(), source=f"{out.name} (to be written)", canvas=structure.canvas)
    check_art(structure, art, f"{out.name} (to be written)")
    check_settings(settings, structure.canvas, f"{out.name} (to be written)")
    _WORKER_STATE.update(structure=structure, art=art, settings=settings)
    page_ids = list(structure.pages)
    with atomic_directory(out) as tmp:
        atomic_write_text(tmp / STRUCTURE_FILE, structure.dumps())
        atomic_write_text(tmp / ART_FILE, _art_document(art, settings, extra))
        (tmp / IMAGES).mkdir()
        (tmp / MODEL_IMAGES).mkdir()
        with tqdm(total=len(page_ids), desc=f"render {out.name}", unit="page", disable=not progress) as bar:
            if workers > 1:
                ctx = multiprocessing.get_context("fork")
                with ctx.Pool(workers, initializer=quiet_worker) as pool:  # leaving the block terminates it
                    results = pool.imap_unordered(_render_one, page_ids, chunksize=4)
                    for page_id, full, small in results:
                        _save(tmp, structure, page_id, full, small)
                        bar.update()
            else:
                for page_id in page_ids:
                    _save(tmp, structure, *_render_one(page_id))
                    bar.update()
        _WORKER_STATE.clear()
        written = load_environment(tmp)  # the folder as readers will see it, checked before the rename
        check_images(written)
    return Environment(out, written.structure, written.art, written.settings)


def _save(root: Path, structure: EnvStructure, page_id: str, full: bytes, small: bytes) -> None:
    name = structure.pages[page_id].image
    atomic_write_bytes(root / IMAGES / name, full)
    atomic_write_bytes(root / MODEL_IMAGES / name, small)


def check_art(structure: EnvStructure, art: dict[str, str], source: str) -> None:
    """Every content icon has art, and every art entry is an icon of the library."""
    from gelab.env import icons

    missing = [e.name for p in structure.pages.values() for e in p.elements if e.type != SYSTEM and e.name not in art]
    if missing:
        raise EnvFileError(f"{source}: no art for icon {quote(missing[0])} ({len(missing)} names without art)")
    library = icons.library_by_name()
    unknown = next((name for name, icon in art.items() if icon not in library), None)
    if unknown is not None:
        raise EnvFileError(f"{source}: art.{unknown}: {quote(art[unknown])} is not an icon of the library")


def check_settings(settings: RenderSettings, canvas: tuple[int, int], source: str) -> None:
    """Render settings that Pillow can draw: a model image size of the patch grid, a title box inside the canvas."""
    size = settings.model_image_size
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= MAX_CANVAS or size % PATCH_GROUP:
        raise EnvFileError(f"{source}: model_image_size: must be a multiple of {PATCH_GROUP} in "
                           f"{PATCH_GROUP}..{MAX_CANVAS}, got {quote(size)}")
    box = settings.title_box
    if (not isinstance(box, tuple) or len(box) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in box)
            or not (0 <= box[0] < box[2] <= canvas[0] and 0 <= box[1] < box[3] <= canvas[1])):
        raise EnvFileError(f"{source}: title_box: must be [x1, y1, x2, y2] with x1 < x2, y1 < y2 inside the "
                           f"{canvas[0]}x{canvas[1]} canvas, got {quote(list(box) if isinstance(box, tuple) else box)}")


def check_images(env: Environment, *, full: bool = True) -> None:
    """Every page's model image (and full image, unless ``full`` is false) is a file, before anything reads them."""
    for page in env.structure.pages:
        for path in ((env.image_path(page),) if full else ()) + (env.model_image_path(page),):
            if not path.is_file():
                raise EnvFileError(f"{path}: missing image of {page} (render the environment again: "
                                   f"gelab env generate / variant / import)")


def load_environment(root: str | Path) -> Environment:
    """Load ``ui_structure.json`` and ``icons.json`` of an environment folder."""
    root = Path(root)
    structure = load_structure(root / STRUCTURE_FILE)
    art_path = root / ART_FILE
    try:
        doc = json.loads(art_path.read_bytes())
    except OSError as exc:
        raise EnvFileError(f"{art_path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # bad JSON or bytes that are not UTF-8
        raise EnvFileError(f"{art_path}: not valid JSON ({exc})") from None
    art = doc.get("art") if isinstance(doc, dict) else None
    if not isinstance(art, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in art.items()):
        raise EnvFileError(f"{art_path}: art: expected a mapping of icon name -> library icon")
    title_box = doc.get("title_box")
    title_box = tuple(title_box) if isinstance(title_box, list) else title_box
    settings = RenderSettings(doc.get("model_image_size"), title_box)  # type: ignore[arg-type]
    check_settings(settings, structure.canvas, str(art_path))
    names = {e.name for p in structure.pages.values() for e in p.elements if e.type != SYSTEM}
    missing = sorted(names - set(art))
    if missing:
        raise EnvFileError(f"{art_path}: art: no entry for icon {quote(missing[0])} ({len(missing)} icons without art)")
    return Environment(root, structure, dict(art), settings)
