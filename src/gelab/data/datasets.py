"""Datasets in ms-swift's JSONL layout (SPEC §4), built from environment folders.

Every row has ``messages`` (system, user[, assistant]) and ``images`` (one model image), plus
columns that rewards and scorers read by name:

- step samples (SFT path/edge data, ST-RL, static eval): ``id``, ``kind`` = "navigation",
  ``subtree``, ``start``, ``target``, ``path_length``, ``step`` (0-based), ``page``, ``action``
  ("click" | "complete"), ``gt_name`` (None for complete), ``bbox_norm`` (None for complete),
  ``optimal_names`` (every optimal first action; ties accepted when scoring), ``solution``.
- grounding/captioning: ``id``, ``kind``, ``page``, ``action`` = "click", ``gt_name``,
  ``bbox_norm``, ``solution``.
- MT-RL tasks: ``id``, ``subtree``, ``start``, ``target``, ``path_length``, ``env_dir``.

RL rows (ST-RL, MT-RL) carry no assistant message: the policy writes it. Click points are random
integer points inside ``bbox_norm`` (as in the release), drawn from a stream seeded by
(seed, file name), so a fixed seed gives byte-identical files.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from tqdm import tqdm

from gelab import format as fmt
from gelab.env.envdir import ART_FILE, Environment
from gelab.env.navigation import Navigator
from gelab.env.structure import STRUCTURE_FILE, SYSTEM
from gelab.errors import InputError, quote
from gelab.io import (
    atomic_directory,
    atomic_write_bytes,
    atomic_write_json,
    files_digest,
    jsonl_bytes,
)
from gelab.params import DataParams, as_dict
from gelab.seeding import derived_rng
from gelab.tasks.universe import Task, subtree_roots, task_universe


@dataclass
class Source:
    """An environment with its navigator and where its images are referenced from."""

    env: Environment
    nav: Navigator
    image_root: str  # path written into rows (as given on the command line)

    @classmethod
    def of(cls, env: Environment, image_root: str | Path | None = None) -> "Source":
        return cls(env, Navigator(env.structure), str(image_root if image_root is not None else env.root))

    def image(self, page: str) -> str:
        return f"{self.image_root}/model_images/{self.env.structure.pages[page].image}"


def random_point(rng: random.Random, box: fmt.Box) -> tuple[int, int]:
    """A click point drawn uniformly in a box (model space)."""
    return rng.randint(box[0], box[2]), rng.randint(box[1], box[3])


def _messages(user: str, assistant: str | None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": fmt.SYSTEM_PROMPT}, {"role": "user", "content": user}]
    if assistant is not None:
        msgs.append({"role": "assistant", "content": assistant})
    return msgs


def step_rows(src: Source, tasks: list[Task], rng: random.Random, *, with_answer: bool = True) -> Iterator[dict[str, Any]]:
    """One row per click on each task's labelled shortest path, then one ``complete`` row."""
    nav = src.nav
    for task in tasks:
        path = nav.shortest_path(task.start, task.target)
        history: list[fmt.HistoryStep] = []  # grows turn by turn
        for step, (page, action) in enumerate([*path, (task.target, None)]):
            prompt = fmt.navigation_prompt(task.start, task.target, history)
            row: dict[str, Any] = {"id": fmt.step_id(task.start, task.target, step, task.subtree),
                                   "kind": "navigation", "subtree": task.subtree,
                                   "start": task.start, "target": task.target, "path_length": task.path_length,
                                   "step": step, "page": page}
            if action is None:
                answer = fmt.complete_text()
                row.update(action=fmt.COMPLETE, gt_name=None, bbox_norm=None, optimal_names=[])
            else:
                box = nav.bbox_norm(page, action)
                x, y = random_point(rng, box)
                answer = fmt.click_text(action, page, x, y)
                row.update(action=fmt.CLICK, gt_name=action, bbox_norm=list(box),
                           optimal_names=nav.optimal_actions(page, task.target))
                history.append(fmt.HistoryStep(action, page))
            row["solution"] = answer
            row["messages"] = _messages(prompt, answer if with_answer else None)
            row["images"] = [src.image(page)]
            yield row


