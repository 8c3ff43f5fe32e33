"""An environment folder: the structure, its art map and the rendered pages.

Layout::

    DIR/ui_structure.json        released schema, pixel boxes (SPEC §1)
    DIR/icons.json               icon name -> library icon drawn for it, plus render settings
    DIR/images/page_N.png        full canvas
    DIR/model_images/page_N.png  the model's input (model_image_size²)

The folder is written atomically: it appears whole or not at all.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gelab.env.structure import (
    STRUCTURE_FILE,
    EnvFileError,
    EnvStructure,
    load_structure,
)
from gelab.io import atomic_directory, atomic_write_bytes, atomic_write_text
from gelab.params import EnvParams

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
    """Render every page and write the folder atomically; returns the loaded environment."""
    missing = [e.name for p in structure.pages.values() for e in p.elements
               if e.type != "system" and e.name not in art]
    if missing:
        raise EnvFileError(f"no art for icon {missing[0]!r} ({len(missing)} names without art)")
    out = Path(out)
    _WORKER_STATE.update(structure=structure, art=art, settings=settings)
    page_ids = list(structure.pages)
    with atomic_directory(out) as tmp:
        atomic_write_text(tmp / STRUCTURE_FILE, structure.dumps())
        atomic_write_text(tmp / ART_FILE, _art_document(art, settings, extra))
        (tmp / IMAGES).mkdir()
        (tmp / MODEL_IMAGES).mkdir()
        bar = tqdm(total=len(page_ids), desc=f"render {out.name}", unit="page", disable=not progress)
        if workers > 1:
            ctx = multiprocessing.get_context("fork")
            with ctx.Pool(workers) as pool:
                results = pool.imap_unordered(_render_one, page_ids, chunksize=4)
                for page_id, full, small in results:
                    _save(tmp, structure, page_id, full, small)
                    bar.update()
        else:
            for page_id in page_ids:
                _save(tmp, structure, *_render_one(page_id))
                bar.update()
        bar.close()
    _WORKER_STATE.clear()
    return load_environment(out)


def _save(root: Path, structure: EnvStructure, page_id: str, full: bytes, small: bytes) -> None:
    name = structure.pages[page_id].image
    atomic_write_bytes(root / IMAGES / name, full)
    atomic_write_bytes(root / MODEL_IMAGES / name, small)


def load_environment(root: str | Path) -> Environment:
    """Load ``ui_structure.json`` and ``icons.json`` of an environment folder."""
    root = Path(root)
    structure = load_structure(root / STRUCTURE_FILE)
    art_path = root / ART_FILE
    try:
        doc = json.loads(art_path.read_text(encoding="utf-8"))
        art = dict(doc["art"])
        settings = RenderSettings(int(doc["model_image_size"]), tuple(doc["title_box"]))  # type: ignore[arg-type]
    except OSError as exc:
        raise EnvFileError(f"{art_path}: cannot read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise EnvFileError(f"{art_path}: malformed art file ({exc!r})") from exc
    return Environment(root, structure, art, settings)
