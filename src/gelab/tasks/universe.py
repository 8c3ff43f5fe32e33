"""Navigation tasks: data plus a predicate; the environment does not own them (SPEC §2).

A subtree's task universe is every ordered pair (start, target), start != target, over the
subtree's pages plus ``page_0``, with the shortest-path length over all edges. Tasks are listed in
a fixed order: start by page number, then target by page number.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from gelab import format as fmt
from gelab.env.navigation import Navigator
from gelab.env.structure import ROOT_PAGE, EnvStructure
from gelab.errors import InputError, quote


def page_number(page: str) -> int:
    """``page_17`` -> 17 (page ids sort numerically, never as strings)."""
    return int(page.rsplit("_", 1)[1])


@dataclass(frozen=True, slots=True)
class Task:
    """Go from ``start`` to ``target`` inside ``subtree`` (named by its root page)."""

    start: str
    target: str
    subtree: str
    path_length: int

    @property
    def id(self) -> str:
        return fmt.task_id(self.start, self.target, self.subtree)

    def is_successful(self, page: str, said_complete: bool) -> float:
        """Strict success: 1.0 iff ``complete`` was said on the target page (SPEC §5, §6)."""
        return 1.0 if said_complete and page == self.target else 0.0

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def subtree_roots(structure: EnvStructure) -> list[str]:
    """The children of ``page_0``: each roots one subtree of the task universe."""
    return structure.children(ROOT_PAGE)


def task_pages(structure: EnvStructure, subtree: str) -> list[str]:
    """The subtree's pages plus ``page_0``, in page-number order."""
    if subtree not in subtree_roots(structure):
        raise InputError(f"{quote(subtree)} is not a subtree root; roots are {subtree_roots(structure)}")
    return sorted({ROOT_PAGE, *structure.subtree(subtree)}, key=page_number)


def task_universe(structure: EnvStructure, subtree: str, navigator: Navigator | None = None) -> list[Task]:
    """All ordered pairs of the subtree's pages plus ``page_0`` with their shortest-path lengths."""
    nav = navigator or Navigator(structure)
    pages = task_pages(structure, subtree)
    tasks = []
    for start in pages:
        for target in pages:
            if start != target:
                length = nav.distances_to(target).get(start)
                if length is None:
                    raise InputError(f"{target} is unreachable from {start}")
                tasks.append(Task(start, target, subtree, length))
    return tasks


def check_tasks(tasks: Iterable[Task], structure: EnvStructure, navigator: Navigator, where: str) -> None:
    """Tasks read from a file fit the environment: known, distinct pages inside the named subtree, and
    the path length the environment gives (per-length metrics would otherwise be silently wrong)."""
    distances: dict[str, dict[str, int]] = {}
    for i, t in enumerate(tasks, start=1):
        for page in (t.start, t.target):
            if page not in structure.pages:
                raise InputError(f"{where}: row {i}: {quote(page)} is not a page of this environment")
        if t.start == t.target:
            raise InputError(f"{where}: row {i}: start and target are both {t.start}")
        if t.subtree not in subtree_roots(structure) or \
                not {t.start, t.target} <= {ROOT_PAGE, *structure.subtree(t.subtree)}:
            raise InputError(f"{where}: row {i}: {t.start}->{t.target} is not a task of subtree {quote(t.subtree)}")
        if t.target not in distances:
            distances[t.target] = navigator.distances_to(t.target)
        length = distances[t.target].get(t.start)
        if length != t.path_length:
            raise InputError(f"{where}: row {i}: path_length {t.path_length}, but {t.start}->{t.target} takes "
                             f"{length} clicks in this environment")


def write_tasks(tasks: Iterable[Task], path: str | Path) -> int:
    """One JSON object per line (``start``, ``target``, ``subtree``, ``path_length``); returns the count."""
    from gelab.io import atomic_write_text

    lines = [json.dumps(t.to_json()) for t in tasks]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return len(lines)


def read_tasks(path: str | Path) -> list[Task]:
    """The tasks of a file written by :func:`write_tasks`; a bad row raises naming the file and line."""
    from gelab.io import read_jsonl

    out = []
    for i, row in enumerate(read_jsonl(path), start=1):
        try:
            out.append(Task(str(row["start"]), str(row["target"]), str(row["subtree"]), int(row["path_length"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{path}: row {i}: not a task ({quote(exc)})") from None
    return out
