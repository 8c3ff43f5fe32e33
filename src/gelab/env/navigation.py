"""Pure dynamics of an environment: hit tests, moves and shortest paths. No pixels here.

All hit tests happen in normalized 0..1000 space on ``bbox_norm`` (the space the model sees), with
the inclusive rule of :func:`gelab.format.in_box`.

Tie rule (SPEC §2): when several first actions are optimal, the label is chosen by a fixed
preference — a content icon first, then ``back``, then ``home`` (in each subtree ties are always
between ``back`` and ``home``, so labels prefer ``back``: the local move). Scoring of an agent's own
choices accepts every optimal action (:meth:`Navigator.optimal_actions`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from gelab import format as fmt
from gelab.env.structure import EnvStructure

BACK, HOME = fmt.BACK, fmt.HOME
_PREFERENCE = {BACK: 1, HOME: 2}  # content icons rank 0


@dataclass(frozen=True, slots=True)
class Hotspot:
    """A clickable element of a page in model space, with where it leads (None: leads nowhere)."""

    name: str
    bbox_norm: fmt.Box
    target: str | None
    type: str


class Navigator:
    """Page × click -> next page, and shortest paths over all edges (forward, back and home)."""

    def __init__(self, structure: EnvStructure) -> None:
        self.structure = structure
        canvas = structure.canvas
        self.hotspots: dict[str, tuple[Hotspot, ...]] = {}
        self.edges: dict[str, dict[str, str]] = {}  # page -> action name -> target page
        for page in structure.pages.values():
            targets = {t.action: t.target for t in page.transitions}
            self.edges[page.id] = targets
            self.hotspots[page.id] = tuple(
                Hotspot(e.name, fmt.to_norm_box(e.bbox, canvas), targets.get(e.name), e.type) for e in page.elements
            )
        self._dist_cache: dict[str, dict[str, int]] = {}
        self._optimal_cache: dict[tuple[str, str], tuple[str, ...]] = {}

    # --- dynamics ------------------------------------------------------------------------------

    def hit(self, page: str, x: int, y: int) -> Hotspot | None:
        """The element under the normalized point on ``page`` (None: a miss)."""
        for h in self.hotspots[page]:
            b = h.bbox_norm
            if b[0] <= x <= b[2] and b[1] <= y <= b[3]:
                return h
        return None

    def bbox_norm(self, page: str, name: str) -> fmt.Box:
        for h in self.hotspots[page]:
            if h.name == name:
                return h.bbox_norm
        raise KeyError(f"no element {name!r} on {page}")

    # --- shortest paths ------------------------------------------------------------------------

    def distances_to(self, target: str) -> dict[str, int]:
        """Clicks from every page to ``target`` (BFS on reversed edges); unreachable pages absent."""
        cached = self._dist_cache.get(target)
        if cached is not None:
            return cached
        reverse: dict[str, list[str]] = {p: [] for p in self.edges}
        for page, actions in self.edges.items():
            for nxt in actions.values():
                reverse[nxt].append(page)
        dist = {target: 0}
        queue = deque([target])
        while queue:
            page = queue.popleft()
            for prev in reverse[page]:
                if prev not in dist:
                    dist[prev] = dist[page] + 1
                    queue.append(prev)
        self._dist_cache[target] = dist
        return dist

    def optimal_actions(self, page: str, target: str) -> list[str]:
        """Every action on ``page`` that starts a shortest path to ``target``, label first."""
        cached = self._optimal_cache.get((page, target))
        if cached is None:
            dist = self.distances_to(target)
            if page == target or page not in dist:
                cached = ()
            else:
                best = [a for a, nxt in self.edges[page].items() if dist.get(nxt, -1) == dist[page] - 1]
                cached = tuple(sorted(best, key=lambda a: (_PREFERENCE.get(a, 0), best.index(a))))
            self._optimal_cache[(page, target)] = cached
        return list(cached)

    def label_action(self, page: str, target: str) -> str:
        """The one deterministic label: the first of :meth:`optimal_actions` (content > back > home)."""
        actions = self.optimal_actions(page, target)
        if not actions:
            raise ValueError(f"no move from {page} towards {target}")
        return actions[0]

    def shortest_path(self, start: str, target: str) -> list[tuple[str, str]]:
        """The labelled shortest path as (page, action) pairs; empty when start == target."""
        path: list[tuple[str, str]] = []
        page = start
        while page != target:
            action = self.label_action(page, target)
            path.append((page, action))
            page = self.edges[page][action]
        return path
