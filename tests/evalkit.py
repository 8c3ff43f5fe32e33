"""Shared helpers of the evaluation tests: Env-Base built in memory (no rendering) and its rows."""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

from gelab.data.datasets import Source, step_rows
from gelab.env.envdir import Environment, RenderSettings
from gelab.env.generate import generate
from gelab.env.navigation import Navigator
from gelab.env.structure import EnvStructure
from gelab.params import EnvParams
from gelab.tasks.universe import Task, task_universe

TEST_SUBTREE = "page_5"


@functools.lru_cache(maxsize=None)
def env_base() -> tuple[EnvStructure, dict[str, str]]:
    return generate(EnvParams())


@functools.lru_cache(maxsize=None)
def navigator() -> Navigator:
    return Navigator(env_base()[0])


def tasks(subtree: str = TEST_SUBTREE) -> list[Task]:
    return task_universe(env_base()[0], subtree, navigator())


def static_rows(subtree: str = TEST_SUBTREE, task_list: list[Task] | None = None,
                image_root: str = "env") -> list[dict[str, Any]]:
    """The static-evaluation rows of a subtree (as the data stage writes them), images not rendered."""
    structure, art = env_base()
    src = Source(Environment(Path(image_root), structure, art, RenderSettings()), navigator(), image_root)
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


# --- a tiny random Qwen2.5-VL (for the hf backend tests) ---------------------------------------

def build_tiny_qwen(out: Path, seed: int = 0) -> Path:
    """The project's tiny Qwen2.5-VL (``gelab.train.tiny_model``) at test size: 2 text layers of width 64 and
    one vision block, its tokenizer trained on a few hundred of Env-Base's step samples."""
    from gelab.io import atomic_write_bytes, jsonl_bytes
    from gelab.params import TinyModelParams
    from gelab.train.tiny_model import build_tiny_model

    corpus = out.parent / f"{out.name}-corpus.jsonl"
    atomic_write_bytes(corpus, jsonl_bytes(static_rows()[:400]))
    params = TinyModelParams(seed=seed, vocab_learned=512, text_hidden=64, text_intermediate=128, text_layers=2,
                             vision_depth=1, init_std=0.5)  # wide init: untrained answers depend on the input
    build_tiny_model(params, [corpus], out)
    return out


def write_env_folder(out: Path, images: bool = False, size: int = 448) -> Path:
    """Env-Base as a folder with its structure and art file; page images (``images``) are stand-ins:
    coloured boxes where the elements are, not the rendered icons (enough for model-backend tests)."""
    import json

    from PIL import Image, ImageDraw

    structure, art = env_base()
    out.mkdir(parents=True, exist_ok=True)
    (out / "ui_structure.json").write_text(structure.dumps(), encoding="utf-8")
    (out / "icons.json").write_text(json.dumps({"model_image_size": size, "title_box": [389, 60, 789, 260],
                                                "art": art}), encoding="utf-8")
    if images:
        (out / "model_images").mkdir(exist_ok=True)
        w, h = structure.canvas
        for n, page in enumerate(structure.pages.values()):
            img = Image.new("RGB", (size, size), "white")
            draw = ImageDraw.Draw(img)
            for k, e in enumerate(page.elements):
                x1, y1, x2, y2 = (e.bbox[0] * size // w, e.bbox[1] * size // h, e.bbox[2] * size // w,
                                  e.bbox[3] * size // h)
                draw.rectangle((x1, y1, x2, y2), fill=((37 * n + 71 * k) % 256, (91 * k) % 256, (53 * n) % 256))
            img.save(out / "model_images" / page.image)
    return out
