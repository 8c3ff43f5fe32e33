"""The environment browser's data: pages, their hotspots and a drawing of the page graph.

Hotspots are in normalized 0..1000 space (the space of the model and of the logs), so the site
positions them, and click points, as percentages of the screenshot whatever its pixel size.
"""

from __future__ import annotations

from typing import Any

from gelab.env.envdir import Environment
from gelab.env.navigation import BACK, HOME, Navigator
from gelab.env.structure import ROOT_PAGE, EnvStructure
from gelab.report.viewer.images import IMAGE_SUFFIX


def tree_layout(structure: EnvStructure) -> dict[str, list[float]]:
    """page -> [x, depth]: leaves on consecutive columns in tree order, each parent centred over its
    children (a tidy drawing of the content-icon tree; ``x`` in column units)."""
    pos: dict[str, list[float]] = {}
    next_leaf = 0.0
    # iterative post-order walk from the root (pages unreachable by content icons are put last)
    stack: list[tuple[str, int, bool]] = [(ROOT_PAGE, 0, False)]
    while stack:
        page, depth, expanded = stack.pop()
        kids = [c for c in structure.children(page) if c not in pos]
        if not kids:
            pos[page] = [next_leaf, depth]
            next_leaf += 1
        elif expanded:
            xs = [pos[c][0] for c in kids]
            pos[page] = [(min(xs) + max(xs)) / 2, depth]
        else:
            stack.append((page, depth, True))
            stack.extend((c, depth + 1, False) for c in reversed(kids))
    for page in structure.pages:
        if page not in pos:
            pos[page] = [next_leaf, structure.pages[page].depth]
            next_leaf += 1
    return pos


def env_payload(structure: EnvStructure, image_dir: str) -> dict[str, Any]:
    """One environment for the site: per page its depth, image, parent and elements
    ``[name, type, [x1, y1, x2, y2] (0..1000), target or None]``, plus the graph's edges by kind."""
    nav = Navigator(structure)
    parent = {child: page for page in structure.pages for child in structure.children(page)}
    pages = {}
    edges: dict[str, list[list[str]]] = {"tree": [], "back": [], "home": [], "other": []}
    for page in structure.pages.values():
        pages[page.id] = {"depth": page.depth, "parent": parent.get(page.id), "image": f"{image_dir}/{page.id}{IMAGE_SUFFIX}",
                          "elements": [[h.name, h.type, list(h.bbox_norm), h.target] for h in nav.hotspots[page.id]]}
        for action, target in nav.edges[page.id].items():
            kind = "back" if action == BACK else "home" if action == HOME else \
                "tree" if parent.get(target) == page.id else "other"
            edges[kind].append([page.id, target])
    return {"canvas": list(structure.canvas), "pages": pages, "edges": edges}


def site_environments(base: Environment, variants: dict[str, Environment]) -> dict[str, Any]:
    """``GELAB_ENV``: every environment (base first), and the tree layout of the base graph."""
    envs = {"base": env_payload(base.structure, "img/base")}
    for name, env in variants.items():
        envs[name] = env_payload(env.structure, f"img/{name}")
    return {"root": ROOT_PAGE, "layout": tree_layout(base.structure), "envs": envs}
