"""The paper profile on two CPU cores: `make paper-rehearsal` (REPRODUCE.md §3).

Runs ``profiles/paper.yaml`` through the pipeline exactly as a GPU machine would -- a copy of this
checkout, the base weights put in ``data/Qwen2.5-VL-7B-Instruct`` and tracked with ``dvc add`` (``data.dvc``),
then ``dvc repro`` -- with only the substitutions listed in ``SUBSTITUTIONS`` below. Everything else
is the paper profile's: the environment and datasets at full size, learning rates, schedules and
warm-up, per-device batch and accumulation, 8 generations, temperature, top-k, beta, 12 MT-RL turns,
lengths, save and consolidation, the DVC outputs, and evaluation with all 5 attempts (on a few tasks).
ms-swift runs for real, so its own argument checks (post-initialisation, not only parsing) run too.

    python scripts/paper_rehearsal.py [--out build/paper_rehearsal] [--base DIR] [--cache DIR]

The base weights are the embedded default's tiny model, saved in shards as a 7B model is. By default
that is the random-init model of the `model` stage; ``--base`` takes a trained one instead, e.g. the
embedded run's ``build/checkpoints/sft/final`` (what `make paper-rehearsal` passes when it exists).
It changes only the time: a random-init model never ends an answer, so every answer runs to the
128-token cap, in all 12 MT-RL turns and 12 evaluation steps.

``--out`` holds the copy (``OUT/repo``); nothing is written elsewhere unless ``--cache`` names a DVC
cache to share, whose stages run with the same inputs (the environment and datasets of the embedded
default are the paper's) are then restored instead of run. Running it again continues: ``dvc repro``
skips what is done.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
PAPER = REPO / "profiles" / "paper.yaml"
EMBEDDED = REPO / "params.yaml"
BASE_SHARD = "1MB"  # the tiny base saved in several shards, as a 7B model is (ms-swift: 5 GB)

# (dotted key in params, rehearsal value, why). Nothing else of profiles/paper.yaml changes.
SUBSTITUTIONS: tuple[tuple[str, Any, str], ...] = (
    ("model.template", "gelab_qwen2_5_vl", "the tiny model's template: its image id is its tokenizer's, not 151655"),
    ("launch.device", "cpu", "no GPU"),
    ("launch.nnodes", 1, "16 GPUs -> 2 CPU processes on one machine"),
    ("launch.nproc_per_node", 2, "16 GPUs -> 2 CPU processes on one machine"),
    ("launch.extra_env", {"OMP_NUM_THREADS": "1"}, "one thread per process on 2 cores"),
    ("launch.torch_dtype", "float32", "bf16 -> float32 (CPU)"),
    ("launch.attn_impl", "sdpa", "flash-attention needs a GPU"),
    ("sft.packing", False, "packing needs flash-attention"),
    ("sft.max_samples", 16, "a handful of rows: 2 steps of 2 ranks x 2 x 2 accumulation"),
    ("sft.max_steps", 2, "2 steps per stage"),
    ("st_rl.use_vllm", False, "vLLM -> the PyTorch engine"),
    ("st_rl.max_samples", 8, "a handful of prompts: 2 steps of 32 completions = 4 prompts x 8"),
    ("st_rl.max_steps", 2, "2 steps per stage"),
    ("mt_rl.use_vllm", False, "vLLM -> the PyTorch engine"),
    ("mt_rl.max_samples", 8, "a handful of tasks: 2 steps of 32 episodes = 4 tasks x 8"),
    ("mt_rl.max_steps", 2, "2 steps per stage"),
    ("eval.backend", "hf", "vLLM -> the hf backend"),
    ("eval.device", "cpu", "no GPU"),
    ("eval.static_limit_tasks", 7, "a few tasks per static file: one per path length"),
    ("eval.interactive_limit_tasks", 7, "a few tasks, one per path length, each with all 5 attempts"),
)
# model -> the tiny model: `model.tiny` is the embedded default's (params.yaml), and the base weights in
# data/Qwen2.5-VL-7B-Instruct are that model (or --base), saved in BASE_SHARD shards.
TINY = "model.tiny"


def rehearsal_params(paper: dict[str, Any], embedded: dict[str, Any]) -> dict[str, Any]:
    """profiles/paper.yaml with SUBSTITUTIONS and the embedded tiny model; a key the profile lacks is an error."""
    params = copy.deepcopy(paper)
    tiny = (TINY, embedded["model"]["tiny"], "the embedded default's tiny model")
    for dotted, value, _ in (*SUBSTITUTIONS, tiny):
        *parents, leaf = dotted.split(".")
        node = params
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise KeyError(f"{PAPER.name}: {dotted}: not in the paper profile")
        node[leaf] = value
    return params


def copy_checkout(dest: Path) -> None:
    """Tracked and untracked-but-not-ignored files of this checkout, as a fresh git repository."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    for stale in ("metrics", "plots"):  # results are made by the copy's run, never inherited
        for f in [*(dest / stale).rglob("*.json"), *(dest / stale).rglob("*.csv")]:
            f.unlink()
    shutil.rmtree(dest / "reports", ignore_errors=True)
    if not (dest / ".git").exists():
        run(dest, "git", "init", "-q")


