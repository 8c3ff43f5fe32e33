"""The environment file: typed pages, elements and transitions in the released schema (SPEC §1).

``ui_structure.json``::

    {"pages": {"page_N": {"image": "page_N.png", "depth": d,
                          "layout": {NAME: {"bbox": [x1, y1, x2, y2], "type": "normal" | "system"}},
                          "transitions": [{"action": NAME, "target_page": "page_M", "icon_bbox": [...]}]}},
     "metadata": {"total_pages": 231, "tree_depth": 7, "nodes_per_level": [5, 3, 2, 2, 1, 1], ...}}

Boxes are in canvas pixels. Loading validates the file and raises :class:`EnvFileError` naming the
file, the page and the field; unknown extra keys are kept so that export is lossless.

Every field that names a file is confined to its folder: a page's ``image`` is a plain file name
(:data:`IMAGE_NAME`: no folder, no ``..``, no absolute path, ending in ``.png``), distinct from the
other pages' images even when letter case is ignored, so no page can overwrite another's picture or
write outside the environment folder.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gelab import format as fmt
from gelab.errors import InputError, quote

STRUCTURE_FILE = "ui_structure.json"
DEFAULT_CANVAS = (1179, 2556)  # portrait phone, pixels (width, height)
ROOT_PAGE = "page_0"
NORMAL, SYSTEM = "normal", "system"
PAGE_ID = re.compile(r"page_\d+", re.ASCII)  # the only page ids prompts and answers can name (gelab.format)
IMAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,195}\.png")  # a plain file name inside images/
MAX_CANVAS = 10_000  # pixels per side; a page is rendered whole in memory (4 bytes a pixel)


class EnvFileError(InputError):
    """A malformed environment file; the message names the file, page and field."""


@dataclass(frozen=True, slots=True)
class Element:
    """An icon on a page: name, pixel box and kind (``normal`` content icon or ``system`` button)."""

    name: str
    bbox: tuple[int, int, int, int]
    type: str = NORMAL
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True)
class Transition:
    """Clicking ``action`` on the page leads to ``target``."""

    action: str
    target: str
    icon_bbox: tuple[int, int, int, int]
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(slots=True)
class Page:
    id: str
    depth: int
    image: str
    elements: list[Element]
    transitions: list[Transition]
    extra: dict[str, Any] = field(default_factory=dict)

    def element(self, name: str) -> Element | None:
        for e in self.elements:
            if e.name == name:
                return e
        return None


@dataclass(slots=True)
class EnvStructure:
    """A whole environment: pages in file order, canvas size and the metadata block."""

    pages: dict[str, Page]
    canvas: tuple[int, int] = DEFAULT_CANVAS
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def content_names(self) -> list[str]:
        """Every content-icon name that leads somewhere, in page order."""
        return [t.action for p in self.pages.values() for t in p.transitions
                if (e := p.element(t.action)) is not None and e.type == NORMAL]

    def children(self, page: str) -> list[str]:
        """Pages reached by the page's content icons, in transition order (the tree's children)."""
        p = self.pages[page]
        return [t.target for t in p.transitions if (e := p.element(t.action)) is not None and e.type == NORMAL]

    def subtree(self, root: str) -> list[str]:
        """Pages of the subtree rooted at ``root``, found by walking content transitions (BFS order)."""
        if root not in self.pages:
            raise KeyError(f"no page {root!r} in this environment")
        seen, order, queue = {root}, [], deque([root])
        while queue:
            page = queue.popleft()
            order.append(page)
            for child in self.children(page):
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return order

    # --- serialisation -------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        pages: dict[str, Any] = {}
        for p in self.pages.values():
            layout = {e.name: {"bbox": list(e.bbox), "type": e.type, **e.extra} for e in p.elements}
            transitions = [{"action": t.action, "target_page": t.target, "icon_bbox": list(t.icon_bbox), **t.extra}
                           for t in p.transitions]
            pages[p.id] = {"image": p.image, "depth": p.depth, "layout": layout, "transitions": transitions, **p.extra}
        return {"pages": pages, "metadata": dict(self.metadata), **self.extra}

    def dumps(self) -> str:
        """Canonical text of the file: key order as built, two-space indent, trailing newline."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def load_structure(path: str | Path, canvas: tuple[int, int] | None = None) -> EnvStructure:
    """Read and validate ``ui_structure.json`` (or a folder holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / STRUCTURE_FILE
    from gelab.io import read_text

    text = read_text(path, EnvFileError)
    try:
        raw = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as dup:
        raise EnvFileError(f"{path}: duplicate key {quote(dup.key)} (an icon name may appear once per page)") from None
    except json.JSONDecodeError as exc:
        raise EnvFileError(f"{path}: not valid JSON: {exc}") from exc
    return parse_structure(raw, source=str(path), canvas=canvas)


def _box(value: Any, where: str) -> tuple[int, int, int, int]:
    if (not isinstance(value, list) or len(value) != 4
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise EnvFileError(f"{where}: expected [x1, y1, x2, y2] of four integers, got {quote(value)}")
    x1, y1, x2, y2 = value
    if x1 >= x2 or y1 >= y2:
        raise EnvFileError(f"{where}: box {value} needs x1 < x2 and y1 < y2")
    return (x1, y1, x2, y2)


def _image_name(value: str, where: str) -> str:
    """A page's ``image``: a plain ``.png`` file name, never a path (see the module docstring)."""
    if not IMAGE_NAME.fullmatch(value):
        raise EnvFileError(f"{where}: {quote(value)} must be a plain file name ending in .png (letters, digits, "
                           f"'_', '-', '.'; not starting with '.'; no folders)")
    return value


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise EnvFileError(f"{where}: missing field {quote(key)}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise EnvFileError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, got {quote(value)}")
    return value


