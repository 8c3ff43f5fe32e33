"""Checks before a stage starts: the starting weights exist, the template can find the model's images
(a stock Qwen2-VL template needs image id 151655), and a GPU launch has the paper profile's packages."""

from __future__ import annotations

import json
from pathlib import Path

from gelab.params import RlParams
from gelab.train.command import STOCK_QWEN_VL_TEMPLATES
from gelab.train.config import TrainError, TrainParams
from gelab.train.tiny_model import QWEN_IMAGE_PAD_ID, TEMPLATE

GPU_LOCK_INSTALL = ("pip install -r requirements-gpu.lock (the paper profile's GPU lock; `nix develop` and "
                    "`make setup-gpu` install it)")
FLASH_ATTN_INSTALL = ("make flash-attn (builds the flash-attn of requirements-gpu-flash-attn.txt against the "
                      "installed torch: pip install --no-build-isolation --no-deps -r requirements-gpu-flash-attn.txt, "
                      "with nvcc from CUDA_HOME; REPRODUCE.md §1)")


def _unusable(module: str, load: bool) -> str | None:
    """Why ``module`` cannot be used (not installed, or, with ``load``, fails to import); None if it can."""
    import importlib
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # ValueError: blocked by a None entry in sys.modules
        found = False
    if not found:
        return "is not installed"
    if load:
        try:
            importlib.import_module(module)
        except (ImportError, OSError) as exc:  # e.g. built against another torch: undefined symbols
            return f"is installed but does not load ({exc})"
    return None


def check_gpu_packages(tp: TrainParams, stage: str) -> None:
    """Before anything runs: the GPU packages this stage's params ask for are installed and load.

    ``launch.attn_impl: flash_attn`` needs flash-attn (imported, so a build against another torch is
    caught here, not by the first forward pass); ``use_vllm`` (RL rollouts) needs vLLM.
    """
    problems = []
    if tp.launch.attn_impl == "flash_attn":
        why = _unusable("flash_attn", load=True)
        if why:
            problems.append(f"launch.attn_impl is flash_attn but the flash-attn package {why}: {FLASH_ATTN_INSTALL}")
    p = tp.stage(stage)
    if isinstance(p, RlParams) and p.use_vllm:
        why = _unusable("vllm", load=False)
        if why:
            problems.append(f"{stage}.use_vllm is true but the vllm package {why}: {GPU_LOCK_INSTALL}")
    if problems:
        raise TrainError(f"{stage}: " + "; ".join(problems))


def check_init(path: str, field: str) -> None:
    """Clear error when the starting weights are missing."""
    if (Path(path) / "config.json").exists():
        return
    hint = ("put the Qwen2.5-VL-7B-Instruct weights there (config.json, *.safetensors, tokenizer and "
            "preprocessor files) and track them with `dvc add data/Qwen2.5-VL-7B-Instruct` (updates data.dvc)"
            if "Qwen2.5-VL" in path else "run the stage that produces it first (dvc repro)")
    raise TrainError(f"{field}: {path} has no config.json: {hint}")


def check_template(init: str, template: str) -> None:
    """Refuse a stock Qwen2-VL template for a model whose image token is not Qwen's 151655: ms-swift
    would expand no image and train on text alone, silently."""
    if template not in STOCK_QWEN_VL_TEMPLATES:
        return
    config = json.loads((Path(init) / "config.json").read_text(encoding="utf-8"))
    image_id = config.get("image_token_id", QWEN_IMAGE_PAD_ID)
    if image_id != QWEN_IMAGE_PAD_ID:
        raise TrainError(f"model.template: {template} finds images by id {QWEN_IMAGE_PAD_ID}, but {init}/config.json "
                         f"has image_token_id {image_id}; use template {TEMPLATE}")
