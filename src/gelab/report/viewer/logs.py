"""Read interactive-evaluation trajectory logs (``gelab eval interactive --trajectories``) into episodes.

One row per step (written by :func:`gelab.eval.interactive.play_turn`): ``episode``, ``task``
(``SUBTREE:START->TARGET``), ``attempt``, ``step``, ``page``, ``prompt``, ``output``, ``action``,
``click``, ``claimed``, ``hit``, ``new_page``, ``error``, ``done``. A row that lacks a field, a task
id of another shape or a step out of order raises :class:`InputError` naming the file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gelab import format as fmt
from gelab.errors import InputError, quote
from gelab.eval.records import read_log

REQUIRED = ("episode", "task", "attempt", "step", "page", "output", "action", "click", "claimed", "hit",
            "new_page", "error", "done")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]*")


@dataclass(frozen=True)
class EpisodeLog:
    """The logged steps of one episode (one attempt of one task) of one model."""

    model: str
    key: str  # TASK@ATTEMPT, unique within a log
    subtree: str
    start: str
    target: str
    attempt: int
    rows: tuple[dict[str, Any], ...]  # in step order, 0..n-1

    @property
    def task(self) -> str:
        return fmt.task_id(self.start, self.target, self.subtree)


def check_model_name(name: str, where: str) -> str:
    """Model names become folder names of the site: letters, digits and ``_ . + -`` only."""
    if not _MODEL_NAME.fullmatch(name):
        raise InputError(f"{where}: model name {quote(name)} must be letters, digits, '_', '.', '+' or '-'")
    return name


def read_episodes(model: str, path: str | Path) -> list[EpisodeLog]:
    """The episodes of one trajectory log, in the order their first rows appear."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: trajectory log not found (run `gelab eval interactive --trajectories {path}`)")
    rows, _ = read_log(path)  # a cut-off last line (a run still writing) is ignored
    grouped: dict[str, list[dict[str, Any]]] = {}
    heads: dict[str, tuple[str, str, str, int]] = {}
    for line, row in enumerate(rows, start=1):
        missing = [f for f in REQUIRED if f not in row]
        if missing:
            raise InputError(f"{path}: line {line}: no field {quote(missing[0])} (not a trajectory row)")
        task = fmt.parse_task_id(str(row["task"]))
        if task is None:
            raise InputError(f"{path}: line {line}: field 'task': {quote(row['task'])} is not SUBTREE:START->TARGET")
        key = str(row["episode"])
        steps = grouped.setdefault(key, [])
        if row["step"] != len(steps):
            raise InputError(f"{path}: line {line}: field 'step': {quote(row['step'])} in episode {key}, "
                             f"expected {len(steps)}")
        if steps and steps[-1]["done"]:
            raise InputError(f"{path}: line {line}: episode {key} continues after its last step")
        if not isinstance(row["attempt"], int):
            raise InputError(f"{path}: line {line}: field 'attempt': {quote(row['attempt'])} is not an integer")
        head = (*task, row["attempt"])
        if heads.setdefault(key, head) != head:
            raise InputError(f"{path}: line {line}: episode {key} changes task or attempt")
        steps.append(row)
    return [EpisodeLog(model, key, *heads[key], tuple(steps)) for key, steps in grouped.items()]