def parse_structure(raw: Any, source: str = STRUCTURE_FILE, canvas: tuple[int, int] | None = None) -> EnvStructure:
    """Typed, validated structure from parsed JSON. ``canvas`` overrides ``metadata.canvas``."""
    if not isinstance(raw, dict):
        raise EnvFileError(f"{source}: top level must be an object with 'pages' and 'metadata'")
    raw_pages = _require(raw, "pages", dict, source)
    metadata = _require(raw, "metadata", dict, source)
    if canvas is None:
        canvas = _canvas(metadata, source)
    pages: dict[str, Page] = {}
    images: dict[str, str] = {}  # image name, lower case -> the page that has it
    for page_id, raw_page in raw_pages.items():
        where = f"{source}: pages.{page_id}"
        if not PAGE_ID.fullmatch(page_id):
            raise EnvFileError(f"{source}: pages: page id {quote(page_id)} must be page_<N> "
                               f"(the only form prompts can name)")
        if not isinstance(raw_page, dict):
            raise EnvFileError(f"{where}: expected an object")
        depth = _require(raw_page, "depth", int, where)
        image = _image_name(_require(raw_page, "image", str, where), f"{where}.image")
        if image.lower() in images:
            raise EnvFileError(f"{where}.image: {quote(image)} is already the image of {images[image.lower()]} "
                               f"(each page needs its own image file)")
        images[image.lower()] = page_id
        elements = _elements(_require(raw_page, "layout", dict, where), canvas, where)
        transitions = _transitions(_require(raw_page, "transitions", list, where), elements, where)
        extra = {k: v for k, v in raw_page.items() if k not in ("image", "depth", "layout", "transitions")}
        pages[page_id] = Page(page_id, depth, image, elements, transitions, extra)
    structure = EnvStructure(pages, canvas, dict(metadata), {k: v for k, v in raw.items() if k not in ("pages", "metadata")})
    _check_graph(structure, source)
    return structure


def _canvas(metadata: dict[str, Any], source: str) -> tuple[int, int]:
    """``metadata.canvas`` (default :data:`DEFAULT_CANVAS`) as (width, height)."""
    meta_canvas = metadata.get("canvas", list(DEFAULT_CANVAS))
    if (not isinstance(meta_canvas, list) or len(meta_canvas) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= MAX_CANVAS for v in meta_canvas)):
        raise EnvFileError(f"{source}: metadata.canvas: expected [width, height], each 1..{MAX_CANVAS} "
                           f"pixels, got {quote(meta_canvas)}")
    return meta_canvas[0], meta_canvas[1]


def _elements(raw_layout: dict[str, Any], canvas: tuple[int, int], where: str) -> list[Element]:
    """A page's layout: valid icon names and types, boxes inside the canvas that do not overlap."""
    elements = []
    for name, raw_el in raw_layout.items():
        ewhere = f"{where}.layout.{name}"
        if not fmt.is_valid_icon_name(name):
            raise EnvFileError(f"{where}.layout: icon name {quote(name)} must be back, home or <Category>_<N> "
                               f"without spaces")
        bbox = _box(_require(raw_el, "bbox", list, ewhere), f"{ewhere}.bbox")
        kind = _require(raw_el, "type", str, ewhere)
        if kind not in (NORMAL, SYSTEM):
            raise EnvFileError(f"{ewhere}.type: expected 'normal' or 'system', got {quote(kind)}")
        if (kind == SYSTEM) != (name in fmt.SYSTEM_NAMES):
            raise EnvFileError(f"{ewhere}.type: back and home are the 'system' buttons, every other icon is "
                               f"'normal' (got {quote(kind)})")
        if not (0 <= bbox[0] and 0 <= bbox[1] and bbox[2] <= canvas[0] and bbox[3] <= canvas[1]):
            raise EnvFileError(f"{ewhere}.bbox: box {list(bbox)} outside the {canvas[0]}x{canvas[1]} canvas")
        extra = {k: v for k, v in raw_el.items() if k not in ("bbox", "type")}
        elements.append(Element(name, bbox, kind, extra))
    for i, a in enumerate(elements):
        for b in elements[i + 1:]:
            if a.bbox[0] <= b.bbox[2] and b.bbox[0] <= a.bbox[2] and a.bbox[1] <= b.bbox[3] and b.bbox[1] <= a.bbox[3]:
                raise EnvFileError(f"{where}.layout: boxes of {quote(a.name)} {list(a.bbox)} and {quote(b.name)} "
                                   f"{list(b.bbox)} overlap")
    return elements


