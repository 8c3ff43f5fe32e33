"""Shared helpers of the evaluation tests: Env-Base built in memory (no rendering) and its rows."""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

from gelab.datasets import Source, step_rows
from gelab.envdir import Environment, RenderSettings
from gelab.generate import generate
from gelab.navigation import Navigator
from gelab.params import EnvParams
from gelab.structure import EnvStructure
from gelab.tasks import Task, task_universe

TEST_SUBTREE = "page_5"


@functools.lru_cache(maxsize=None)
def env_base() -> tuple[EnvStructure, dict[str, str]]:
    return generate(EnvParams())


@functools.lru_cache(maxsize=None)
def navigator() -> Navigator:
    return Navigator(env_base()[0])


def tasks(subtree: str = TEST_SUBTREE) -> list[Task]:
    return task_universe(env_base()[0], subtree, navigator())


def static_rows(subtree: str = TEST_SUBTREE, task_list: list[Task] | None = None) -> list[dict[str, Any]]:
    """The static-evaluation rows of a subtree (as the data stage writes them), images not rendered."""
    structure, art = env_base()
    src = Source(Environment(Path("env"), structure, art, RenderSettings()), navigator(), "env")
    return list(step_rows(src, task_list if task_list is not None else tasks(subtree), random.Random(0)))


def prediction_row(sample: dict[str, Any], prediction: object) -> dict[str, Any]:
    """A project-layout prediction row: the sample's scoring columns plus ``prediction``."""
    row = {k: v for k, v in sample.items() if k not in ("messages", "images")}
    row["prediction"] = prediction
    return row


def release_row(sample: dict[str, Any], prediction: object, idx: int) -> dict[str, Any]:
    """The same step in the released evaluation layout (user + ground-truth assistant, no system)."""
    user = next(m["content"] for m in sample["messages"] if m["role"] == "user")
    truth = next(m["content"] for m in sample["messages"] if m["role"] == "assistant")
    row: dict[str, Any] = {"idx": idx, "path": sample["path_length"],
                           "task": f"From {sample['start']} to {sample['target']}",
                           "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": truth}],
                           "images": sample["images"], "prediction": prediction}
    if sample["bbox_norm"] is not None:
        row["bbox_norm"] = sample["bbox_norm"]
    return row
