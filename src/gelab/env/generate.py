"""Build an environment from parameters: the page tree, icon names and positions (SPEC §1).

Pages are numbered breadth-first (``page_0`` … ``page_230`` for Env-Base). Every page at depth d has
``branching[d]`` children, each reached by one content icon placed in a random free slot of the
4 × 8 grid. ``back`` (to the parent) is on every page but the root; ``home`` (to ``page_0``) on every
page of depth ≥ 2.

All randomness comes from :func:`gelab.seeding.derived_rng`, seeded by hashing (seed, purpose) with SHA-256, so the
result does not depend on ``PYTHONHASHSEED``, set order or the NumPy version.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

from gelab import format as fmt
from gelab.env import icons
from gelab.env.structure import (
    NORMAL,
    ROOT_PAGE,
    SYSTEM,
    Element,
    EnvStructure,
    Page,
    Transition,
)
from gelab.errors import InputError
from gelab.params import EnvParams
from gelab.seeding import derived_rng


def grid_slots(params: EnvParams) -> list[tuple[int, int, int, int]]:
    """Every content slot as a pixel box, row by row."""
    s = params.icon_size
    return [(x, y, x + s, y + s) for y in params.grid_y for x in params.grid_x]


def tree_pages(branching: Sequence[int]) -> tuple[list[tuple[str, int, str | None]], int]:
    """Breadth-first (id, depth, parent) for every page, and the number of content icons."""
    pages: list[tuple[str, int, str | None]] = [(ROOT_PAGE, 0, None)]
    frontier = [ROOT_PAGE]
    for depth, width in enumerate(branching):
        nxt = []
        for parent in frontier:
            for _ in range(width):
                page = f"page_{len(pages)}"
                pages.append((page, depth + 1, parent))
                nxt.append(page)
        frontier = nxt
    return pages, len(pages) - 1


def generate(params: EnvParams) -> tuple[EnvStructure, dict[str, str]]:
    """The environment and its art map (icon name -> library icon drawn for it)."""
    if any(b < 0 for b in params.branching):
        raise InputError(f"branching must be non-negative, got {params.branching}")
    slots = grid_slots(params)
    if max(params.branching, default=0) > len(slots):
        raise InputError(f"branching {max(params.branching)} exceeds the {len(slots)} grid slots")
    canvas = (params.canvas[0], params.canvas[1])
    page_list, n_content = tree_pages(params.branching)
    library = icons.load_library()
    if n_content > len(library):
        raise InputError(f"{n_content} content icons needed, the library has {len(library)}")
    chosen = derived_rng(params.seed, "icons").sample(range(len(library)), n_content)
    names = iter(library[i].name for i in chosen)

    children: dict[str, list[str]] = {p: [] for p, _, _ in page_list}
    for page, _, parent in page_list:
        if parent is not None:
            children[parent].append(page)

    place = derived_rng(params.seed, "positions")
    back_box, home_box = tuple(params.back_box), tuple(params.home_box)
    pages: dict[str, Page] = {}
    parents = {p: parent for p, _, parent in page_list}
    for page, depth, parent in page_list:
        kids = children[page]
        boxes = [slots[i] for i in place.sample(range(len(slots)), len(kids))]
        elements, transitions = [], []
        for child, box in zip(kids, boxes):
            name = next(names)
            elements.append(Element(name, box, NORMAL))
            transitions.append(Transition(name, child, box))
        if parent is not None:
            elements.append(Element(fmt.BACK, back_box, SYSTEM))  # type: ignore[arg-type]
            transitions.append(Transition(fmt.BACK, parents[page] or ROOT_PAGE, back_box))  # type: ignore[arg-type]
        if depth >= 2:
            elements.append(Element(fmt.HOME, home_box, SYSTEM))  # type: ignore[arg-type]
            transitions.append(Transition(fmt.HOME, ROOT_PAGE, home_box))  # type: ignore[arg-type]
        pages[page] = Page(page, depth, f"{page}.png", elements, transitions)

    metadata = {
        "total_pages": len(pages),
        "tree_depth": len(params.branching) + 1,
        "nodes_per_level": list(params.branching),
        "canvas": list(canvas),
        "generator": {"name": "gelab", "seed": params.seed, "icon_library": "noto-color-emoji"},
    }
    structure = EnvStructure(pages, canvas, metadata)
    return structure, {name: name for name in structure.content_names()}


def assign_art(names: Sequence[str], avoid: Sequence[str] = (), seed: int = 0) -> dict[str, str]:
    """Art for names not in the library (imported environments): a distinct library icon each.

    A name that is itself a library icon keeps it; others take icons picked by hashing the name
    (SHA-256, linear probing), skipping ``avoid`` and icons already given out.
    """
    library = [icon.name for icon in icons.load_library()]
    known = set(library)
    taken = set(avoid) | {n for n in names if n in known}
    art = {}
    for name in sorted(names):
        if name in known:
            art[name] = name
            continue
        i = int.from_bytes(hashlib.sha256(f"{seed}_{name}".encode()).digest()[:8], "big") % len(library)
        for _ in range(len(library)):
            if library[i] not in taken:
                break
            i = (i + 1) % len(library)
        else:
            raise InputError(f"the icon library has too few icons for {len(names)} names")
        taken.add(library[i])
        art[name] = library[i]
    return {n: art[n] for n in names}
