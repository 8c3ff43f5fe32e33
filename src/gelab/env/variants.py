"""Out-of-distribution variants of an environment: the same graph with one factor changed (SPEC §1).

- ``image``:    every content icon drawn with art from a disjoint set of library icons (same
                category where the library has one left); names and positions kept.
- ``name``:     every content icon renamed to a related name, ``<emoji short name>_<N>`` (the words
                Unicode gives the picture, e.g. ``dog_face_3``); art and positions kept.
- ``position``: content icons moved to new random, non-overlapping positions inside the screen
                (below the header); names and art kept.
- ``noise``:    ``noise_icons`` distractor icons per page in free grid slots, art and names from
                unused library icons; they lead nowhere (a click on one is a miss).
"""

from __future__ import annotations

import re
from dataclasses import replace

from gelab.env import icons
from gelab.env.generate import grid_slots
from gelab.env.structure import NORMAL, Element, EnvStructure, Page
from gelab.errors import InputError, quote
from gelab.params import VARIANT_KINDS, EnvParams
from gelab.seeding import derived_rng

KINDS = VARIANT_KINDS  # defined once, in gelab.params
_HEADER_BOTTOM_MARGIN = 40  # new positions start this many pixels below the system buttons


def _copy(structure: EnvStructure, pages: dict[str, Page], kind: str, seed: int) -> EnvStructure:
    metadata = dict(structure.metadata)
    metadata["variant"] = {"kind": kind, "seed": seed}
    return EnvStructure(pages, structure.canvas, metadata, dict(structure.extra))


def _rename(page: Page, mapping: dict[str, str]) -> Page:
    elements = [replace(e, name=mapping.get(e.name, e.name)) for e in page.elements]
    transitions = [replace(t, action=mapping.get(t.action, t.action)) for t in page.transitions]
    return Page(page.id, page.depth, page.image, elements, transitions, dict(page.extra))


def _move(page: Page, boxes: dict[str, tuple[int, int, int, int]]) -> Page:
    elements = [replace(e, bbox=boxes.get(e.name, e.bbox)) for e in page.elements]
    transitions = [replace(t, icon_bbox=boxes.get(t.action, t.icon_bbox)) for t in page.transitions]
    return Page(page.id, page.depth, page.image, elements, transitions, dict(page.extra))


def image_variant(structure: EnvStructure, art: dict[str, str], seed: int) -> tuple[EnvStructure, dict[str, str]]:
    library = icons.load_library()
    used = set(art.values())
    by_category: dict[str, list[str]] = {}
    for icon in library:
        if icon.name not in used:
            by_category.setdefault(icon.category, []).append(icon.name)
    rng = derived_rng(seed, "image")
    for names in by_category.values():
        rng.shuffle(names)
    spare = [n for names in by_category.values() for n in names]
    new_art, taken = {}, set()
    for name in sorted(art):
        icon = icons.library_by_name().get(art[name])
        category = icon.category if icon else None
        pool = [n for n in by_category.get(category or "", []) if n not in taken] or [n for n in spare if n not in taken]
        if not pool:
            raise InputError("the icon library has too few icons for a disjoint Env-Image")
        new_art[name] = pool[0]
        taken.add(pool[0])
    return _copy(structure, dict(structure.pages), "image", seed), {n: new_art[n] for n in art}


def related_name(icon: icons.Icon, number: int) -> str:
    words = re.sub(r"[^A-Za-z0-9 -]+", "", icon.label).split()
    return "_".join(words or [icon.category]) + f"_{number}"


def name_variant(structure: EnvStructure, art: dict[str, str], seed: int) -> tuple[EnvStructure, dict[str, str]]:
    library = icons.library_by_name()
    mapping: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(art):
        number = int(name.rsplit("_", 1)[1]) if name.rsplit("_", 1)[-1].isdigit() else 1
        new = related_name(library[art[name]], number)
        while new in taken or new in art:
            number += 1000
            new = related_name(library[art[name]], number)
        mapping[name] = new
        taken.add(new)
    pages = {pid: _rename(p, mapping) for pid, p in structure.pages.items()}
    return _copy(structure, pages, "name", seed), {mapping[n]: a for n, a in art.items()}


def position_variant(structure: EnvStructure, art: dict[str, str], seed: int,
                     params: EnvParams) -> tuple[EnvStructure, dict[str, str]]:
    rng = derived_rng(seed, "position")
    w, h = structure.canvas
    top = max(params.back_box[3], params.home_box[3], params.title_box[3]) + _HEADER_BOTTOM_MARGIN
    pages = {}
    for pid, page in structure.pages.items():
        fixed = [e.bbox for e in page.elements if e.type != NORMAL]
        boxes: dict[str, tuple[int, int, int, int]] = {}
        for e in page.elements:
            if e.type != NORMAL:
                continue
            ew, eh = e.bbox[2] - e.bbox[0], e.bbox[3] - e.bbox[1]
            if top + eh > h or ew > w:
                raise InputError(f"env.back_box, home_box, title_box: the header ends {top} px down "
                                 f"({_HEADER_BOTTOM_MARGIN} px margin included); no room below it for {e.name} "
                                 f"({ew}x{eh}) on the {w}x{h} canvas")
            for _ in range(10_000):
                x, y = rng.randint(0, w - ew), rng.randint(top, h - eh)
                box = (x, y, x + ew, y + eh)
                if not any(_overlap(box, other) for other in [*fixed, *boxes.values()]):
                    break
            else:
                raise InputError(f"{pid}: no free position for {e.name}")
            boxes[e.name] = box
        pages[pid] = _move(page, boxes)
    return _copy(structure, pages, "position", seed), dict(art)


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def noise_variant(structure: EnvStructure, art: dict[str, str], seed: int, params: EnvParams,
                  per_page: int) -> tuple[EnvStructure, dict[str, str]]:
    rng = derived_rng(seed, "noise")
    used = set(art.values())
    spare = [i.name for i in icons.load_library() if i.name not in used]
    rng.shuffle(spare)
    slots = grid_slots(params)
    pages, new_art = {}, dict(art)
    for pid, page in structure.pages.items():
        free = [s for s in slots if not any(_overlap(s, e.bbox) for e in page.elements)]
        chosen = rng.sample(free, min(per_page, len(free)))
        extra = []
        for box in chosen:
            if not spare:
                raise InputError("the icon library has too few icons for the distractors")
            name = spare.pop()
            extra.append(Element(name, box, NORMAL))
            new_art[name] = name
        pages[pid] = Page(pid, page.depth, page.image, [*page.elements, *extra], list(page.transitions),
                          dict(page.extra))
    return _copy(structure, pages, "noise", seed), new_art


def make_variant(kind: str, structure: EnvStructure, art: dict[str, str], seed: int, params: EnvParams,
                 noise_icons: int = 2) -> tuple[EnvStructure, dict[str, str]]:
    """The ``kind`` variant of an environment and its art map."""
    if kind == "image":
        return image_variant(structure, art, seed)
    if kind == "name":
        return name_variant(structure, art, seed)
    if kind == "position":
        return position_variant(structure, art, seed, params)
    if kind == "noise":
        return noise_variant(structure, art, seed, params, noise_icons)
    raise InputError(f"unknown variant {quote(kind)}; choose from {', '.join(KINDS)}")

