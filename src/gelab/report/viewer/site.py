"""Write the viewer site (layout: :mod:`gelab.report.viewer`) from an environment, its variants and
the trajectory logs of any number of models. The folder appears whole or not at all, and the same
inputs give the same bytes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm import tqdm

from gelab import format as fmt
from gelab.env.envdir import Environment
from gelab.env.navigation import Navigator
from gelab.errors import InputError, quote
from gelab.io import atomic_directory
from gelab.report.viewer.aggregate import OUTCOMES, Summary, failure_summary, summarize
from gelab.report.viewer.assets import asset_files
from gelab.report.viewer.envdata import site_environments
from gelab.report.viewer.images import IMAGE_SUFFIX, jpeg_bytes, page_picture
from gelab.report.viewer.logs import EpisodeLog
from gelab.tasks.universe import page_number

CHUNK_SIZE = 200  # episodes per on-demand file
IMAGE_WIDTH = 300  # screenshot width in the site, pixels
STEP_FIELDS = ("page", "output", "action", "click", "claimed", "hit", "new_page", "error")  # a step in a chunk


@dataclass(frozen=True)
class Scored:
    """An episode with its place in the task table and its summary."""

    log: EpisodeLog
    task: int
    length: int
    summary: Summary


def _js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _assign(name: str, value: Any) -> bytes:
    return f"window.{name} = {_js(value)};\n".encode("utf-8")


def _order(e: EpisodeLog) -> tuple[int, int, int, int, str]:
    return page_number(e.subtree), page_number(e.start), page_number(e.target), e.attempt, e.key


def _check_pages(env: Environment, e: EpisodeLog, where: str) -> None:
    pages = env.structure.pages
    for name in (e.start, e.target, *(r["page"] for r in e.rows), *(r["new_page"] for r in e.rows)):
        if name not in pages:
            raise InputError(f"{where}: episode {e.key}: page {quote(name)} is not in the environment {env.root}")


def task_table(env: Environment, runs: Mapping[str, Sequence[EpisodeLog]]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """The tasks of every episode (sorted by subtree, start, target) with path length and the labelled
    optimal path ``[[page, action, next page], ...]``; and task id -> row."""
    nav = Navigator(env.structure)
    seen = {(e.subtree, e.start, e.target) for eps in runs.values() for e in eps}
    rows, index = [], {}
    for subtree, start, target in sorted(seen, key=lambda t: tuple(map(page_number, t))):
        length = nav.distances_to(target).get(start)
        if length is None:
            raise InputError(f"{env.root}: {target} cannot be reached from {start}")
        optimal = [[p, a, nav.edges[p][a]] for p, a in nav.shortest_path(start, target)]
        index[fmt.task_id(start, target, subtree)] = len(rows)
        rows.append({"subtree": subtree, "start": start, "target": target, "length": length, "optimal": optimal})
    return rows, index


def score_runs(env: Environment, runs: Mapping[str, Sequence[EpisodeLog]],
               sources: Mapping[str, str]) -> tuple[list[dict[str, Any]], dict[str, list[Scored]]]:
    """Check every episode against the environment; the task table and each model's episodes in order."""
    for model, eps in runs.items():
        for e in eps:
            _check_pages(env, e, sources.get(model, model))
    tasks, task_of = task_table(env, runs)
    scored = {}
    for model, eps in runs.items():
        scored[model] = [Scored(e, task_of[e.task], tasks[task_of[e.task]]["length"],
                                summarize(e.start, e.target, e.rows)) for e in sorted(eps, key=_order)]
    return tasks, scored


def index_payload(tasks: list[dict[str, Any]], scored: Mapping[str, list[Scored]], sources: Mapping[str, str],
                  chunk_size: int) -> dict[str, Any]:
    """``GELAB_INDEX``: models, tasks and one column per episode field (episodes of a model are
    contiguous; the k-th of a model lives in chunk k // chunk_size)."""
    models, cols = [], {"model": [], "task": [], "attempt": [], "outcome": [], "reached": [], "flags": [],
                        "steps": []}  # type: dict[str, list[int]]
    for m, (model, eps) in enumerate(scored.items()):
        models.append({"name": model, "source": sources.get(model), "first": len(cols["model"]),
                       "episodes": len(eps), "chunks": -(-len(eps) // chunk_size)})
        for s in eps:
            cols["model"].append(m)
            cols["task"].append(s.task)
            cols["attempt"].append(s.log.attempt)
            cols["outcome"].append(OUTCOMES.index(s.summary.outcome))
            cols["reached"].append(int(s.summary.reached))
            cols["flags"].append(s.summary.flags)
            cols["steps"].append(s.summary.steps)
    return {"chunk_size": chunk_size, "step_fields": list(STEP_FIELDS), "outcomes": list(OUTCOMES),
            "models": models, "tasks": tasks, "episodes": cols}


def chunk_script(model: str, k: int, eps: Sequence[Scored]) -> bytes:
    body = [{"key": s.log.key, "steps": [[r[f] for f in STEP_FIELDS] for r in s.log.rows]} for s in eps]
    return f"gelabChunk({_js(model)},{k},{_js(body)});\n".encode("utf-8")


def build_site(out: str | Path, env: Environment, runs: Mapping[str, Sequence[EpisodeLog]], *,
               variants: Mapping[str, Environment] | None = None, sources: Mapping[str, str] | None = None,
               image_width: int = IMAGE_WIDTH, chunk_size: int = CHUNK_SIZE, progress: bool = True) -> dict[str, int]:
    """Check every input, then write the site folder ``out``; returns counts (episodes, files, bytes)."""
    variants = dict(variants or {})
    sources = dict(sources or {})
    if image_width < 16 or chunk_size < 1:
        raise InputError(f"image width must be at least 16 and chunk size at least 1 (got {image_width}, {chunk_size})")
    tasks, scored = score_runs(env, runs, sources)
    envs = {"base": env, **variants}
    environment = site_environments(env, variants)
    summary = {model: failure_summary([(s.length, s.summary, s.log.rows) for s in eps])
               for model, eps in scored.items()}
    files = 0
    size = 0
    with atomic_directory(out) as tmp:
        def put(rel: str, data: bytes) -> None:
            nonlocal files, size
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files += 1
            size += len(data)

        for rel, data in asset_files().items():
            put(rel, data)
        put("data/env.js", _assign("GELAB_ENV", environment))
        put("data/index.js", _assign("GELAB_INDEX", index_payload(tasks, scored, sources, chunk_size)))
        put("data/summary.js", _assign("GELAB_SUMMARY", summary))
        pictures = [(name, e, page) for name, e in envs.items() for page in e.structure.pages]
        with tqdm(pictures, desc="view: screenshots", unit="page", disable=not progress) as bar:
            for name, e, page in bar:
                put(f"img/{name}/{page}{IMAGE_SUFFIX}", jpeg_bytes(page_picture(e, page, image_width)))
        total = sum(len(eps) for eps in scored.values())
        with tqdm(total=total, desc="view: episodes", unit="episode", disable=not progress) as bar:
            for model, eps in scored.items():
                for k, lo in enumerate(range(0, len(eps), chunk_size)):
                    put(f"data/chunks/{model}/{k}.js", chunk_script(model, k, eps[lo:lo + chunk_size]))
                    bar.update(len(eps[lo:lo + chunk_size]))
    return {"episodes": total, "files": files, "bytes": size}