def icon_rows(src: Source, kind: str, per_icon: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """Grounding or captioning rows: ``per_icon`` per icon name, content icons and back/home alike."""
    pages_of: dict[str, list[str]] = {}
    for page in src.env.structure.pages.values():
        for el in page.elements:
            if el.type != SYSTEM and el.name not in src.nav.edges[page.id]:
                continue  # distractors are not taught
            pages_of.setdefault(el.name, []).append(page.id)
    for name in sorted(pages_of):
        for i in range(per_icon):
            page = rng.choice(pages_of[name])
            box = src.nav.bbox_norm(page, name)
            x, y = random_point(rng, box)
            if kind == "grounding":
                prompt = fmt.grounding_prompt(name, page)
            elif kind == "captioning":
                prompt = fmt.captioning_prompt(x, y, page)
            else:
                raise ValueError(f"unknown icon task {quote(kind)}")
            answer = fmt.click_text(name, page, x, y)
            yield {"id": fmt.icon_row_id(kind, name, i), "kind": kind, "page": page, "action": fmt.CLICK, "gt_name": name,
                   "bbox_norm": list(box), "solution": answer, "messages": _messages(prompt, answer),
                   "images": [src.image(page)]}


def edge_tasks(tasks: list[Task]) -> list[Task]:
    """The one-click tasks (edge data)."""
    return [t for t in tasks if t.path_length == 1]


def mt_rl_rows(src: Source, tasks: list[Task]) -> Iterator[dict[str, Any]]:
    for task in tasks:
        yield {"id": task.id, "subtree": task.subtree, "start": task.start, "target": task.target,
               "path_length": task.path_length, "env_dir": src.image_root,
               "messages": _messages(fmt.navigation_prompt(task.start, task.target), None),
               "images": [src.image(task.start)]}


def rng_for(seed: int, file_name: str) -> random.Random:
    return derived_rng(seed, "data", file_name)


def universe(src: Source, subtree: str) -> list[Task]:
    return task_universe(src.env.structure, subtree, src.nav)


def _build_rows(params: DataParams, base: Source, variants: dict[str, Source],
                roots: list[str]) -> dict[str, list[dict[str, Any]]]:
    tasks = {r: universe(base, r) for r in roots}
    files: dict[str, list[dict[str, Any]]] = {}

    def rows(name: str, it: Iterable[dict[str, Any]]) -> None:
        files.setdefault(name, []).extend(it)

    sft = "sft.jsonl"
    for r in params.sft_subtrees:
        for copy in range(params.sft_path_copies):  # each copy draws fresh click points
            key = f"{sft}:path:{r}" + (f":{copy}" if copy else "")
            rows(sft, step_rows(base, tasks[r], rng_for(params.seed, key)))
    for r in roots:
        rows(sft, step_rows(base, edge_tasks(tasks[r]), rng_for(params.seed, f"{sft}:edge:{r}")))
    rows(sft, icon_rows(base, "captioning", params.captioning_per_icon, rng_for(params.seed, f"{sft}:captioning")))
    rows(sft, icon_rows(base, "grounding", params.grounding_per_icon, rng_for(params.seed, f"{sft}:grounding")))
    rows("st_rl.jsonl", step_rows(base, tasks[params.st_rl_subtree], rng_for(params.seed, "st_rl"), with_answer=False))
    rows("mt_rl.jsonl", mt_rl_rows(base, tasks[params.mt_rl_subtree]))
    rows("static_id.jsonl", step_rows(base, tasks[params.id_subtree], rng_for(params.seed, "static_id")))
    rows("static_ood.jsonl", step_rows(base, tasks[params.test_subtree], rng_for(params.seed, "static_ood")))
    for kind in params.ood_variants:
        src = variants[kind]
        rows(f"static_ood_{kind}.jsonl",
             step_rows(src, universe(src, params.test_subtree), rng_for(params.seed, f"static_ood_{kind}")))
    rows("tasks_test.jsonl", (t.to_json() for t in tasks[params.test_subtree]))
    return files


def _fingerprint(src: Source) -> str:
    """SHA-256 of the environment's structure and art files: which environment the rows came from."""
    return files_digest(src.env.root, (src.env.root / name for name in (STRUCTURE_FILE, ART_FILE)))


def check_splits(params: DataParams, roots: list[str], variants: dict[str, Source]) -> None:
    named = [*params.sft_subtrees, *params.rl_subtrees, params.test_subtree, params.id_subtree,
             params.st_rl_subtree, params.mt_rl_subtree]
    for subtree in named:
        if subtree not in roots:
            raise InputError(f"data: subtree {quote(subtree)} is not a child of page_0 (roots: {', '.join(roots)})")
    if params.test_subtree in [*params.sft_subtrees, *params.rl_subtrees]:
        raise InputError(f"data.test_subtree {params.test_subtree} is also a training subtree")
    missing = [k for k in params.ood_variants if k not in variants]
    if missing:
        raise InputError(f"data.ood_variants names {quote(missing[0])} but no such variant environment was given")


def build_all(params: DataParams, base: Source, variants: dict[str, Source], out: str | Path,
              progress: bool = True) -> dict[str, int]:
    """Write every dataset of SPEC §4 into ``out`` (atomically, as one folder); returns row counts."""
    roots = subtree_roots(base.env.structure)
    check_splits(params, roots, variants)
    gc_was_enabled = gc.isenabled()
    gc.disable()  # ~120k small rows: the cyclic collector would only slow the build down
    try:
        files = _build_rows(params, base, variants, roots)
        encoded = {name: jsonl_bytes(rows) for name, rows in files.items()}
    finally:
        if gc_was_enabled:
            gc.enable()
    counts = {name: len(rows) for name, rows in files.items()}
    manifest = {"counts": counts, "params": as_dict(params),
                "environments": {name: {"path": src.image_root, "sha256": _fingerprint(src)}
                                 for name, src in {"base": base, **variants}.items()}}
    with atomic_directory(out) as tmp:
        with tqdm(list(encoded), desc="write datasets", unit="file", disable=not progress) as bar:
            for name in bar:
                atomic_write_bytes(tmp / name, encoded[name])
        atomic_write_json(tmp / "manifest.json", manifest)
    return counts