def run(cwd: Path, *cmd: str) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, env=env, check=True)


def save_base(tiny: Path, dest: Path) -> None:
    """The tiny model as the paper profile's base weights: ms-swift-style shards with an index."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny, dtype=torch.float32)
    model.save_pretrained(tmp, max_shard_size=BASE_SHARD)
    for f in tiny.iterdir():
        if f.is_file() and not f.name.startswith("model.safetensors") and not (tmp / f.name).exists():
            shutil.copy2(f, tmp / f.name)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "build" / "paper_rehearsal")
    ap.add_argument("--base", type=Path, help="a trained tiny model as base weights (default: random init)")
    ap.add_argument("--cache", type=Path, help="a DVC cache directory to share (default: the copy's own)")
    args = ap.parse_args(argv)
    started = time.monotonic()

    paper = yaml.safe_load(PAPER.read_text())
    base = Path(paper["model"]["base"])
    out = args.out.resolve()
    if out.is_relative_to(REPO) and subprocess.run(["git", "check-ignore", "-q", str(out)], cwd=REPO).returncode:
        ap.error(f"--out {args.out}: inside this checkout but not ignored by git (the copy would copy itself); "
                 "use a folder under build/ or outside the checkout")
    if args.base and not (args.base / "config.json").is_file():
        ap.error(f"--base {args.base}: no config.json (a Hugging Face model folder, e.g. build/checkpoints/sft/final)")
    repo = out / "repo"
    copy_checkout(repo)
    (repo / "params.yaml").write_text(
        "# profiles/paper.yaml with the rehearsal's substitutions (scripts/paper_rehearsal.py)\n"
        + yaml.safe_dump(rehearsal_params(paper, yaml.safe_load(EMBEDDED.read_text())), sort_keys=False))
    if args.cache:
        run(repo, sys.executable, "-m", "dvc", "cache", "dir", "--local", str(args.cache.resolve()))
    run(repo, sys.executable, "-m", "gelab.cli", "env", "inputs", "--out", "data/emoji")
    run(repo, sys.executable, "-m", "dvc", "repro", "model")
    # the same bytes for the same model, so a rerun changes nothing downstream
    save_base(args.base.resolve() if args.base else repo / "build" / "models" / "tiny", repo / base)
    run(repo, sys.executable, "-m", "dvc", "add", str(base))  # REPRODUCE.md §1: the base weights join data.dvc
    run(repo, sys.executable, "-m", "dvc", "repro")
    print(f"paper rehearsal done in {time.monotonic() - started:.0f} s: {repo}")
    return 0


def cli() -> int:
    try:
        return main()
    except subprocess.CalledProcessError as exc:
        print(f"paper rehearsal: `{' '.join(map(str, exc.cmd))}` failed (exit {exc.returncode}); its output is above",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