def _transitions(raw_transitions: list[Any], elements: list[Element], where: str) -> list[Transition]:
    """A page's transitions: each from an element of its layout, with that element's box, once per action."""
    transitions = []
    seen_actions: set[str] = set()
    for j, raw_t in enumerate(raw_transitions):
        twhere = f"{where}.transitions[{j}]"
        action = _require(raw_t, "action", str, twhere)
        target = _require(raw_t, "target_page", str, twhere)
        icon_bbox = _box(_require(raw_t, "icon_bbox", list, twhere), f"{twhere}.icon_bbox")
        element = next((e for e in elements if e.name == action), None)
        if element is None:
            raise EnvFileError(f"{twhere}.action: {quote(action)} is not in the page's layout")
        if icon_bbox != element.bbox:
            raise EnvFileError(f"{twhere}.icon_bbox: {list(icon_bbox)} differs from layout box {list(element.bbox)}")
        if action in seen_actions:
            raise EnvFileError(f"{twhere}.action: {quote(action)} has two transitions on this page")
        seen_actions.add(action)
        extra = {k: v for k, v in raw_t.items() if k not in ("action", "target_page", "icon_bbox")}
        transitions.append(Transition(action, target, icon_bbox, extra))
    return transitions


def _check_graph(s: EnvStructure, source: str) -> None:
    """A tree: every page but the root is reached by exactly one content icon, depths count the clicks
    from the root, ``back`` leads to the parent and ``home`` to the root."""
    if ROOT_PAGE not in s.pages:
        raise EnvFileError(f"{source}: pages: the root page {ROOT_PAGE!r} is missing")
    owner: dict[str, str] = {}
    parent: dict[str, str] = {}
    for p in s.pages.values():
        for j, t in enumerate(p.transitions):
            if t.target not in s.pages:
                raise EnvFileError(f"{source}: pages.{p.id}.transitions: action {quote(t.action)} targets unknown page "
                                   f"{quote(t.target)} (field target_page)")
            if (e := p.element(t.action)) is not None and e.type == NORMAL:
                if t.target == ROOT_PAGE or t.target in parent:
                    first = f" (already reached from {parent[t.target]})" if t.target in parent else ""
                    raise EnvFileError(f"{source}: pages.{p.id}.transitions[{j}].target_page: {t.target} can be the "
                                       f"child of one page only{first}; back and home lead upwards")
                parent[t.target] = p.id
        for e in p.elements:
            if e.type == NORMAL:
                if e.name in owner:
                    raise EnvFileError(f"{source}: pages.{p.id}.layout.{e.name}: content icon already used on "
                                       f"{owner[e.name]} (each content icon belongs to one page)")
                owner[e.name] = p.id
    order = s.subtree(ROOT_PAGE)
    reached = set(order)
    for page_id in s.pages:
        if page_id not in reached:
            raise EnvFileError(f"{source}: pages.{page_id}: page is unreachable from {ROOT_PAGE} "
                               f"(no content icon leads to it)")
    depth = {ROOT_PAGE: 0}
    for page_id in order[1:]:
        depth[page_id] = depth[parent[page_id]] + 1
    for p in s.pages.values():
        if p.depth != depth[p.id]:
            raise EnvFileError(f"{source}: pages.{p.id}.depth: {p.depth}, but the page is {depth[p.id]} clicks "
                               f"below {ROOT_PAGE}")
        for j, t in enumerate(p.transitions):
            expected = {fmt.BACK: parent.get(p.id), fmt.HOME: ROOT_PAGE}.get(t.action, t.target)
            if t.target != expected:
                raise EnvFileError(f"{source}: pages.{p.id}.transitions[{j}].target_page: {t.action} must lead to "
                                   f"{expected or 'nowhere (the root has no parent)'}, got {t.target}")
    total = s.metadata.get("total_pages")
    if total is not None and total != len(s.pages):
        raise EnvFileError(f"{source}: metadata.total_pages: {quote(total)}, but the file has {len(s.pages)} pages")
